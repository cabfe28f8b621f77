/* libFuzzer: a Hugging Face model directory from arbitrary bytes. Layout:
 * u16 length of config.json, config.json, model.safetensors. When it
 * loads, one forward pass over two rows on it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"
#include "scratch_dir.h"

static const char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    dir = scratch_make();
    return 0;
}

static void write_file(const char *name, const unsigned char *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 2) return 0;
    size_t config_len = (size_t)(data[0] | data[1] << 8);
    if (2 + config_len > size) return 0;
    write_file("config.json", data + 2, config_len);
    write_file("model.safetensors", data + 2 + config_len, size - 2 - config_len);
    Model m;
    char err[TEMPO_ERR_SIZE];
    if (tempo_model_load(&m, dir, err) == 0) {
        const Config *c = &m.config;
        if ((size_t)c->n_layers * c->dim < 1000000) {
            int tokens[2] = {0, c->vocab_size - 1}, pos[2] = {0, c->seq_len - 1};
            uint8_t allowed[4] = {1, 0, 1, 1};
            Mask mask = tempo_mask_dense(allowed, 1, 0, 2, 2);
            float *logits = malloc((size_t)2 * c->vocab_size * sizeof(float));
            Outputs out = {.logits = logits, .hidden = NULL, .attention = NULL};
            if (logits) tempo_forward_full(&m, 2, tokens, pos, &mask, out, err);
            free(logits);
        }
        tempo_model_free(&m);
    }
    return 0;
}
