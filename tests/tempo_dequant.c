/* tempo_dequant.c - every matrix of a checkpoint as tempo dequantizes it
 * (tempo_dequantize), written as F32 tensors under their GGUF names to one
 * safetensors file, so an independent reader (llama.cpp's gguf-py in
 * tests/test_llama.py) can compare them value for value.
 *
 *   tempo-dequant MODEL OUT.safetensors */
#include <stdio.h>
#include <stdlib.h>

#include "../formats/formats.h"

/* Adds one [rows][cols] matrix, converted row by row, as `name`. */
static int add_matrix(Trace *t, const char *name, const Matrix *m, size_t rows, size_t cols, char *err) {
    float *values = malloc(rows * cols * sizeof(float));
    if (!values) return tempo_error(err, "out of memory for %s", name);
    size_t row_bytes = tempo_row_bytes(m->type, cols);
    for (size_t r = 0; r < rows; r++)
        tempo_dequantize(m->type, (const char *)m->data + r * row_bytes, cols, values + r * cols);
    int64_t shape[2] = {(int64_t)rows, (int64_t)cols};
    int rc = tempo_trace_add(t, name, DT_F32, 2, shape, values, err);
    free(values);
    return rc;
}

static int add_layers(Trace *t, Model *m, char *err) {
    const Config *c = &m->config;
    char name[160];
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            if (lt->cols == UNIT_NONE) continue;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lt->gguf_name);
            if (add_matrix(t, name, tempo_layer_matrix(&m->weights, l, i), tempo_unit(c, lt->rows),
                           tempo_unit(c, lt->cols), err) != 0)
                return -1;
        }
    return 0;
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE] = "";
    if (argc != 3) {
        fprintf(stderr, "usage: tempo-dequant MODEL OUT.safetensors\n");
        return 2;
    }
    Model m;
    if (tempo_model_load(&m, argv[1], err) != 0) {
        fprintf(stderr, "tempo-dequant: %s\n", err);
        return 1;
    }
    const Config *c = &m.config;
    Trace t;
    tempo_trace_init(&t);
    int rc = add_matrix(&t, "token_embd.weight", &m.weights.token_embedding, c->vocab_size, c->dim, err);
    if (rc == 0 && !c->shared_classifier)
        rc = add_matrix(&t, "output.weight", &m.weights.wcls, c->vocab_size, c->dim, err);
    if (rc == 0) rc = add_layers(&t, &m, err);
    if (rc == 0) rc = tempo_trace_write(&t, argv[2], err);
    tempo_trace_free(&t);
    tempo_model_free(&m);
    if (rc != 0) fprintf(stderr, "tempo-dequant: %s\n", err);
    return rc == 0 ? 0 : 1;
}
