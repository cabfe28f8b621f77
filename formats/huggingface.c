/* huggingface.c - Hugging Face model directories: config.json and one or
 * more *.safetensors files, mapped: matrices stay in their stored type (F32,
 * F16, BF16) and are converted tile by tile inside the matrix products;
 * the small norm vectors are converted to f32 at load. Tensors model.embed_tokens.weight [V][D],
 * model.norm.weight [D], lm_head.weight [V][D] (absent when tied), and per
 * layer i model.layers.i.<hf_name>.weight for the nine layer tensors
 * (checkpoint.c), all [out][in]. q/k rows are in rotate-half order. */
#define _GNU_SOURCE
#include "formats.h"
#include "quant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct { /* every tensor of a model's safetensors files */
    Tensor *t;
    int n;
    size_t cap;
} StIndex;

/* A JSON value that is an int, checked by the one number parser. */
static int json_value_int(const cJSON *v, const char *key, const char *dir, int *out, char *err) {
    char what[4200], text[40] = "not a number";
    snprintf(what, sizeof what, "bad config.json in %s: %s", dir, key);
    if (cJSON_IsNumber(v)) snprintf(text, sizeof text, "%.17g", v->valuedouble);
    return tempo_int_in_range(cJSON_IsNumber(v) ? v->valuedouble : NAN, text, what, INT32_MIN, INT32_MAX, out, err);
}

static int json_int(const cJSON *cfg, const char *key, int fallback, int *out, const char *dir, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        if (fallback == INT32_MIN) return tempo_error(err, "bad config.json in %s: %s is missing", dir, key);
        *out = fallback;
        return 0;
    }
    return json_value_int(v, key, dir, out, err);
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
            if (json_value_int(e, "eos_token_id", dir, &c->eos_token_ids[c->n_eos++], err) != 0) return -1;
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
    if (tempo_llama2c_config(h, c, err) != 0) return -1;
    if (json_int(cfg, "head_dim", c->head_dim, &head_dim, dir, err) != 0) return -1;
    if (head_dim <= 0 || head_dim % 2 || head_dim > 4096)
        return tempo_error(err, "bad config.json in %s: head_dim %d must be even and in (0, 4096]", dir, head_dim);
    c->head_dim = head_dim;
    double eps = 0, theta = 0;
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
    Tensor *tensors;
    int n;
    cJSON *meta;
    unsigned dtypes = 1u << DT_F32 | 1u << DT_F16 | 1u << DT_BF16;
    if (tempo_safetensors_parse(map, size, "safetensors", path, dtypes, NULL, &tensors, &n, &meta, err) != 0) return -1;
    cJSON_Delete(meta);
    int rc = tempo_grow((void **)&ix->t, &ix->cap, (size_t)ix->n + n, sizeof(Tensor), err);
    if (rc == 0) memcpy(ix->t + ix->n, tensors, (size_t)n * sizeof(Tensor));
    if (rc == 0) ix->n += n;
    free(tensors);
    return rc;
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
        if (tempo_read_file(path, "index", &buf, &len, err) != 0) return -1;
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

/* The tensor `name`, checked to have shape [rows][cols] (cols 0: a vector of rows values). */
static const Tensor *hf_find(const Model *m, const StIndex *ix, const char *name, int64_t rows, int64_t cols, char *err) {
    const Tensor *t = tempo_tensor_find(ix->t, ix->n, name);
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
    return t;
}

static WeightType weight_type(DType d) { return d == DT_F16 ? WEIGHT_F16 : d == DT_BF16 ? WEIGHT_BF16 : WEIGHT_F32; }

/* A matrix stays in the file, in its stored type. */
static int hf_matrix(const Model *m, const StIndex *ix, const char *name, int64_t rows, int64_t cols, Matrix *out, char *err) {
    const Tensor *t = hf_find(m, ix, name, rows, cols, err);
    if (!t) return -1;
    *out = (Matrix){t->data, weight_type(t->dtype)};
    return 0;
}

/* A norm vector is used as f32: in the file when stored so (and aligned),
 * else converted into the model's small buffer of vectors. */
static const float *hf_vector(Model *m, const StIndex *ix, const char *name, int64_t n, size_t *used, char *err) {
    const Tensor *t = hf_find(m, ix, name, n, 0, err);
    if (!t) return NULL;
    if (t->dtype == DT_F32 && (uintptr_t)t->data % sizeof(float) == 0) return (const float *)t->data;
    float *out = m->converted + *used;
    *used += (size_t)n;
    tempo_dequantize(weight_type(t->dtype), t->data, (size_t)n, out);
    return out;
}

/* Points the weights at the tensors: matrices as stored, norm vectors as f32. */
static int hf_weights(Model *m, const StIndex *ix, char *err) {
    const Config *c = &m->config;
    int64_t D = c->dim, V = c->vocab_size;
    size_t used = 0;
    Weights *w = &m->weights;
    m->converted_bytes = (size_t)(2 * c->n_layers + 1) * c->dim * sizeof(float); /* room for every norm vector */
    if (!(m->converted = malloc(m->converted_bytes))) return tempo_error(err, "out of memory for the norm vectors");
    if (hf_matrix(m, ix, "model.embed_tokens.weight", V, D, &w->token_embedding, err) != 0) return -1;
    if (!(w->rms_final = hf_vector(m, ix, "model.norm.weight", D, &used, err))) return -1;
    w->wcls = w->token_embedding;
    if (!c->shared_classifier && hf_matrix(m, ix, "lm_head.weight", V, D, &w->wcls, err) != 0) return -1;
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            char name[160];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lt->hf_name);
            int64_t rows = (int64_t)tempo_unit(c, lt->rows);
            if (lt->cols != UNIT_NONE) {
                if (hf_matrix(m, ix, name, rows, (int64_t)tempo_unit(c, lt->cols), tempo_layer_matrix(w, l, i), err) != 0) return -1;
            } else if (!(*tempo_layer_vector(w, l, i) = hf_vector(m, ix, name, rows, &used, err))) {
                return -1;
            }
        }
    m->converted_bytes = used * sizeof(float);
    return 0;
}

int tempo_load_hf(Model *m, const char *dir, char *err) {
    snprintf(m->path, sizeof m->path, "%s", dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unsigned char *buf;
    size_t len;
    if (access(path, F_OK) != 0) return tempo_error(err, "model directory %s has no config.json", dir);
    if (tempo_read_file(path, "config", &buf, &len, err) != 0) return -1;
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
    m->weights.layers = rc == 0 ? calloc((size_t)m->config.n_layers, sizeof(LayerWeights)) : NULL;
    if (rc == 0 && !m->weights.layers) rc = tempo_error(err, "out of memory for %d layers", m->config.n_layers);
    if (rc == 0) rc = hf_weights(m, &ix, err);
    free(ix.t);
    if (rc == 0) rc = tempo_model_rope(m, &rs, err);
    if (rc != 0) tempo_model_free(m);
    return rc;
}
