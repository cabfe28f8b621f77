/* libFuzzer: a safetensors trace from arbitrary bytes; when it holds the
 * inputs of a forward pass, read its logits (logits or kept_rows/kept_logits)
 * and recompute them on a tiny synthetic model as `tempo verify` does. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"

static Model model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    char path[] = "/tmp/tempo-fuzz-model-XXXXXX", err[TEMPO_ERR_SIZE];
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    SynthConfig s;
    tempo_synth_defaults(&s);
    s.dim = 16, s.hidden_dim = 32, s.n_layers = 2, s.n_heads = 2, s.n_kv_heads = 1, s.vocab_size = 32, s.seq_len = 16;
    if (tempo_synth_write(&s, path, err) != 0 || tempo_model_load(&model, path, err) != 0) abort();
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    Trace t;
    char err[TEMPO_ERR_SIZE];
    if (tempo_trace_parse(&t, data, size, "fuzz", err) != 0) return 0;
    int n, mask_layers;
    if (tempo_trace_inputs(&t, &model.config, &n, &mask_layers, err) == 0 && n <= 64) {
        const Config *c = &model.config;
        TraceLogits kept;
        float sum = 0.0f;
        if (tempo_trace_logits(&t, n, c->vocab_size, &kept, err) == 0)
            for (int r = -1; r <= n; r++) {
                const float *row = tempo_trace_logits_row(&kept, r, c->vocab_size);
                if (row) sum += row[0] + row[c->vocab_size - 1];
            }
        (void)sum;
        float *logits = malloc((size_t)n * c->vocab_size * sizeof(float));
        float *att = malloc((size_t)c->n_layers * c->n_heads * n * n * sizeof(float));
        Outputs out = {.logits = logits, .hidden = NULL, .attention = att};
        TraceMask tm;
        if (logits && att && tempo_trace_mask(&t, c, n, &tm, err) == 0) {
            tempo_forward_full(&model, n, tempo_trace_get(&t, "tokens")->data, tempo_trace_get(&t, "positions")->data,
                               &tm.mask, out, err);
            tempo_trace_mask_free(&tm);
        }
        free(logits);
        free(att);
    }
    tempo_trace_free(&t);
    return 0;
}
