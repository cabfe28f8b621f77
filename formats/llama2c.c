/* llama2c.c - llama2.c checkpoints (the format of run.c): the header read
 * into a Config, and where each tensor lies in the floats after it. */
#include "formats.h"

#include <stdlib.h>
#include <string.h>

/* File: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len), then float32 tensors in this order:
 * token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real, freq_cis_imag (legacy RoPE tables, unused), and wcls when
 * vocab_size < 0 (an untied classifier). Sizes are checked against the file
 * length before any tensor is touched. */

int tempo_llama2c_config(const int h[7], Config *c, char *err) {
    memset(c, 0, sizeof *c);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? INT32_MIN : abs(h[5]); /* negative: an untied classifier follows */
    c->seq_len = h[6];
    c->head_dim = c->n_heads > 0 && c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 2;
    if (tempo_config_check(c, "bad checkpoint header", err) != 0) return -1;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_interleaved = 1;
    c->bos_token_id = TEMPO_BOS;
    c->n_eos = 1;
    c->eos_token_ids[0] = TEMPO_EOS;
    return 0;
}

/* Floats of tensor t (one layer's, for a layer tensor). */
static size_t tensor_floats(const Config *c, const LayerTensor *t) {
    return tempo_unit(c, t->rows) * (t->cols == UNIT_NONE ? 1 : tempo_unit(c, t->cols));
}

/* Where the tensors lie: each layer tensor is stored for all layers at once, in table order. */
typedef struct {
    const Config *c;
    const float *floats;        /* after the header */
    size_t layer_at[N_LAYER_TENSORS], rms_final_at, wcls_at, end;
} Llama2cLayout;

static void layout(Llama2cLayout *x, const Config *c, const float *floats) {
    x->c = c;
    x->floats = floats;
    size_t at = (size_t)c->vocab_size * c->dim;
    for (int i = 0; i < N_LAYER_TENSORS; i++) {
        x->layer_at[i] = at;
        at += (size_t)c->n_layers * tensor_floats(c, &tempo_layer_tensors[i]);
    }
    x->rms_final_at = at;
    x->wcls_at = at + c->dim + (size_t)c->seq_len * c->head_dim; /* after freq_cis_real and _imag */
    x->end = x->wcls_at + (c->shared_classifier ? 0 : (size_t)c->vocab_size * c->dim);
}

/* The binder's view of a tensor: its place in the file, with the shape the header gives it. */
static int llama2c_find(void *ctx, const LayerTensor *t, int l, Tensor *out, char *err) {
    (void)err;
    const Llama2cLayout *x = ctx;
    size_t at = 0;
    if (l >= 0) at = x->layer_at[t - tempo_layer_tensors] + (size_t)l * tensor_floats(x->c, t);
    else if (t->rows == UNIT_DIM) at = x->rms_final_at;
    else if (t->field == offsetof(Weights, wcls)) at = x->wcls_at;
    if (l >= 0) snprintf(out->name, sizeof out->name, "layer %d %s", l, t->name);
    else snprintf(out->name, sizeof out->name, "%s", t->name);
    out->dtype = DT_F32;
    out->ndim = t->cols == UNIT_NONE ? 1 : 2;
    out->shape[0] = (int64_t)tempo_unit(x->c, t->rows);
    out->shape[1] = (int64_t)tempo_unit(x->c, t->cols);
    out->data = (void *)(x->floats + at);
    return 0;
}

static int llama2c_read(Model *m, const void *data, size_t size, const char *name, char *err) {
    int header[7];
    if (size < sizeof header)
        return tempo_error(err, "truncated checkpoint %s: %zu bytes, the header alone needs 28", name, size);
    memcpy(header, data, sizeof header);
    if (tempo_llama2c_config(header, &m->config, err) != 0 || tempo_model_set_path(m, name, err) != 0) return -1;
    Llama2cLayout x;
    layout(&x, &m->config, (const float *)((const char *)data + sizeof header));
    size_t expected = sizeof header + x.end * sizeof(float);
    if (size != expected)
        return tempo_error(err, "%s checkpoint %s: %zu bytes, the header implies %zu",
                           size < expected ? "truncated" : "oversized", name, size, expected);
    /* no tensor names: the size check above already places every layer the header counts */
    TensorSource src = {.ctx = &x, .find = llama2c_find, .implied_by = "the header"};
    if (tempo_model_bind(m, &src, err) != 0) return -1;
    return tempo_model_rope(m, NULL, err);
}

int tempo_llama2c_model(Model *m, const void *data, size_t size, const char *name, char *err) {
    memset(m, 0, sizeof *m);
    if (llama2c_read(m, data, size, name, err) == 0) return 0;
    tempo_model_free(m);
    return -1;
}
