/* checkpoint.c - loading a model from any checkpoint format: the format
 * is told from the path (a directory is Hugging Face, a file llama2.c);
 * the one table of a layer's tensors; the NaN/Inf check; freeing. */
#include "formats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define FIELD(f) offsetof(LayerWeights, f)
const LayerTensor tempo_layer_tensors[N_LAYER_TENSORS] = {
    {"rms_att", "input_layernorm", "attn_norm", FIELD(rms_att), UNIT_DIM, UNIT_NONE},
    {"wq", "self_attn.q_proj", "attn_q", FIELD(wq), UNIT_Q, UNIT_DIM},
    {"wk", "self_attn.k_proj", "attn_k", FIELD(wk), UNIT_KV, UNIT_DIM},
    {"wv", "self_attn.v_proj", "attn_v", FIELD(wv), UNIT_KV, UNIT_DIM},
    {"wo", "self_attn.o_proj", "attn_output", FIELD(wo), UNIT_DIM, UNIT_Q},
    {"rms_ffn", "post_attention_layernorm", "ffn_norm", FIELD(rms_ffn), UNIT_DIM, UNIT_NONE},
    {"w1", "mlp.gate_proj", "ffn_gate", FIELD(w1), UNIT_HIDDEN, UNIT_DIM},
    {"w2", "mlp.down_proj", "ffn_down", FIELD(w2), UNIT_DIM, UNIT_HIDDEN},
    {"w3", "mlp.up_proj", "ffn_up", FIELD(w3), UNIT_HIDDEN, UNIT_DIM},
};
#undef FIELD

size_t tempo_unit(const Config *c, Unit u) {
    switch (u) {
    case UNIT_DIM: return (size_t)c->dim;
    case UNIT_Q: return (size_t)c->n_heads * c->head_dim;
    case UNIT_KV: return (size_t)c->n_kv_heads * c->head_dim;
    case UNIT_HIDDEN: return (size_t)c->hidden_dim;
    default: return 0;
    }
}

Matrix *tempo_layer_matrix(Weights *w, int l, int i) {
    return (Matrix *)((char *)&w->layers[l] + tempo_layer_tensors[i].field);
}

const float **tempo_layer_vector(Weights *w, int l, int i) {
    return (const float **)((char *)&w->layers[l] + tempo_layer_tensors[i].field);
}

int tempo_model_load(Model *m, const char *path, char *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    int rc = stat(path, &st) == 0 && S_ISDIR(st.st_mode)
                 ? tempo_load_hf(m, path, err)
                 : tempo_load_llama2c(m, path, err); /* which also reads GGUF files, told by their magic */
    if (rc == 0) m->kernels = &tempo_fast_kernels;
    return rc;
}

const char *tempo_model_name(const Model *m) {
    const char *base = strrchr(m->path, '/');
    return base ? base + 1 : m->path;
}

int tempo_model_rope(Model *m, const RopeScaling *rs, char *err) {
    m->rope_inv_freq = malloc((size_t)(m->config.head_dim / 2) * sizeof(double));
    if (!m->rope_inv_freq) return tempo_error(err, "out of memory");
    tempo_rope_inv_freq(rs, m->config.head_dim, m->config.rope_theta, m->rope_inv_freq);
    return 0;
}

/* Counts NaN and Inf values of a [rows][cols] matrix in its stored type,
 * converting a row at a time; prints a line to `out` (may be NULL) if any. */
static size_t scan_tensor(FILE *out, const char *name, Matrix x, size_t rows, size_t cols) {
    size_t nan = 0, inf = 0, first = rows * cols;
    float *row = malloc(cols * sizeof(float));
    if (!row) {
        if (out) fprintf(out, "%s: out of memory for a row of %zu values\n", name, cols);
        return 1;
    }
    for (size_t r = 0; r < rows; r++) {
        tempo_dequantize(x.type, (const char *)x.data + r * tempo_row_bytes(x.type, cols), cols, row);
        for (size_t i = 0; i < cols; i++) {
            if (isnan(row[i])) nan++;
            else if (isinf(row[i])) inf++;
            else continue;
            if (first == rows * cols) first = r * cols + i;
        }
    }
    free(row);
    if (nan + inf && out) fprintf(out, "%s: %zu NaN, %zu Inf (first at element %zu)\n", name, nan, inf, first);
    return nan + inf;
}

static size_t scan_vector(FILE *out, const char *name, const float *v, size_t n) {
    return scan_tensor(out, name, (Matrix){v, WEIGHT_F32}, 1, n);
}

size_t tempo_model_check(const Model *m, FILE *out) {
    const Config *c = &m->config;
    Weights w = m->weights;
    size_t dim = c->dim, V = c->vocab_size;
    size_t bad = scan_tensor(out, "token_embedding", w.token_embedding, V, dim);
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            char name[64];
            snprintf(name, sizeof name, "layer %d %s", l, lt->name);
            size_t rows = tempo_unit(c, lt->rows);
            if (lt->cols == UNIT_NONE) bad += scan_vector(out, name, *tempo_layer_vector(&w, l, i), rows);
            else bad += scan_tensor(out, name, *tempo_layer_matrix(&w, l, i), rows, tempo_unit(c, lt->cols));
        }
    bad += scan_vector(out, "rms_final", w.rms_final, dim);
    if (!c->shared_classifier) bad += scan_tensor(out, "wcls", w.wcls, V, dim);
    return bad;
}

void tempo_model_free(Model *m) {
    for (int i = 0; i < m->n_maps; i++) munmap(m->maps[i], m->map_sizes[i]);
    free(m->weights.layers);
    free(m->rope_inv_freq);
    free(m->converted);
    memset(m, 0, sizeof *m);
}
