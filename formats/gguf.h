/* gguf.h - a strict reader of GGUF files (ggml's model format, versions 2
 * and 3, little-endian), and what tempo takes from one: a llama model's
 * Config, RoPE frequencies, typed weight tensors, and its tokenizer. */
#ifndef TEMPO_GGUF_H
#define TEMPO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "formats.h"
#include "quant.h"

/* Metadata value types, as numbered in the file. */
typedef enum {
    GGUF_UINT8, GGUF_INT8, GGUF_UINT16, GGUF_INT16, GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32,
    GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64, GGUF_FLOAT64, GGUF_N_TYPES
} GgufType;

typedef struct {           /* bytes in the file: not NUL-terminated */
    const char *ptr;
    uint64_t len;
} GgufString;

typedef struct {
    GgufString key;
    GgufType type;
    GgufType elem_type;       /* arrays: the elements' type */
    uint64_t n;               /* arrays: element count */
    const uint8_t *value;     /* the value's bytes (arrays: the first element's) */
} GgufKV;

/* The file's record of one tensor (ggml's order of dimensions); the model
 * binder sees it as the one tensor descriptor, Tensor (formats.h). */
typedef struct {
    GgufString name;
    int n_dims;
    uint64_t ne[4];           /* ne[0] is the innermost dimension (a row's length); unused ones are 1 */
    uint32_t ggml_type;
    WeightType type;
    uint64_t offset;          /* from the start of the file, a multiple of the alignment */
    size_t bytes;
    const uint8_t *data;
} GgufTensor;

typedef struct {
    const uint8_t *data;      /* the whole file (not owned) */
    size_t size;
    uint32_t version;
    uint64_t alignment;       /* general.alignment, default 32 */
    uint64_t n_kv, n_tensors;
    GgufKV *kv;
    GgufTensor *tensors;
    size_t infos_offset;      /* where the tensor infos start (the metadata is bytes 24..infos_offset) */
    size_t data_offset;       /* where tensor data starts */
    char name[256];           /* for messages */
} GgufFile;

/* Checks the whole layout (magic, version, counts, every string and array
 * length, value types, alignment, tensor shapes, types and offsets) before
 * returning; `data` must stay alive while g is used. */
int tempo_gguf_parse(GgufFile *g, const void *data, size_t size, const char *name, char *err);
void tempo_gguf_free(GgufFile *g);
const GgufKV *tempo_gguf_find(const GgufFile *g, const char *key);
const GgufTensor *tempo_gguf_tensor(const GgufFile *g, const char *name);
/* An integer (any integer type, not negative); a missing key gives `fallback`, or an error if required. */
int tempo_gguf_uint(const GgufFile *g, const char *key, int required, uint64_t fallback, uint64_t *out, char *err);
/* A float32 or float64 value. */
int tempo_gguf_float(const GgufFile *g, const char *key, int required, double fallback, double *out, char *err);
/* A string (NULL ptr when missing and not required). */
int tempo_gguf_string(const GgufFile *g, const char *key, int required, GgufString *out, char *err);
/* An array of `elem` values: its entry (NULL when missing and not required). */
int tempo_gguf_array(const GgufFile *g, const char *key, GgufType elem, int required, const GgufKV **out, char *err);
/* The strings of a string array, in order, into out[kv->n]. */
void tempo_gguf_strings(const GgufKV *kv, GgufString *out);
/* Element i of a numeric array as double. */
double tempo_gguf_number_at(const GgufKV *kv, uint64_t i);
/* ggml's type number of t (F32 0, F16 1, Q4_0 2, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14, BF16 30). */
uint32_t tempo_gguf_ggml_type(WeightType t);
/* 1 if s equals the C string z. */
int tempo_gguf_is(GgufString s, const char *z);

/* The llama model a GGUF file describes: its dimensions, norms, RoPE base,
 * context length, vocabulary size and special tokens. */
int tempo_gguf_config(const GgufFile *g, Config *c, char *err);
/* The model's RoPE inverse frequencies (m->config set): plain, linear scaling, or the
 * per-frequency divisors of rope_freqs.weight (how GGUF stores llama3 scaling). */
int tempo_gguf_rope(const GgufFile *g, Model *m, char *err);
/* The tensor `name` with shape [rows][cols] (ne = {cols, rows}; rows 0: a vector of cols).
 * The model's weights are bound by model.c; this is for the other tensors (rope_freqs). */
const GgufTensor *tempo_gguf_weight(const GgufFile *g, const char *name, uint64_t rows, uint64_t cols, char *err);
/* A GGUF llama model from bytes in memory (kept alive by the caller; load.c
 * maps the file). Matrices stay in their stored type; only norm vectors
 * that are not aligned F32 are converted to f32 at load (m->converted). */
int tempo_gguf_model(Model *m, const void *data, size_t size, const char *name, char *err);
/* 1 if the bytes start with the GGUF magic. */
int tempo_is_gguf(const void *data, size_t size);
/* 1 if the model was loaded from one GGUF file (which then carries its tokenizer). */
int tempo_model_is_gguf(const Model *m);
/* The tokenizer a loaded GGUF model carries (its file is m->files->maps[0]). */
int tempo_gguf_model_tokenizer(const Model *m, Tokenizer *t, char *err);
/* The tokenizer in tokenizer.ggml.*: "llama" (sentencepiece vocabulary with
 * scores and token types) or "gpt2" (byte-level BPE with merges). */
int tempo_gguf_tokenizer(const GgufFile *g, const Config *c, Tokenizer *t, char *err);

#endif
