/* trace.c - trace files (safetensors, formats/safetensors.c) and mask
 * files. A trace holds a forward pass's inputs (tokens, positions, the
 * mask) and what it computed (logits, attention); README.md "Trace format"
 * lists the tensors. */
#define _GNU_SOURCE
#include "formats.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void tempo_trace_init(Trace *t) { memset(t, 0, sizeof *t); }

void tempo_trace_free(Trace *t) {
    for (int i = 0; i < t->n_tensors; i++) free(t->tensors[i].data);
    for (int i = 0; i < t->n_meta; i++) {
        free(t->meta[i].key);
        free(t->meta[i].value);
    }
    free(t->tensors);
    free(t->meta);
    memset(t, 0, sizeof *t);
}

static Tensor *trace_slot(Trace *t, const char *name, char *err) {
    if (strlen(name) >= sizeof t->tensors[0].name) {
        tempo_error(err, "tensor name %.100s... is too long", name);
        return NULL;
    }
    if (tempo_trace_get(t, name)) {
        tempo_error(err, "tensor %s appears twice", name);
        return NULL;
    }
    if (tempo_grow((void **)&t->tensors, &t->cap_tensors, (size_t)t->n_tensors + 1, sizeof(Tensor), err) != 0)
        return NULL;
    Tensor *x = &t->tensors[t->n_tensors];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

/* Adds a tensor that takes `data` (malloc'd; freed on failure). */
static int trace_adopt(Trace *t, const char *name, DType dtype, int ndim, const int64_t *shape, void *data, char *err) {
    Tensor *x = data ? trace_slot(t, name, err) : NULL;
    if (!x) {
        free(data);
        return data ? -1 : tempo_error(err, "out of memory for tensor %s", name);
    }
    x->dtype = dtype;
    x->ndim = ndim;
    memcpy(x->shape, shape, (size_t)ndim * sizeof(int64_t));
    x->data = data;
    t->n_tensors++;
    return 0;
}

int tempo_trace_add(Trace *t, const char *name, DType dtype, int ndim, const int64_t *shape,
                    const void *data, char *err) {
    size_t bytes = tempo_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) bytes *= (size_t)shape[i];
    void *copy = malloc(bytes ? bytes : 1);
    if (copy) memcpy(copy, data, bytes);
    return trace_adopt(t, name, dtype, ndim, shape, copy, err);
}

int tempo_trace_meta(Trace *t, const char *key, const char *value, char *err) {
    MetaEntry e = {strdup(key), strdup(value)};
    if (!e.key || !e.value || tempo_grow((void **)&t->meta, &t->cap_meta, (size_t)t->n_meta + 1, sizeof e, err) != 0) {
        free(e.key);
        free(e.value);
        return tempo_error(err, "out of memory for trace metadata %.100s", key);
    }
    t->meta[t->n_meta++] = e;
    return 0;
}

const Tensor *tempo_trace_get(const Trace *t, const char *name) {
    return tempo_tensor_find(t->tensors, t->n_tensors, name);
}

const char *tempo_trace_meta_get(const Trace *t, const char *key) {
    for (int i = t->n_meta - 1; i >= 0; i--)
        if (strcmp(t->meta[i].key, key) == 0) return t->meta[i].value;
    return NULL;
}

/* ---- allowed as packed bits (NOTES "Trace format: allowed as bits") ----
 * `allowed_bits` U8[n, (n+7)/8] or U8[L, n, (n+7)/8]: row q's key k is bit
 * k % 8 (least significant first) of byte k / 8, as numpy.packbits(...,
 * axis=-1, bitorder="little"); the bits past key n-1 are 0. 1/8 of dense. */

size_t tempo_mask_row_bytes(int n) { return ((size_t)n + 7) / 8; }

void tempo_mask_pack(const uint8_t *dense, size_t rows, int n, uint8_t *bits) {
    size_t row_bytes = tempo_mask_row_bytes(n);
    memset(bits, 0, rows * row_bytes);
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < n; k++)
            if (dense[r * n + k]) bits[r * row_bytes + k / 8] |= (uint8_t)(1u << (k % 8));
}

int tempo_mask_unpack(const uint8_t *bits, size_t rows, int n, uint8_t *dense, char *err) {
    size_t row_bytes = tempo_mask_row_bytes(n);
    uint8_t padding = n % 8 ? (uint8_t)(0xffu << (n % 8)) : 0;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = bits + r * row_bytes;
        if (row_bytes && (row[row_bytes - 1] & padding))
            return tempo_error(err, "trace allowed_bits row %zu sets bits past key %d (padding bits must be 0)", r % (size_t)n, n - 1);
        for (int k = 0; k < n; k++) dense[r * n + k] = (uint8_t)(row[k / 8] >> (k % 8) & 1);
    }
    return 0;
}

/* A dense mask U8[n,n] or [L,n,n] of 0s and 1s, which bits hold exactly. */
static int packable(const Tensor *x) {
    if (x->dtype != DT_U8 || x->ndim < 2 || x->ndim > 3 || x->shape[x->ndim - 1] != x->shape[x->ndim - 2]) return 0;
    const uint8_t *v = x->data;
    for (size_t i = 0, count = tempo_tensor_count(x); i < count; i++)
        if (v[i] > 1) return 0;
    return 1;
}

/* `allowed` as `allowed_bits` (data allocated), or *packed untouched (0) when not packable. */
static int pack_allowed(const Tensor *dense, Tensor *packed, char *err) {
    if (strcmp(dense->name, "allowed") != 0 || !packable(dense)) return 0;
    int n = (int)dense->shape[dense->ndim - 1];
    size_t rows = tempo_tensor_count(dense) / (size_t)(n ? n : 1), row_bytes = tempo_mask_row_bytes(n);
    *packed = *dense;
    snprintf(packed->name, sizeof packed->name, "allowed_bits");
    packed->shape[packed->ndim - 1] = (int64_t)row_bytes;
    packed->data = malloc(rows * row_bytes > 0 ? rows * row_bytes : 1);
    if (!packed->data) return tempo_error(err, "out of memory packing allowed (%zu rows)", rows);
    tempo_mask_pack(dense->data, rows, n, packed->data);
    return 1;
}

/* A parsed `allowed_bits` added to the trace as the dense `allowed` it stands for. */
static int add_unpacked(Trace *t, const Tensor *bits, char *err) {
    int ndim = bits->ndim;
    if (bits->dtype != DT_U8 || ndim < 2 || ndim > 3)
        return tempo_error(err, "trace allowed_bits must be U8[n,(n+7)/8] or U8[L,n,(n+7)/8]");
    if (bits->shape[ndim - 2] > (1 << 20)) return tempo_error(err, "trace allowed_bits has %lld rows (limit %d)",
                                                             (long long)bits->shape[ndim - 2], 1 << 20);
    int n = (int)bits->shape[ndim - 2];
    if ((size_t)bits->shape[ndim - 1] != tempo_mask_row_bytes(n))
        return tempo_error(err, "trace allowed_bits has %lld bytes per row; %d keys need %zu", (long long)bits->shape[ndim - 1],
                           n, tempo_mask_row_bytes(n));
    int64_t shape[3];
    memcpy(shape, bits->shape, sizeof shape);
    shape[ndim - 1] = n;
    size_t rows = ndim == 3 ? (size_t)shape[0] * n : (size_t)n;
    uint8_t *dense = malloc(rows * n > 0 ? rows * n : 1);
    if (!dense) return tempo_error(err, "out of memory unpacking allowed_bits (%zu rows)", rows);
    int rc = tempo_mask_unpack(bits->data, rows, n, dense, err);
    if (rc == 0) rc = tempo_trace_add(t, "allowed", DT_U8, ndim, shape, dense, err);
    free(dense);
    return rc;
}

/* Writes the header and data of tensors in order, `allowed` packed when it
 * can be: 1 written, 0 a write failed, -1 out of memory (err). */
static int write_tensors(FILE *f, const Trace *t, const cJSON *meta, char *err) {
    Tensor *out = malloc((t->n_tensors ? t->n_tensors : 1) * sizeof *out);
    if (!out) return tempo_error(err, "out of memory writing a trace");
    int packed = -1, rc = 0, has_bits = tempo_trace_get(t, "allowed_bits") != NULL;
    for (int i = 0; i < t->n_tensors && rc >= 0; i++) {
        out[i] = t->tensors[i];
        if (!has_bits) rc = pack_allowed(&t->tensors[i], &out[i], err);
        if (rc > 0) packed = i;
    }
    int ok = rc >= 0 && tempo_safetensors_write_header(f, out, t->n_tensors, meta);
    for (int i = 0; i < t->n_tensors && ok; i++) {
        size_t bytes = tempo_tensor_bytes(&out[i]);
        ok = fwrite(out[i].data, 1, bytes, f) == bytes;
    }
    if (packed >= 0) free(out[packed].data);
    free(out);
    return rc < 0 ? -1 : ok;
}

int tempo_trace_write(const Trace *t, const char *path, char *err) {
    cJSON *meta = t->n_meta > 0 ? cJSON_CreateObject() : NULL;
    for (int i = 0; i < t->n_meta; i++) /* a key given twice: its last value */
        if (tempo_trace_meta_get(t, t->meta[i].key) == t->meta[i].value)
            tempo_json_add_text(meta, t->meta[i].key, t->meta[i].value); /* a file name need not be UTF-8 */
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "trace ", err) != 0) {
        cJSON_Delete(meta);
        return -1;
    }
    int ok = write_tensors(a.f, t, meta, err);
    cJSON_Delete(meta);
    if (ok < 0) { /* out of memory, named in err; the temporary file goes */
        char ignored[TEMPO_ERR_SIZE];
        tempo_atomic_close(&a, 0, ignored);
        return -1;
    }
    return tempo_atomic_close(&a, ok, err);
}

int tempo_trace_read(Trace *t, const char *path, char *err) {
    tempo_trace_init(t);
    unsigned char *buf;
    size_t len;
    if (tempo_read_file(path, "trace", &buf, &len, err) != 0) return -1;
    int rc = tempo_trace_parse(t, buf, len, path, err);
    free(buf);
    return rc;
}

/* No run reaches this logical position (a model's context is at most 2^24); below it, the readers'
 * position arithmetic over a trace's rows (steps, thirds, offsets) stays within an int. The bound is
 * not the seq_len of the trace's metadata: traces built by hand (tempo_trace_build) may record a
 * model's dimensions over positions past its context, which only a forward pass must refuse. */
enum { TRACE_MAX_POSITION = 1 << 29 };

/* Each logical position of `positions` (I32[n]; other shapes are their readers' to refuse) in
 * [0, 2^29): one line naming the row and the value otherwise. */
static int check_positions(const Trace *t, const char *path, char *err) {
    const Tensor *pos = tempo_trace_get(t, "positions");
    if (!pos || pos->dtype != DT_I32 || pos->ndim != 1) return 0;
    const int32_t *p = pos->data;
    for (int64_t r = 0; r < pos->shape[0]; r++)
        if (p[r] < 0 || p[r] >= TRACE_MAX_POSITION)
            return tempo_error(err, "trace %s: logical position %d at row %lld is out of range [0, %d) (no run reaches 2^29)", path,
                               p[r], (long long)r, TRACE_MAX_POSITION);
    return 0;
}

int tempo_trace_parse(Trace *t, const unsigned char *buf, size_t len, const char *path, char *err) {
    tempo_trace_init(t);
    Tensor *entries;
    int n;
    cJSON *meta;
    unsigned dtypes = 1u << DT_F32 | 1u << DT_I32 | 1u << DT_U8;
    static const char *const known[] = {"tokens", "positions", "sets", "allowed", "allowed_bits", "logits", "attention", "pruned",
                                        "selected", "selected_probs", "kept_rows", "kept_logits", "attention_layers",
                                        "attention_heads", "attention_rows", NULL}; /* others in dtypes tempo lacks are skipped */
    if (tempo_safetensors_parse(buf, len, "trace", path, dtypes, known, &entries, &n, &meta, err) != 0) return -1;
    int rc = tempo_tensor_find(entries, n, "allowed") && tempo_tensor_find(entries, n, "allowed_bits")
                 ? tempo_error(err, "trace %s holds both allowed and allowed_bits; keep one", path)
                 : 0;
    for (int i = 0; i < n && rc == 0; i++) /* copied: the trace owns its tensors; allowed_bits read as allowed */
        rc = strcmp(entries[i].name, "allowed_bits") == 0
                 ? add_unpacked(t, &entries[i], err)
                 : tempo_trace_add(t, entries[i].name, entries[i].dtype, entries[i].ndim, entries[i].shape, entries[i].data, err);
    for (const cJSON *kv = meta ? meta->child : NULL; kv && rc == 0; kv = kv->next)
        if (cJSON_IsString(kv)) rc = tempo_trace_meta(t, kv->string, kv->valuestring, err);
    if (rc == 0) rc = check_positions(t, path, err);
    free(entries);
    cJSON_Delete(meta);
    if (rc != 0) tempo_trace_free(t);
    return rc;
}

int tempo_trace_metaf(Trace *t, const char *key, char *err, const char *fmt, ...) {
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    return tempo_trace_meta(t, key, value, err);
}

int tempo_trace_add_attention(Trace *t, const Config *c, int n, const AttentionKeep *keep, const float *attention,
                              char *err) {
    int64_t shape[4] = {keep->layers ? keep->n_layers : c->n_layers, keep->heads ? keep->n_heads : c->n_heads,
                        keep->rows ? keep->n_rows : n, n};
    const char *names[3] = {"attention_layers", "attention_heads", "attention_rows"};
    const int *lists[3] = {keep->layers, keep->heads, keep->rows};
    if (tempo_trace_add(t, "attention", DT_F32, 4, shape, attention, err) != 0) return -1;
    for (int i = 0; i < 3; i++) /* the indices of a partial capture */
        if (lists[i] && tempo_trace_add(t, names[i], DT_I32, 1, shape + i, lists[i], err) != 0) return -1;
    return 0;
}

/* One index list of a partial capture: I32[count], ascending, within [0, bound). */
static int index_list(const Trace *t, const char *name, int bound, const int **list, int *count, char *err) {
    const Tensor *x = tempo_trace_get(t, name);
    *list = NULL, *count = 0;
    if (!x) return 0;
    if (x->dtype != DT_I32 || x->ndim != 1 || x->shape[0] < 1 || x->shape[0] > bound)
        return tempo_error(err, "trace %s must be I32[1..%d]", name, bound);
    const int *v = x->data;
    for (int64_t i = 0; i < x->shape[0]; i++)
        if (v[i] < 0 || v[i] >= bound || (i > 0 && v[i] <= v[i - 1]))
            return tempo_error(err, "trace %s must be ascending indices within [0, %d); entry %lld is %d", name, bound,
                               (long long)i, v[i]);
    *list = v, *count = (int)x->shape[0];
    return 0;
}

int tempo_trace_attention_keep(const Trace *t, const Config *c, int n, AttentionKeep *keep, char *err) {
    memset(keep, 0, sizeof *keep);
    const Tensor *att = tempo_trace_get(t, "attention");
    if (index_list(t, "attention_layers", c->n_layers, &keep->layers, &keep->n_layers, err) != 0 ||
        index_list(t, "attention_heads", c->n_heads, &keep->heads, &keep->n_heads, err) != 0 ||
        index_list(t, "attention_rows", n, &keep->rows, &keep->n_rows, err) != 0)
        return -1;
    if (!att) {
        if (keep->layers || keep->heads || keep->rows) return tempo_error(err, "trace has attention indices but no attention");
        return 0;
    }
    int64_t want[4] = {keep->layers ? keep->n_layers : c->n_layers, keep->heads ? keep->n_heads : c->n_heads,
                       keep->rows ? keep->n_rows : n, n};
    if (att->dtype != DT_F32 || att->ndim != 4 || memcmp(att->shape, want, sizeof want) != 0)
        return tempo_error(err, "trace attention must be F32[%lld,%lld,%lld,%lld] (its kept layers, heads, rows; keys)",
                           (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3]);
    return 1;
}

static void put_meta_int(Trace *t, const char *key, long v) { tempo_trace_metaf(t, key, NULL, "%ld", v); }

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
    if (rc == 0 && allowed) /* one mask for all layers is stored as [n][n] */
        rc = tempo_trace_add(t, "allowed", DT_U8, mask_layers == 1 ? 2 : 3,
                             mask_layers == 1 ? mask_shape + 1 : mask_shape, allowed, err);
    if (rc == 0 && logits) rc = tempo_trace_add(t, "logits", DT_F32, 2, logit_shape, logits, err);
    if (rc == 0 && attention) rc = tempo_trace_add(t, "attention", DT_F32, 4, att_shape, attention, err);
    if (rc == 0 && pruned) rc = tempo_trace_add(t, "pruned", DT_I32, 1, rows, pruned, err);
    if (rc != 0) {
        tempo_trace_free(t);
        return -1;
    }
    tempo_trace_meta(t, "model", tempo_model_name(m), NULL);
    put_meta_int(t, "dim", c->dim);
    put_meta_int(t, "n_layers", c->n_layers);
    put_meta_int(t, "n_heads", c->n_heads);
    put_meta_int(t, "n_kv_heads", c->n_kv_heads);
    put_meta_int(t, "vocab_size", c->vocab_size);
    put_meta_int(t, "seq_len", c->seq_len);
    return 0;
}

/* ---- the mask as a rule (NOTES "Trace format: the mask as a rule") ----
 * Metadata mask "rule" and mask_kinds (one kind, or one per layer), with
 * sets I32[n], pruned I32[n] (optional: the step that pruned each row, or
 * -1) and n_prompt: row q sees key k by tempo_mask_cell's rule, where a
 * row pruned at step s is hidden from the rows of steps after s (the
 * prompt's rows are step -1; each new set id after them is the next step). */

static const char *const MASK_KIND_NAMES[] = {"causal", "isolated", "visible"};

/* mask_kinds: "KIND" or "KIND,KIND,..." with one per layer. */
static int rule_kinds(const char *text, const Config *c, TraceMask *tm, char *err) {
    if (!text) return tempo_error(err, "trace stores its mask as a rule but has no mask_kinds metadata");
    tm->kinds = malloc((size_t)c->n_layers * sizeof(MaskKind));
    if (!tm->kinds) return tempo_error(err, "out of memory for the mask's kinds");
    int count = 0;
    for (const char *p = text; ; count++) {
        size_t len = strcspn(p, ","), kind = 0;
        while (kind < 3 && (strlen(MASK_KIND_NAMES[kind]) != len || strncmp(p, MASK_KIND_NAMES[kind], len) != 0)) kind++;
        if (kind == 3 || count >= c->n_layers)
            return tempo_error(err, "trace mask_kinds '%.100s' must be causal, isolated or visible, once or once per layer (%d)",
                               text, c->n_layers);
        tm->kinds[count] = (MaskKind)kind;
        if (!p[len]) break;
        p += len + 1;
    }
    if (count + 1 != 1 && count + 1 != c->n_layers)
        return tempo_error(err, "trace mask_kinds names %d kinds; the rule needs 1 or one per layer (%d)", count + 1, c->n_layers);
    tm->mask.layers = count + 1;
    return 0;
}

/* hidden_from from pruned: a row pruned at step s is hidden from the first row of a later step on. */
static int rule_hidden_from(const Trace *t, const int *sets, int n, TraceMask *tm, char *err) {
    const Tensor *pr = tempo_trace_get(t, "pruned");
    const char *np = tempo_trace_meta_get(t, "n_prompt");
    int n_prompt = 0, any = 0;
    if (!pr) return 0;
    if (pr->dtype != DT_I32 || pr->ndim != 1 || pr->shape[0] != n) return tempo_error(err, "trace pruned must be I32[%d]", n);
    for (int k = 0; k < n; k++) any |= ((const int *)pr->data)[k] != -1;
    if (!any) return 0; /* nothing pruned: no row is hidden */
    if (!np || tempo_parse_int(np, "trace metadata n_prompt", 1, n, &n_prompt, err) != 0)
        return np ? -1 : tempo_error(err, "trace stores its mask as a rule with pruned rows but no n_prompt");
    int *step = malloc((size_t)n * sizeof(int)), last = -1;
    tm->hidden_from = malloc((size_t)n * sizeof(int));
    if (!step || !tm->hidden_from) { free(step); return tempo_error(err, "out of memory for the mask's pruned rows"); }
    for (int q = 0; q < n; q++) {
        if (q >= n_prompt && (q == n_prompt || sets[q] != sets[q - 1])) last++;
        step[q] = q < n_prompt ? -1 : last;
    }
    const int *pruned = pr->data;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        tm->hidden_from[k] = -1;
        if (pruned[k] == -1) continue;
        if (pruned[k] <= step[k] || pruned[k] > last || step[k] < 0)
            rc = tempo_error(err, "trace pruned[%d] is %d: a row of step %d is pruned by a later step up to %d, or -1", k,
                             pruned[k], step[k], last);
        for (int q = k + 1; q < n && rc == 0 && tm->hidden_from[k] < 0; q++)
            if (step[q] > pruned[k]) tm->hidden_from[k] = q;
    }
    free(step);
    return rc;
}

int tempo_trace_mask(const Trace *t, const Config *c, int n, TraceMask *tm, char *err) {
    memset(tm, 0, sizeof *tm);
    const Tensor *al = tempo_trace_get(t, "allowed"), *sets = tempo_trace_get(t, "sets");
    const char *form = tempo_trace_meta_get(t, "mask");
    if (al) {
        tm->mask = tempo_mask_dense(al->data, al->ndim == 3 ? (int)al->shape[0] : 1, 0, n, n);
        return 0;
    }
    if (!form || strcmp(form, "rule") != 0)
        return tempo_error(err, form ? "trace metadata mask is '%.100s'; the one stored form is 'rule'"
                                     : "trace lacks allowed (or allowed_bits, or the mask as a rule)", form);
    if (!sets || sets->dtype != DT_I32 || sets->ndim != 1 || sets->shape[0] != n)
        return tempo_error(err, "trace stores its mask as a rule: sets must be I32[%d], one set id a row", n);
    tm->mask = (Mask){.sets = sets->data};
    int rc = rule_kinds(tempo_trace_meta_get(t, "mask_kinds"), c, tm, err);
    if (rc == 0) rc = rule_hidden_from(t, sets->data, n, tm, err);
    tm->mask.kind = tm->kinds ? tm->kinds[0] : MASK_CAUSAL;
    tm->mask.layer_kinds = tm->kinds, tm->mask.hidden_from = tm->hidden_from, tm->is_rule = 1;
    if (rc != 0) tempo_trace_mask_free(tm);
    return rc;
}

void tempo_trace_mask_free(TraceMask *tm) {
    free(tm->kinds);
    free(tm->hidden_from);
    memset(tm, 0, sizeof *tm);
}

int tempo_trace_dense_mask(Trace *t, int limit, char *err) {
    const Tensor *bits = tempo_trace_get(t, "allowed_bits"), *tok = tempo_trace_get(t, "tokens");
    const char *layers = tempo_trace_meta_get(t, "n_layers");
    Config c = {.n_layers = 1};
    if (tempo_trace_get(t, "allowed") || (!bits && !tempo_trace_meta_get(t, "mask"))) return 0; /* dense, or no mask */
    if (bits) { /* a trace made in memory: unpacked as tempo_trace_read does, the bits dropped */
        int at = (int)(bits - t->tensors);
        if (add_unpacked(t, bits, err) != 0) return -1;
        free(t->tensors[at].data);
        memmove(&t->tensors[at], &t->tensors[at + 1], (size_t)(--t->n_tensors - at) * sizeof *bits);
        return 0;
    }
    if (!tok || tok->ndim != 1) return tempo_error(err, "trace lacks tokens");
    int n = (int)tok->shape[0];
    if (n > limit)
        return tempo_error(err, "the trace stores its mask as a rule; this needs it dense, %d x %d bytes a layer (more than "
                                "%d rows): use verify or audit, which read the rule", n, n, limit);
    if (!layers || tempo_parse_int(layers, "trace metadata n_layers", 1, 1 << 16, &c.n_layers, err) != 0)
        return layers ? -1 : tempo_error(err, "the trace stores its mask as a rule but not its n_layers");
    TraceMask tm;
    if (tempo_trace_mask(t, &c, n, &tm, err) != 0) return -1;
    int64_t shape[3] = {tm.mask.layers, n, n};
    int one = tm.mask.layers == 1;
    int rc = trace_adopt(t, "allowed", DT_U8, one ? 2 : 3, shape + one, tempo_mask_to_dense(&tm.mask, n), err);
    tempo_trace_mask_free(&tm);
    return rc;
}

/* Checks a trace's inputs and returns n and the mask layer count. */
int tempo_trace_inputs(const Trace *tr, const Config *c, int *n, int *mask_layers, char *err) {
    const Tensor *tok = tempo_trace_get(tr, "tokens"), *pos = tempo_trace_get(tr, "positions");
    const Tensor *al = tempo_trace_get(tr, "allowed");
    if (!tok || !pos) return tempo_error(err, "trace lacks tokens or positions");
    if (tok->dtype != DT_I32 || pos->dtype != DT_I32 || (al && al->dtype != DT_U8) || tok->ndim != 1 || pos->ndim != 1)
        return tempo_error(err, "trace tensors have the wrong dtypes (tokens/positions I32[n], allowed U8[n,n])");
    if (tok->shape[0] > (1 << 20)) return tempo_error(err, "trace has %lld rows (limit %d)", (long long)tok->shape[0], 1 << 20);
    *n = (int)tok->shape[0];
    if (pos->shape[0] != *n) return tempo_error(err, "trace has %d tokens but %lld positions", *n, (long long)pos->shape[0]);
    if (!al) { /* the mask as a rule: checked by rebuilding it */
        TraceMask tm;
        if (tempo_trace_mask(tr, c, *n, &tm, err) != 0) return -1;
        *mask_layers = tm.mask.layers;
        tempo_trace_mask_free(&tm);
        return *n < 1 ? tempo_error(err, "trace has no rows") : 0;
    }
    int ok2 = al->ndim == 2 && al->shape[0] == *n && al->shape[1] == *n;
    int ok3 = al->ndim == 3 && al->shape[0] == c->n_layers && al->shape[1] == *n && al->shape[2] == *n;
    if (!ok2 && !ok3) return tempo_error(err, "trace allowed must be U8[n,n] or U8[n_layers,n,n] for n = %d", *n);
    *mask_layers = ok3 ? c->n_layers : 1;
    if (*n < 1) return tempo_error(err, "trace has no rows");
    return 0;
}

/* ---- which rows have logits ---- */

static int has_shape(const Tensor *x, DType dtype, int ndim, int64_t d0, int64_t d1) {
    return x->dtype == dtype && x->ndim == ndim && x->shape[0] == d0 && (ndim < 2 || x->shape[1] == d1);
}

static int shape_error(const Tensor *x, const char *want, char *err) {
    char got[80];
    return tempo_error(err, "trace %s must be %s, got %s", x->name, want, tempo_tensor_describe(x, got, sizeof got));
}

/* kept_rows: row ids of a trace of n rows, each once, in increasing order. */
static int check_kept_rows(const int *rows, int m, int n, char *err) {
    for (int i = 0; i < m; i++) {
        if (rows[i] < 0 || rows[i] >= n)
            return tempo_error(err, "trace kept_rows[%d] is row %d, outside the trace's %d rows", i, rows[i], n);
        if (i > 0 && rows[i] == rows[i - 1])
            return tempo_error(err, "trace kept_rows names row %d twice (kept_rows[%d] and [%d])", rows[i], i - 1, i);
        if (i > 0 && rows[i] < rows[i - 1])
            return tempo_error(err, "trace kept_rows must be strictly increasing: kept_rows[%d] is row %d, after row %d",
                               i, rows[i], rows[i - 1]);
    }
    return 0;
}

int tempo_trace_logits(const Trace *t, int n, int vocab, TraceLogits *l, char *err) {
    const Tensor *full = tempo_trace_get(t, "logits"), *rows = tempo_trace_get(t, "kept_rows");
    const Tensor *kept = tempo_trace_get(t, "kept_logits");
    char want[80];
    memset(l, 0, sizeof *l);
    if (full && (rows || kept))
        return tempo_error(err, "trace holds both logits and %s: every row's logits, or the kept rows', not both",
                           rows ? "kept_rows" : "kept_logits");
    if (!rows != !kept)
        return tempo_error(err, "trace holds %s without %s: the kept rows and their logits come together",
                           rows ? "kept_rows" : "kept_logits", rows ? "kept_logits" : "kept_rows");
    if (full) {
        snprintf(want, sizeof want, "F32[%d,%d] (rows, vocabulary)", n, vocab);
        if (!has_shape(full, DT_F32, 2, n, vocab)) return shape_error(full, want, err);
        *l = (TraceLogits){n, NULL, full->data};
        return 0;
    }
    if (!rows) return 0;
    if (rows->dtype != DT_I32 || rows->ndim != 1 || rows->shape[0] < 1 || rows->shape[0] > n) {
        snprintf(want, sizeof want, "I32[m] with 1 <= m <= %d (the trace's rows)", n);
        return shape_error(rows, want, err);
    }
    int m = (int)rows->shape[0];
    snprintf(want, sizeof want, "F32[%d,%d] (one row per kept_rows entry, vocabulary)", m, vocab);
    if (!has_shape(kept, DT_F32, 2, m, vocab)) return shape_error(kept, want, err);
    if (check_kept_rows(rows->data, m, n, err) != 0) return -1;
    *l = (TraceLogits){m, rows->data, kept->data};
    return 0;
}

const float *tempo_trace_logits_row(const TraceLogits *l, int r, int vocab) {
    int lo = 0, hi = l->n_rows - 1; /* binary search: kept_rows is increasing */
    if (!l->rows) return r >= 0 && r < l->n_rows ? l->logits + (size_t)r * vocab : NULL;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (l->rows[mid] == r) return l->logits + (size_t)mid * vocab;
        if (l->rows[mid] < r) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
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
    if (tempo_read_file(path, "mask file", &buf, &len, err) != 0) return -1;
    int rc = tempo_mask_parse((const char *)buf, len, n, allowed, path, err);
    free(buf);
    return rc;
}

/* `selected` I32[steps, W] (each step's set, most probable first, -1 padded)
 * and `selected_probs` F32[steps, W] (0 padded), W the widest set. */
static int add_selections(Trace *t, const Generation *gen, char *err) {
    int64_t shape[2] = {gen->n_steps, 1};
    for (int s = 0; s < gen->n_steps; s++)
        if (gen->steps[s].n_members > shape[1]) shape[1] = gen->steps[s].n_members;
    size_t cells = (size_t)shape[0] * shape[1];
    int *selected = malloc((cells ? cells : 1) * sizeof(int));
    float *probs = calloc(cells ? cells : 1, sizeof(float));
    int rc = selected && probs ? 0 : tempo_error(err, "out of memory for the selections of %d steps", gen->n_steps);
    for (size_t i = 0; i < cells; i++) selected[i] = -1;
    for (int s = 0; s < gen->n_steps && rc == 0; s++)
        for (int i = 0; i < gen->steps[s].n_members; i++) {
            const Member *mem = &gen->members[gen->steps[s].first_member + i];
            selected[s * shape[1] + i] = mem->token;
            probs[s * shape[1] + i] = mem->prob;
        }
    if (rc == 0) rc = tempo_trace_add(t, "selected", DT_I32, 2, shape, selected, err);
    if (rc == 0) rc = tempo_trace_add(t, "selected_probs", DT_F32, 2, shape, probs, err);
    free(selected);
    free(probs);
    return rc;
}

/* The mask's form in a generation's trace: allowed_bits packed from its rule
 * row by row, or the rule itself (metadata mask "rule" and mask_kinds; the
 * sets, pruned and n_prompt it reads are written anyway). */
static int add_generation_mask(Trace *t, const Generation *gen, TraceMaskForm form, char *err) {
    Mask mask = tempo_generation_mask(gen);
    if (form == TRACE_MASK_BITS) {
        int64_t shape[3] = {gen->mask_layers, gen->n_rows, (int64_t)tempo_mask_row_bytes(gen->n_rows)};
        int one = gen->mask_layers == 1;
        return trace_adopt(t, "allowed_bits", DT_U8, one ? 2 : 3, shape + one, tempo_mask_bits(&mask, gen->n_rows), err);
    }
    char kinds[64 * 9] = "";
    for (int l = 0, w = 0; l < gen->mask_layers && w < (int)sizeof kinds; l++)
        w += snprintf(kinds + w, sizeof kinds - (size_t)w, "%s%s", l ? "," : "", MASK_KIND_NAMES[gen->layer_kinds[l]]);
    if (tempo_trace_meta(t, "mask", "rule", err) != 0) return -1;
    return tempo_trace_meta(t, "mask_kinds", kinds, err);
}

int tempo_generation_trace(const Generation *gen, const Model *m, TraceMaskForm form, Trace *t, char *err) {
    if (gen->logits_first != 0) return tempo_error(err, "the generation kept only its newest logits (keep_logits 0): no trace");
    if (form == TRACE_MASK_RULE && gen->mask_layers > 64) return tempo_error(err, "a rule mask names at most 64 layers");
    AttentionKeep kept;
    float *attention = tempo_generation_attention(gen, &m->config, &kept);
    int has_attention = gen->attention_captured && (!kept.rows || kept.n_rows > 0); /* no kept row yet: none */
    if (has_attention && !attention) return tempo_error(err, "out of memory for a trace of %d rows", gen->n_rows);
    int rc = tempo_trace_build(t, m, gen->n_rows, gen->tokens, gen->positions, gen->sets, NULL, gen->mask_layers,
                               gen->logits, NULL, gen->pruned, err);
    if (rc == 0) rc = add_generation_mask(t, gen, form, err);
    if (rc == 0 && has_attention) rc = tempo_trace_add_attention(t, &m->config, gen->n_rows, &kept, attention, err);
    if (rc == 0) rc = add_selections(t, gen, err);
    if (rc == 0) put_meta_int(t, "n_prompt", gen->n_prompt);
    if (rc != 0) tempo_trace_free(t);
    free(attention);
    return rc;
}

/* ---- a mask's cells, dense or as bits ---- */

uint8_t *tempo_mask_to_dense(const Mask *m, int n) {
    size_t N = (size_t)n, bytes = (size_t)m->layers * N * N;
    uint8_t *dense = malloc(bytes > 0 ? bytes : 1);
    for (int l = 0; dense && l < m->layers; l++)
        for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++) dense[((size_t)l * N + q) * N + k] = (uint8_t)tempo_mask_cell(m, l, q, k);
    return dense;
}

uint8_t *tempo_mask_bits(const Mask *m, int n) {
    size_t row_bytes = tempo_mask_row_bytes(n), bytes = (size_t)m->layers * n * row_bytes;
    uint8_t *bits = calloc(bytes > 0 ? bytes : 1, 1);
    for (int l = 0; bits && l < m->layers; l++) /* one row at a time: no n x n bytes */
        for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++)
                if (tempo_mask_cell(m, l, q, k)) bits[((size_t)l * n + q) * row_bytes + k / 8] |= (uint8_t)(1u << (k % 8));
    return bits;
}

uint8_t *tempo_generation_allowed(const Generation *gen) {
    Mask mask = tempo_generation_mask(gen);
    return tempo_mask_to_dense(&mask, gen->n_rows);
}

float *tempo_generation_attention(const Generation *gen, const Config *c, AttentionKeep *kept) {
    AttentionKeep keep = gen->attention_keep;
    int n = gen->n_rows, KR = 0;
    while (keep.rows && KR < keep.n_rows && keep.rows[KR] < n) KR++; /* the kept rows the run reached */
    if (keep.rows) keep.n_rows = KR;
    else KR = n;
    if (kept) *kept = keep;
    if (!gen->attention_captured || KR == 0) return NULL;
    size_t KLH = (size_t)(keep.layers ? keep.n_layers : c->n_layers) * (keep.heads ? keep.n_heads : c->n_heads);
    float *attention = calloc(KLH * KR * n, sizeof(float));
    const float *packed = gen->attention;
    for (int slot = 0; attention && slot < KR; slot++) { /* row i: [kept layers][kept heads][i+1], appended */
        size_t row = keep.rows ? (size_t)keep.rows[slot] : (size_t)slot;
        for (size_t b = 0; b < KLH; b++, packed += row + 1)
            memcpy(attention + (b * KR + slot) * n, packed, (row + 1) * sizeof(float));
    }
    return attention;
}

