/* huggingface.c - Hugging Face model directories: config.json and one or
 * more *.safetensors files, mapped: matrices stay in their stored type (F32,
 * F16, BF16) and are converted tile by tile inside the matrix products;
 * the small norm vectors are converted to f32 at load. Tensors model.embed_tokens.weight [V][D],
 * model.norm.weight [D], lm_head.weight [V][D] (absent when tied), and per
 * layer i model.layers.i.<hf_name>.weight for the nine layer tensors
 * (the tables of model.c), all [out][in]. q/k rows are in rotate-half order.
 * This file reads config.json and finds the tensors; model.c binds them. */
#define _GNU_SOURCE
#include "formats.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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

/* rope_scaling: none, "default", "linear" (factor) or "llama3" (factor, low/high_freq_factor, original_max_position_embeddings). */
static int parse_rope_scaling(const cJSON *cfg, const char *dir, RopeScaling *rs, char *err) {
    memset(rs, 0, sizeof *rs);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (!scaling || cJSON_IsNull(scaling)) return 0;
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
    return 0;
}

/* The dimensions (missing num_key_value_heads: one kv head per query head;
 * head_dim: hidden_size / num_attention_heads unless given), checked by the
 * one config check. */
static int parse_dimensions(const cJSON *cfg, const char *dir, const char *source, Config *c, char *err) {
    const char *keys[7] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                           "num_key_value_heads", "vocab_size", "max_position_embeddings"};
    int *fields[7] = {&c->dim, &c->hidden_dim, &c->n_layers, &c->n_heads, &c->n_kv_heads, &c->vocab_size, &c->seq_len};
    for (int i = 0; i < 7; i++)
        if (json_int(cfg, keys[i], i == 4 ? -1 : INT32_MIN, fields[i], dir, err) != 0) return -1;
    if (c->n_kv_heads == -1) c->n_kv_heads = c->n_heads;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) return tempo_error(err, "bad config.json in %s: tie_word_embeddings must be true or false", dir);
    c->shared_classifier = tie && cJSON_IsTrue(tie);
    int derived = c->n_heads > 0 && c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 2;
    if (json_int(cfg, "head_dim", derived, &c->head_dim, dir, err) != 0) return -1;
    if (c->head_dim <= 0 || c->head_dim % 2 || c->head_dim > 4096)
        return tempo_error(err, "bad config.json in %s: head_dim %d must be even and in (0, 4096]", dir, c->head_dim);
    return tempo_config_check(c, source, err);
}

/* A string key that must be absent, null or `want`: "model_type \"mistral\" is not llama, the one tempo runs". */
static int json_string_is(const cJSON *cfg, const char *key, const char *want, const char *dir, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return tempo_error(err, "bad config.json in %s: %s must be a string", dir, key);
    if (strcmp(v->valuestring, want) != 0)
        return tempo_error(err, "bad config.json in %s: %s \"%.100s\" is not %s, the one tempo runs", dir, key, v->valuestring, want);
    return 0;
}

/* A bool key that must be absent, null or false: true asks for what tempo does not implement (`what`). */
static int json_false(const cJSON *cfg, const char *key, const char *what, const char *dir, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (!cJSON_IsBool(v)) return tempo_error(err, "bad config.json in %s: %s must be true or false", dir, key);
    return tempo_error(err, "bad config.json in %s: %s true is not supported (%s)", dir, key, what);
}

/* Keys that change the model in ways tempo does not implement are refused, not ignored: tempo runs
 * a Llama (SiLU, no biases, full attention over the context, RoPE on every dimension of a head). */
static int parse_unsupported(const cJSON *cfg, const char *dir, const Config *c, char *err) {
    int window = c->seq_len;
    double rotary = 1.0;
    if (json_string_is(cfg, "model_type", "llama", dir, err) != 0 || json_string_is(cfg, "hidden_act", "silu", dir, err) != 0 ||
        json_false(cfg, "attention_bias", "tempo's attention projections have no biases", dir, err) != 0 ||
        json_false(cfg, "mlp_bias", "tempo's MLP projections have no biases", dir, err) != 0 ||
        json_int(cfg, "sliding_window", c->seq_len, &window, dir, err) != 0 ||
        json_num(cfg, "partial_rotary_factor", 1.0, &rotary, dir, err) != 0)
        return -1;
    if (window < c->seq_len)
        return tempo_error(err, "bad config.json in %s: sliding_window %d is shorter than the context of %d (sliding-window "
                                "attention is not supported)", dir, window, c->seq_len);
    if (rotary != 1.0)
        return tempo_error(err, "bad config.json in %s: partial_rotary_factor %g is not 1 (partial RoPE is not supported)", dir,
                           rotary);
    return 0;
}

static int parse_hf_config(const cJSON *cfg, const char *dir, Config *c, RopeScaling *rs, char *err) {
    memset(c, 0, sizeof *c);
    char source[4200];
    snprintf(source, sizeof source, "bad config.json in %s", dir);
    if (parse_dimensions(cfg, dir, source, c, err) != 0 || parse_unsupported(cfg, dir, c, err) != 0) return -1;
    double eps = 0, theta = 0;
    if (json_num(cfg, "rms_norm_eps", 1e-6, &eps, dir, err) != 0 || json_num(cfg, "rope_theta", 10000.0, &theta, dir, err) != 0 ||
        tempo_config_check_norm_rope(eps, theta, source, "rms_norm_eps", "rope_theta", err) != 0)
        return -1;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->rope_interleaved = 0;
    c->bos_token_id = TEMPO_BOS; /* transformers' LlamaConfig defaults, unless config.json names its own */
    c->n_eos = 1;
    c->eos_token_ids[0] = TEMPO_EOS;
    if (parse_special_ids(cfg, dir, c, err) != 0) return -1;
    return parse_rope_scaling(cfg, dir, rs, err);
}

/* Maps one safetensors file (the model keeps the map) and adds its tensors to the index. */
static int index_safetensors(Model *m, const char *path, StIndex *ix, char *err) {
    void *map;
    size_t size;
    int copied;
    if (tempo_hold_file(path, "safetensors", HOLD_MAP, &map, &size, &copied, err) != 0 ||
        tempo_model_keep_map(m, map, size, copied, err) != 0)
        return -1;
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

/* The binder's view of a tensor: model.<hf_name>.weight (lm_head.weight
 * has no "model."), or model.layers.<l>.<hf_name>.weight; data NULL when absent. */
static int hf_find(void *ctx, const LayerTensor *t, int l, Tensor *out, char *err) {
    (void)err;
    const StIndex *ix = ctx;
    char name[160];
    if (l >= 0) snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t->hf_name);
    else snprintf(name, sizeof name, "%s%s.weight", t->field == offsetof(Weights, wcls) ? "" : "model.", t->hf_name);
    const Tensor *found = tempo_tensor_find(ix->t, ix->n, name);
    if (found) *out = *found;
    else snprintf(out->name, sizeof out->name, "%s", name);
    return 0;
}

/* The binder's list of the directory's tensor names. */
static void hf_name(void *ctx, int i, char out[160]) { snprintf(out, 160, "%s", ((const StIndex *)ctx)->t[i].name); }

/* The safetensors files of the directory, mapped and indexed, then bound to the model. */
static int hf_tensors(Model *m, const char *dir, char *err) {
    char **files = NULL, path[4400];
    int n_files = 0;
    StIndex ix = {0};
    int rc = list_safetensors(dir, &files, &n_files, err);
    for (int i = 0; i < n_files && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        rc = index_safetensors(m, path, &ix, err);
    }
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    TensorSource src = {&ix, hf_find, "config.json", ix.n, hf_name, "model.layers.", "num_hidden_layers",
                        "self_attn.rotary_emb.inv_freq"}; /* older checkpoints saved RoPE's frequencies */
    if (rc == 0) rc = tempo_model_bind(m, &src, err);
    free(ix.t);
    return rc;
}

int tempo_load_hf(Model *m, const char *dir, char *err) {
    memset(m, 0, sizeof *m);
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
    if (rc == 0) rc = tempo_model_set_path(m, dir, err);
    if (rc == 0) rc = hf_tensors(m, dir, err);
    if (rc == 0) rc = tempo_model_rope(m, &rs, err);
    if (rc != 0) tempo_model_free(m);
    return rc;
}
