/* model.c - the bottom layer of loading: the tables of the model's tensors
 * and their units, the one config check, the one binder that points the
 * weights at a format's tensors, RoPE frequencies, the model's files, the
 * NaN/Inf check and freeing. The formats (llama2c.c, huggingface.c, gguf.c)
 * only read their config and find their tensors; load.c picks the format. */
#define _GNU_SOURCE
#include "formats.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
#define FIELD(f) offsetof(Weights, f)
const LayerTensor tempo_model_tensors[N_MODEL_TENSORS] = {
    {"token_embedding", "embed_tokens", "token_embd", FIELD(token_embedding), UNIT_VOCAB, UNIT_DIM},
    {"rms_final", "norm", "output_norm", FIELD(rms_final), UNIT_DIM, UNIT_NONE},
    {"wcls", "lm_head", "output", FIELD(wcls), UNIT_VOCAB, UNIT_DIM},
};
#undef FIELD

size_t tempo_unit(const Config *c, Unit u) {
    switch (u) {
    case UNIT_DIM: return (size_t)c->dim;
    case UNIT_Q: return (size_t)c->n_heads * c->head_dim;
    case UNIT_KV: return (size_t)c->n_kv_heads * c->head_dim;
    case UNIT_HIDDEN: return (size_t)c->hidden_dim;
    case UNIT_VOCAB: return (size_t)c->vocab_size;
    default: return 0;
    }
}

Matrix *tempo_layer_matrix(Weights *w, int l, int i) {
    return (Matrix *)((char *)&w->layers[l] + tempo_layer_tensors[i].field);
}

const float **tempo_layer_vector(Weights *w, int l, int i) {
    return (const float **)((char *)&w->layers[l] + tempo_layer_tensors[i].field);
}



/* RoPE inverse frequencies: see formats.h. */
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

/* ---- the one config check ---- */

enum { MAX_DIM = TEMPO_MAX_DIM, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_VOCAB = 1 << 22, MAX_SEQ = 1 << 24, MAX_HEAD_DIM = 4096 };

int tempo_config_check(const Config *c, const char *source, char *err) {
    const char *names[8] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len", "head_dim"};
    const int values[8] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, c->head_dim};
    const int caps[8] = {MAX_DIM, 4 * MAX_DIM, MAX_LAYERS, MAX_HEADS, MAX_HEADS, MAX_VOCAB, MAX_SEQ, MAX_HEAD_DIM};
    for (int i = 0; i < 8; i++) {
        if (values[i] <= 0) return tempo_error(err, "%s: %s = %d (must be positive)", source, names[i], values[i]);
        if (values[i] > caps[i]) return tempo_error(err, "%s: %s = %d exceeds the limit %d", source, names[i], values[i], caps[i]);
    }
    if (c->dim % c->n_heads != 0)
        return tempo_error(err, "%s: dim %d is not divisible by n_heads %d", source, c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return tempo_error(err, "%s: n_heads %d is not a multiple of n_kv_heads %d", source, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) return tempo_error(err, "%s: head dimension %d is odd (RoPE needs pairs)", source, c->head_dim);
    return 0;
}

/* The norm epsilon and the RoPE base, whichever format gave them (formats.h). */
int tempo_config_check_norm_rope(double eps, double theta, const char *source, const char *eps_key, const char *theta_key,
                                 char *err) {
    if (!(eps > 0 && eps < 1)) return tempo_error(err, "%s: %s %g is out of range (0, 1)", source, eps_key, eps);
    if (!(theta > 1 && theta < 1e12)) return tempo_error(err, "%s: %s %g is out of range (1, 1e12)", source, theta_key, theta);
    return 0;
}

/* ---- the one binder ---- */

/* The layer a tensor name gives after `prefix` ("blk.4.attn_q.weight": 4), or -1 when it names none. */
static int layer_of(const char *name, const char *prefix) {
    size_t skip = strlen(prefix), digits = strspn(name + skip, "0123456789");
    if (strncmp(name, prefix, skip) != 0 || digits == 0 || name[skip + digits] != '.') return -1;
    if (digits > 9) return INT32_MAX; /* more digits than an int holds: past any count */
    char text[10], ignored[TEMPO_ERR_SIZE];
    int l;
    memcpy(text, name + skip, digits);
    text[digits] = '\0';
    return tempo_parse_int(text, "a layer number", 0, INT32_MAX, &l, ignored) == 0 ? l : -1;
}

/* Whether `name` is a tensor the binder takes for layer l, or the one the format lists as derived
 * from the config (Hugging Face's rotary_emb.inv_freq): find() names each of the layer's tensors. */
static int layer_tensor_known(const TensorSource *src, const char *name, int l) {
    const char *after = strchr(name + strlen(src->layer_prefix), '.') + 1;
    if (src->derived && strcmp(after, src->derived) == 0) return 1;
    for (int i = 0; i < N_LAYER_TENSORS; i++) {
        Tensor x = {0};
        char ignored[TEMPO_ERR_SIZE];
        if (src->find(src->ctx, &tempo_layer_tensors[i], l, &x, ignored) == 0 && strcmp(x.name, name) == 0) return 1;
    }
    return 0;
}

/* Every tensor of a layer is one the binder takes. A layer past the count (blk.4.* when the metadata
 * gives 4 layers) would run fewer layers than the file holds; a bias or an expert inside a layer
 * would run another model than the file's. Other tensors the binder does not take (rope_freqs, a
 * tied lm_head) are left to their format. */
static int every_layer_tensor_bound(const Model *m, const TensorSource *src, char *err) {
    const Config *c = &m->config;
    for (int i = 0; i < src->n_names; i++) {
        char name[160];
        src->name(src->ctx, i, name);
        int l = layer_of(name, src->layer_prefix);
        if (l >= c->n_layers)
            return tempo_error(err, "model %s: tensor %s is of a layer beyond the count: %s gives %s = %d (layers 0-%d)",
                               tempo_model_path(m), name, src->implied_by, src->layer_count_key, c->n_layers, c->n_layers - 1);
        if (l >= 0 && !layer_tensor_known(src, name, l))
            return tempo_error(err, "model %s: tensor %s is not one of a Llama layer's nine weights (a bias, an expert or "
                               "another architecture's tensor); tempo would run the layer without it", tempo_model_path(m), name);
    }
    return 0;
}

/* The tensor `t` of layer l (-1: a model tensor) from the source, checked to
 * have the shape the config implies; NULL data when missing is an error. */
static int bind_find(const Model *m, const TensorSource *src, const LayerTensor *t, int l, Tensor *x, char *err) {
    memset(x, 0, sizeof *x);
    if (src->find(src->ctx, t, l, x, err) != 0) return -1;
    if (!x->data) return tempo_error(err, "model %s lacks tensor %s", tempo_model_path(m), x->name);
    long long rows = (long long)tempo_unit(&m->config, t->rows), cols = (long long)tempo_unit(&m->config, t->cols);
    if (!tempo_dtype_is_weight(x->dtype)) return tempo_error(err, "model %s: tensor %s holds integers, not weights", tempo_model_path(m), x->name);
    int ok = cols ? x->ndim == 2 && x->shape[0] == rows && x->shape[1] == cols : x->ndim == 1 && x->shape[0] == rows;
    if (!ok)
        return tempo_error(err, "model %s: tensor %s has shape [%lld%s%lld] but %s implies [%lld%s%lld]", tempo_model_path(m), x->name,
                           (long long)x->shape[0], x->ndim > 1 ? "," : "", x->ndim > 1 ? (long long)x->shape[1] : 0LL,
                           src->implied_by, rows, cols ? "," : "", cols);
    return 0;
}

/* A norm vector is used as f32: in the file when stored so (and aligned),
 * else converted into the model's small buffer of vectors. */
static const float *bind_vector(Model *m, const Tensor *x, size_t *used) {
    size_t n = (size_t)x->shape[0];
    if (x->dtype == DT_F32 && (uintptr_t)x->data % sizeof(float) == 0) return (const float *)x->data;
    float *out = m->converted + *used;
    *used += n;
    tempo_dequantize((WeightType)x->dtype, x->data, n, out);
    return out;
}

/* Tensor t of layer l (-1: a model tensor) into its field: a matrix as stored, a vector as f32. */
static int bind_one(Model *m, const TensorSource *src, const LayerTensor *t, int l, size_t *used, char *err) {
    Tensor x;
    if (bind_find(m, src, t, l, &x, err) != 0) return -1;
    char *base = l < 0 ? (char *)&m->weights : (char *)&m->weights.layers[l];
    if (t->cols == UNIT_NONE) *(const float **)(base + t->field) = bind_vector(m, &x, used);
    else *(Matrix *)(base + t->field) = (Matrix){x.data, (WeightType)x.dtype};
    return 0;
}

int tempo_model_bind(Model *m, const TensorSource *src, char *err) {
    const Config *c = &m->config;
    size_t used = 0;
    if (every_layer_tensor_bound(m, src, err) != 0) return -1;
    m->weights.layers = calloc((size_t)c->n_layers, sizeof(LayerWeights));
    m->converted_bytes = (size_t)(2 * c->n_layers + 1) * c->dim * sizeof(float); /* room for every norm vector */
    m->converted = malloc(m->converted_bytes);
    if (!m->weights.layers || !m->converted) return tempo_error(err, "out of memory for %d layers", c->n_layers);
    for (int i = 0; i < N_MODEL_TENSORS; i++) {
        int is_wcls = tempo_model_tensors[i].field == offsetof(Weights, wcls);
        if (is_wcls && c->shared_classifier) m->weights.wcls = m->weights.token_embedding;
        else if (bind_one(m, src, &tempo_model_tensors[i], -1, &used, err) != 0) return -1;
    }
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++)
            if (bind_one(m, src, &tempo_layer_tensors[i], l, &used, err) != 0) return -1;
    m->converted_bytes = used * sizeof(float);
    if (used == 0) free(m->converted), m->converted = NULL;
    return 0;
}

/* ---- the model's files ---- */

static int model_files(Model *m, char *err) {
    if (!m->files && !(m->files = calloc(1, sizeof *m->files))) return tempo_error(err, "out of memory");
    return 0;
}

int tempo_model_set_path(Model *m, const char *path, char *err) {
    if (model_files(m, err) != 0) return -1;
    snprintf(m->files->path, sizeof m->files->path, "%s", path);
    return 0;
}

const char *tempo_model_path(const Model *m) { return m->files ? m->files->path : ""; }

const char *tempo_model_name(const Model *m) {
    const char *path = tempo_model_path(m), *base = strrchr(path, '/');
    return base ? base + 1 : path;
}

/* A regular file opened for reading, and its size; -1 and one line otherwise. Opened with
 * O_NONBLOCK so that a FIFO (whose open waits for a writer) is refused at once, not waited on;
 * the flag is cleared once fstat has shown a regular file. */
static int open_regular(const char *path, const char *what, size_t *size, char *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return tempo_error(err, "cannot open %s %s: %s", what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tempo_error(err, "%s %s is not a regular file", what, path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return tempo_error(err, "cannot read %s %s: %s", what, path, strerror(e));
    }
    *size = (size_t)st.st_size;
    return fd;
}

/* fd's `size` bytes mapped read-only (an empty file to NULL). */
static int map_fd(int fd, const char *path, const char *what, size_t size, void **map, char *err) {
    void *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (p == MAP_FAILED) return tempo_error(err, "cannot mmap %s %s: %s", what, path, strerror(errno));
    *map = p;
    return 0;
}

void tempo_unmap_file(void *map, size_t size) {
    if (map) munmap(map, size);
}

int tempo_huge_pages_offered(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char line[128] = "";
    int got = f && fgets(line, sizeof line, f) != NULL;
    if (f) fclose(f);
    return got && (strstr(line, "[always]") || strstr(line, "[madvise]"));
}

int tempo_copy_pays(size_t bytes, size_t available, int huge_pages) {
    return huge_pages && bytes > 0 && bytes <= available / 2;
}

/* Anonymous memory of `size` bytes starting on a 2 MB boundary, advised MADV_HUGEPAGE: reserves 2 MB
 * more and gives the slack before and after back. */
static void *huge_page_region(size_t size) {
    size_t huge = (size_t)2 << 20, page = (size_t)sysconf(_SC_PAGESIZE), len = (size + page - 1) / page * page;
    char *reserved = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (reserved == MAP_FAILED) return NULL;
    char *start = (char *)(((uintptr_t)reserved + huge - 1) / huge * huge);
    if (start > reserved) munmap(reserved, (size_t)(start - reserved));
    munmap(start + len, (size_t)(reserved + huge - start)); /* the tail: never empty, start < reserved + huge */
    madvise(start, len, MADV_HUGEPAGE); /* advice: 4 KB pages if the kernel has no 2 MB ones to give */
    return start;
}

/* Reads size bytes of fd into data: 0, or the reason it could not. */
static const char *read_all(int fd, char *data, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t got = pread(fd, data + done, size - done, (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return strerror(errno);
        if (got == 0) return "the file ended early";
        done += (size_t)got;
    }
    return NULL;
}

/* fd's `size` bytes read onto 2 MB pages, then made read-only as a map is (an empty file to NULL). */
static int copy_fd(int fd, const char *path, const char *what, size_t size, void **data, char *err) {
    char *copy = size ? huge_page_region(size) : NULL;
    if (size && !copy) return tempo_error(err, "out of memory for %s %s (%zu bytes)", what, path, size);
    const char *failed = copy ? read_all(fd, copy, size) : NULL;
    if (failed) {
        tempo_unmap_file(copy, size);
        return tempo_error(err, "cannot read %s %s: %s", what, path, failed);
    }
    if (copy) mprotect(copy, size, PROT_READ); /* a guard only: a copy left writable reads the same */
    *data = copy;
    return 0;
}

/* tempo_copy_pays for a file of `bytes` on this machine: /sys and /proc are read only when the answer
 * can still be yes (a file with bytes, then a kernel that offers 2 MB pages). */
static int copy_pays_here(size_t bytes) {
    size_t available;
    char ignored[TEMPO_ERR_SIZE];
    return bytes > 0 && tempo_huge_pages_offered() && tempo_memory_available(&available, ignored) == 0 &&
           tempo_copy_pays(bytes, available, 1);
}

int tempo_hold_file(const char *path, const char *what, FileHold how, void **data, size_t *size, int *copied,
                    char *err) {
    *data = NULL;
    *copied = 0;
    int fd = open_regular(path, what, size, err); /* the one open and fstat: the size decides */
    if (fd < 0) return -1;
    *copied = how == HOLD_COPY || (how == HOLD_BY_RULE && copy_pays_here(*size));
    int rc = *copied ? copy_fd(fd, path, what, *size, data, err) : map_fd(fd, path, what, *size, data, err);
    close(fd);
    if (rc != 0) *copied = 0;
    return rc;
}

int tempo_model_keep_map(Model *m, void *map, size_t size, int copied, char *err) {
    if (model_files(m, err) != 0 || m->files->n_maps == TEMPO_MAX_MAPS) {
        tempo_unmap_file(map, size);
        return m->files ? tempo_error(err, "too many files in one model (limit %d)", TEMPO_MAX_MAPS) : -1;
    }
    m->files->maps[m->files->n_maps] = map;
    m->files->copied[m->files->n_maps] = copied;
    m->files->map_sizes[m->files->n_maps++] = size;
    return 0;
}

void tempo_model_free(Model *m) {
    for (int i = 0; m->files && i < m->files->n_maps; i++) tempo_unmap_file(m->files->maps[i], m->files->map_sizes[i]);
    free(m->files);
    free(m->weights.layers);
    free(m->rope_inv_freq);
    free(m->converted);
    memset(m, 0, sizeof *m);
}
