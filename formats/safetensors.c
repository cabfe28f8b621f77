/* safetensors.c - the one reader and writer of safetensors headers, for
 * trace files and Hugging Face checkpoints alike. A file is: u64
 * little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [a, b]}, ...,
 *    "__metadata__": {"key": "value"}}
 * then the tensor bytes (offsets count from the end of the header). */
#include "formats.h"

#include <stdlib.h>
#include <string.h>

/* The stored types a safetensors file names (the block types have no name there: NULL). */
static const char *const dtype_names[] = {[DT_F32] = "F32", [DT_I32] = "I32", [DT_U8] = "U8", [DT_F16] = "F16", [DT_BF16] = "BF16"};
static const size_t dtype_sizes[] = {[DT_F32] = 4, [DT_I32] = 4, [DT_U8] = 1, [DT_F16] = 2, [DT_BF16] = 2};

const char *tempo_dtype_name(DType d) { return dtype_names[d]; }
size_t tempo_dtype_size(DType d) { return dtype_sizes[d]; }

size_t tempo_tensor_count(const Tensor *x) {
    size_t n = 1;
    for (int d = 0; d < x->ndim; d++) n *= (size_t)x->shape[d];
    return n;
}

size_t tempo_tensor_bytes(const Tensor *x) { return tempo_tensor_count(x) * dtype_sizes[x->dtype]; }

const char *tempo_tensor_describe(const Tensor *x, char *buf, size_t len) {
    const char *name = tempo_dtype_name(x->dtype);
    int w = snprintf(buf, len, "%s[", name ? name : "?");
    for (int d = 0; d < x->ndim && w < (int)len; d++) w += snprintf(buf + w, len - (size_t)w, d ? ",%lld" : "%lld", (long long)x->shape[d]);
    if (w < (int)len) snprintf(buf + w, len - (size_t)w, "]");
    return buf;
}

const Tensor *tempo_tensor_find(const Tensor *tensors, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(tensors[i].name, name) == 0) return &tensors[i];
    return NULL;
}

/* The JSON header (u64 length, at most 100 MB, then a JSON object); *data
 * and *data_len receive the tensor bytes after it. NULL on error. */
static cJSON *parse_header(const unsigned char *buf, size_t len, const char *kind, const char *path,
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

static int parse_dtype(const char *s, unsigned allowed, DType *out) {
    for (int i = 0; i < (int)(sizeof dtype_names / sizeof dtype_names[0]); i++)
        if ((allowed & (1u << i)) && dtype_names[i] && strcmp(s, dtype_names[i]) == 0) {
            *out = (DType)i;
            return 0;
        }
    return -1;
}

/* One header entry: dtype among `allowed`, shape of at most 4 whole
 * dimensions, data_offsets inside the data and matching the shape. */
static int parse_entry(const cJSON *e, unsigned allowed, const unsigned char *data, size_t data_len, Tensor *x,
                       const char *kind, const char *path, char *err) {
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return tempo_error(err, "bad %s %s: tensor %.100s lacks dtype, shape or data_offsets", kind, path, name);
    if (strlen(name) >= sizeof x->name) return tempo_error(err, "bad %s %s: tensor name %.100s... is too long", kind, path, name);
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    if (parse_dtype(dt->valuestring, allowed, &x->dtype) != 0)
        return tempo_error(err, "bad %s %s: tensor %s has unsupported dtype %s", kind, path, name, dt->valuestring);
    x->ndim = cJSON_GetArraySize(shape);
    if (x->ndim > 4) return tempo_error(err, "bad %s %s: tensor %s has %d dimensions (at most 4)", kind, path, name, x->ndim);
    size_t count = 1;
    for (int d = 0; d < x->ndim; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12 || v->valuedouble != (double)(int64_t)v->valuedouble)
            return tempo_error(err, "bad %s %s: tensor %s has an invalid shape", kind, path, name);
        x->shape[d] = (int64_t)v->valuedouble;
        if (x->shape[d] != 0 && count > SIZE_MAX / 8 / (size_t)x->shape[d])
            return tempo_error(err, "bad %s %s: tensor %s is too large", kind, path, name);
        count *= (size_t)x->shape[d];
    }
    double begin = cJSON_GetArrayItem(off, 0)->valuedouble, end = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!(begin >= 0 && end >= begin && end <= (double)data_len))
        return tempo_error(err, "bad %s %s: tensor %s has data_offsets outside the file", kind, path, name);
    if ((size_t)(end - begin) != count * dtype_sizes[x->dtype])
        return tempo_error(err, "bad %s %s: tensor %s has %zu bytes for a shape that needs %zu", kind, path, name,
                           (size_t)(end - begin), count * dtype_sizes[x->dtype]);
    x->data = (void *)(data + (size_t)begin);
    return 0;
}

/* Whether tempo can hold this entry: a dtype among `allowed`, at most 4 dimensions, a name that fits. */
static int entry_supported(const cJSON *e, unsigned allowed) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    DType d;
    return cJSON_IsString(dt) && parse_dtype(dt->valuestring, allowed, &d) == 0 && cJSON_IsArray(shape) &&
           cJSON_GetArraySize(shape) <= 4 && strlen(e->string) < sizeof ((Tensor *)0)->name;
}

static int is_known(const char *name, const char *const *known) {
    for (; *known; known++)
        if (strcmp(name, *known) == 0) return 1;
    return 0;
}

static int by_offset(const void *a, const void *b) {
    const Tensor *x = a, *y = b;
    return (const char *)x->data < (const char *)y->data ? -1 : (const char *)x->data > (const char *)y->data;
}

/* No two tensors may share bytes. */
static int check_overlap(Tensor *t, int n, const char *kind, const char *path, char *err) {
    if (n < 2) return 0; /* (t is NULL for a file of no tensors) */
    Tensor *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) return tempo_error(err, "out of memory reading %s", path);
    memcpy(sorted, t, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_offset);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if ((const char *)sorted[i].data < (const char *)sorted[i - 1].data + tempo_tensor_bytes(&sorted[i - 1]))
            rc = tempo_error(err, "bad %s %s: tensors %s and %s overlap", kind, path, sorted[i - 1].name, sorted[i].name);
    free(sorted);
    return rc;
}

int tempo_safetensors_parse(const unsigned char *buf, size_t len, const char *kind, const char *path, unsigned dtypes,
                            const char *const *known, Tensor **tensors, int *n, cJSON **meta, char *err) {
    const unsigned char *data;
    size_t data_len, cap = 0;
    *tensors = NULL;
    *n = 0;
    *meta = NULL;
    cJSON *root = parse_header(buf, len, kind, path, &data, &data_len, err);
    if (!root) return -1;
    int rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (known && cJSON_IsObject(e) && !is_known(e->string, known) && !entry_supported(e, dtypes)) continue;
        if (!cJSON_IsObject(e)) rc = tempo_error(err, "bad %s %s: entry %.100s is not a tensor", kind, path, e->string);
        else if (tempo_grow((void **)tensors, &cap, (size_t)*n + 1, sizeof(Tensor), err) != 0) rc = -1;
        else if ((rc = parse_entry(e, dtypes, data, data_len, &(*tensors)[*n], kind, path, err)) == 0) (*n)++;
    }
    if (rc == 0) rc = check_overlap(*tensors, *n, kind, path, err);
    if (rc == 0) *meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    cJSON_Delete(root);
    if (rc != 0) {
        free(*tensors);
        *tensors = NULL;
        *n = 0;
    }
    return rc;
}

/* The header: u64 little-endian length, then the JSON padded with spaces to
 * a multiple of 8 bytes (little-endian on every machine tempo targets). */
static int write_header(FILE *f, const char *json) {
    size_t json_len = strlen(json), padded = (json_len + 7) / 8 * 8;
    uint64_t header_len = padded;
    int ok = fwrite(&header_len, 8, 1, f) == 1 && fwrite(json, 1, json_len, f) == json_len;
    for (size_t i = json_len; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    return ok;
}

/* The JSON header of tensors laid out one after another, in order. */
static char *header_json(const Tensor *t, int n, const cJSON *meta) {
    cJSON *root = cJSON_CreateObject();
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = tempo_tensor_bytes(&t[i]);
        cJSON *entry = cJSON_AddObjectToObject(root, t[i].name);
        cJSON_AddStringToObject(entry, "dtype", dtype_names[t[i].dtype]);
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    if (meta) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(meta, 1));
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

int tempo_safetensors_write_header(FILE *f, const Tensor *t, int n, const cJSON *meta) {
    char *json = header_json(t, n, meta);
    int ok = json && write_header(f, json);
    free(json);
    return ok;
}
