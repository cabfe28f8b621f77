/* gguf.c - GGUF files (ggml's docs/gguf.md), read strictly.
 *
 * Layout (little-endian): "GGUF", u32 version (2 or 3), u64 tensor_count,
 * u64 kv_count; kv_count x (string key, u32 type, value); tensor_count x
 * (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset);
 * padding to general.alignment (default 32); tensor data, each tensor at
 * data_start + offset, offset a multiple of the alignment. A string is u64
 * length + bytes; an array is u32 element type + u64 count + elements.
 * Nothing is trusted: every length is checked against the bytes left
 * before it is used, and every failure names what is wrong. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gguf.h"

enum { GGUF_MAX_KEY = 65535, GGUF_MAX_NAME = 64, GGUF_MAX_DEPTH = 3 };

/* A read position in the file; err receives the first problem. */
typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *name;
    char *err;
} Cursor;

static int truncated(Cursor *c, const char *what) {
    return tempo_error(c->err, "truncated GGUF %s: %s at byte %zu runs past the end (%zu bytes)", c->name, what, c->pos, c->size);
}

static int take(Cursor *c, uint64_t n, const uint8_t **out, const char *what) {
    *out = NULL;
    if (n > c->size - c->pos) return truncated(c, what);
    *out = c->p + c->pos;
    c->pos += (size_t)n;
    return 0;
}

static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t le64(const uint8_t *b) { return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32; }

static int read_u32(Cursor *c, uint32_t *v, const char *what) {
    const uint8_t *b = NULL;
    if (take(c, 4, &b, what) != 0) return -1;
    *v = le32(b);
    return 0;
}

static int read_u64(Cursor *c, uint64_t *v, const char *what) {
    const uint8_t *b = NULL;
    if (take(c, 8, &b, what) != 0) return -1;
    *v = le64(b);
    return 0;
}

static int read_string(Cursor *c, GgufString *s, const char *what) {
    const uint8_t *b;
    if (read_u64(c, &s->len, what) != 0) return -1;
    if (s->len > c->size - c->pos)
        return tempo_error(c->err, "bad GGUF %s: %s at byte %zu claims %llu bytes, only %zu are left", c->name, what, c->pos - 8,
                           (unsigned long long)s->len, c->size - c->pos);
    if (take(c, s->len, &b, what) != 0) return -1;
    s->ptr = (const char *)b;
    return 0;
}

/* Bytes of one scalar of type t; 0 for strings and arrays. */
static size_t scalar_size(GgufType t) {
    static const size_t sizes[GGUF_N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)t < GGUF_N_TYPES ? sizes[t] : 0;
}

static const char *type_name(GgufType t) {
    static const char *const names[GGUF_N_TYPES] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                                    "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < GGUF_N_TYPES ? names[t] : "unknown";
}

static int bad_value(Cursor *c, const GgufString *key, const char *problem) {
    return tempo_error(c->err, "bad GGUF %s: metadata %.*s: %s", c->name, (int)(key->len < 80 ? key->len : 80), key->ptr, problem);
}

static int check_bools(Cursor *c, const GgufString *key, const uint8_t *b, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (b[i] > 1) return bad_value(c, key, "a bool is neither 0 nor 1");
    return 0;
}

/* Steps over one value of type t (checking it), nested arrays up to GGUF_MAX_DEPTH. */
static int skip_value(Cursor *c, GgufType t, int depth, const GgufString *key) {
    const uint8_t *b;
    GgufString s;
    if ((unsigned)t >= GGUF_N_TYPES) {
        char msg[64];
        snprintf(msg, sizeof msg, "unknown value type %u", (unsigned)t);
        return bad_value(c, key, msg);
    }
    if (t == GGUF_STRING) return read_string(c, &s, "a string value");
    if (t != GGUF_ARRAY) {
        if (take(c, scalar_size(t), &b, "a value") != 0) return -1;
        return t == GGUF_BOOL ? check_bools(c, key, b, 1) : 0;
    }
    uint32_t elem;
    uint64_t n;
    if (depth >= GGUF_MAX_DEPTH) return bad_value(c, key, "arrays nested too deep");
    if (read_u32(c, &elem, "an array type") != 0 || read_u64(c, &n, "an array length") != 0) return -1;
    if (elem >= GGUF_N_TYPES) return skip_value(c, (GgufType)elem, depth + 1, key);
    size_t each = scalar_size((GgufType)elem);
    if (each) {
        if (n > (c->size - c->pos) / each) return bad_value(c, key, "array length runs past the end of the file");
        if (take(c, n * each, &b, "an array") != 0) return -1;
        return elem == GGUF_BOOL ? check_bools(c, key, b, n) : 0;
    }
    if (n > (c->size - c->pos) / 8) /* every string or array takes at least 8 bytes */
        return bad_value(c, key, "array length runs past the end of the file");
    for (uint64_t i = 0; i < n; i++)
        if (skip_value(c, (GgufType)elem, depth + 1, key) != 0) return -1;
    return 0;
}

/* A key: 1..65535 printable ASCII characters without spaces. */
static int check_key(Cursor *c, const GgufString *key, uint64_t index) {
    int ok = key->len > 0 && key->len <= GGUF_MAX_KEY;
    for (uint64_t i = 0; ok && i < key->len; i++) ok = key->ptr[i] > ' ' && key->ptr[i] < 127;
    if (!ok) return tempo_error(c->err, "bad GGUF %s: metadata key %llu is empty, too long or not printable ASCII", c->name,
                                (unsigned long long)index);
    return 0;
}

static int read_kv(Cursor *c, GgufKV *kv, uint64_t index) {
    uint32_t type;
    if (read_string(c, &kv->key, "a metadata key") != 0 || check_key(c, &kv->key, index) != 0) return -1;
    if (read_u32(c, &type, "a metadata type") != 0) return -1;
    kv->type = (GgufType)type;
    kv->value = c->p + c->pos;
    if (type == GGUF_ARRAY && c->size - c->pos >= 12) {
        kv->elem_type = (GgufType)le32(c->p + c->pos);
        kv->n = le64(c->p + c->pos + 4);
        kv->value += 12;
    }
    return skip_value(c, kv->type, 0, &kv->key);
}

/* ggml's type numbers (docs/gguf.md, enum ggml_type); NULL: never assigned. */
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
        "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4",
        "NVFP4", "Q1_0", "Q2_0"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* ggml's number of each WeightType. */
static const uint32_t ggml_types[] = {[WEIGHT_F32] = 0, [WEIGHT_F16] = 1, [WEIGHT_BF16] = 30, [WEIGHT_Q8_0] = 8,
                                      [WEIGHT_Q4_0] = 2, [WEIGHT_Q4_K] = 12, [WEIGHT_Q5_K] = 13, [WEIGHT_Q6_K] = 14,
                                      [WEIGHT_Q4_1] = 3, [WEIGHT_Q5_0] = 6, [WEIGHT_Q5_1] = 7, [WEIGHT_Q2_K] = 10,
                                      [WEIGHT_Q3_K] = 11, [WEIGHT_IQ4_NL] = 20, [WEIGHT_IQ4_XS] = 23,
                                      [WEIGHT_TQ1_0] = 34, [WEIGHT_TQ2_0] = 35, [WEIGHT_IQ2_XXS] = 16,
                                      [WEIGHT_IQ2_XS] = 17, [WEIGHT_IQ2_S] = 22, [WEIGHT_IQ3_XXS] = 18,
                                      [WEIGHT_IQ3_S] = 21, [WEIGHT_IQ1_S] = 19, [WEIGHT_IQ1_M] = 29,
                                      [WEIGHT_Q1_0] = 41, [WEIGHT_Q2_0] = 42};
_Static_assert(sizeof ggml_types / sizeof ggml_types[0] == WEIGHT_N_TYPES, "a ggml number for every WeightType");

uint32_t tempo_gguf_ggml_type(WeightType t) { return ggml_types[t]; }

/* The tempo type of a ggml type, or -1 if tempo does not read it. */
static int weight_type_of(uint32_t ggml_type) {
    for (int t = 0; t < (int)(sizeof ggml_types / sizeof ggml_types[0]); t++)
        if (ggml_types[t] == ggml_type) return t;
    return -1;
}

static int bad_tensor(Cursor *c, const GgufTensor *t, const char *problem) {
    return tempo_error(c->err, "bad GGUF %s: tensor %.*s: %s", c->name, (int)t->name.len, t->name.ptr, problem);
}

/* "type 39 (MXFP4) is not one tempo reads (F32, F16, ...)": the readable ones in ggml's order. */
static int unreadable_type(Cursor *c, const GgufTensor *t, uint32_t type) {
    char msg[400], readable[256] = "";
    for (size_t g = 0, n = 0; g < 64 && n < sizeof readable; g++)
        if (weight_type_of((uint32_t)g) >= 0)
            n += (size_t)snprintf(readable + n, sizeof readable - n, "%s%s", n ? ", " : "", ggml_type_name((uint32_t)g));
    const char *known = ggml_type_name(type);
    snprintf(msg, sizeof msg, "type %u%s%s%s is not one tempo reads (%s)", type, known ? " (" : "", known ? known : "",
             known ? ")" : "", readable);
    return bad_tensor(c, t, msg);
}

/* Name, dimensions (each >= 1, at most 2^56 values in all), type and offset of one tensor. */
static int read_tensor_info(Cursor *c, GgufTensor *t, uint64_t index) {
    uint32_t n_dims, type;
    char msg[160];
    if (read_string(c, &t->name, "a tensor name") != 0) return -1;
    if (t->name.len == 0 || t->name.len > GGUF_MAX_NAME)
        return tempo_error(c->err, "bad GGUF %s: tensor %llu has a name of %llu bytes (1 to %d allowed)", c->name,
                           (unsigned long long)index, (unsigned long long)t->name.len, GGUF_MAX_NAME);
    if (read_u32(c, &n_dims, "a tensor's dimension count") != 0) return -1;
    if (n_dims < 1 || n_dims > 4) {
        snprintf(msg, sizeof msg, "%u dimensions (1 to 4 allowed)", n_dims);
        return bad_tensor(c, t, msg);
    }
    t->n_dims = (int)n_dims;
    uint64_t count = 1;
    for (int d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && read_u64(c, &t->ne[d], "a tensor dimension") != 0) return -1;
        if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 56) / count) return bad_tensor(c, t, "a dimension is 0 or the size overflows");
        count *= t->ne[d];
    }
    if (read_u32(c, &type, "a tensor type") != 0 || read_u64(c, &t->offset, "a tensor offset") != 0) return -1;
    t->ggml_type = type;
    int wt = weight_type_of(type);
    if (wt < 0) return unreadable_type(c, t, type);
    t->type = (WeightType)wt;
    int block = tempo_block_values(t->type);
    if (t->ne[0] % (uint64_t)block != 0) {
        snprintf(msg, sizeof msg, "rows of %llu values do not fill %s blocks of %d", (unsigned long long)t->ne[0], ggml_type_name(type), block);
        return bad_tensor(c, t, msg);
    }
    t->bytes = (size_t)(count / (uint64_t)block * tempo_block_bytes(t->type));
    return 0;
}

static int compare_strings(GgufString a, GgufString b) {
    int c = memcmp(a.ptr, b.ptr, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int by_key(const void *a, const void *b) { return compare_strings(((const GgufKV *)a)->key, ((const GgufKV *)b)->key); }
static int by_name(const void *a, const void *b) { return compare_strings(((const GgufTensor *)a)->name, ((const GgufTensor *)b)->name); }
static int by_offset(const void *a, const void *b) {
    uint64_t x = (*(const GgufTensor *const *)a)->offset, y = (*(const GgufTensor *const *)b)->offset;
    return (x > y) - (x < y);
}

/* Magic, version and the two counts; counts are checked against the bytes left. */
static int read_header(Cursor *c, GgufFile *g) {
    const uint8_t *magic;
    if (c->size < 4 || memcmp(c->p, "GGUF", 4) != 0) return tempo_error(c->err, "%s is not a GGUF file (no GGUF magic)", c->name);
    if (take(c, 4, &magic, "the magic") != 0 || read_u32(c, &g->version, "the version") != 0) return -1;
    if (g->version == 1) return tempo_error(c->err, "GGUF %s is version 1 (32-bit counts), which tempo does not read (2 or 3)", c->name);
    if (g->version != 2 && g->version != 3) {
        int swapped = g->version == 0x02000000 || g->version == 0x03000000;
        return tempo_error(c->err, "GGUF %s: %s %u (tempo reads versions 2 and 3, little-endian)", c->name,
                           swapped ? "big-endian file, version" : "unsupported version", swapped ? g->version >> 24 : g->version);
    }
    if (read_u64(c, &g->n_tensors, "the tensor count") != 0 || read_u64(c, &g->n_kv, "the metadata count") != 0) return -1;
    /* a key-value pair takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8 */
    if (g->n_kv > (c->size - c->pos) / 14 || g->n_tensors > (c->size - c->pos) / 33)
        return tempo_error(c->err, "bad GGUF %s: %llu metadata pairs and %llu tensors cannot fit in %zu bytes", c->name,
                           (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, c->size);
    return 0;
}

/* Every key-value pair; no key twice; general.alignment a uint32 power of two, multiple of 8. */
static int read_metadata(Cursor *c, GgufFile *g) {
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return tempo_error(c->err, "out of memory reading GGUF %s", c->name);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(c, &g->kv[i], i) != 0) return -1;
    GgufKV *sorted = malloc((g->n_kv ? g->n_kv : 1) * sizeof *sorted);
    if (!sorted) return tempo_error(c->err, "out of memory reading GGUF %s", c->name);
    memcpy(sorted, g->kv, g->n_kv * sizeof *sorted);
    qsort(sorted, g->n_kv, sizeof *sorted, by_key);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (compare_strings(sorted[i - 1].key, sorted[i].key) == 0) {
            tempo_error(c->err, "bad GGUF %s: metadata key %.*s appears twice", c->name, (int)(sorted[i].key.len < 80 ? sorted[i].key.len : 80),
                        sorted[i].key.ptr);
            free(sorted);
            return -1;
        }
    free(sorted);
    g->alignment = 32;
    const GgufKV *a = tempo_gguf_find(g, "general.alignment");
    if (a) {
        if (a->type != GGUF_UINT32) return tempo_error(c->err, "bad GGUF %s: general.alignment is %s, not uint32", c->name, type_name(a->type));
        g->alignment = le32(a->value);
        if (g->alignment < 8 || g->alignment % 8 != 0 || (g->alignment & (g->alignment - 1)) != 0)
            return tempo_error(c->err, "bad GGUF %s: general.alignment %llu is not a power of two and a multiple of 8", c->name,
                               (unsigned long long)g->alignment);
    }
    return 0;
}

/* Tensor infos, names unique, then each tensor's bytes: aligned, inside the file, not overlapping another. */
static int read_tensors(Cursor *c, GgufFile *g) {
    uint64_t n = g->n_tensors;
    g->infos_offset = c->pos;
    g->tensors = calloc(n ? n : 1, sizeof *g->tensors);
    GgufTensor **order = malloc((n ? n : 1) * sizeof *order);
    int rc = g->tensors && order ? 0 : tempo_error(c->err, "out of memory reading GGUF %s", c->name);
    for (uint64_t i = 0; i < n && rc == 0; i++) rc = read_tensor_info(c, &g->tensors[i], i);
    if (rc == 0) {
        size_t pad = (size_t)((g->alignment - c->pos % g->alignment) % g->alignment);
        if (pad > c->size - c->pos) rc = truncated(c, "the padding before the tensor data");
        g->data_offset = c->pos + pad;
    }
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        GgufTensor *t = &g->tensors[i];
        size_t room = c->size - g->data_offset;
        if (t->offset % g->alignment != 0) rc = bad_tensor(c, t, "offset is not a multiple of general.alignment");
        else if (t->offset > room || t->bytes > room - t->offset) rc = bad_tensor(c, t, "data runs past the end of the file");
        if (rc != 0) break; /* no pointer is formed from an offset outside the file */
        t->data = c->p + g->data_offset + t->offset;
        t->offset += g->data_offset;
        order[i] = t;
    }
    if (rc == 0) qsort(order, n, sizeof *order, by_offset);
    for (uint64_t i = 1; i < n && rc == 0; i++)
        if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset) rc = bad_tensor(c, order[i], "data overlaps another tensor's");
    free(order);
    if (rc != 0) return -1;
    GgufTensor *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return tempo_error(c->err, "out of memory reading GGUF %s", c->name);
    memcpy(sorted, g->tensors, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_name);
    for (uint64_t i = 1; i < n && rc == 0; i++)
        if (compare_strings(sorted[i - 1].name, sorted[i].name) == 0) rc = bad_tensor(c, &sorted[i], "name appears twice");
    free(sorted);
    return rc;
}

int tempo_gguf_parse(GgufFile *g, const void *data, size_t size, const char *name, char *err) {
    memset(g, 0, sizeof *g);
    g->data = data;
    g->size = size;
    snprintf(g->name, sizeof g->name, "%s", name);
    Cursor c = {data, size, 0, g->name, err};
    if (read_header(&c, g) != 0 || read_metadata(&c, g) != 0 || read_tensors(&c, g) != 0) {
        tempo_gguf_free(g);
        return -1;
    }
    return 0;
}

void tempo_gguf_free(GgufFile *g) {
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
    g->n_kv = g->n_tensors = 0;
}

int tempo_gguf_is(GgufString s, const char *z) { return s.ptr && strlen(z) == s.len && memcmp(s.ptr, z, s.len) == 0; }

const GgufKV *tempo_gguf_find(const GgufFile *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (tempo_gguf_is(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const GgufTensor *tempo_gguf_tensor(const GgufFile *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (tempo_gguf_is(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static int missing(const GgufFile *g, const char *key, char *err) {
    return tempo_error(err, "GGUF %s lacks metadata %s", g->name, key);
}

static int wrong_type(const GgufFile *g, const GgufKV *kv, const char *key, const char *want, char *err) {
    return tempo_error(err, "bad GGUF %s: metadata %s is %s, not %s", g->name, key, type_name(kv->type), want);
}

/* A scalar number of type t at b, as double (integers of up to 53 bits exactly). */
static double number_at(GgufType t, const uint8_t *b) {
    float f;
    double d;
    uint64_t u;
    switch (t) {
    case GGUF_UINT8: case GGUF_BOOL: return b[0];
    case GGUF_INT8: return (int8_t)b[0];
    case GGUF_UINT16: return (uint16_t)(b[0] | b[1] << 8);
    case GGUF_INT16: return (int16_t)(uint16_t)(b[0] | b[1] << 8);
    case GGUF_UINT32: return le32(b);
    case GGUF_INT32: return (int32_t)le32(b);
    case GGUF_FLOAT32: { uint32_t w = le32(b); memcpy(&f, &w, 4); return f; }
    case GGUF_UINT64: return (double)le64(b);
    case GGUF_INT64: return (double)(int64_t)le64(b);
    case GGUF_FLOAT64: u = le64(b), memcpy(&d, &u, 8); return d;
    default: return 0;
    }
}

double tempo_gguf_number_at(const GgufKV *kv, uint64_t i) {
    return number_at(kv->elem_type, kv->value + i * scalar_size(kv->elem_type));
}

int tempo_gguf_uint(const GgufFile *g, const char *key, int required, uint64_t fallback, uint64_t *out, char *err) {
    const GgufKV *kv = tempo_gguf_find(g, key);
    *out = fallback;
    if (!kv) return required ? missing(g, key, err) : 0;
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64 || kv->type == GGUF_BOOL || !scalar_size(kv->type))
        return wrong_type(g, kv, key, "an integer", err);
    if (kv->type == GGUF_UINT64) {
        *out = le64(kv->value);
        return 0;
    }
    double v = number_at(kv->type, kv->value);
    if (v < 0) return tempo_error(err, "bad GGUF %s: metadata %s is negative (%.0f)", g->name, key, v);
    *out = (uint64_t)v;
    return 0;
}

int tempo_gguf_float(const GgufFile *g, const char *key, int required, double fallback, double *out, char *err) {
    const GgufKV *kv = tempo_gguf_find(g, key);
    *out = fallback;
    if (!kv) return required ? missing(g, key, err) : 0;
    if (kv->type != GGUF_FLOAT32 && kv->type != GGUF_FLOAT64) return wrong_type(g, kv, key, "float32 or float64", err);
    *out = number_at(kv->type, kv->value);
    return 0;
}

int tempo_gguf_string(const GgufFile *g, const char *key, int required, GgufString *out, char *err) {
    const GgufKV *kv = tempo_gguf_find(g, key);
    out->ptr = NULL, out->len = 0;
    if (!kv) return required ? missing(g, key, err) : 0;
    if (kv->type != GGUF_STRING) return wrong_type(g, kv, key, "string", err);
    out->len = le64(kv->value);
    out->ptr = (const char *)kv->value + 8;
    return 0;
}

int tempo_gguf_array(const GgufFile *g, const char *key, GgufType elem, int required, const GgufKV **out, char *err) {
    const GgufKV *kv = tempo_gguf_find(g, key);
    *out = NULL;
    if (!kv) return required ? missing(g, key, err) : 0;
    if (kv->type != GGUF_ARRAY || kv->elem_type != elem)
        return tempo_error(err, "bad GGUF %s: metadata %s is not an array of %s", g->name, key, type_name(elem));
    *out = kv;
    return 0;
}

void tempo_gguf_strings(const GgufKV *kv, GgufString *out) {
    const uint8_t *p = kv->value;
    for (uint64_t i = 0; i < kv->n; i++) {
        out[i].len = le64(p);
        out[i].ptr = (const char *)p + 8;
        p += 8 + out[i].len;
    }
}

/* ---- the llama model of a GGUF file ---- */

enum { GGUF_MAX_DIM = 1 << 16, GGUF_MAX_LAYERS = 1024, GGUF_MAX_HEADS = 1024, GGUF_MAX_VOCAB = 1 << 22, GGUF_MAX_SEQ = 1 << 24 };

/* One required (or defaulted) integer key in [1, cap] into *out. */
static int llama_int(const GgufFile *g, const char *key, int required, uint64_t fallback, uint64_t cap, int *out, char *err) {
    uint64_t v;
    if (tempo_gguf_uint(g, key, required, fallback, &v, err) != 0) return -1;
    char what[512], text[24];
    snprintf(what, sizeof what, "bad GGUF %s: %s", g->name, key);
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    return tempo_int_in_range((double)v, text, what, 1, (long long)cap, out, err);
}

/* The rows of token_embd.weight, which every other count must agree with. */
static int llama_vocab(const GgufFile *g, Config *c, char *err) {
    const GgufTensor *emb = tempo_gguf_tensor(g, "token_embd.weight");
    if (!emb) return tempo_error(err, "GGUF %s lacks tensor token_embd.weight", g->name);
    if (emb->n_dims != 2 || emb->ne[1] > GGUF_MAX_VOCAB)
        return tempo_error(err, "bad GGUF %s: token_embd.weight is not a [vocab][dim] matrix of at most %d rows", g->name, GGUF_MAX_VOCAB);
    c->vocab_size = (int)emb->ne[1];
    uint64_t v;
    const GgufKV *tokens = tempo_gguf_find(g, "tokenizer.ggml.tokens");
    if (tempo_gguf_uint(g, "llama.vocab_size", 0, (uint64_t)c->vocab_size, &v, err) != 0) return -1;
    if (v != (uint64_t)c->vocab_size || (tokens && tokens->n != v))
        return tempo_error(err, "bad GGUF %s: vocabulary sizes disagree: token_embd.weight has %d rows, llama.vocab_size %llu, "
                           "tokenizer.ggml.tokens %llu", g->name, c->vocab_size, (unsigned long long)v,
                           (unsigned long long)(tokens ? tokens->n : v));
    c->shared_classifier = tempo_gguf_tensor(g, "output.weight") == NULL;
    return 0;
}

/* bos (-1 if none), eos and eot (both end generation); each inside the
 * vocabulary. A sentencepiece vocabulary without them has bos 1, eos 2. */
static int llama_special(const GgufFile *g, Config *c, char *err) {
    const char *keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"};
    GgufString model;
    if (tempo_gguf_string(g, "tokenizer.ggml.model", 0, &model, err) != 0) return -1;
    int spm = tempo_gguf_is(model, "llama");
    uint64_t id[3], fallback[3] = {spm ? TEMPO_BOS : UINT64_MAX, spm ? TEMPO_EOS : UINT64_MAX, UINT64_MAX};
    c->n_eos = 0;
    for (int i = 0; i < 3; i++) {
        if (tempo_gguf_uint(g, keys[i], 0, fallback[i], &id[i], err) != 0) return -1;
        if (id[i] != UINT64_MAX && id[i] >= (uint64_t)c->vocab_size)
            return tempo_error(err, "bad GGUF %s: %s = %llu is outside the vocabulary of %d", g->name, keys[i], (unsigned long long)id[i],
                               c->vocab_size);
        if (i > 0 && id[i] != UINT64_MAX && !(i == 2 && c->n_eos == 1 && id[2] == id[1])) c->eos_token_ids[c->n_eos++] = (int)id[i];
    }
    c->bos_token_id = id[0] == UINT64_MAX ? -1 : (int)id[0];
    return 0;
}

/* Keys that change the model in ways tempo does not implement are refused, not ignored. */
static int llama_unsupported(const GgufFile *g, const Config *c, char *err) {
    uint64_t experts, key_len, value_len;
    if (tempo_gguf_uint(g, "llama.expert_count", 0, 0, &experts, err) != 0) return -1;
    if (experts > 0) return tempo_error(err, "GGUF %s is a mixture of experts (llama.expert_count %llu), which tempo does not run", g->name,
                                        (unsigned long long)experts);
    if (tempo_gguf_uint(g, "llama.attention.key_length", 0, (uint64_t)c->head_dim, &key_len, err) != 0 ||
        tempo_gguf_uint(g, "llama.attention.value_length", 0, (uint64_t)c->head_dim, &value_len, err) != 0) return -1;
    if (key_len != (uint64_t)c->head_dim || value_len != (uint64_t)c->head_dim)
        return tempo_error(err, "GGUF %s: key/value head sizes %llu/%llu differ from embedding_length / head_count = %d", g->name,
                           (unsigned long long)key_len, (unsigned long long)value_len, c->head_dim);
    uint64_t rope_dims;
    if (tempo_gguf_uint(g, "llama.rope.dimension_count", 0, (uint64_t)c->head_dim, &rope_dims, err) != 0) return -1;
    if (rope_dims != (uint64_t)c->head_dim)
        return tempo_error(err, "GGUF %s: llama.rope.dimension_count %llu is not the head size %d (partial RoPE is not supported)", g->name,
                           (unsigned long long)rope_dims, c->head_dim);
    return 0;
}

int tempo_gguf_config(const GgufFile *g, Config *c, char *err) {
    memset(c, 0, sizeof *c);
    GgufString arch;
    if (tempo_gguf_string(g, "general.architecture", 1, &arch, err) != 0) return -1;
    if (!tempo_gguf_is(arch, "llama"))
        return tempo_error(err, "GGUF %s: architecture \"%.*s\" is not llama, the one tempo runs", g->name, (int)(arch.len < 40 ? arch.len : 40),
                           arch.ptr);
    double eps, theta;
    if (llama_int(g, "llama.embedding_length", 1, 0, GGUF_MAX_DIM, &c->dim, err) != 0 ||
        llama_int(g, "llama.feed_forward_length", 1, 0, 4 * GGUF_MAX_DIM, &c->hidden_dim, err) != 0 ||
        llama_int(g, "llama.block_count", 1, 0, GGUF_MAX_LAYERS, &c->n_layers, err) != 0 ||
        llama_int(g, "llama.attention.head_count", 1, 0, GGUF_MAX_HEADS, &c->n_heads, err) != 0 ||
        llama_int(g, "llama.attention.head_count_kv", 0, (uint64_t)c->n_heads, GGUF_MAX_HEADS, &c->n_kv_heads, err) != 0 ||
        llama_int(g, "llama.context_length", 1, 0, GGUF_MAX_SEQ, &c->seq_len, err) != 0 ||
        tempo_gguf_float(g, "llama.attention.layer_norm_rms_epsilon", 1, 0, &eps, err) != 0 ||
        tempo_gguf_float(g, "llama.rope.freq_base", 0, 10000.0, &theta, err) != 0)
        return -1;
    c->head_dim = c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 2; /* the check names a dim that does not split */
    char source[300];
    snprintf(source, sizeof source, "bad GGUF %s", g->name);
    if (llama_vocab(g, c, err) != 0 || tempo_config_check(c, source, err) != 0) return -1;
    if (tempo_config_check_norm_rope(eps, theta, source, "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base", err) != 0)
        return -1;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->rope_interleaved = 1; /* GGUF llama q/k rows are in llama2.c's pair order */
    if (llama_unsupported(g, c, err) != 0) return -1;
    return llama_special(g, c, err);
}

const GgufTensor *tempo_gguf_weight(const GgufFile *g, const char *name, uint64_t rows, uint64_t cols, char *err) {
    const GgufTensor *t = tempo_gguf_tensor(g, name);
    if (!t) {
        tempo_error(err, "GGUF %s lacks tensor %s", g->name, name);
        return NULL;
    }
    int ok = rows ? t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows : t->n_dims == 1 && t->ne[0] == cols;
    if (!ok) {
        tempo_error(err, "GGUF %s: tensor %s has ne [%llu, %llu, %llu, %llu] but the metadata implies [%llu, %llu]", g->name, name,
                    (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                    (unsigned long long)cols, (unsigned long long)(rows ? rows : 1));
        return NULL;
    }
    return t;
}

/* Linear scaling: llama.rope.scaling.type "linear" with .factor, or the
 * older llama.rope.scale_linear; *factor 1 when there is none. */
static int rope_linear_factor(const GgufFile *g, double *factor, char *err) {
    GgufString type;
    double old;
    if (tempo_gguf_string(g, "llama.rope.scaling.type", 0, &type, err) != 0 ||
        tempo_gguf_float(g, "llama.rope.scale_linear", 0, 1.0, &old, err) != 0) return -1;
    *factor = old;
    if (type.ptr && tempo_gguf_is(type, "linear")) {
        if (tempo_gguf_float(g, "llama.rope.scaling.factor", 1, 1.0, factor, err) != 0) return -1;
    } else if (type.ptr && !tempo_gguf_is(type, "none")) {
        return tempo_error(err, "GGUF %s: llama.rope.scaling.type \"%.*s\" is not supported (none, linear; llama3 as rope_freqs.weight)",
                           g->name, (int)(type.len < 40 ? type.len : 40), type.ptr);
    }
    if (!(*factor >= 1 && *factor < 1e6)) return tempo_error(err, "bad GGUF %s: RoPE scaling factor %g out of range", g->name, *factor);
    return 0;
}

/* inv_freq_i = freq_base^(-2i/hd) / linear factor / rope_freqs[i]; llama3
 * scaling arrives as rope_freqs.weight, one divisor per frequency (what
 * convert_hf_to_gguf computes from the factors of config.json). */
int tempo_gguf_rope(const GgufFile *g, Model *m, char *err) {
    const Config *c = &m->config;
    double factor;
    if (rope_linear_factor(g, &factor, err) != 0) return -1;
    RopeScaling rs = {factor != 1.0 ? ROPE_LINEAR : ROPE_PLAIN, factor, 0, 0, 0};
    if (tempo_model_rope(m, &rs, err) != 0) return -1;
    double *inv_freq = m->rope_inv_freq;
    if (!tempo_gguf_tensor(g, "rope_freqs.weight")) return 0;
    const GgufTensor *t = tempo_gguf_weight(g, "rope_freqs.weight", 0, (uint64_t)c->head_dim / 2, err);
    if (!t) return -1;
    if (t->type != WEIGHT_F32) return tempo_error(err, "bad GGUF %s: rope_freqs.weight is not F32", g->name);
    for (int i = 0; i < c->head_dim / 2; i++) {
        float f;
        memcpy(&f, t->data + 4 * i, 4);
        if (!(f >= 1e-6f && f <= 1e6f)) return tempo_error(err, "bad GGUF %s: rope_freqs.weight[%d] = %g out of range", g->name, i, f);
        inv_freq[i] /= f;
    }
    return 0;
}

/* ---- the tokenizer of a GGUF file ---- */

/* Token types (tokenizer.ggml.token_type). */
enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5, TOKEN_BYTE = 6 };

/* Tokens, and their types if present (else every token normal); the caller frees *tokens and *types. */
static int vocab_arrays(const GgufFile *g, const Config *c, GgufString **tokens, int **types, char *err) {
    const GgufKV *tok, *typ;
    *tokens = NULL, *types = NULL;
    if (tempo_gguf_array(g, "tokenizer.ggml.tokens", GGUF_STRING, 1, &tok, err) != 0 ||
        tempo_gguf_array(g, "tokenizer.ggml.token_type", GGUF_INT32, 0, &typ, err) != 0) return -1;
    if (tok->n != (uint64_t)c->vocab_size || (typ && typ->n != tok->n))
        return tempo_error(err, "bad GGUF %s: tokenizer.ggml.tokens and token_type must both hold the %d tokens of the vocabulary",
                           g->name, c->vocab_size);
    *tokens = malloc((size_t)c->vocab_size * sizeof **tokens);
    *types = malloc((size_t)c->vocab_size * sizeof **types);
    if (!*tokens || !*types) return tempo_error(err, "out of memory reading the tokenizer of %s", g->name);
    tempo_gguf_strings(tok, *tokens);
    for (int i = 0; i < c->vocab_size; i++) {
        (*types)[i] = typ ? (int)tempo_gguf_number_at(typ, (uint64_t)i) : TOKEN_NORMAL;
        if ((*types)[i] < TOKEN_NORMAL || (*types)[i] > TOKEN_BYTE)
            return tempo_error(err, "bad GGUF %s: token %d has type %d (1 to 6)", g->name, i, (*types)[i]);
    }
    return 0;
}

/* A boolean flag that must have the value tempo's encoder implements, when present. */
static int require_flag(const GgufFile *g, const char *key, int want, char *err) {
    const GgufKV *kv = tempo_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return tempo_error(err, "bad GGUF %s: metadata %s is not a bool", g->name, key);
    if (kv->value[0] != want)
        return tempo_error(err, "GGUF %s: %s = %s is not supported with this tokenizer (tempo's encoder needs %s)", g->name, key,
                           kv->value[0] ? "true" : "false", want ? "true" : "false");
    return 0;
}

/* tempo's sentencepiece encoder adds BOS = 1 and a leading space, and falls
 * back to byte b as token b + 3: the vocabulary must agree. */
static int check_spm_layout(const GgufFile *g, const Config *c, const GgufString *tokens, const int *types, char *err) {
    if (c->bos_token_id != TEMPO_BOS)
        return tempo_error(err, "GGUF %s: sentencepiece BOS is %d; tempo's sentencepiece encoder adds token %d", g->name, c->bos_token_id, TEMPO_BOS);
    if (require_flag(g, "tokenizer.ggml.add_bos_token", 1, err) != 0 || require_flag(g, "tokenizer.ggml.add_space_prefix", 1, err) != 0)
        return -1;
    for (int i = 0; i < c->vocab_size; i++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", (i - 3) & 0xff);
        int is_byte_slot = i >= 3 && i < 3 + 256, matches = tempo_gguf_is(tokens[i], want);
        if ((is_byte_slot && !matches) || (types[i] == TOKEN_BYTE && !(is_byte_slot && matches)))
            return tempo_error(err, "GGUF %s: token %d breaks the sentencepiece byte layout (bytes <0x00>..<0xFF> at ids 3-258)", g->name, i);
    }
    return 0;
}

static void put_bytes(uint8_t **p, const void *v, size_t n) {
    memcpy(*p, v, n);
    *p += n;
}

/* The vocabulary as a llama2.c tokenizer.bin (int32 max length, then per
 * token: float32 score, int32 length, bytes with U+2581 as a space), read
 * by the one sentencepiece loader (sentencepiece.c). */
static int spm_tokenizer(const GgufFile *g, const Config *c, const GgufString *tokens, const int *types, Tokenizer *t, char *err) {
    const GgufKV *scores;
    if (check_spm_layout(g, c, tokens, types, err) != 0 ||
        tempo_gguf_array(g, "tokenizer.ggml.scores", GGUF_FLOAT32, 1, &scores, err) != 0) return -1;
    if (scores->n != (uint64_t)c->vocab_size) return tempo_error(err, "bad GGUF %s: tokenizer.ggml.scores does not hold %d scores", g->name, c->vocab_size);
    size_t total = 4;
    for (int i = 0; i < c->vocab_size; i++) total += 8 + tokens[i].len;
    uint8_t *buf = malloc(total), *p = buf + 4;
    if (!buf) return tempo_error(err, "out of memory reading the tokenizer of %s", g->name);
    int32_t max_len = 1;
    for (int i = 0; i < c->vocab_size; i++) {
        float score = (float)tempo_gguf_number_at(scores, (uint64_t)i);
        uint8_t *len_at = p + 4;
        put_bytes(&p, &score, 4);
        p += 4;
        int32_t len = 0;
        for (uint64_t k = 0; k < tokens[i].len; k++, len++) {
            int space = k + 2 < tokens[i].len && memcmp(tokens[i].ptr + k, "\xe2\x96\x81", 3) == 0;
            *p++ = space ? ' ' : (uint8_t)tokens[i].ptr[k];
            k += space ? 2 : 0;
        }
        memcpy(len_at, &len, 4);
        if (len > max_len) max_len = len;
    }
    memcpy(buf, &max_len, 4);
    int rc = max_len > 4096 ? tempo_error(err, "GGUF %s: a token is longer than 4096 bytes", g->name)
                            : tempo_sentencepiece_parse(t, buf, (size_t)(p - buf), c->vocab_size, g->name, err);
    free(buf);
    return rc;
}

/* A GGUF string as a C string for cJSON (NULL if it holds a NUL byte or memory runs out). */
static char *c_string(GgufString s) {
    if (memchr(s.ptr, '\0', s.len)) return NULL;
    char *z = malloc(s.len + 1);
    if (z) memcpy(z, s.ptr, s.len), z[s.len] = '\0';
    return z;
}

/* tokenizer.ggml.pre names the pre-tokenizer regex; tempo implements GPT-2's and Llama 3's. */
static int bpe_pre_tokenizer(const GgufFile *g, Tokenizer *t, char *err) {
    GgufString pre;
    if (tempo_gguf_string(g, "tokenizer.ggml.pre", 1, &pre, err) != 0) return -1;
    if (tempo_gguf_is(pre, "llama-bpe") || tempo_gguf_is(pre, "llama3") || tempo_gguf_is(pre, "llama-v3")) {
        t->pre_tokenizer = PRETOKENIZE_LLAMA3;
        t->ignore_merges = 1; /* as Llama 3's tokenizer.json */
    } else if (tempo_gguf_is(pre, "gpt-2") || tempo_gguf_is(pre, "gpt2")) {
        t->pre_tokenizer = PRETOKENIZE_GPT2;
        t->ignore_merges = 0;
    } else {
        return tempo_error(err, "GGUF %s: tokenizer.ggml.pre \"%.*s\" is not a pre-tokenizer tempo implements (llama-bpe, gpt-2)", g->name,
                           (int)(pre.len < 40 ? pre.len : 40), pre.ptr);
    }
    return 0;
}

/* post_processor: BOS before (add_bos_token) and EOS after (add_eos_token) the text, as a template. */
static void bpe_template(const GgufFile *g, const Config *c, cJSON *root) {
    const GgufKV *bos = tempo_gguf_find(g, "tokenizer.ggml.add_bos_token"), *eos = tempo_gguf_find(g, "tokenizer.ggml.add_eos_token");
    int add_bos = bos && bos->type == GGUF_BOOL && bos->value[0] && c->bos_token_id >= 0;
    int add_eos = eos && eos->type == GGUF_BOOL && eos->value[0] && c->n_eos > 0;
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor"), *single = cJSON_CreateArray(), *specials = cJSON_CreateObject();
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    const char *names[3] = {"BOS", NULL, "EOS"};
    int use[3] = {add_bos, 1, add_eos}, ids[3] = {c->bos_token_id, 0, c->eos_token_ids[0]};
    for (int i = 0; i < 3; i++) {
        if (!use[i]) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(e, names[i] ? "SpecialToken" : "Sequence"), "id", names[i] ? names[i] : "A");
        cJSON_AddItemToArray(single, e);
        if (names[i]) cJSON_AddItemToObject(cJSON_AddObjectToObject(specials, names[i]), "ids", cJSON_CreateIntArray(&ids[i], 1));
    }
    cJSON_AddItemToObject(post, "single", single);
    cJSON_AddItemToObject(post, "special_tokens", specials);
}

/* One vocabulary entry: control and user-defined tokens are added tokens (matched in the raw text), the rest BPE tokens. */
static int bpe_entry(cJSON *vocab, cJSON *added, GgufString token, int type, int id) {
    char *text = c_string(token);
    if (!text) return -1;
    if (!text[0]) {
        /* an empty token can never be produced: left out */
    } else if (type == TOKEN_CONTROL || type == TOKEN_USER_DEFINED || type == TOKEN_UNKNOWN) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", id);
        cJSON_AddStringToObject(e, "content", text);
        cJSON_AddBoolToObject(e, "normalized", 0);
        cJSON_AddItemToArray(added, e);
    } else {
        cJSON_AddNumberToObject(vocab, text, id);
    }
    free(text);
    return 0;
}

/* The vocabulary as a tokenizer.json (vocab, merges "a b", added tokens,
 * template), read by the one byte-level BPE loader; then the pre-tokenizer. */
static int bpe_tokenizer(const GgufFile *g, const Config *c, const GgufString *tokens, const int *types, Tokenizer *t, char *err) {
    const GgufKV *merges;
    if (tempo_gguf_array(g, "tokenizer.ggml.merges", GGUF_STRING, 0, &merges, err) != 0) return -1;
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *list = cJSON_AddArrayToObject(model, "merges");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddFalseToObject(pre, "add_prefix_space");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "decoder"), "type", "ByteLevel");
    bpe_template(g, c, root);
    int rc = 0;
    for (int i = 0; i < c->vocab_size && rc == 0; i++)
        if (bpe_entry(vocab, added, tokens[i], types[i], i) != 0) rc = tempo_error(err, "bad GGUF %s: token %d holds a NUL byte", g->name, i);
    GgufString *pairs = merges ? malloc((merges->n ? merges->n : 1) * sizeof *pairs) : NULL;
    if (merges && !pairs) rc = tempo_error(err, "out of memory reading the tokenizer of %s", g->name);
    if (rc == 0 && pairs) tempo_gguf_strings(merges, pairs);
    for (uint64_t i = 0; rc == 0 && pairs && i < merges->n; i++) {
        char *pair = c_string(pairs[i]);
        if (!pair) rc = tempo_error(err, "bad GGUF %s: merge %llu holds a NUL byte", g->name, (unsigned long long)i);
        else cJSON_AddItemToArray(list, cJSON_CreateString(pair));
        free(pair);
    }
    free(pairs);
    char *json = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0 && !json) rc = tempo_error(err, "out of memory reading the tokenizer of %s", g->name);
    if (rc == 0) rc = tempo_tokenizer_json_parse(t, json, strlen(json), c->vocab_size, g->name, err);
    free(json);
    if (rc == 0 && bpe_pre_tokenizer(g, t, err) != 0) {
        tempo_tokenizer_free(t);
        rc = -1;
    }
    return rc;
}

int tempo_gguf_tokenizer(const GgufFile *g, const Config *c, Tokenizer *t, char *err) {
    memset(t, 0, sizeof *t);
    GgufString model;
    GgufString *tokens = NULL;
    int *types = NULL, rc;
    if (tempo_gguf_string(g, "tokenizer.ggml.model", 1, &model, err) != 0) return -1;
    int spm = tempo_gguf_is(model, "llama"), bpe = tempo_gguf_is(model, "gpt2");
    if (!spm && !bpe)
        return tempo_error(err, "GGUF %s: tokenizer.ggml.model \"%.*s\" is not one tempo reads (llama, gpt2)", g->name,
                           (int)(model.len < 40 ? model.len : 40), model.ptr);
    rc = vocab_arrays(g, c, &tokens, &types, err);
    if (rc == 0) rc = spm ? spm_tokenizer(g, c, tokens, types, t, err) : bpe_tokenizer(g, c, tokens, types, t, err);
    free(tokens);
    free(types);
    return rc;
}

/* ---- loading a model ---- */

int tempo_is_gguf(const void *data, size_t size) { return size >= 4 && memcmp(data, "GGUF", 4) == 0; }

int tempo_model_is_gguf(const Model *m) {
    return m->files && m->files->n_maps == 1 && tempo_is_gguf(m->files->maps[0], m->files->map_sizes[0]);
}

/* A GGUF tensor as the one tensor descriptor: shape row-major (ne reversed). */
static void as_tensor(const GgufTensor *t, Tensor *out) {
    snprintf(out->name, sizeof out->name, "%.*s", (int)t->name.len, t->name.ptr);
    out->dtype = (DType)t->type;
    out->ndim = t->n_dims;
    for (int d = 0; d < t->n_dims; d++) out->shape[d] = (int64_t)t->ne[t->n_dims - 1 - d];
    out->data = (void *)t->data;
}

/* The binder's view of a tensor: <gguf_name>.weight or blk.<l>.<gguf_name>.weight; data NULL when absent. */
static int gguf_find(void *ctx, const LayerTensor *t, int l, Tensor *out, char *err) {
    (void)err;
    char name[160];
    if (l >= 0) snprintf(name, sizeof name, "blk.%d.%s.weight", l, t->gguf_name);
    else snprintf(name, sizeof name, "%s.weight", t->gguf_name);
    const GgufTensor *found = tempo_gguf_tensor(ctx, name);
    if (found) as_tensor(found, out);
    else snprintf(out->name, sizeof out->name, "%s", name);
    return 0;
}

/* The binder's list of the file's tensor names. */
static void gguf_name(void *ctx, int i, char out[160]) {
    const GgufString *s = &((const GgufFile *)ctx)->tensors[i].name; /* at most GGUF_MAX_NAME bytes */
    snprintf(out, 160, "%.*s", (int)s->len, s->ptr);
}

int tempo_gguf_model(Model *m, const void *data, size_t size, const char *name, char *err) {
    memset(m, 0, sizeof *m);
    GgufFile g;
    if (tempo_gguf_parse(&g, data, size, name, err) != 0) return -1;
    TensorSource src = {&g, gguf_find, "the metadata", (int)g.n_tensors, gguf_name, "blk.", "llama.block_count", NULL};
    int rc = tempo_gguf_config(&g, &m->config, err);
    if (rc == 0) rc = tempo_model_set_path(m, name, err);
    if (rc == 0) rc = tempo_model_bind(m, &src, err);
    if (rc == 0) rc = tempo_gguf_rope(&g, m, err);
    tempo_gguf_free(&g);
    if (rc != 0) tempo_model_free(m);
    return rc;
}

int tempo_gguf_model_tokenizer(const Model *m, Tokenizer *t, char *err) {
    memset(t, 0, sizeof *t);
    if (!tempo_model_is_gguf(m))
        return tempo_error(err, "model %s is not a GGUF file: give its tokenizer with -z", tempo_model_path(m));
    GgufFile g;
    if (tempo_gguf_parse(&g, m->files->maps[0], m->files->map_sizes[0], m->files->path, err) != 0) return -1;
    int rc = tempo_gguf_tokenizer(&g, &m->config, t, err);
    tempo_gguf_free(&g);
    return rc;
}
