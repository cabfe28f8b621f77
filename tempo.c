/* tempo.c - TEMPO (Threshold-Enabled Multipath Parallel Output) generation
 * for Llama models, written to be read. Sections:
 *
 *   1. Errors and small helpers
 *   2. Checkpoint loading (llama2.c format)
 *   3. Tokenizer (llama2.c tokenizer.bin, sentencepiece-style BPE;
 *      tokenizer.json's byte-level BPE is in tokenizer_json.c)
 *   4. The math, one step per function
 *   5. The KV cache
 *   6. The forward pass over a position map and a mask
 *   7. Masks: causal, isolated, visible
 *   8. Traces (safetensors)
 *   9. TEMPO generation
 *  10. Synthetic models
 *
 * The command-line tool lives in cli.c. NOTES.md explains the why. */
#define _GNU_SOURCE
#include "tempo.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ===================================================================== */
/* 1. Errors and small helpers                                           */
/* ===================================================================== */

int tempo_error(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, TEMPO_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Grows *buf so it holds at least `need` elements of `elem` bytes. */
static int grow(void **buf, size_t *cap, size_t need, size_t elem, char *err) {
    if (need <= *cap) return 0;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) new_cap *= 2;
    void *p = realloc(*buf, new_cap * elem);
    if (!p) return tempo_error(err, "out of memory growing a buffer to %zu bytes", new_cap * elem);
    *buf = p;
    *cap = new_cap;
    return 0;
}

/* Reads a whole file into memory; the caller frees *buf. */
static int read_file(const char *path, const char *what, unsigned char **buf, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return tempo_error(err, "cannot open %s %s: %s", what, path, strerror(errno));
    size_t cap = 0;
    *buf = NULL;
    *len = 0;
    for (;;) {
        if (grow((void **)buf, &cap, *len + 65536, 1, err) != 0) {
            fclose(f);
            free(*buf);
            return -1;
        }
        size_t got = fread(*buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(*buf);
        return tempo_error(err, "cannot read %s %s", what, path);
    }
    return 0;
}

int tempo_atomic_open(AtomicFile *a, const char *path, const char *what, char *err) {
    a->what = what;
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", path, (int)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return tempo_error(err, "cannot write %s%s: %s", what, path, strerror(errno));
    return 0;
}

int tempo_atomic_close(AtomicFile *a, int ok, char *err) {
    if (ferror(a->f)) ok = 0;
    if (fclose(a->f) != 0) ok = 0;
    a->f = NULL;
    if (!ok || rename(a->tmp, a->path) != 0) {
        int e = errno;
        unlink(a->tmp);
        return tempo_error(err, "cannot write %s%s: %s", a->what, a->path, e ? strerror(e) : "write failed");
    }
    return 0;
}

int tempo_write_text_file(const char *path, const char *text, char *err) {
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    return tempo_atomic_close(&a, fputs(text, a.f) >= 0, err);
}

/* A safetensors header: u64 little-endian length, then the JSON padded with
 * spaces to a multiple of 8 bytes (little-endian on every machine tempo targets). */
static int write_safetensors_header(FILE *f, const char *json) {
    size_t json_len = strlen(json), padded = (json_len + 7) / 8 * 8;
    uint64_t header_len = padded;
    int ok = fwrite(&header_len, 8, 1, f) == 1 && fwrite(json, 1, json_len, f) == json_len;
    for (size_t i = json_len; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    return ok;
}

void tempo_set_threads(int n) {
    if (n <= 0) return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

/* ===================================================================== */
/* 2. Checkpoint loading (llama2.c format)                               */
/* ===================================================================== */
/* File: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len), then float32 tensors in this order:
 * token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real, freq_cis_imag (legacy RoPE tables, unused), and wcls when
 * vocab_size < 0 (an untied classifier). Sizes are checked against the file
 * length before any tensor is touched. */

enum { MAX_DIM = 1 << 16, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_VOCAB = 1 << 22,
       MAX_SEQ = 1 << 22 };

static int check_header(const int *h, Config *c, char *err) {
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

int tempo_is_eos(const Config *c, int token) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == token) return 1;
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
 * tensor is stored for all layers at once, in this order. */
static void map_weights(Weights *w, const Config *c, const float *p) {
    size_t L = c->n_layers, dim = c->dim, hid = c->hidden_dim;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    struct { size_t field, floats; } order[9] = {
        {offsetof(LayerWeights, rms_att), dim},        {offsetof(LayerWeights, wq), q_dim * dim},
        {offsetof(LayerWeights, wk), kv_dim * dim},    {offsetof(LayerWeights, wv), kv_dim * dim},
        {offsetof(LayerWeights, wo), dim * q_dim},     {offsetof(LayerWeights, rms_ffn), dim},
        {offsetof(LayerWeights, w1), hid * dim},       {offsetof(LayerWeights, w2), dim * hid},
        {offsetof(LayerWeights, w3), hid * dim}};
    w->token_embedding = p;
    p += (size_t)c->vocab_size * dim;
    for (int t = 0; t < 9; t++) {
        for (size_t l = 0; l < L; l++)
            *(const float **)((char *)&w->layers[l] + order[t].field) = p + l * order[t].floats;
        p += L * order[t].floats;
    }
    w->rms_final = p;
    p += dim;
    p += (size_t)c->seq_len * c->head_dim; /* freq_cis_real and _imag, seq_len x head_dim/2 each */
    w->wcls = c->shared_classifier ? w->token_embedding : p;
}

void tempo_rope_inv_freq(const RopeScaling *rs, int head_dim, double theta, double *inv_freq) {
    for (int i = 0; i < head_dim / 2; i++) {
        double f = pow(theta, -2.0 * i / head_dim);
        if (rs && rs->type == ROPE_LINEAR) f /= rs->factor;
        if (rs && rs->type == ROPE_LLAMA3) {
            double low_wavelen = rs->original_max_position / rs->low_freq_factor;
            double high_wavelen = rs->original_max_position / rs->high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= rs->factor; /* long wavelengths: scaled */
            } else if (wavelen >= high_wavelen) { /* in between: blended */
                double smooth = (rs->original_max_position / wavelen - rs->low_freq_factor) /
                                (rs->high_freq_factor - rs->low_freq_factor);
                f = (1.0 - smooth) * f / rs->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

/* The model's RoPE inverse frequencies. */
static int model_rope(Model *m, const RopeScaling *rs, char *err) {
    m->rope_inv_freq = malloc((size_t)(m->config.head_dim / 2) * sizeof(double));
    if (!m->rope_inv_freq) return tempo_error(err, "out of memory");
    tempo_rope_inv_freq(rs, m->config.head_dim, m->config.rope_theta, m->rope_inv_freq);
    return 0;
}

int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err) {
    memset(m, 0, sizeof *m);
    int header[7];
    if (size < sizeof header)
        return tempo_error(err, "truncated checkpoint %s: %zu bytes, the header alone needs 28", name, size);
    memcpy(header, data, sizeof header);
    if (check_header(header, &m->config, err) != 0) return -1;
    size_t expected = sizeof header + weight_floats(&m->config) * sizeof(float);
    if (size != expected)
        return tempo_error(err, "%s checkpoint %s: %zu bytes, the header implies %zu",
                           size < expected ? "truncated" : "oversized", name, size, expected);
    m->weights.layers = calloc((size_t)m->config.n_layers, sizeof(LayerWeights));
    if (!m->weights.layers || model_rope(m, NULL, err) != 0) {
        tempo_model_free(m);
        return tempo_error(err, "out of memory for %d layers", m->config.n_layers);
    }
    map_weights(&m->weights, &m->config, (const float *)((const char *)data + sizeof header));
    snprintf(m->path, sizeof m->path, "%s", name);
    return 0;
}

static int load_hf(Model *m, const char *dir, char *err);

int tempo_model_load(Model *m, const char *path, char *err) {
    memset(m, 0, sizeof *m);
    struct stat dir_st;
    if (stat(path, &dir_st) == 0 && S_ISDIR(dir_st.st_mode)) return load_hf(m, path, err);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tempo_error(err, "cannot open checkpoint %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tempo_error(err, "checkpoint %s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 28) {
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

/* Counts NaN and Inf values of one tensor; prints a line to `out` (may be NULL) if any. */
static size_t scan_tensor(FILE *out, const char *name, const float *p, size_t n) {
    size_t nan = 0, inf = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        if (isnan(p[i])) nan++;
        else if (isinf(p[i])) inf++;
        else continue;
        if (first == n) first = i;
    }
    if (nan + inf && out) fprintf(out, "%s: %zu NaN, %zu Inf (first at element %zu)\n", name, nan, inf, first);
    return nan + inf;
}

size_t tempo_model_check(const Model *m, FILE *out) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    size_t dim = c->dim, hid = c->hidden_dim, V = c->vocab_size;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t bad = scan_tensor(out, "token_embedding", w->token_embedding, V * dim);
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];
        const char *names[9] = {"rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"};
        const float *ptrs[9] = {lw->rms_att, lw->wq, lw->wk, lw->wv, lw->wo, lw->rms_ffn, lw->w1, lw->w2, lw->w3};
        size_t sizes[9] = {dim, q_dim * dim, kv_dim * dim, kv_dim * dim, dim * q_dim, dim, hid * dim, dim * hid, hid * dim};
        for (int i = 0; i < 9; i++) {
            char name[64];
            snprintf(name, sizeof name, "layer %d %s", l, names[i]);
            bad += scan_tensor(out, name, ptrs[i], sizes[i]);
        }
    }
    bad += scan_tensor(out, "rms_final", w->rms_final, dim);
    if (!c->shared_classifier) bad += scan_tensor(out, "wcls", w->wcls, V * dim);
    return bad;
}

/* The JSON header of a safetensors file in memory (u64 little-endian length,
 * at most 100 MB, then that many bytes of JSON object); *data and
 * *data_len receive the tensor bytes after it. NULL on error. */
static cJSON *safetensors_header(const unsigned char *buf, size_t len, const char *kind, const char *path,
                                 const unsigned char **data, size_t *data_len, char *err) {
    uint64_t header_len = 0;
    if (len < 8) {
        tempo_error(err, "bad %s %s: not a safetensors file (%zu bytes, shorter than its 8-byte header length)", kind, path, len);
        return NULL;
    }
    memcpy(&header_len, buf, 8);
    if (header_len > len - 8 || header_len > (100u << 20)) {
        tempo_error(err, "bad %s %s: not a safetensors file (header length %llu exceeds the file of %zu bytes)", kind, path,
                    (unsigned long long)header_len, len);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)header_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        tempo_error(err, "bad %s %s: the header is not a JSON object", kind, path);
        return NULL;
    }
    *data = buf + 8 + header_len;
    *data_len = len - 8 - (size_t)header_len;
    return root;
}

/* ---- Hugging Face layout: config.json + *.safetensors ---------------- */
/* Tensors model.embed_tokens.weight [V][D], model.norm.weight [D],
 * lm_head.weight [V][D] (absent when tied), and per layer i
 * model.layers.i.{input_layernorm, post_attention_layernorm}.weight [D],
 * self_attn.{q,k,v,o}_proj.weight, mlp.{gate,up,down}_proj.weight, all
 * [out][in]. q/k rows are in rotate-half order (rope_interleaved 0). */

typedef struct {
    char name[160];
    int dtype;                 /* 0 F32, 1 F16, 2 BF16 */
    int ndim;
    int64_t shape[4];
    const unsigned char *data;
    size_t bytes;
} StTensor;

typedef struct {
    StTensor *t;
    int n, cap;
} StIndex;

/* A JSON number that is an int (checked before any cast: a huge double does not fit). */
static int json_is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= INT32_MIN && v->valuedouble <= INT32_MAX && v->valuedouble == floor(v->valuedouble);
}

static int json_int(const cJSON *cfg, const char *key, int fallback, int *out, const char *dir, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (fallback == INT32_MIN) return tempo_error(err, "bad config.json in %s: %s is missing", dir, key);
        *out = fallback;
        return 0;
    }
    if (!json_is_int(v))
        return tempo_error(err, "bad config.json in %s: %s must be an integer", dir, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int json_num(const cJSON *cfg, const char *key, double fallback, double *out, const char *dir, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (isnan(fallback)) return tempo_error(err, "bad config.json in %s: %s is missing", dir, key);
        *out = fallback;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0)
        return tempo_error(err, "bad config.json in %s: %s must be a positive number", dir, key);
    *out = v->valuedouble;
    return 0;
}

/* Config fields, checked as a llama2.c header is, plus head_dim and RoPE scaling. */
/* bos_token_id: an id or null (none); eos_token_id: an id, a list of ids, or
 * null. Missing fields take transformers' LlamaConfig defaults (1 and 2). */
static int parse_special_ids(const cJSON *cfg, const char *dir, Config *c, char *err) {
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    if (cJSON_IsNull(bos)) c->bos_token_id = -1;
    else if (bos && json_int(cfg, "bos_token_id", 0, &c->bos_token_id, dir, err) != 0) return -1;
    if (cJSON_IsNull(eos)) c->n_eos = 0;
    if (cJSON_IsArray(eos)) {
        c->n_eos = 0;
        for (const cJSON *e = eos->child; e; e = e->next) {
            if (c->n_eos == 8) return tempo_error(err, "bad config.json in %s: more than 8 eos_token_id values", dir);
            if (!json_is_int(e))
                return tempo_error(err, "bad config.json in %s: eos_token_id must hold integers", dir);
            c->eos_token_ids[c->n_eos++] = (int)e->valuedouble;
        }
    } else if (eos && !cJSON_IsNull(eos) && json_int(cfg, "eos_token_id", 0, &c->eos_token_ids[0], dir, err) != 0) {
        return -1;
    }
    if (c->bos_token_id < -1 || c->bos_token_id >= c->vocab_size)
        return tempo_error(err, "bad config.json in %s: bos_token_id %d is outside the vocabulary of %d", dir, c->bos_token_id,
                           c->vocab_size);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= c->vocab_size)
            return tempo_error(err, "bad config.json in %s: eos_token_id %d is outside the vocabulary of %d", dir,
                               c->eos_token_ids[i], c->vocab_size);
    return 0;
}

static int parse_hf_config(const cJSON *cfg, const char *dir, Config *c, RopeScaling *rs, char *err) {
    int h[7], head_dim, tied = 0;
    const char *keys[7] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                           "num_key_value_heads", "vocab_size", "max_position_embeddings"};
    for (int i = 0; i < 7; i++)
        if (json_int(cfg, keys[i], i == 4 ? -1 : INT32_MIN, &h[i], dir, err) != 0) return -1;
    if (h[4] == -1) h[4] = h[3]; /* no GQA given: one kv head per query head */
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) return tempo_error(err, "bad config.json in %s: tie_word_embeddings must be true or false", dir);
    tied = tie && cJSON_IsTrue(tie);
    if (h[5] <= 0) return tempo_error(err, "bad config.json in %s: vocab_size = %d (must be positive)", dir, h[5]);
    h[5] = tied ? h[5] : -h[5];
    if (check_header(h, c, err) != 0) return -1;
    if (json_int(cfg, "head_dim", c->head_dim, &head_dim, dir, err) != 0) return -1;
    if (head_dim <= 0 || head_dim % 2 || head_dim > 4096)
        return tempo_error(err, "bad config.json in %s: head_dim %d must be even and in (0, 4096]", dir, head_dim);
    c->head_dim = head_dim;
    double eps, theta;
    if (json_num(cfg, "rms_norm_eps", 1e-6, &eps, dir, err) != 0 || json_num(cfg, "rope_theta", 10000.0, &theta, dir, err) != 0)
        return -1;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->rope_interleaved = 0;
    if (parse_special_ids(cfg, dir, c, err) != 0) return -1;
    memset(rs, 0, sizeof *rs);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
        if (!type) type = cJSON_GetObjectItemCaseSensitive(scaling, "type");
        if (!cJSON_IsString(type)) return tempo_error(err, "bad config.json in %s: rope_scaling has no rope_type", dir);
        if (strcmp(type->valuestring, "linear") == 0) rs->type = ROPE_LINEAR;
        else if (strcmp(type->valuestring, "llama3") == 0) rs->type = ROPE_LLAMA3;
        else if (strcmp(type->valuestring, "default") != 0)
            return tempo_error(err, "bad config.json in %s: rope_scaling type %s is not supported (linear, llama3)", dir,
                               type->valuestring);
        if (rs->type != ROPE_PLAIN && json_num(scaling, "factor", NAN, &rs->factor, dir, err) != 0) return -1;
        if (rs->type == ROPE_LLAMA3) {
            if (json_num(scaling, "low_freq_factor", NAN, &rs->low_freq_factor, dir, err) != 0 ||
                json_num(scaling, "high_freq_factor", NAN, &rs->high_freq_factor, dir, err) != 0 ||
                json_int(scaling, "original_max_position_embeddings", INT32_MIN, &rs->original_max_position, dir, err) != 0)
                return -1;
            if (rs->high_freq_factor <= rs->low_freq_factor || rs->original_max_position <= 0)
                return tempo_error(err, "bad config.json in %s: llama3 rope_scaling needs high_freq_factor > low_freq_factor", dir);
        }
    }
    return 0;
}

static int by_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Maps one safetensors file and adds its tensors to the index. */
static int index_safetensors(Model *m, const char *path, StIndex *ix, char *err) {
    if (m->n_maps == (int)(sizeof m->maps / sizeof m->maps[0])) return tempo_error(err, "too many safetensors files (limit 64)");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tempo_error(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 8) {
        close(fd);
        return tempo_error(err, "bad safetensors %s: not a safetensors file (shorter than its 8-byte header length)", path);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tempo_error(err, "cannot mmap %s: %s", path, strerror(errno));
    m->maps[m->n_maps] = map;
    m->map_sizes[m->n_maps++] = size;
    const unsigned char *data;
    size_t data_len;
    cJSON *root = safetensors_header(map, size, "safetensors", path, &data, &data_len, err);
    if (!root) return -1;
    int first = ix->n, rc = 0;
    static const char *const dtypes[3] = {"F32", "F16", "BF16"};
    static const size_t sizes[3] = {4, 2, 2};
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
            cJSON_GetArraySize(shape) > 4 || strlen(e->string) >= sizeof ix->t[0].name) {
            rc = tempo_error(err, "bad safetensors %s: tensor %.100s lacks dtype, shape or data_offsets", path, e->string);
            break;
        }
        if (ix->n == ix->cap) {
            int cap = ix->cap ? 2 * ix->cap : 64;
            StTensor *p = realloc(ix->t, (size_t)cap * sizeof *p);
            if (!p) { rc = tempo_error(err, "out of memory indexing %s", path); break; }
            ix->t = p;
            ix->cap = cap;
        }
        StTensor *t = &ix->t[ix->n];
        snprintf(t->name, sizeof t->name, "%s", e->string);
        t->dtype = -1;
        for (int i = 0; i < 3; i++) if (strcmp(dt->valuestring, dtypes[i]) == 0) t->dtype = i;
        if (t->dtype < 0) { rc = tempo_error(err, "bad safetensors %s: tensor %s has dtype %s (F32, F16, BF16 supported)", path, t->name, dt->valuestring); break; }
        t->ndim = cJSON_GetArraySize(shape);
        double count = 1;
        for (int d = 0; d < t->ndim; d++) {
            const cJSON *v = cJSON_GetArrayItem(shape, d);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12) { rc = tempo_error(err, "bad safetensors %s: tensor %s has an invalid shape", path, t->name); break; }
            t->shape[d] = (int64_t)v->valuedouble;
            count *= v->valuedouble;
        }
        if (rc) break;
        double a = cJSON_GetArrayItem(off, 0)->valuedouble, b = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (!(a >= 0 && b >= a && b <= (double)data_len)) { rc = tempo_error(err, "bad safetensors %s: tensor %s has data_offsets outside the file", path, t->name); break; }
        if (b - a != count * sizes[t->dtype]) { rc = tempo_error(err, "bad safetensors %s: tensor %s has %.0f bytes for a shape that needs %.0f", path, t->name, b - a, count * sizes[t->dtype]); break; }
        t->data = data + (size_t)a;
        t->bytes = (size_t)(b - a);
        ix->n++;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    qsort(ix->t + first, (size_t)(ix->n - first), sizeof(StTensor), by_offset); /* no two tensors may share bytes */
    for (int i = first + 1; i < ix->n; i++)
        if (ix->t[i].data < ix->t[i - 1].data + ix->t[i - 1].bytes)
            return tempo_error(err, "bad safetensors %s: tensors %s and %s overlap", path, ix->t[i - 1].name, ix->t[i].name);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The safetensors files of a model directory: from the index if there is one, else every *.safetensors. */
static int list_safetensors(const char *dir, char ***files, int *n, char *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    *files = NULL;
    *n = 0;
    unsigned char *buf;
    size_t len;
    if (access(path, F_OK) == 0) {
        if (read_file(path, "index", &buf, &len, err) != 0) return -1;
        cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
        free(buf);
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
        if (!cJSON_IsObject(map)) {
            cJSON_Delete(root);
            return tempo_error(err, "bad %s: no weight_map object", path);
        }
        *files = calloc(64, sizeof(char *));
        for (const cJSON *e = map->child; e && *files; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
                cJSON_Delete(root);
                return tempo_error(err, "bad %s: weight_map values must be file names", path);
            }
            int seen = 0;
            for (int i = 0; i < *n; i++) seen |= strcmp((*files)[i], e->valuestring) == 0;
            if (!seen && *n < 64) (*files)[(*n)++] = strdup(e->valuestring);
        }
        cJSON_Delete(root);
    } else {
        DIR *d = opendir(dir);
        if (!d) return tempo_error(err, "cannot open model directory %s: %s", dir, strerror(errno));
        *files = calloc(64, sizeof(char *));
        for (struct dirent *e; *files && (e = readdir(d)) != NULL;) {
            size_t l = strlen(e->d_name);
            if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0 && *n < 64) (*files)[(*n)++] = strdup(e->d_name);
        }
        closedir(d);
    }
    if (!*files) return tempo_error(err, "out of memory listing %s", dir);
    qsort(*files, (size_t)*n, sizeof(char *), by_name);
    if (*n == 0) return tempo_error(err, "model directory %s holds no .safetensors file", dir);
    return 0;
}

static const StTensor *find_tensor(const StIndex *ix, const char *name) {
    for (int i = 0; i < ix->n; i++)
        if (strcmp(ix->t[i].name, name) == 0) return &ix->t[i];
    return NULL;
}

static float f16_to_f32(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, frac = h & 1023;
    float v = exp == 0 ? ldexpf((float)frac, -24) : exp == 31 ? (frac ? NAN : INFINITY) : ldexpf((float)(frac | 1024), exp - 25);
    return sign ? -v : v;
}

/* Checks a tensor's shape; returns a float pointer into the map or into the converted buffer. */
static const float *hf_tensor(Model *m, const StIndex *ix, const char *name, int64_t rows, int64_t cols, size_t *used,
                              int convert, size_t *need, char *err) {
    const StTensor *t = find_tensor(ix, name);
    if (!t) {
        tempo_error(err, "model %s lacks tensor %s", m->path, name);
        return NULL;
    }
    int ok = cols ? t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols : t->ndim == 1 && t->shape[0] == rows;
    if (!ok) {
        tempo_error(err, "model %s: tensor %s has shape [%lld%s%lld] but config.json implies [%lld%s%lld]", m->path, name,
                    (long long)t->shape[0], t->ndim > 1 ? "," : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)rows,
                    cols ? "," : "", (long long)cols);
        return NULL;
    }
    size_t n = (size_t)rows * (cols ? (size_t)cols : 1);
    if (t->dtype == 0 && ((uintptr_t)t->data % sizeof(float)) == 0) return (const float *)t->data;
    if (!convert) { /* first pass: count */
        *need += n;
        return (const float *)t->data;
    }
    float *out = m->converted + *used;
    *used += n;
    for (size_t i = 0; i < n; i++) {
        uint16_t h16;
        if (t->dtype == 0) {
            memcpy(out + i, t->data + 4 * i, 4);
            continue;
        }
        memcpy(&h16, t->data + 2 * i, 2);
        if (t->dtype == 2) {
            uint32_t bits = (uint32_t)h16 << 16;
            memcpy(out + i, &bits, 4);
        } else {
            out[i] = f16_to_f32(h16);
        }
    }
    return out;
}

/* Points the weights at the tensors (pass 0 counts what needs converting, pass 1 converts). */
static int hf_weights(Model *m, const StIndex *ix, int convert, size_t *need, char *err) {
    const Config *c = &m->config;
    int64_t D = c->dim, HID = c->hidden_dim, V = c->vocab_size, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t K = (int64_t)c->n_kv_heads * c->head_dim;
    size_t used = 0;
    Weights *w = &m->weights;
    if (!(w->token_embedding = hf_tensor(m, ix, "model.embed_tokens.weight", V, D, &used, convert, need, err))) return -1;
    if (!(w->rms_final = hf_tensor(m, ix, "model.norm.weight", D, 0, &used, convert, need, err))) return -1;
    w->wcls = c->shared_classifier ? w->token_embedding : hf_tensor(m, ix, "lm_head.weight", V, D, &used, convert, need, err);
    if (!w->wcls) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *lw = &w->layers[l];
        struct { const float **dst; const char *name; int64_t rows, cols; } parts[9] = {
            {&lw->rms_att, "input_layernorm", D, 0}, {&lw->rms_ffn, "post_attention_layernorm", D, 0},
            {&lw->wq, "self_attn.q_proj", Q, D}, {&lw->wk, "self_attn.k_proj", K, D}, {&lw->wv, "self_attn.v_proj", K, D},
            {&lw->wo, "self_attn.o_proj", D, Q}, {&lw->w1, "mlp.gate_proj", HID, D}, {&lw->w2, "mlp.down_proj", D, HID},
            {&lw->w3, "mlp.up_proj", HID, D}};
        for (int i = 0; i < 9; i++) {
            char name[160];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, parts[i].name);
            if (!(*parts[i].dst = hf_tensor(m, ix, name, parts[i].rows, parts[i].cols, &used, convert, need, err))) return -1;
        }
    }
    return 0;
}

/* Bytes of memory available without swapping: MemAvailable (free memory
 * plus reclaimable page cache), else free pages; 0 if unknown. */
static double available_memory(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb > 0) return kb * 1024.0;
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * page : 0;
}

static int load_hf(Model *m, const char *dir, char *err) {
    snprintf(m->path, sizeof m->path, "%s", dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unsigned char *buf;
    size_t len;
    if (access(path, F_OK) != 0) return tempo_error(err, "model directory %s has no config.json", dir);
    if (read_file(path, "config", &buf, &len, err) != 0) return -1;
    cJSON *cfg = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    RopeScaling rs;
    int rc = cJSON_IsObject(cfg) ? parse_hf_config(cfg, dir, &m->config, &rs, err)
                                 : tempo_error(err, "bad config.json in %s: not a JSON object", dir);
    cJSON_Delete(cfg);
    if (rc != 0) return -1;
    char **files = NULL;
    int n_files = 0;
    StIndex ix = {0};
    rc = list_safetensors(dir, &files, &n_files, err);
    for (int i = 0; i < n_files && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        rc = index_safetensors(m, path, &ix, err);
    }
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    size_t need = 0;
    m->weights.layers = rc == 0 ? calloc((size_t)m->config.n_layers, sizeof(LayerWeights)) : NULL;
    if (rc == 0 && !m->weights.layers) rc = tempo_error(err, "out of memory for %d layers", m->config.n_layers);
    if (rc == 0) rc = hf_weights(m, &ix, 0, &need, err);
    if (rc == 0 && need > 0) { /* f16/bf16 (or unaligned f32) tensors become f32 copies: check the memory first */
        double avail = available_memory();
        m->converted_bytes = need * sizeof(float);
        if (avail > 0 && (double)m->converted_bytes > avail)
            rc = tempo_error(err, "converting %s to f32 needs %.1f GB but only %.1f GB of memory is free", dir,
                             m->converted_bytes / 1e9, avail / 1e9);
        else if (!(m->converted = malloc(m->converted_bytes)))
            rc = tempo_error(err, "out of memory: converting %s to f32 needs %.1f GB", dir, m->converted_bytes / 1e9);
        if (rc == 0) rc = hf_weights(m, &ix, 1, &need, err);
    }
    free(ix.t);
    if (rc == 0) rc = model_rope(m, &rs, err);
    if (rc != 0) tempo_model_free(m);
    return rc;
}

void tempo_model_free(Model *m) {
    for (int i = 0; i < m->n_maps; i++) munmap(m->maps[i], m->map_sizes[i]);
    free(m->weights.layers);
    free(m->rope_inv_freq);
    free(m->converted);
    memset(m, 0, sizeof *m);
}

/* ===================================================================== */
/* 3. Tokenizer (llama2.c tokenizer.bin, sentencepiece-style BPE)        */
/* ===================================================================== */
/* File: int32 max_token_length, then vocab_size x (float score, int32 len,
 * len bytes). Encoding follows llama2.c: BOS, a dummy space prefix, one
 * piece per UTF-8 code point (bytes as <0xNN> = id byte+3 when the code
 * point is not a piece), then repeatedly merge the adjacent pair whose
 * concatenation is the piece with the highest score. */

static int compare_pieces(const void *a, const void *b, void *tok) {
    const Tokenizer *t = tok;
    int x = *(const int *)a, y = *(const int *)b;
    int lx = t->piece_len[x], ly = t->piece_len[y];
    int c = memcmp(t->pieces[x], t->pieces[y], (size_t)(lx < ly ? lx : ly));
    if (c != 0) return c;
    return lx != ly ? (lx < ly ? -1 : 1) : (x < y ? -1 : 1);
}

static int tokenizer_read(Tokenizer *t, FILE *f, const char *path, int vocab_size, char *err);

/* A tokenizer.json is a JSON object; a tokenizer.bin starts with an int32. */
static int is_json(const void *data, size_t size) {
    const unsigned char *p = data;
    while (size > 0 && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, size--;
    return size > 0 && *p == '{';
}

/* Either format from bytes in memory; `name` is for messages. */
static int tokenizer_parse(Tokenizer *t, const void *data, size_t size, int vocab_size, const char *name, char *err) {
    memset(t, 0, sizeof *t);
    if (is_json(data, size)) return tempo_tokenizer_json_parse(t, data, size, vocab_size, name, err);
    if (size == 0) return tempo_error(err, "bad tokenizer %s: max_token_length missing or out of range", name);
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) return tempo_error(err, "cannot read tokenizer %s: %s", name, strerror(errno));
    return tokenizer_read(t, f, name, vocab_size, err);
}

int tempo_tokenizer_load(Tokenizer *t, const char *path, int vocab_size, char *err) {
    memset(t, 0, sizeof *t);
    unsigned char *data;
    size_t size;
    if (read_file(path, "tokenizer", &data, &size, err) != 0) return -1;
    int rc = tokenizer_parse(t, data, size, vocab_size, path, err);
    free(data);
    return rc;
}

int tempo_tokenizer_from_buffer(Tokenizer *t, const void *data, size_t size, int vocab_size, char *err) {
    return tokenizer_parse(t, data, size, vocab_size, "(buffer)", err);
}

/* Reads the pieces from f and closes it. */
static int tokenizer_read(Tokenizer *t, FILE *f, const char *path, int vocab_size, char *err) {
    int max_len;
    if (fread(&max_len, sizeof max_len, 1, f) != 1 || max_len <= 0 || max_len > 4096) {
        fclose(f);
        return tempo_error(err, "bad tokenizer %s: max_token_length missing or out of range", path);
    }
    t->kind = TOKENIZER_SENTENCEPIECE;
    t->vocab_size = vocab_size;
    t->n_sorted = vocab_size;
    t->max_piece_len = max_len;
    t->pieces = calloc((size_t)vocab_size, sizeof *t->pieces);
    t->piece_len = calloc((size_t)vocab_size, sizeof *t->piece_len);
    t->scores = calloc((size_t)vocab_size, sizeof *t->scores);
    t->sorted_ids = calloc((size_t)vocab_size, sizeof *t->sorted_ids);
    if (!t->pieces || !t->piece_len || !t->scores || !t->sorted_ids) {
        fclose(f);
        tempo_tokenizer_free(t);
        return tempo_error(err, "out of memory loading tokenizer %s", path);
    }
    for (int i = 0; i < vocab_size; i++) {
        int len;
        if (fread(&t->scores[i], sizeof(float), 1, f) != 1 || fread(&len, sizeof len, 1, f) != 1) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "tokenizer %s does not match the model: it has %d pieces, the model's vocabulary is %d",
                        path, i, vocab_size);
        }
        if (len < 0 || len > max_len) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "bad tokenizer %s: piece %d has length %d (max_token_length %d)", path, i, len, max_len);
        }
        t->pieces[i] = malloc((size_t)len + 1);
        if (!t->pieces[i] || fread(t->pieces[i], 1, (size_t)len, f) != (size_t)len) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "truncated tokenizer %s: piece %d is cut short", path, i);
        }
        t->pieces[i][len] = '\0';
        t->piece_len[i] = len;
        t->sorted_ids[i] = i;
    }
    int extra = fgetc(f);
    fclose(f);
    if (extra != EOF) {
        tempo_tokenizer_free(t);
        return tempo_error(err, "tokenizer %s does not match the model: it has more than %d pieces", path, vocab_size);
    }
    tempo_sort_pieces(t);
    return 0;
}

void tempo_sort_pieces(Tokenizer *t) {
    qsort_r(t->sorted_ids, (size_t)t->n_sorted, sizeof(int), compare_pieces, t);
}

void tempo_tokenizer_free(Tokenizer *t) {
    if (t->pieces)
        for (int i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->sorted_ids);
    free(t->merges);
    free(t->added_ids);
    free(t->added_normalized);
    memset(t, 0, sizeof *t);
}

/* Binary search over the pieces sorted by bytes. */
int tempo_lookup(const Tokenizer *t, const char *s, int len) {
    int lo = 0, hi = t->n_sorted - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, id = t->sorted_ids[mid];
        int lp = t->piece_len[id];
        int c = memcmp(t->pieces[id], s, (size_t)(lp < len ? lp : len));
        if (c == 0) c = lp - len;
        if (c == 0) return id;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int tempo_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err) {
    if (t->kind == TOKENIZER_BYTE_LEVEL) return tempo_bpe_encode(t, text, ids, cap, n, err);
    size_t text_len = strlen(text);
    /* every byte may become one id, plus BOS and the dummy prefix */
    int *work = malloc((text_len + 2) * sizeof(int));
    char *pair = malloc((size_t)2 * t->max_piece_len + 1);
    if (!work || !pair) {
        free(work);
        free(pair);
        return tempo_error(err, "out of memory encoding a %zu-byte prompt", text_len);
    }
    int count = 0;
    work[count++] = TEMPO_BOS;
    if (text_len > 0) {
        int space = tempo_lookup(t, " ", 1);
        if (space >= 0) work[count++] = space;
    }
    for (size_t i = 0; i < text_len;) {
        size_t len = 1; /* one UTF-8 code point: a lead byte and its continuation bytes */
        while (len < 4 && i + len < text_len && ((unsigned char)text[i + len] & 0xC0) == 0x80) len++;
        int id = tempo_lookup(t, text + i, (int)len);
        if (id >= 0) {
            work[count++] = id;
        } else {
            for (size_t b = 0; b < len; b++) { /* byte fallback <0xNN> = id byte+3, or <unk> = 0 if the vocabulary lacks it */
                int byte_id = (unsigned char)text[i + b] + 3;
                work[count++] = byte_id < t->vocab_size ? byte_id : 0;
            }
        }
        i += len;
    }
    /* merge the best-scoring adjacent pair until none is a piece */
    for (;;) {
        float best_score = -1e30f;
        int best_id = -1, best_at = -1;
        for (int i = 1; i + 1 < count; i++) { /* position 0 is BOS: never merged */
            int a = work[i], b = work[i + 1];
            int la = t->piece_len[a], lb = t->piece_len[b];
            if (la + lb > 2 * t->max_piece_len) continue;
            memcpy(pair, t->pieces[a], (size_t)la);
            memcpy(pair + la, t->pieces[b], (size_t)lb);
            int id = tempo_lookup(t, pair, la + lb);
            if (id >= 0 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_at = i;
            }
        }
        if (best_at < 0) break;
        work[best_at] = best_id;
        memmove(work + best_at + 1, work + best_at + 2, (size_t)(count - best_at - 2) * sizeof(int));
        count--;
    }
    free(pair);
    if (count > cap) {
        free(work);
        return tempo_error(err, "prompt is %d tokens, more than the %d that fit", count, cap);
    }
    memcpy(ids, work, (size_t)count * sizeof(int));
    *n = count;
    free(work);
    return 0;
}

const char *tempo_decode(const Tokenizer *t, int prev, int token, char byte_buf[2]) {
    if (token < 0 || token >= t->vocab_size) return "";
    const char *piece = t->pieces[token];
    if (t->kind == TOKENIZER_BYTE_LEVEL) return piece;
    if (prev == TEMPO_BOS && piece[0] == ' ') piece++;
    unsigned int byte;
    if (t->piece_len[token] == 6 && sscanf(piece, "<0x%02X>", &byte) == 1) {
        byte_buf[0] = (char)byte;
        byte_buf[1] = '\0';
        return byte_buf;
    }
    return piece;
}

/* ===================================================================== */
/* 4. The math, one step per function                                    */
/* ===================================================================== */

/* Dot products of 4 rows of W with one input row: each value of x is loaded
 * once for the four rows. out_j = sum_t w_j[t] x[t]. */
static void dot_4x1(float out[4], const float *w, int m, const float *x) {
    const float *w0 = w, *w1 = w + m, *w2 = w + 2 * m, *w3 = w + 3 * m;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int t = 0; t < m; t++) {
        a0 += w0[t] * x[t];
        a1 += w1[t] * x[t];
        a2 += w2[t] * x[t];
        a3 += w3[t] * x[t];
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

/* out[n][d] = in[n][m] W^T for W [d][m]: one linear layer over n rows.
 * Many rows (prefill) are compute-bound: one sgemm. A few rows (decode, one
 * parallel set) are memory-bound: sgemm would pack (copy) all of W first,
 * so instead threads split the rows of W and each block of 4 rows is read
 * once and dotted with every input row while it is in cache. NOTES.md has
 * the measurements. */
enum { FEW_ROWS = 8 };

static void matmul(float *out, const float *in, const float *w, int n, int m, int d) {
    if (n > FEW_ROWS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, d, m, 1.0f, in, m, w, m, 0.0f, out, d);
        return;
    }
    int blocks = d / 4, big = (size_t)d * m >= ((size_t)1 << 18); /* small layers: threads cost more than they save */
#pragma omp parallel for schedule(static) if (big)
    for (int b = 0; b < blocks; b++) {
        const float *wb = w + (size_t)4 * b * m;
        for (int i = 0; i < n; i++) dot_4x1(out + (size_t)i * d + 4 * b, wb, m, in + (size_t)i * m);
    }
    for (int j = 4 * blocks; j < d; j++) /* the last d % 4 rows of W */
        for (int i = 0; i < n; i++) {
            float acc = 0.0f;
            for (int t = 0; t < m; t++) acc += w[(size_t)j * m + t] * in[(size_t)i * m + t];
            out[(size_t)i * d + j] = acc;
        }
}

/* RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, for each of n rows. */
static void rmsnorm(float *out, const float *x, const float *weight, int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = xr[i] * scale * weight[i];
    }
}

/* RoPE angles of each row: angle[r][i] = logical_pos[r] * inv_freq[i],
 * inv_freq[i] = theta^(-2i/head_dim) (rescaled for llama3/linear RoPE). */
static void rope_angles(float *cos_out, float *sin_out, const int *logical_pos, int n,
                        int head_dim, const double *inv_freq) {
    int half = head_dim / 2;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < half; i++) {
            double angle = logical_pos[r] * inv_freq[i];
            cos_out[r * half + i] = (float)cos(angle);
            sin_out[r * half + i] = (float)sin(angle);
        }
}

/* Rotates each head of each row by its row's angles. A pair (a, b) becomes
 * (a cos - b sin, a sin + b cos); the pair is (2i, 2i+1) when interleaved
 * (llama2.c) or (i, i + head_dim/2) otherwise (Hugging Face). */
static void rope_rotate(float *x, int n, int n_heads, int head_dim, int interleaved,
                        const float *cos_t, const float *sin_t) {
    int half = head_dim / 2;
    for (int r = 0; r < n; r++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
                float c = cos_t[r * half + i], s = sin_t[r * half + i];
                float a = v[ia], b = v[ib];
                v[ia] = a * c - b * s;
                v[ib] = a * s + b * c;
            }
        }
}

/* Softmax over the allowed keys only; masked keys get exactly 0. */
static void masked_softmax(float *scores, const uint8_t *allowed, int n_keys) {
    float max = -INFINITY;
    for (int j = 0; j < n_keys; j++)
        if (allowed[j] && scores[j] > max) max = scores[j];
    double sum = 0.0;
    for (int j = 0; j < n_keys; j++) {
        scores[j] = allowed[j] ? expf(scores[j] - max) : 0.0f;
        sum += scores[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n_keys; j++) scores[j] *= inv;
}

/* SwiGLU: gate = silu(gate) * up, elementwise. */
static void swiglu(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void add_into(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* ===================================================================== */
/* 5. The KV cache                                                       */
/* ===================================================================== */

static int kv_dim_of(const Config *c) { return c->n_kv_heads * c->head_dim; }
static int q_dim_of(const Config *c) { return c->n_heads * c->head_dim; }

int tempo_state_init(State *s, const Config *c, int capacity, char *err) {
    memset(s, 0, sizeof *s);
    if (capacity <= 0) return tempo_error(err, "KV cache capacity must be positive, got %d", capacity);
    size_t per_layer = (size_t)capacity * kv_dim_of(c);
    s->capacity = capacity;
    s->key_cache = calloc(per_layer * c->n_layers, sizeof(float));
    s->value_cache = calloc(per_layer * c->n_layers, sizeof(float));
    s->tokens = calloc((size_t)capacity, sizeof(int));
    s->logical_pos = calloc((size_t)capacity, sizeof(int));
    if (!s->key_cache || !s->value_cache || !s->tokens || !s->logical_pos) {
        tempo_state_free(s);
        return tempo_error(err, "out of memory for a KV cache of %d rows", capacity);
    }
    return 0;
}

void tempo_state_free(State *s) {
    free(s->key_cache);
    free(s->value_cache);
    free(s->tokens);
    free(s->logical_pos);
    free(s->x); free(s->xb); free(s->q); free(s->att_out);
    free(s->hb); free(s->hb2); free(s->scores);
    free(s->rope_cos); free(s->rope_sin);
    memset(s, 0, sizeof *s);
}

/* Makes the scratch buffers fit `rows` new rows against `keys` keys. */
static int ensure_scratch(State *s, const Config *c, int rows, int keys, char *err) {
    if (rows <= s->scratch_rows && keys <= s->scratch_keys) return 0;
    if (rows < s->scratch_rows) rows = s->scratch_rows;
    if (keys < s->scratch_keys) keys = s->scratch_keys;
    int wide = c->dim > q_dim_of(c) ? c->dim : q_dim_of(c);
    float **bufs[] = {&s->x, &s->xb, &s->q, &s->att_out, &s->hb, &s->hb2, &s->scores,
                      &s->rope_cos, &s->rope_sin};
    size_t sizes[] = {(size_t)rows * c->dim, (size_t)rows * wide, (size_t)rows * q_dim_of(c),
                      (size_t)rows * q_dim_of(c), (size_t)rows * c->hidden_dim,
                      (size_t)rows * c->hidden_dim, (size_t)rows * keys,
                      (size_t)rows * c->head_dim / 2, (size_t)rows * c->head_dim / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        float *p = realloc(*bufs[i], sizes[i] * sizeof(float));
        if (!p) return tempo_error(err, "out of memory for scratch of %d rows x %d keys", rows, keys);
        *bufs[i] = p;
    }
    s->scratch_rows = rows;
    s->scratch_keys = keys;
    return 0;
}

/* ===================================================================== */
/* 6. The forward pass over a position map and a mask                    */
/* ===================================================================== */

static int check_inputs(const Model *m, const State *s, int k, const int *tokens,
                        const int *logical_pos, const uint8_t *allowed, int mask_layers, char *err) {
    const Config *c = &m->config;
    if (k <= 0) return tempo_error(err, "forward needs at least one new row, got %d", k);
    if (s->n_rows + k > s->capacity)
        return tempo_error(err, "KV cache full: %d rows cached + %d new > capacity %d", s->n_rows, k, s->capacity);
    if (mask_layers != 1 && mask_layers != c->n_layers)
        return tempo_error(err, "mask has %d layers; expected 1 or n_layers = %d", mask_layers, c->n_layers);
    for (int i = 0; i < k; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return tempo_error(err, "token id %d at row %d is out of range [0, %d)", tokens[i], s->n_rows + i, c->vocab_size);
        if (logical_pos[i] < 0 || logical_pos[i] >= c->seq_len)
            return tempo_error(err, "logical position %d at row %d is out of range [0, %d)", logical_pos[i],
                        s->n_rows + i, c->seq_len);
    }
    int n_keys = s->n_rows + k;
    for (int l = 0; l < mask_layers; l++)
        for (int i = 0; i < k; i++) {
            const uint8_t *row = allowed + ((size_t)l * k + i) * n_keys;
            int any = 0;
            for (int j = 0; j < n_keys && !any; j++) any = row[j] != 0;
            if (!any) return tempo_error(err, "mask row %d (layer %d) allows no key", s->n_rows + i, l);
        }
    return 0;
}

/* Multi-head attention of the k new rows (queries in s->q) over every
 * cached key of layer l: for each head h, P = softmax_allowed(Q_h K_g^T /
 * sqrt(head_dim)), out_h = P V_g, where g = h / (n_heads / n_kv_heads). */
static void attention(const Config *c, State *s, int l, int k, const uint8_t *allowed,
                      float *attention_out) {
    int hd = c->head_dim, kv_dim = kv_dim_of(c), q_dim = q_dim_of(c);
    int n_keys = s->n_rows + k, group = c->n_heads / c->n_kv_heads;
    const float *keys = s->key_cache + (size_t)l * s->capacity * kv_dim;
    const float *values = s->value_cache + (size_t)l * s->capacity * kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < c->n_heads; h++) {
        int g = h / group;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, n_keys, hd, scale,
                    s->q + h * hd, q_dim, keys + g * hd, kv_dim, 0.0f, s->scores, n_keys);
        for (int i = 0; i < k; i++)
            masked_softmax(s->scores + (size_t)i * n_keys, allowed + (size_t)i * n_keys, n_keys);
        if (attention_out)
            memcpy(attention_out + ((size_t)l * c->n_heads + h) * k * n_keys, s->scores,
                   (size_t)k * n_keys * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, hd, n_keys, 1.0f,
                    s->scores, n_keys, values + g * hd, kv_dim, 0.0f, s->att_out + h * hd, q_dim);
    }
}

int tempo_forward(const Model *m, State *s, int k, const int *tokens, const int *logical_pos,
                  const uint8_t *allowed, int mask_layers, Outputs out, char *err) {
    const Config *c = &m->config;
    const Weights *w = &m->weights;
    if (check_inputs(m, s, k, tokens, logical_pos, allowed, mask_layers, err) != 0) return -1;
    int n_keys = s->n_rows + k;
    if (ensure_scratch(s, c, k, n_keys, err) != 0) return -1;
    int dim = c->dim, hid = c->hidden_dim, q_dim = q_dim_of(c), kv_dim = kv_dim_of(c);

    for (int i = 0; i < k; i++) /* x = embedding of each new token */
        memcpy(s->x + (size_t)i * dim, w->token_embedding + (size_t)tokens[i] * dim, dim * sizeof(float));
    rope_angles(s->rope_cos, s->rope_sin, logical_pos, k, c->head_dim, m->rope_inv_freq);

    for (int l = 0; l < c->n_layers; l++) {
        /* attention block: x += Wo attn(RoPE(Wq xn), RoPE(Wk xn), Wv xn), xn = rmsnorm(x) */
        const LayerWeights *lw = &w->layers[l];
        rmsnorm(s->xb, s->x, lw->rms_att, k, dim, c->norm_eps);
        float *k_rows = s->key_cache + ((size_t)l * s->capacity + s->n_rows) * kv_dim;
        float *v_rows = s->value_cache + ((size_t)l * s->capacity + s->n_rows) * kv_dim;
        matmul(s->q, s->xb, lw->wq, k, dim, q_dim);
        matmul(k_rows, s->xb, lw->wk, k, dim, kv_dim);
        matmul(v_rows, s->xb, lw->wv, k, dim, kv_dim);
        rope_rotate(s->q, k, c->n_heads, c->head_dim, c->rope_interleaved, s->rope_cos, s->rope_sin);
        rope_rotate(k_rows, k, c->n_kv_heads, c->head_dim, c->rope_interleaved, s->rope_cos, s->rope_sin);
        const uint8_t *layer_mask = allowed + (mask_layers > 1 ? (size_t)l * k * n_keys : 0);
        attention(c, s, l, k, layer_mask, out.attention);
        matmul(s->xb, s->att_out, lw->wo, k, q_dim, dim);
        add_into(s->x, s->xb, (size_t)k * dim);

        /* feed-forward block: x += W2 (silu(W1 xn) * W3 xn), xn = rmsnorm(x) */
        rmsnorm(s->xb, s->x, lw->rms_ffn, k, dim, c->norm_eps);
        matmul(s->hb, s->xb, lw->w1, k, dim, hid);
        matmul(s->hb2, s->xb, lw->w3, k, dim, hid);
        swiglu(s->hb, s->hb2, (size_t)k * hid);
        matmul(s->xb, s->hb, lw->w2, k, hid, dim);
        add_into(s->x, s->xb, (size_t)k * dim);
    }

    /* logits = Wcls rmsnorm(x) */
    rmsnorm(s->xb, s->x, w->rms_final, k, dim, c->norm_eps);
    if (out.hidden) memcpy(out.hidden, s->xb, (size_t)k * dim * sizeof(float));
    if (out.logits) matmul(out.logits, s->xb, w->wcls, k, dim, c->vocab_size);

    for (int i = 0; i < k; i++) {
        s->tokens[s->n_rows + i] = tokens[i];
        s->logical_pos[s->n_rows + i] = logical_pos[i];
    }
    s->n_rows += k;
    return 0;
}

int tempo_forward_full(const Model *m, int n, const int *tokens, const int *logical_pos,
                       const uint8_t *allowed, int mask_layers, Outputs out, char *err) {
    State s;
    if (tempo_state_init(&s, &m->config, n > 0 ? n : 1, err) != 0) return -1;
    int rc = tempo_forward(m, &s, n, tokens, logical_pos, allowed, mask_layers, out, err);
    tempo_state_free(&s);
    return rc;
}

/* ===================================================================== */
/* 7. Masks: causal, isolated, visible                                   */
/* ===================================================================== */
/* allowed[q][k] = 1 iff k <= q, and, in isolated mode, k is q itself or
 * not a member of q's set. Rows of one set share a logical position. */

void tempo_mask_rows(MaskKind kind, const int *sets, int first, int k, uint8_t *allowed) {
    int n_keys = first + k;
    for (int i = 0; i < k; i++) {
        int q = first + i;
        uint8_t *row = allowed + (size_t)i * n_keys;
        for (int key = 0; key < n_keys; key++) {
            int causal = key <= q;
            int same_set_other = key != q && sets[key] == sets[q];
            row[key] = (uint8_t)(causal && !(kind == MASK_ISOLATED && same_set_other));
        }
    }
}

int tempo_mask_parse(const char *text, size_t len, int n, uint8_t *allowed, const char *name, char *err) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '0' || ch == '1') {
            if (count < (size_t)n * n) allowed[count] = (uint8_t)(ch == '1');
            count++;
        } else if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            return tempo_error(err, "mask file %s holds '%c' at byte %zu; only 0, 1 and white space are allowed", name,
                               (ch >= 32 && ch < 127) ? ch : '?', i);
        }
    }
    if (count != (size_t)n * n)
        return tempo_error(err, "mask file %s has %zu entries; %d rows need %d x %d = %zu", name, count, n, n, n, (size_t)n * n);
    return 0;
}

int tempo_mask_read(const char *path, int n, uint8_t *allowed, char *err) {
    unsigned char *buf;
    size_t len;
    if (read_file(path, "mask file", &buf, &len, err) != 0) return -1;
    int rc = tempo_mask_parse((const char *)buf, len, n, allowed, path, err);
    free(buf);
    return rc;
}

/* ===================================================================== */
/* 8. Traces (safetensors)                                               */
/* ===================================================================== */
/* A safetensors file: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [a, b]}, ...,
 *  "__metadata__": {"key": "value"}}, then the tensor bytes. */

static const char *dtype_names[] = {"F32", "I32", "U8"};
static const size_t dtype_sizes[] = {4, 4, 1};

void tempo_trace_init(Trace *t) { memset(t, 0, sizeof *t); }

void tempo_trace_free(Trace *t) {
    for (int i = 0; i < t->n_tensors; i++) free(t->tensors[i].data);
    memset(t, 0, sizeof *t);
}

size_t tempo_tensor_count(const Tensor *x) {
    size_t n = 1;
    for (int d = 0; d < x->ndim; d++) n *= (size_t)x->shape[d];
    return n;
}

static Tensor *trace_slot(Trace *t, const char *name, char *err) {
    if (strlen(name) >= sizeof t->tensors[0].name) {
        tempo_error(err, "tensor name %s is too long", name);
        return NULL;
    }
    for (int i = 0; i < t->n_tensors; i++)
        if (strcmp(t->tensors[i].name, name) == 0) {
            tempo_error(err, "tensor %s appears twice", name);
            return NULL;
        }
    if (t->n_tensors == (int)(sizeof t->tensors / sizeof t->tensors[0])) {
        tempo_error(err, "too many tensors in one trace (limit %zu)", sizeof t->tensors / sizeof t->tensors[0]);
        return NULL;
    }
    Tensor *x = &t->tensors[t->n_tensors];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

int tempo_trace_add(Trace *t, const char *name, DType dtype, int ndim, const int64_t *shape,
                    const void *data, char *err) {
    Tensor *x = trace_slot(t, name, err);
    if (!x) return -1;
    x->dtype = dtype;
    x->ndim = ndim;
    memcpy(x->shape, shape, (size_t)ndim * sizeof(int64_t));
    size_t bytes = tempo_tensor_count(x) * dtype_sizes[dtype];
    x->data = malloc(bytes ? bytes : 1);
    if (!x->data) return tempo_error(err, "out of memory for tensor %s (%zu bytes)", name, bytes);
    memcpy(x->data, data, bytes);
    t->n_tensors++;
    return 0;
}

int tempo_trace_meta(Trace *t, const char *key, const char *value, char *err) {
    if (t->n_meta == (int)(sizeof t->meta_key / sizeof t->meta_key[0]))
        return tempo_error(err, "too many metadata entries in one trace");
    snprintf(t->meta_key[t->n_meta], sizeof t->meta_key[0], "%s", key);
    snprintf(t->meta_value[t->n_meta], sizeof t->meta_value[0], "%s", value);
    t->n_meta++;
    return 0;
}

const Tensor *tempo_trace_get(const Trace *t, const char *name) {
    for (int i = 0; i < t->n_tensors; i++)
        if (strcmp(t->tensors[i].name, name) == 0) return &t->tensors[i];
    return NULL;
}

static char *trace_header_json(const Trace *t) {
    cJSON *root = cJSON_CreateObject();
    size_t offset = 0;
    for (int i = 0; i < t->n_tensors; i++) {
        const Tensor *x = &t->tensors[i];
        size_t bytes = tempo_tensor_count(x) * dtype_sizes[x->dtype];
        cJSON *entry = cJSON_AddObjectToObject(root, x->name);
        cJSON_AddStringToObject(entry, "dtype", dtype_names[x->dtype]);
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < x->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)x->shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    if (t->n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < t->n_meta; i++) cJSON_AddStringToObject(meta, t->meta_key[i], t->meta_value[i]);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

int tempo_trace_write(const Trace *t, const char *path, char *err) {
    char *json = trace_header_json(t);
    if (!json) return tempo_error(err, "out of memory writing the trace header");
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "trace ", err) != 0) {
        free(json);
        return -1;
    }
    int ok = write_safetensors_header(a.f, json);
    for (int i = 0; i < t->n_tensors && ok; i++) {
        const Tensor *x = &t->tensors[i];
        size_t bytes = tempo_tensor_count(x) * dtype_sizes[x->dtype];
        ok = fwrite(x->data, 1, bytes, a.f) == bytes;
    }
    free(json);
    return tempo_atomic_close(&a, ok, err);
}

static int parse_tensor_entry(Trace *t, const cJSON *entry, const char *name, const unsigned char *data,
                              size_t data_len, char *err) {
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets) ||
        cJSON_GetArraySize(offsets) != 2)
        return tempo_error(err, "bad trace: tensor %s lacks dtype, shape or data_offsets", name);
    int dt = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(dtype->valuestring, dtype_names[i]) == 0) dt = i;
    if (dt < 0) return tempo_error(err, "bad trace: tensor %s has unsupported dtype %s", name, dtype->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > 4) return tempo_error(err, "bad trace: tensor %s has %d dimensions (at most 4)", name, ndim);
    int64_t dims[4];
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12 || v->valuedouble != (double)(int64_t)v->valuedouble)
            return tempo_error(err, "bad trace: tensor %s has an invalid shape", name);
        dims[d] = (int64_t)v->valuedouble;
        if (dims[d] != 0 && count > SIZE_MAX / 8 / (size_t)dims[d])
            return tempo_error(err, "bad trace: tensor %s is too large", name);
        count *= (size_t)dims[d];
    }
    double begin = cJSON_GetArrayItem(offsets, 0)->valuedouble, end = cJSON_GetArrayItem(offsets, 1)->valuedouble;
    if (!(begin >= 0 && end >= begin && end <= (double)data_len))
        return tempo_error(err, "bad trace: tensor %s has data_offsets outside the file", name);
    if ((size_t)(end - begin) != count * dtype_sizes[dt])
        return tempo_error(err, "bad trace: tensor %s has %zu bytes for a shape that needs %zu", name,
                    (size_t)(end - begin), count * dtype_sizes[dt]);
    return tempo_trace_add(t, name, (DType)dt, ndim, dims, data + (size_t)begin, err);
}

int tempo_trace_read(Trace *t, const char *path, char *err) {
    tempo_trace_init(t);
    unsigned char *buf;
    size_t len;
    if (read_file(path, "trace", &buf, &len, err) != 0) return -1;
    int rc = tempo_trace_parse(t, buf, len, path, err);
    free(buf);
    return rc;
}

int tempo_trace_parse(Trace *t, const unsigned char *buf, size_t len, const char *path, char *err) {
    tempo_trace_init(t);
    const unsigned char *data;
    size_t data_len;
    cJSON *root = safetensors_header(buf, len, "trace", path, &data, &data_len, err);
    if (!root) return -1;
    int rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            for (const cJSON *kv = e->child; kv && rc == 0; kv = kv->next)
                if (cJSON_IsString(kv)) rc = tempo_trace_meta(t, kv->string, kv->valuestring, err);
        } else if (cJSON_IsObject(e)) {
            rc = parse_tensor_entry(t, e, e->string, data, data_len, err);
        } else {
            rc = tempo_error(err, "bad trace %s: entry %s is not a tensor", path, e->string);
        }
    }
    cJSON_Delete(root);
    if (rc != 0) tempo_trace_free(t);
    return rc;
}

static void put_meta_int(Trace *t, const char *key, long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    tempo_trace_meta(t, key, buf, NULL);
}

int tempo_trace_build(Trace *t, const Model *m, int n, const int *tokens, const int *positions,
                      const int *sets, const uint8_t *allowed, int mask_layers, const float *logits,
                      const float *attention, const int *pruned, char *err) {
    const Config *c = &m->config;
    tempo_trace_init(t);
    int64_t rows[1] = {n}, mask_shape[3] = {mask_layers, n, n}, logit_shape[2] = {n, c->vocab_size};
    int64_t att_shape[4] = {c->n_layers, c->n_heads, n, n};
    int rc = tempo_trace_add(t, "tokens", DT_I32, 1, rows, tokens, err);
    if (rc == 0) rc = tempo_trace_add(t, "positions", DT_I32, 1, rows, positions, err);
    if (rc == 0) rc = tempo_trace_add(t, "sets", DT_I32, 1, rows, sets, err);
    if (rc == 0) /* one mask for all layers is stored as [n][n] */
        rc = tempo_trace_add(t, "allowed", DT_U8, mask_layers == 1 ? 2 : 3,
                             mask_layers == 1 ? mask_shape + 1 : mask_shape, allowed, err);
    if (rc == 0 && logits) rc = tempo_trace_add(t, "logits", DT_F32, 2, logit_shape, logits, err);
    if (rc == 0 && attention) rc = tempo_trace_add(t, "attention", DT_F32, 4, att_shape, attention, err);
    if (rc == 0 && pruned) rc = tempo_trace_add(t, "pruned", DT_I32, 1, rows, pruned, err);
    if (rc != 0) {
        tempo_trace_free(t);
        return -1;
    }
    const char *base = strrchr(m->path, '/');
    tempo_trace_meta(t, "model", base ? base + 1 : m->path, NULL);
    put_meta_int(t, "dim", c->dim);
    put_meta_int(t, "n_layers", c->n_layers);
    put_meta_int(t, "n_heads", c->n_heads);
    put_meta_int(t, "n_kv_heads", c->n_kv_heads);
    put_meta_int(t, "vocab_size", c->vocab_size);
    put_meta_int(t, "seq_len", c->seq_len);
    return 0;
}

/* Checks a trace's inputs and returns n and the mask layer count. */
int tempo_trace_inputs(const Trace *tr, const Config *c, int *n, int *mask_layers, char *err) {
    const Tensor *tok = tempo_trace_get(tr, "tokens"), *pos = tempo_trace_get(tr, "positions");
    const Tensor *al = tempo_trace_get(tr, "allowed");
    if (!tok || !pos || !al) return tempo_error(err, "trace lacks tokens, positions or allowed");
    if (tok->dtype != DT_I32 || pos->dtype != DT_I32 || al->dtype != DT_U8 || tok->ndim != 1 || pos->ndim != 1)
        return tempo_error(err, "trace tensors have the wrong dtypes (tokens/positions I32[n], allowed U8[n,n])");
    if (tok->shape[0] > (1 << 20)) return tempo_error(err, "trace has %lld rows (limit %d)", (long long)tok->shape[0], 1 << 20);
    *n = (int)tok->shape[0];
    if (pos->shape[0] != *n) return tempo_error(err, "trace has %d tokens but %lld positions", *n, (long long)pos->shape[0]);
    int ok2 = al->ndim == 2 && al->shape[0] == *n && al->shape[1] == *n;
    int ok3 = al->ndim == 3 && al->shape[0] == c->n_layers && al->shape[1] == *n && al->shape[2] == *n;
    if (!ok2 && !ok3) return tempo_error(err, "trace allowed must be U8[n,n] or U8[n_layers,n,n] for n = %d", *n);
    *mask_layers = ok3 ? c->n_layers : 1;
    if (*n < 1) return tempo_error(err, "trace has no rows");
    return 0;
}


/* ===================================================================== */
/* 9. TEMPO generation                                                   */
/* ===================================================================== */
/* One logical step: turn the last row's logits into probabilities, select
 * every token with p >= threshold (most probable first, at most max_width,
 * the argmax when none clears it), append them as consecutive rows at the
 * SAME logical position with one set id, run the cached forward for those
 * rows under the isolated or visible mask, then optionally prune earlier
 * sets by the attention their members receive. NOTES.md has each rule. */

void tempo_gen_defaults(GenConfig *g, const Config *c) {
    memset(g, 0, sizeof *g);
    g->threshold = 0.1f;
    g->max_width = 8;
    g->max_steps = 32;
    g->mode = MASK_ISOLATED;
    g->isolate_first = 0;
    g->isolate_last = c->n_layers - 1;
    g->next_from = NEXT_LAST_ROW;
    g->schedule = SCHEDULE_CONSTANT;
    g->final_threshold = 1.0f;
    g->bezier_p1 = 0.2f;
    g->bezier_p2 = 0.8f;
    g->prune_window = 4;
    g->prune_layers = c->n_layers / 2 > 0 ? c->n_layers / 2 : 1;
    g->prune_threshold = 0.5f;
    g->keep_logits = 1;
}

int tempo_gen_validate(const GenConfig *g, const Config *c, char *err) {
    if (!(g->threshold > 0.0f && g->threshold <= 1.0f))
        return tempo_error(err, "threshold %g is outside (0, 1]", g->threshold);
    if (!(g->final_threshold > 0.0f && g->final_threshold <= 1.0f))
        return tempo_error(err, "final threshold %g is outside (0, 1]", g->final_threshold);
    if (g->max_width < 1) return tempo_error(err, "max-width %d must be at least 1", g->max_width);
    if (g->max_steps < 1) return tempo_error(err, "max-tokens %d must be at least 1", g->max_steps);
    if (g->mode != MASK_ISOLATED && g->mode != MASK_VISIBLE)
        return tempo_error(err, "mode must be isolated or visible");
    if (g->isolate_first < 0 || g->isolate_last >= c->n_layers || g->isolate_first > g->isolate_last)
        return tempo_error(err, "isolate-layers %d-%d is not a range within 0-%d", g->isolate_first, g->isolate_last,
                    c->n_layers - 1);
    if (!(g->bezier_p1 >= 0.0f && g->bezier_p1 <= 1.0f && g->bezier_p2 >= 0.0f && g->bezier_p2 <= 1.0f))
        return tempo_error(err, "bezier points %g,%g must lie in [0, 1]", g->bezier_p1, g->bezier_p2);
    if (g->prune && (g->prune_window < 1 || g->prune_layers < 1 || g->prune_layers > c->n_layers))
        return tempo_error(err, "prune-window %d must be >= 1 and prune-layers %d within 1-%d", g->prune_window,
                    g->prune_layers, c->n_layers);
    if (g->prune && !(g->prune_threshold > 0.0f && g->prune_threshold <= 1.0f))
        return tempo_error(err, "prune-threshold %g is outside (0, 1]", g->prune_threshold);
    if (g->prune && g->emulate != EMULATE_NONE)
        return tempo_error(err, "pruning cannot be combined with --emulate");
    return 0;
}

/* threshold(s) = start + (final - start) B(s / (max_steps - 1)), with the
 * cubic Bezier easing B(u) = 3(1-u)^2 u P1 + 3(1-u) u^2 P2 + u^3, or B(u) = u. */
float tempo_threshold_at(const GenConfig *g, int step) {
    if (g->schedule == SCHEDULE_CONSTANT) return g->threshold;
    double u = g->max_steps > 1 ? (double)step / (g->max_steps - 1) : 0.0;
    if (u > 1.0) u = 1.0;
    double b = g->schedule == SCHEDULE_LINEAR
                   ? u
                   : 3 * (1 - u) * (1 - u) * u * g->bezier_p1 + 3 * (1 - u) * u * u * g->bezier_p2 + u * u * u;
    return (float)(g->threshold + (g->final_threshold - g->threshold) * b);
}

void tempo_generation_free(Generation *gen) {
    free(gen->tokens); free(gen->positions); free(gen->sets); free(gen->pruned);
    free(gen->allowed); free(gen->attention); free(gen->logits);
    free(gen->members); free(gen->steps);
    memset(gen, 0, sizeof *gen);
}

static size_t triangle(size_t i) { return i * (i + 1) / 2; }

/* p = softmax(logits), in double for the sum. */
static void softmax_probs(float *p, const float *logits, int n) {
    float max = logits[0];
    for (int i = 1; i < n; i++) if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - max);
    for (int i = 0; i < n; i++) p[i] = (float)(exp((double)logits[i] - max) / sum);
}

/* The mask kind layer l uses under the run's mode. */
static MaskKind layer_kind(const GenConfig *g, int l) {
    if (g->mode == MASK_ISOLATED && l >= g->isolate_first && l <= g->isolate_last) return MASK_ISOLATED;
    return MASK_VISIBLE;
}

/* Feeds k rows (tokens, one logical position each, one set each) to the
 * model: builds their mask rows (mode mask, pruned columns zeroed), runs
 * the cached forward, and stores what was computed. */
static int append_rows(const Model *m, State *s, Generation *gen, const GenConfig *g, int k,
                       const int *tokens, const int *positions, const int *sets, float *batch_attention,
                       char *err) {
    const Config *c = &m->config;
    size_t first = (size_t)gen->n_rows, n_keys = first + k, L = c->n_layers, H = c->n_heads;
    size_t V = c->vocab_size;
    if (grow((void **)&gen->tokens, &gen->cap_rows, n_keys, sizeof(int), err) != 0) return -1;
    size_t cap = gen->cap_rows;
    int **per_row[] = {&gen->positions, &gen->sets, &gen->pruned};
    for (int i = 0; i < 3; i++) {
        int *p = realloc(*per_row[i], cap * sizeof(int));
        if (!p) return tempo_error(err, "out of memory growing the generation to %zu rows", cap);
        *per_row[i] = p;
    }
    if (!g->keep_logits) gen->logits_first = (int)first; /* keep only this batch's logits */
    if (grow((void **)&gen->allowed, &gen->cap_allowed, gen->mask_layers * triangle(n_keys), 1, err) != 0 ||
        grow((void **)&gen->logits, &gen->cap_logits, (n_keys - gen->logits_first) * V, sizeof(float), err) != 0)
        return -1;
    if (g->capture_attention &&
        grow((void **)&gen->attention, &gen->cap_attention, L * H * triangle(n_keys), sizeof(float), err) != 0)
        return -1;
    for (int i = 0; i < k; i++) {
        gen->tokens[first + i] = tokens[i];
        gen->positions[first + i] = positions[i];
        gen->sets[first + i] = sets[i];
        gen->pruned[first + i] = -1;
    }
    uint8_t *mask = malloc((size_t)gen->mask_layers * k * n_keys);
    if (!mask) return tempo_error(err, "out of memory for a %d x %zu mask", k, n_keys);
    for (int l = 0; l < gen->mask_layers; l++) {
        uint8_t *layer_mask = mask + (size_t)l * k * n_keys;
        MaskKind kind = gen->mask_layers > 1 ? layer_kind(g, l) : g->mode;
        tempo_mask_rows(kind, gen->sets, (int)first, k, layer_mask);
        for (int i = 0; i < k; i++)
            for (size_t j = 0; j < first; j++)
                if (gen->pruned[j] >= 0) layer_mask[i * n_keys + j] = 0;
    }
    Outputs out = {gen->logits + (first - gen->logits_first) * V, NULL, batch_attention};
    int rc = tempo_forward(m, s, k, tokens, positions, mask, gen->mask_layers, out, err);
    if (rc == 0) {
        for (int i = 0; i < k; i++) {
            size_t row = first + i;
            for (int l = 0; l < gen->mask_layers; l++)
                memcpy(gen->allowed + gen->mask_layers * triangle(row) + l * (row + 1),
                       mask + ((size_t)l * k + i) * n_keys, row + 1);
            if (g->capture_attention)
                for (size_t lh = 0; lh < L * H; lh++)
                    memcpy(gen->attention + L * H * triangle(row) + lh * (row + 1),
                           batch_attention + (lh * k + i) * n_keys, (row + 1) * sizeof(float));
        }
        gen->n_rows += k;
    }
    free(mask);
    return rc;
}

/* Retroactive pruning after step `step` added rows first..first+k-1: for
 * each earlier set within the window with more than one live member, the
 * share of attention each member receives from the new rows (summed over
 * those rows, the heads and the last prune_layers layers, normalised within
 * the set); a member whose share < prune_threshold / live members is
 * pruned, except the set's strongest. */
static void prune_sets(Generation *gen, const GenConfig *g, const Config *c, int step, int first, int k,
                       const float *batch_attention) {
    int n_keys = first + k, H = c->n_heads;
    for (int s = step - g->prune_window; s < step; s++) {
        if (s < 0) continue;
        const Step *st = &gen->steps[s];
        double share[64] = {0};
        int live = 0, strongest = -1;
        for (int mi = 0; mi < st->n_members && mi < 64; mi++) {
            const Member *mem = &gen->members[st->first_member + mi];
            if (mem->row < 0 || mem->pruned_at >= 0) continue;
            live++;
            for (int l = c->n_layers - g->prune_layers; l < c->n_layers; l++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < k; i++)
                        share[mi] += batch_attention[(((size_t)l * H + h) * k + i) * n_keys + mem->row];
            if (strongest < 0 || share[mi] > share[strongest]) strongest = mi;
        }
        if (live < 2) continue;
        double total = 0.0;
        for (int mi = 0; mi < st->n_members && mi < 64; mi++) total += share[mi];
        if (total <= 0.0) continue;
        for (int mi = 0; mi < st->n_members && mi < 64; mi++) {
            Member *mem = &gen->members[st->first_member + mi];
            if (mem->row < 0 || mem->pruned_at >= 0 || mi == strongest) continue;
            if (share[mi] / total < g->prune_threshold / live) {
                mem->pruned_at = step;
                gen->pruned[mem->row] = step;
            }
        }
    }
}

/* The next-token distribution: the last row's softmax, or the mean of the
 * softmaxes of the live members of the last set. */
const float *tempo_row_logits(const Generation *gen, int row, int vocab) {
    return gen->logits + (size_t)(row - gen->logits_first) * vocab;
}

static void next_distribution(const Generation *gen, const GenConfig *g, int vocab, float *probs, float *tmp) {
    int last = gen->n_rows - 1;
    if (g->next_from == NEXT_LAST_ROW || gen->n_steps == 0) {
        softmax_probs(probs, tempo_row_logits(gen, last, vocab), vocab);
        return;
    }
    const Step *st = &gen->steps[gen->n_steps - 1];
    int count = 0;
    memset(probs, 0, (size_t)vocab * sizeof(float));
    for (int mi = 0; mi < st->n_members; mi++) {
        const Member *mem = &gen->members[st->first_member + mi];
        if (mem->row < 0 || mem->pruned_at >= 0) continue;
        softmax_probs(tmp, tempo_row_logits(gen, mem->row, vocab), vocab);
        for (int v = 0; v < vocab; v++) probs[v] += tmp[v];
        count++;
    }
    for (int v = 0; v < vocab; v++) probs[v] /= (float)count;
}

static int by_probability(const void *a, const void *b, void *probs) {
    const float *p = probs;
    int x = *(const int *)a, y = *(const int *)b;
    if (p[x] != p[y]) return p[x] > p[y] ? -1 : 1;
    return x < y ? -1 : 1;
}

/* Token ids with p >= threshold, most probable first (ties: lower id), at
 * most max_width. `candidates` has room for the whole vocabulary. */
static int select_tokens(const float *probs, int vocab, float threshold, int max_width, int *candidates) {
    int n = 0;
    for (int v = 0; v < vocab; v++)
        if (probs[v] >= threshold) candidates[n++] = v;
    qsort_r(candidates, (size_t)n, sizeof(int), by_probability, (void *)probs);
    return n < max_width ? n : max_width;
}

static int argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (p[i] > p[best]) best = i;
    return best;
}

static int record_step(Generation *gen, int logical_pos, float threshold, const int *selected, int n_sel,
                       const float *probs, char *err) {
    if (grow((void **)&gen->steps, &gen->cap_steps, (size_t)gen->n_steps + 1, sizeof(Step), err) != 0 ||
        grow((void **)&gen->members, &gen->cap_members, (size_t)gen->n_members + n_sel, sizeof(Member), err) != 0)
        return -1;
    Step *st = &gen->steps[gen->n_steps++];
    st->logical_pos = logical_pos;
    st->threshold = threshold;
    st->first_member = gen->n_members;
    st->n_members = n_sel;
    st->seconds = 0.0;
    for (int i = 0; i < n_sel; i++) {
        Member *mem = &gen->members[gen->n_members++];
        mem->token = selected[i];
        mem->prob = probs[selected[i]];
        mem->row = -1;
        mem->set = logical_pos;
        mem->logical_pos = logical_pos;
        mem->pruned_at = -1;
    }
    return 0;
}

int tempo_generate(const Model *m, const int *prompt, int n_prompt, const GenConfig *g, Generation *gen,
                   char *err) {
    const Config *c = &m->config;
    memset(gen, 0, sizeof *gen);
    if (tempo_gen_validate(g, c, err) != 0) return -1;
    if (n_prompt < 1) return tempo_error(err, "the prompt needs at least one token (BOS)");
    if (n_prompt > c->seq_len)
        return tempo_error(err, "prompt of %d tokens is longer than the context (seq_len %d)", n_prompt, c->seq_len);
    /* rows needed: a set never has more members than the vocabulary, and no
     * more steps fit than the context has logical positions left */
    int width = g->emulate == EMULATE_LAST_MEMBER_ONLY ? 1 : g->max_width < c->vocab_size ? g->max_width : c->vocab_size;
    int steps_fit = g->max_steps < c->seq_len - n_prompt ? g->max_steps : c->seq_len - n_prompt;
    int isolate_some_layers = g->mode == MASK_ISOLATED && (g->isolate_first > 0 || g->isolate_last < c->n_layers - 1);
    gen->mask_layers = isolate_some_layers ? c->n_layers : 1;
    gen->n_prompt = n_prompt;
    int V = c->vocab_size, capacity = n_prompt + steps_fit * width;
    int need_attention = g->capture_attention || g->prune;
    State s;
    if (tempo_state_init(&s, c, capacity, err) != 0) return -1;
    float *probs = malloc((size_t)V * sizeof(float)), *tmp = malloc((size_t)V * sizeof(float));
    int *positions = malloc((size_t)capacity * sizeof(int)), *selected = malloc((size_t)V * sizeof(int));
    int *sets = malloc((size_t)capacity * sizeof(int)), *row_tokens = malloc((size_t)capacity * sizeof(int));
    size_t batch_rows = (size_t)(n_prompt > width ? n_prompt : width);
    float *batch_attention = need_attention
        ? malloc((size_t)c->n_layers * c->n_heads * batch_rows * capacity * sizeof(float)) : NULL;
    int rc = 0;
    if (!probs || !tmp || !positions || !selected || !sets || !row_tokens || (need_attention && !batch_attention))
        rc = tempo_error(err, "out of memory for a generation of %d rows", capacity);

    /* the prompt: logical positions 0..P-1, causal, each token its own set */
    double t0 = now_seconds();
    for (int i = 0; i < n_prompt && rc == 0; i++) positions[i] = sets[i] = i;
    if (rc == 0) rc = append_rows(m, &s, gen, g, n_prompt, prompt, positions, sets, batch_attention, err);
    gen->prefill_seconds = now_seconds() - t0;

    gen->stop_reason = "max-tokens";
    for (int step = 0; step < g->max_steps && rc == 0; step++) {
        int pos = n_prompt + step;
        if (pos >= c->seq_len) {
            gen->stop_reason = "context-full";
            break;
        }
        float threshold = tempo_threshold_at(g, step);
        next_distribution(gen, g, V, probs, tmp);
        int n_sel = select_tokens(probs, V, threshold, g->max_width, selected);
        if (n_sel == 0) {
            if (g->stop_on_empty) {
                gen->stop_reason = "empty-set";
                break;
            }
            selected[0] = argmax(probs, V);
            n_sel = 1;
        }
        if (tempo_is_eos(&m->config, selected[0])) {
            gen->stop_reason = "eos";
            break;
        }
        rc = record_step(gen, pos, threshold, selected, n_sel, probs, err);
        if (rc != 0) break;
        /* the rows to feed: every member, or only the last under emulation */
        int from = g->emulate == EMULATE_LAST_MEMBER_ONLY ? n_sel - 1 : 0, k = n_sel - from;
        Member *members = gen->members + gen->steps[step].first_member;
        int first = gen->n_rows;
        for (int i = 0; i < k; i++) {
            row_tokens[i] = members[from + i].token;
            positions[i] = pos;
            sets[i] = pos;
            members[from + i].row = first + i;
        }
        double ts = now_seconds();
        rc = append_rows(m, &s, gen, g, k, row_tokens, positions, sets, batch_attention, err);
        gen->steps[step].seconds = now_seconds() - ts;
        if (rc == 0 && g->prune) prune_sets(gen, g, c, step, first, k, batch_attention);
    }
    gen->total_seconds = now_seconds() - t0;
    free(probs); free(tmp); free(positions); free(selected); free(sets); free(row_tokens);
    free(batch_attention);
    tempo_state_free(&s);
    if (rc != 0) tempo_generation_free(gen);
    return rc;
}

/* Row i of a generation stores `blocks` blocks of its i+1 keys, at
 * blocks * i(i+1)/2; this writes them out as dense [blocks][n][n] (zeros
 * where key > row). */
static void unpack_rows(void *dense, const void *packed, size_t n, size_t blocks, size_t elem) {
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < blocks; b++)
            memcpy((char *)dense + ((b * n + i) * n) * elem, (const char *)packed + (blocks * triangle(i) + b * (i + 1)) * elem,
                   (i + 1) * elem);
}

uint8_t *tempo_generation_allowed(const Generation *gen) {
    size_t n = gen->n_rows, ML = gen->mask_layers;
    uint8_t *allowed = calloc(ML * n * n, 1);
    if (allowed) unpack_rows(allowed, gen->allowed, n, ML, 1);
    return allowed;
}

int tempo_generation_trace(const Generation *gen, const Model *m, Trace *t, char *err) {
    const Config *c = &m->config;
    if (gen->logits_first != 0) return tempo_error(err, "the generation kept only its newest logits (keep_logits 0): no trace");
    size_t n = gen->n_rows, L = c->n_layers, H = c->n_heads;
    uint8_t *allowed = tempo_generation_allowed(gen);
    float *attention = gen->attention ? calloc(L * H * n * n, sizeof(float)) : NULL;
    if (!allowed || (gen->attention && !attention)) {
        free(allowed);
        free(attention);
        return tempo_error(err, "out of memory for a trace of %zu rows", n);
    }
    if (attention) unpack_rows(attention, gen->attention, n, L * H, sizeof(float));
    int rc = tempo_trace_build(t, m, (int)n, gen->tokens, gen->positions, gen->sets, allowed, gen->mask_layers,
                               gen->logits, attention, gen->pruned, err);
    if (rc == 0) put_meta_int(t, "n_prompt", gen->n_prompt);
    free(allowed);
    free(attention);
    return rc;
}

/* ===================================================================== */
/* 10. Synthetic models                                                  */
/* ===================================================================== */
/* A seeded random checkpoint in llama2.c format. Weights are scaled so the
 * residual stream stays O(1) and the classifier gives logits with a
 * standard deviation near 3: peaked distributions with several tokens above
 * 0.05, so parallel sets actually form. */

void tempo_synth_defaults(SynthConfig *s) {
    s->dim = 64;
    s->hidden_dim = 172;
    s->n_layers = 2;
    s->n_heads = 4;
    s->n_kv_heads = 2;
    s->vocab_size = 256;
    s->seq_len = 256;
    s->shared_classifier = 1;
    s->seed = 42;
    s->pre_tokenizer = PRETOKENIZE_LLAMA3;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A standard normal sample (Box-Muller). */
static double normal(uint64_t *state) {
    double u1 = ((splitmix64(state) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (splitmix64(state) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static int write_normal(FILE *f, size_t n, double mean, double std, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)(mean + std * normal(rng));
        if (fwrite(&v, sizeof v, 1, f) != 1) return -1;
    }
    return 0;
}

int tempo_synth_write(const SynthConfig *sc, const char *path, char *err) {
    int header[7] = {sc->dim, sc->hidden_dim, sc->n_layers, sc->n_heads, sc->n_kv_heads,
                     sc->shared_classifier ? sc->vocab_size : -sc->vocab_size, sc->seq_len};
    Config c;
    if (check_header(header, &c, err) != 0) return -1;
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    FILE *f = a.f;
    uint64_t rng = sc->seed;
    size_t L = c.n_layers, dim = c.dim, hid = c.hidden_dim, V = c.vocab_size;
    size_t q_dim = (size_t)c.n_heads * c.head_dim, kv_dim = (size_t)c.n_kv_heads * c.head_dim;
    double in_scale = 1.0 / sqrt((double)dim), emb_std = sc->shared_classifier ? 3.0 / sqrt((double)dim) : 1.0;
    int bad = fwrite(header, sizeof header, 1, f) != 1;
    bad = bad || write_normal(f, V * dim, 0.0, emb_std, &rng);      /* token embedding */
    bad = bad || write_normal(f, L * dim, 1.0, 0.1, &rng);          /* rms_att */
    bad = bad || write_normal(f, L * q_dim * dim, 0.0, in_scale, &rng);
    bad = bad || write_normal(f, L * kv_dim * dim, 0.0, in_scale, &rng);
    bad = bad || write_normal(f, L * kv_dim * dim, 0.0, in_scale, &rng);
    bad = bad || write_normal(f, L * dim * q_dim, 0.0, 1.0 / sqrt((double)q_dim), &rng);
    bad = bad || write_normal(f, L * dim, 1.0, 0.1, &rng);          /* rms_ffn */
    bad = bad || write_normal(f, L * hid * dim, 0.0, in_scale, &rng);
    bad = bad || write_normal(f, L * dim * hid, 0.0, 1.0 / sqrt((double)hid), &rng);
    bad = bad || write_normal(f, L * hid * dim, 0.0, in_scale, &rng);
    bad = bad || write_normal(f, dim, 1.0, 0.0, &rng);              /* rms_final */
    for (int table = 0; table < 2 && !bad; table++)                 /* legacy freq_cis real, imag */
        for (int p = 0; p < c.seq_len && !bad; p++)
            for (int i = 0; i < c.head_dim / 2 && !bad; i++) {
                double angle = p * pow(10000.0, -2.0 * i / c.head_dim);
                float v = (float)(table == 0 ? cos(angle) : sin(angle));
                bad = fwrite(&v, sizeof v, 1, f) != 1;
            }
    if (!sc->shared_classifier) bad = bad || write_normal(f, V * dim, 0.0, 3.0 * in_scale, &rng);
    return tempo_atomic_close(&a, !bad, err);
}

/* The same kind of model in Hugging Face layout: dir/config.json,
 * dir/model.safetensors (f32 or bf16) and dir/tokenizer.json; GQA, tied
 * embeddings, and llama3 RoPE scaling (factor 8, low 1, high 4, original
 * 64) so that scaled, blended and kept frequencies all occur. */
static uint16_t f32_to_bf16(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    if ((bits & 0x7fffffff) > 0x7f800000) return (uint16_t)((bits >> 16) | 64); /* NaN stays NaN */
    return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);               /* round to nearest even */
}

int tempo_synth_write_hf(const SynthConfig *sc, const char *dir, int bf16, char *err) {
    int header[7] = {sc->dim, sc->hidden_dim, sc->n_layers, sc->n_heads, sc->n_kv_heads, sc->vocab_size, sc->seq_len};
    Config c;
    if (check_header(header, &c, err) != 0) return -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return tempo_error(err, "cannot create %s: %s", dir, strerror(errno));
    char path[4400];
    int bos, eos[2], n_eos;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (tempo_synth_tokenizer_json(sc, path, &bos, eos, &n_eos, err) != 0) return -1;
    size_t D = c.dim, HID = c.hidden_dim, V = c.vocab_size, Q = (size_t)c.n_heads * c.head_dim, K = (size_t)c.n_kv_heads * c.head_dim;
    /* tensor names, shapes and scales, in file order */
    int n_tensors = 2 + 9 * c.n_layers;
    char (*names)[96] = calloc((size_t)n_tensors, sizeof *names);
    size_t (*shapes)[2] = calloc((size_t)n_tensors, sizeof *shapes);
    double *means = calloc((size_t)n_tensors, sizeof(double)), *stds = calloc((size_t)n_tensors, sizeof(double));
    if (!names || !shapes || !means || !stds) {
        free(names); free(shapes); free(means); free(stds);
        return tempo_error(err, "out of memory");
    }
    int t = 0;
    snprintf(names[t], 96, "model.embed_tokens.weight"), shapes[t][0] = V, shapes[t][1] = D, stds[t++] = 3.0 / sqrt((double)D);
    for (int l = 0; l < c.n_layers; l++) {
        struct { const char *name; size_t rows, cols; double mean, std; } parts[9] = {
            {"input_layernorm", D, 0, 1.0, 0.1}, {"self_attn.q_proj", Q, D, 0, 1 / sqrt((double)D)},
            {"self_attn.k_proj", K, D, 0, 1 / sqrt((double)D)}, {"self_attn.v_proj", K, D, 0, 1 / sqrt((double)D)},
            {"self_attn.o_proj", D, Q, 0, 1 / sqrt((double)Q)}, {"post_attention_layernorm", D, 0, 1.0, 0.1},
            {"mlp.gate_proj", HID, D, 0, 1 / sqrt((double)D)}, {"mlp.up_proj", HID, D, 0, 1 / sqrt((double)D)},
            {"mlp.down_proj", D, HID, 0, 1 / sqrt((double)HID)}};
        for (int i = 0; i < 9; i++, t++) {
            snprintf(names[t], 96, "model.layers.%d.%s.weight", l, parts[i].name);
            shapes[t][0] = parts[i].rows, shapes[t][1] = parts[i].cols, means[t] = parts[i].mean, stds[t] = parts[i].std;
        }
    }
    snprintf(names[t], 96, "model.norm.weight"), shapes[t][0] = D, means[t++] = 1.0;
    size_t elem = bf16 ? 2 : 4, offset = 0;
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < n_tensors; i++) {
        size_t count = shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        cJSON_AddStringToObject(e, "dtype", bf16 ? "BF16" : "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *off = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)shapes[i][0]));
        if (shapes[i][1]) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)shapes[i][1]));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + count * elem)));
        offset += count * elem;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    AtomicFile a;
    int ok = json && tempo_atomic_open(&a, path, "", err) == 0;
    if (ok) {
        ok = write_safetensors_header(a.f, json);
        uint64_t rng = sc->seed;
        for (int i = 0; i < n_tensors && ok; i++) {
            size_t count = shapes[i][0] * (shapes[i][1] ? shapes[i][1] : 1);
            for (size_t j = 0; j < count && ok; j++) {
                float v = (float)(means[i] + stds[i] * normal(&rng));
                uint16_t h = f32_to_bf16(v);
                ok = bf16 ? fwrite(&h, 2, 1, a.f) == 1 : fwrite(&v, 4, 1, a.f) == 1;
            }
        }
        ok = tempo_atomic_close(&a, ok, err) == 0;
    } else if (!json) {
        tempo_error(err, "out of memory writing %s", path);
    }
    free(json); free(names); free(shapes); free(means); free(stds);
    if (!ok) return -1;
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "model_type", "llama");
    cJSON_AddNumberToObject(cfg, "hidden_size", c.dim);
    cJSON_AddNumberToObject(cfg, "intermediate_size", c.hidden_dim);
    cJSON_AddNumberToObject(cfg, "num_hidden_layers", c.n_layers);
    cJSON_AddNumberToObject(cfg, "num_attention_heads", c.n_heads);
    cJSON_AddNumberToObject(cfg, "num_key_value_heads", c.n_kv_heads);
    cJSON_AddNumberToObject(cfg, "head_dim", c.head_dim);
    cJSON_AddNumberToObject(cfg, "vocab_size", c.vocab_size);
    cJSON_AddNumberToObject(cfg, "max_position_embeddings", c.seq_len);
    cJSON_AddNumberToObject(cfg, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(cfg, "rope_theta", 10000.0);
    cJSON *rs = cJSON_AddObjectToObject(cfg, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    cJSON_AddNumberToObject(rs, "factor", 8.0);
    cJSON_AddNumberToObject(rs, "low_freq_factor", 1.0);
    cJSON_AddNumberToObject(rs, "high_freq_factor", 4.0);
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 64);
    cJSON_AddTrueToObject(cfg, "tie_word_embeddings");
    cJSON_AddNumberToObject(cfg, "bos_token_id", bos);
    cJSON_AddItemToObject(cfg, "eos_token_id", n_eos == 1 ? cJSON_CreateNumber(eos[0]) : cJSON_CreateIntArray(eos, n_eos));
    cJSON_AddStringToObject(cfg, "torch_dtype", bf16 ? "bfloat16" : "float32");
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = text ? tempo_write_text_file(path, text, err) : tempo_error(err, "out of memory writing %s", path);
    free(text);
    return rc;
}
