/* libFuzzer: a GGUF file from arbitrary bytes: the strict reader, then the
 * model (config, RoPE, every tensor dequantized), its tokenizer with one
 * encode, and a forward pass over two rows. */
#include <stdlib.h>
#include <string.h>

#include "../../formats/gguf.h"

static void run_model(const Model *m, const GgufFile *g) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    Tokenizer t;
    if (tempo_gguf_tokenizer(g, c, &t, err) == 0) {
        int ids[64], n;
        tempo_encode(&t, "The cat's 12 \xc3\xa9\xf0\x9f\x99\x82", ids, 64, &n, err);
        tempo_tokenizer_free(&t);
    }
    if (c->n_layers * (size_t)c->dim * c->hidden_dim > (1u << 24)) return; /* keep each run short */
    int tokens[2] = {1 % c->vocab_size, c->vocab_size - 1}, pos[2] = {0, c->seq_len - 1};
    uint8_t allowed[4] = {1, 0, 1, 1};
    Mask mask = tempo_mask_dense(allowed, 1, 0, 2, 2);
    float *logits = malloc((size_t)2 * c->vocab_size * sizeof(float));
    Outputs out = {.logits = logits};
    if (logits) tempo_forward_full(m, 2, tokens, pos, &mask, out, err);
    free(logits);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > (4 << 20)) return 0;
    unsigned char *copy = malloc(size + 1); /* tensor data is read as floats: keep the buffer aligned */
    if (!copy) return 0;
    memcpy(copy, data, size);
    GgufFile g;
    Model m;
    char err[TEMPO_ERR_SIZE];
    if (tempo_gguf_parse(&g, copy, size, "fuzz", err) == 0) {
        if (tempo_gguf_model(&m, copy, size, "fuzz", err) == 0) {
            run_model(&m, &g);
            tempo_model_free(&m);
        }
        tempo_gguf_free(&g);
    }
    free(copy);
    return 0;
}
