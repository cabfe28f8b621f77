/* libFuzzer: a checkpoint from arbitrary bytes, and when it loads, one
 * forward pass over two rows on it (the code that uses the parsed sizes). */
#include <stdlib.h>
#include <string.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > (1 << 20)) return 0;
    float *copy = malloc(size + 4); /* weights are read as floats: keep them aligned */
    if (!copy) return 0;
    memcpy(copy, data, size);
    Model m;
    char err[TEMPO_ERR_SIZE];
    if (tempo_model_from_buffer(&m, copy, size, "fuzz", err) == 0) {
        const Config *c = &m.config;
        int tokens[2] = {1 % c->vocab_size, (int)(size % (size_t)c->vocab_size)}, pos[2] = {0, c->seq_len - 1};
        uint8_t allowed[4] = {1, 0, 1, 1};
        Mask mask = tempo_mask_dense(allowed, 1, 0, 2, 2);
        float *logits = malloc((size_t)2 * c->vocab_size * sizeof(float));
        float *att = malloc((size_t)c->n_layers * c->n_heads * 4 * sizeof(float));
        Outputs out = {.logits = logits, .hidden = NULL, .attention = att};
        if (logits && att) tempo_forward_full(&m, 2, tokens, pos, &mask, out, err);
        tempo_model_check(&m, NULL);
        free(logits);
        free(att);
        tempo_model_free(&m);
    }
    free(copy);
    return 0;
}
