/* llama2c.c - llama2.c checkpoints (the format of run.c), mapped in place. */
#include "formats.h"
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* File: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len), then float32 tensors in this order:
 * token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real, freq_cis_imag (legacy RoPE tables, unused), and wcls when
 * vocab_size < 0 (an untied classifier). Sizes are checked against the file
 * length before any tensor is touched. */

enum { MAX_DIM = 1 << 16, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_VOCAB = 1 << 22,
       MAX_SEQ = 1 << 22 };

int tempo_llama2c_config(const int h[7], Config *c, char *err) {
    const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                            "vocab_size", "seq_len"};
    const int caps[7] = {MAX_DIM, 4 * MAX_DIM, MAX_LAYERS, MAX_HEADS, MAX_HEADS, MAX_VOCAB, MAX_SEQ};
    for (int i = 0; i < 7; i++) {
        int v = (i == 5 && h[i] < 0 && h[i] != INT32_MIN) ? -h[i] : h[i];
        if (v <= 0) return tempo_error(err, "bad checkpoint header: %s = %d (must be positive)", names[i], h[i]);
        if (v > caps[i]) return tempo_error(err, "bad checkpoint header: %s = %d exceeds the limit %d", names[i], v, caps[i]);
    }
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = abs(h[5]);
    c->seq_len = h[6];
    if (c->dim % c->n_heads != 0)
        return tempo_error(err, "bad checkpoint header: dim %d is not divisible by n_heads %d", c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return tempo_error(err, "bad checkpoint header: n_heads %d is not a multiple of n_kv_heads %d",
                    c->n_heads, c->n_kv_heads);
    c->head_dim = c->dim / c->n_heads;
    if (c->head_dim % 2 != 0)
        return tempo_error(err, "bad checkpoint header: head dimension %d is odd (RoPE needs pairs)", c->head_dim);
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_interleaved = 1;
    c->bos_token_id = TEMPO_BOS;
    c->n_eos = 1;
    c->eos_token_ids[0] = TEMPO_EOS;
    return 0;
}


/* Number of floats after the header that the config implies. */
static size_t weight_floats(const Config *c) {
    size_t L = c->n_layers, dim = c->dim, hid = c->hidden_dim, V = c->vocab_size;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t per_layer = 2 * dim + 2 * q_dim * dim + 2 * kv_dim * dim + 3 * hid * dim;
    return V * dim + L * per_layer + dim + (size_t)c->seq_len * c->head_dim + (c->shared_classifier ? 0 : V * dim);
}

/* Points every tensor into the floats that follow the header. Each layer
 * tensor is stored for all layers at once, in table order. */
static void map_weights(Weights *w, const Config *c, const float *p) {
    size_t L = c->n_layers, dim = c->dim;
    w->token_embedding = (Matrix){p, WEIGHT_F32};
    p += (size_t)c->vocab_size * dim;
    for (int i = 0; i < N_LAYER_TENSORS; i++) {
        const LayerTensor *lt = &tempo_layer_tensors[i];
        size_t floats = tempo_unit(c, lt->rows) * (lt->cols == UNIT_NONE ? 1 : tempo_unit(c, lt->cols));
        for (size_t l = 0; l < L; l++) {
            if (lt->cols == UNIT_NONE) *tempo_layer_vector(w, (int)l, i) = p + l * floats;
            else *tempo_layer_matrix(w, (int)l, i) = (Matrix){p + l * floats, WEIGHT_F32};
        }
        p += L * floats;
    }
    w->rms_final = p;
    p += dim;
    p += (size_t)c->seq_len * c->head_dim; /* freq_cis_real and _imag, seq_len x head_dim/2 each */
    w->wcls = c->shared_classifier ? w->token_embedding : (Matrix){p, WEIGHT_F32};
}

int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err) {
    memset(m, 0, sizeof *m);
    if (tempo_is_gguf(data, size)) {
        if (tempo_gguf_model(m, data, size, name, err) != 0) return -1;
        m->kernels = &tempo_fast_kernels;
        return 0;
    }
    int header[7];
    if (size < sizeof header)
        return tempo_error(err, "truncated checkpoint %s: %zu bytes, the header alone needs 28", name, size);
    memcpy(header, data, sizeof header);
    if (tempo_llama2c_config(header, &m->config, err) != 0) return -1;
    size_t expected = sizeof header + weight_floats(&m->config) * sizeof(float);
    if (size != expected)
        return tempo_error(err, "%s checkpoint %s: %zu bytes, the header implies %zu",
                           size < expected ? "truncated" : "oversized", name, size, expected);
    m->weights.layers = calloc((size_t)m->config.n_layers, sizeof(LayerWeights));
    if (!m->weights.layers || tempo_model_rope(m, NULL, err) != 0) {
        tempo_model_free(m);
        return tempo_error(err, "out of memory for %d layers", m->config.n_layers);
    }
    map_weights(&m->weights, &m->config, (const float *)((const char *)data + sizeof header));
    snprintf(m->path, sizeof m->path, "%s", name);
    m->kernels = &tempo_fast_kernels;
    return 0;
}

/* A llama2.c checkpoint file, mapped read-only. */
int tempo_load_llama2c(Model *m, const char *path, char *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tempo_error(err, "cannot open checkpoint %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tempo_error(err, "checkpoint %s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 4) { /* longer ones are told apart (GGUF magic) and checked by tempo_model_from_buffer */
        close(fd);
        return tempo_error(err, "truncated checkpoint %s: %zu bytes, the header alone needs 28", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tempo_error(err, "cannot mmap checkpoint %s: %s", path, strerror(errno));
    if (tempo_model_from_buffer(m, map, size, path, err) != 0) {
        munmap(map, size);
        return -1;
    }
    m->maps[0] = map; /* owned: unmapped by tempo_model_free */
    m->map_sizes[0] = size;
    m->n_maps = 1;
    return 0;
}
