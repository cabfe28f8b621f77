/* formats.h - reading and writing the files tempo meets: checkpoints
 * (llama2.c, Hugging Face), tokenizers (tokenizer.bin, tokenizer.json),
 * safetensors headers, trace files and mask files. One file of formats/
 * per format; tempo.h holds the model and the algorithm. */
#ifndef TEMPO_FORMATS_H
#define TEMPO_FORMATS_H

#include <cjson/cJSON.h>

#include "../tempo.h"
#include "../kernels/kernels.h" /* stored weight types: tempo_row_bytes, tempo_dequantize */
#include "numbers.h" /* numbers in text: the one parser */

#define TEMPO_BOS 1 /* llama2.c checkpoints; Hugging Face ones name theirs in config.json */
#define TEMPO_EOS 2

/* ---- files (files.c) ---- */

/* Reads a whole file into memory; the caller frees *buf. `what` names it in messages. */
int tempo_read_file(const char *path, const char *what, unsigned char **buf, size_t *len, char *err);
/* One writer for every file tempo writes (NOTES "Outputs"). A regular file
 * or a new name: written to a temporary name beside it and renamed into place
 * when complete, so an interrupted or failed run never leaves a half-written
 * file. Anything else (a device, a FIFO, a symlink to one): written in place,
 * never replaced; so is the process's own descriptor (/dev/stdout, /dev/fd/N,
 * /proc/...). A symlink to a regular file: its target is replaced, the link kept. While open, SIGPIPE is blocked in the calling thread, so a
 * reader that left gives an error (EPIPE), not a silent death. */
typedef struct {
    FILE *f;
    const char *what;   /* "trace ", "" ...: for messages */
    int in_place;
    int sigpipe_was_blocked, sigpipe_was_pending; /* before open, restored by close */
    char path[4096], tmp[4200];
} AtomicFile;

/* Opens `path` for writing as above. */
int tempo_atomic_open(AtomicFile *a, const char *path, const char *what, char *err);
/* Closes; renames if `ok` and everything was written, else removes the
 * temporary file; one error line naming the reason (no space, broken pipe). */
int tempo_atomic_close(AtomicFile *a, int ok, char *err);
int tempo_write_text_file(const char *path, const char *text, char *err);
/* The directory holding the last name of `path`: "." when it has no '/', "/" for "/x"; -1 when it
 * does not fit in 4096 bytes. The flags' collision checks and the free-space check use it. */
int tempo_parent_dir(const char *path, char dir[4096]);

/* ---- the model (model.c: the bottom layer every checkpoint format uses) ---- */

/* The stored type of a tensor's values: every WeightType a matrix can hold
 * (the same numbers, 0..WEIGHT_N_TYPES-1), then the integer types of traces. */
typedef enum {
    DT_F32 = WEIGHT_F32, DT_F16 = WEIGHT_F16, DT_BF16 = WEIGHT_BF16, DT_Q8_0 = WEIGHT_Q8_0, DT_Q4_0 = WEIGHT_Q4_0,
    DT_Q4_K = WEIGHT_Q4_K, DT_Q5_K = WEIGHT_Q5_K, DT_Q6_K = WEIGHT_Q6_K, DT_I32 = WEIGHT_N_TYPES, DT_U8
} DType;
/* 1 if values of this type are weights (a WeightType), 0 for the integer types. */
static inline int tempo_dtype_is_weight(DType d) { return (int)d < (int)WEIGHT_N_TYPES; }

/* The one tensor descriptor: a trace's tensors, a safetensors file's, a GGUF file's and a
 * llama2.c file's, as the model binder sees them. Shape is row-major ([rows][cols]). */
typedef struct {
    char name[160];
    DType dtype;
    int ndim;
    int64_t shape[4];
    void *data;          /* owned by a Trace; into the file for a checkpoint */
} Tensor;

/* The files behind a loaded model: mapped read-only, or copied into anonymous
 * memory on 2 MB pages (tempo_hold_file); unmapped by tempo_model_free. */
enum { TEMPO_MAX_MAPS = 64 };
struct ModelFiles {
    int n_maps;
    void *maps[TEMPO_MAX_MAPS];
    size_t map_sizes[TEMPO_MAX_MAPS];
    unsigned char copied[TEMPO_MAX_MAPS]; /* 1: a copy (resident already), 0: a map of the page cache */
    char path[4096];
};

/* The model's tensors: name, Hugging Face name (model.<hf_name>.weight, or
 * model.layers.N.<hf_name>.weight), GGUF name (<gguf_name>.weight, or
 * blk.N.<gguf_name>.weight), the field (in LayerWeights for a layer's, in
 * Weights for the others), and shape as [rows][cols] in units of the config
 * (cols UNIT_NONE: a vector). Layer tensors are in llama2.c file order. */
typedef enum { UNIT_DIM, UNIT_Q, UNIT_KV, UNIT_HIDDEN, UNIT_VOCAB, UNIT_NONE } Unit;
typedef struct {
    const char *name, *hf_name, *gguf_name;
    size_t field;
    Unit rows, cols;
} LayerTensor;
enum { N_LAYER_TENSORS = 9, N_MODEL_TENSORS = 3 };
extern const LayerTensor tempo_layer_tensors[N_LAYER_TENSORS];
/* token_embedding, rms_final, wcls (absent with a shared classifier) */
extern const LayerTensor tempo_model_tensors[N_MODEL_TENSORS];
size_t tempo_unit(const Config *c, Unit u);
/* Layer tensor i of layer l: a matrix (cols not UNIT_NONE) or a vector. */
Matrix *tempo_layer_matrix(Weights *w, int l, int i);
const float **tempo_layer_vector(Weights *w, int l, int i);

/* The one check of a model's dimensions, whatever file gave them: each in
 * [1, limit], dim split into n_heads heads, heads into kv groups, head_dim
 * even. `source` starts each message ("bad checkpoint header"). */
int tempo_config_check(const Config *c, const char *source, char *err);
/* The largest dim the one config check accepts. */
#define TEMPO_MAX_DIM (1 << 16)
/* The one range check of the RMS norm epsilon (0 < eps < 1) and the RoPE base
 * (1 < theta < 1e12), named by the keys the file gives them. */
int tempo_config_check_norm_rope(double eps, double theta, const char *source, const char *eps_key, const char *theta_key,
                                 char *err);

/* Where a format keeps its tensors. find() fills *out with tensor `t`
 * (layer l, or -1 for a model tensor): its name in the file, and data NULL
 * when the file lacks it; -1 on an error it names. `implied_by` names what
 * gave the config, for messages ("config.json"). A format whose tensors have
 * names also lists them (name(ctx, i, out) for i < n_names) and says how a
 * layer's are named (`layer_prefix` then the layer's number: "blk.") and
 * which key gave the layer count ("llama.block_count"), so that the binder
 * refuses a layer beyond the count and a layer's tensor it would not run;
 * `derived`, when set, is the one name after "<prefix><l>." that the format
 * lets a layer hold unused. llama2.c (n_names 0) has no names. */
typedef struct {
    void *ctx;
    int (*find)(void *ctx, const LayerTensor *t, int l, Tensor *out, char *err);
    const char *implied_by;
    int n_names;
    void (*name)(void *ctx, int i, char out[160]);
    const char *layer_prefix, *layer_count_key, *derived;
} TensorSource;
/* The one binder: walks the tensor tables, checks each tensor's shape
 * against the config, and points the weights at the data (matrices in their
 * stored type, norm vectors as f32: converted into m->converted unless
 * stored as aligned f32). Allocates the layers; m->config must be set. */
int tempo_model_bind(Model *m, const TensorSource *src, char *err);
/* inv_freq[i] = theta^(-2i/head_dim), rescaled as transformers does for
 * rope_type "linear" (all / factor) and "llama3" (long wavelengths / factor,
 * a smooth blend between low_freq and high_freq wavelengths). */
void tempo_rope_inv_freq(const RopeScaling *rs, int head_dim, double theta, double *inv_freq);
/* The RoPE inverse frequencies of a loaded model (rs NULL: plain). */
int tempo_model_rope(Model *m, const RopeScaling *rs, char *err);
/* How a file's bytes are held: mapped read-only, copied onto 2 MB pages, or as tempo_copy_pays says. */
typedef enum { HOLD_MAP, HOLD_COPY, HOLD_BY_RULE } FileHold;
/* A regular file's bytes, the file opened and sized once: mapped read-only (HOLD_MAP), or read into
 * anonymous memory starting on a 2 MB boundary, advised MADV_HUGEPAGE and made read-only (HOLD_COPY),
 * or copied when tempo_copy_pays says so for its size on this machine (HOLD_BY_RULE). An empty file
 * gives NULL; *copied says which was done; freed by tempo_unmap_file. `what` names it in messages. */
int tempo_hold_file(const char *path, const char *what, FileHold how, void **data, size_t *size, int *copied,
                    char *err);
void tempo_unmap_file(void *map, size_t size);
/* 1 if the kernel gives 2 MB pages on request: transparent_hugepage/enabled is [always] or [madvise]. */
int tempo_huge_pages_offered(void);
/* 1 if a checkpoint of `bytes` is copied rather than mapped (NOTES "Loading a
 * model"): the kernel offers 2 MB pages and the copy fits twice in `available`. */
int tempo_copy_pays(size_t bytes, size_t available, int huge_pages);
/* MemAvailable of /proc/meminfo, in bytes (0 and an error when unreadable). */
int tempo_memory_available(size_t *bytes, char *err);
/* Hands a mapped (copied 0) or copied (1) file to the model (unmapped by
 * tempo_model_free; at once on failure). */
int tempo_model_keep_map(Model *m, void *map, size_t size, int copied, char *err);
/* Sets the path the model is named by (messages, trace metadata). */
int tempo_model_set_path(Model *m, const char *path, char *err);
/* The model's file or directory, as given ("" if none). */
const char *tempo_model_path(const Model *m);
/* The model's file or directory name without its folders (for titles and trace metadata). */
const char *tempo_model_name(const Model *m);
/* Reports every tensor holding NaN or Inf to `out`; returns how many such values. */
size_t tempo_model_check(const Model *m, FILE *out);
void tempo_model_free(Model *m);

/* ---- checkpoint formats (llama2c.c, huggingface.c, gguf.c), and the one dispatcher (load.c) ---- */

/* A llama2.c checkpoint file, or a Hugging Face model directory
 * (config.json + *.safetensors, F32/F16/BF16), or a GGUF file; matrices stay
 * in their stored type. load.c tells them apart: a directory, the GGUF magic,
 * else a llama2.c header. */
int tempo_model_load(Model *m, const char *path, char *err);
/* The same over bytes in memory (not copied: keep them alive); `name` is for messages. */
int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err);
/* llama2.c header checks (llama2c.c), shared with the synthetic writers. */
int tempo_llama2c_config(const int header[7], Config *c, char *err);
/* A llama2.c checkpoint in memory (llama2c.c). */
int tempo_llama2c_model(Model *m, const void *data, size_t size, const char *name, char *err);
/* A Hugging Face model directory (huggingface.c). */
int tempo_load_hf(Model *m, const char *dir, char *err);

/* ---- safetensors headers (safetensors.c) ---- */

const char *tempo_dtype_name(DType d);
size_t tempo_dtype_size(DType d);
size_t tempo_tensor_count(const Tensor *x);
size_t tempo_tensor_bytes(const Tensor *x);
const Tensor *tempo_tensor_find(const Tensor *tensors, int n, const char *name);
/* "F32[99,512]": the dtype and shape, into buf. */
const char *tempo_tensor_describe(const Tensor *x, char *buf, size_t len);
/* Parses a safetensors file in memory: tensors whose data point into buf
 * (*tensors: caller frees), each of a dtype in the bit mask `dtypes` (1 << DT_*),
 * inside the file, of the size its shape needs, none overlapping. *meta
 * receives __metadata__ (caller frees with cJSON_Delete) or NULL. `kind`
 * names the file in messages ("trace", "safetensors"). With `known` (a
 * NULL-terminated list of names), a tensor not in it whose dtype, rank or
 * name tempo cannot hold is skipped instead of refused. */
int tempo_safetensors_parse(const unsigned char *buf, size_t len, const char *kind, const char *path, unsigned dtypes,
                            const char *const *known, Tensor **tensors, int *n, cJSON **meta, char *err);
/* Writes the header of tensors laid out one after another, in order; 1 if written. */
int tempo_safetensors_write_header(FILE *f, const Tensor *t, int n, const cJSON *meta);

/* ---- traces (trace.c) ---- */

typedef struct { char *key, *value; } MetaEntry; /* owned copies */

/* Any number of tensors and metadata entries, of any length. */
typedef struct {
    int n_tensors;
    Tensor *tensors;
    int n_meta;
    MetaEntry *meta;
    size_t cap_tensors, cap_meta;
} Trace;

void tempo_trace_init(Trace *t);
void tempo_trace_free(Trace *t);
/* Adds a tensor, copying `data`. */
int tempo_trace_add(Trace *t, const char *name, DType dtype, int ndim, const int64_t *shape,
                    const void *data, char *err);
/* Adds a metadata entry (a key given twice keeps its last value). */
int tempo_trace_meta(Trace *t, const char *key, const char *value, char *err);
/* The same with a printf-formatted value (at most 255 characters). */
int tempo_trace_metaf(Trace *t, const char *key, char *err, const char *fmt, ...);
const Tensor *tempo_trace_get(const Trace *t, const char *name);
/* The value of a metadata key, or NULL. */
const char *tempo_trace_meta_get(const Trace *t, const char *key);
/* Writes through tempo_atomic_open. A dense `allowed` of 0s and 1s is
 * stored as `allowed_bits` (1 bit a cell); anything else stays dense. */
int tempo_trace_write(const Trace *t, const char *path, char *err);
/* Reads either form: `allowed_bits` is unpacked, so the trace in memory
 * always holds the dense `allowed`. */
int tempo_trace_read(Trace *t, const char *path, char *err);
int tempo_trace_parse(Trace *t, const unsigned char *buf, size_t len, const char *name, char *err);
/* Checks that a trace holds the inputs of a forward pass for this model:
 * tokens I32[n], positions I32[n], allowed U8[n,n] or U8[n_layers,n,n]. */
int tempo_trace_inputs(const Trace *t, const Config *c, int *n, int *mask_layers, char *err);

/* The logits a trace of n rows holds: every row's (`logits` F32[n,vocab]),
 * some rows' (`kept_rows` I32[m], row ids strictly increasing in 0..n-1, and
 * `kept_logits` F32[m,vocab], written for engines that compute logits for
 * their last rows only), or none. */
typedef struct {
    int n_rows;          /* rows with logits: n, m or 0 */
    const int *rows;     /* kept_rows; NULL when every row (or no row) has logits */
    const float *logits; /* [n_rows][vocab], in row order; NULL when none */
} TraceLogits;
/* Reads and checks them (shapes, row ids, not both forms): -1 with one line naming the problem. */
int tempo_trace_logits(const Trace *t, int n, int vocab, TraceLogits *l, char *err);
/* Row r's logits, or NULL when the trace has none for it. */
const float *tempo_trace_logits_row(const TraceLogits *l, int r, int vocab);

/* The trace of a set of rows: dense allowed [mask_layers][n][n] (stored as
 * [n][n] when mask_layers is 1), attention [L][H][n][n] (may be NULL),
 * pruned (may be NULL). Metadata names the model and its dimensions. */
int tempo_trace_build(Trace *t, const Model *m, int n, const int *tokens, const int *positions,
                      const int *sets, const uint8_t *allowed, int mask_layers, const float *logits,
                      const float *attention, const int *pruned, char *err);
/* Adds the attention a forward kept (Outputs.keep): attention F32[layers,
 * heads, rows, n] of the kept ones, and for each list given, its indices
 * (attention_layers, attention_heads, attention_rows I32). A trace without
 * the index tensors holds every layer, head and row. */
int tempo_trace_add_attention(Trace *t, const Config *c, int n, const AttentionKeep *keep, const float *attention,
                              char *err);
/* What attention a trace of n rows holds: 1 and *keep (its lists point into
 * the trace; NULL: all) when it has attention of the right shape, 0 when it
 * has none, -1 and an error when the tensors disagree. */
int tempo_trace_attention_keep(const Trace *t, const Config *c, int n, AttentionKeep *keep, char *err);
/* The form a generation's trace stores its mask in (--trace-mask): packed bits, or the rule. */
typedef enum { TRACE_MASK_BITS, TRACE_MASK_RULE } TraceMaskForm;
int tempo_generation_trace(const Generation *gen, const Model *m, TraceMaskForm form, Trace *t, char *err);

/* A trace's mask, as the forward reads it: the dense `allowed` it holds, or
 * the rule it stores (metadata mask "rule", formats/trace.c) rebuilt, its
 * arrays owned here. One clear line when the rule's parts disagree. */
typedef struct {
    Mask mask;
    int is_rule;
    MaskKind *kinds;  /* rule: [mask.layers] */
    int *hidden_from; /* rule: [n], or NULL when nothing is pruned */
} TraceMask;
int tempo_trace_mask(const Trace *t, const Config *c, int n, TraceMask *tm, char *err);
void tempo_trace_mask_free(TraceMask *tm);
/* Makes a trace that stores a mask hold it as a dense `allowed`: unpacks
 * allowed_bits, or builds the rule's cells (its layers: metadata n_layers),
 * refusing with one line past `limit` rows. For the readers that need cells. */
int tempo_trace_dense_mask(Trace *t, int limit, char *err);
/* A mask's cells over n rows and keys: dense [layers][n][n], or packed bits
 * [layers][n][tempo_mask_row_bytes(n)] built row by row (NULL: out of memory). */
uint8_t *tempo_mask_to_dense(const Mask *m, int n);
uint8_t *tempo_mask_bits(const Mask *m, int n);

/* Masks as bits: `rows` rows of n keys, row r's key k in bit k % 8 of byte
 * r * tempo_mask_row_bytes(n) + k / 8 (numpy.packbits bitorder "little").
 * Unpacking refuses a set bit past key n - 1. */
size_t tempo_mask_row_bytes(int n);
void tempo_mask_pack(const uint8_t *dense, size_t rows, int n, uint8_t *bits);
int tempo_mask_unpack(const uint8_t *bits, size_t rows, int n, uint8_t *dense, char *err);

/* A mask file: n x n characters '0'/'1' (row = query), white space ignored. */
int tempo_mask_parse(const char *text, size_t len, int n, uint8_t *allowed, const char *name, char *err);
int tempo_mask_read(const char *path, int n, uint8_t *allowed, char *err);

/* ---- tokenizers: llama2.c tokenizer.bin, Hugging Face tokenizer.json ---- */

typedef enum { TOKENIZER_SENTENCEPIECE, TOKENIZER_BYTE_LEVEL } TokenizerKind;
/* The two pre-tokenizer regexes tempo implements (matched by hand, see tokenizer_json.c). */
typedef enum { PRETOKENIZE_GPT2, PRETOKENIZE_LLAMA3 } PreTokenizer;

typedef struct { int left, right, merged, rank; } Merge;

typedef struct {
    TokenizerKind kind;
    int vocab_size;       /* the model's; ids a tokenizer.json leaves out have empty pieces */
    char **pieces;        /* raw bytes of each token, NUL-terminated (pieces may hold NUL bytes) */
    int *piece_len;       /* byte length of each piece */
    float *scores;        /* sentencepiece merge scores (tokenizer.bin only) */
    int *sorted_ids;      /* ids sorted by piece, for lookup: every id, or the BPE vocabulary */
    int n_sorted;
    int max_piece_len;
    /* byte-level BPE (tokenizer.json) */
    PreTokenizer pre_tokenizer;
    int ignore_merges;    /* a pre-token that is itself a token is not split */
    int byte_ids[256];    /* the token of each single byte */
    int n_merges;
    Merge *merges;        /* sorted by (left, right) */
    int n_added;
    int *added_ids;       /* added tokens, split out of the text before pre-tokenization */
    uint8_t *added_normalized; /* 0: matched in the raw text first, 1: then between those */
    int n_prefix, prefix_ids[4], n_suffix, suffix_ids[4]; /* post-processor template */
} Tokenizer;

/* A tokenizer.bin (llama2.c) or a tokenizer.json (byte-level BPE), told apart by content (tokenizer.c). */
int tempo_tokenizer_load(Tokenizer *t, const char *path, int vocab_size, char *err);
int tempo_tokenizer_from_buffer(Tokenizer *t, const void *data, size_t size, int vocab_size, char *err);
/* Each format from bytes in memory (tokenizer_json.c, sentencepiece.c). */
int tempo_tokenizer_json_parse(Tokenizer *t, const char *json, size_t len, int vocab_size, const char *name, char *err);
int tempo_sentencepiece_parse(Tokenizer *t, const void *data, size_t size, int vocab_size, const char *name, char *err);
void tempo_tokenizer_free(Tokenizer *t);
/* Encoding a text of n bytes gives at most n + TEMPO_ENCODE_EXTRA ids. */
#define TEMPO_ENCODE_EXTRA 10
/* tokenizer.bin: BOS + sentencepiece pieces. tokenizer.json: the template's
 * prefix, the text's ids, the template's suffix. At most `cap` ids to `ids`, count to *n. */
int tempo_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err);
/* Text of `token` following `prev` (tokenizer.bin: leading space dropped after
 * BOS, <0xNN> to a byte; tokenizer.json: the token's bytes, which may be part
 * of a UTF-8 character). Returns a pointer into the tokenizer or into `byte_buf`. */
const char *tempo_decode(const Tokenizer *t, int prev, int token, char byte_buf[2]);
/* A copy of text[0..len) with each byte that is not part of a well-formed
 * UTF-8 character replaced by U+FFFD, for JSON and SVG (NULL: out of memory).
 * A byte-level token may hold part of a character. */
char *tempo_valid_utf8(const char *text, size_t len);
/* o[key] = text made valid UTF-8 (tempo_valid_utf8): the one way tempo puts text (prompts, token
 * pieces, file names) into JSON, which a parser refuses when it is not UTF-8. */
cJSON *tempo_json_add_text(cJSON *o, const char *key, const char *text);
/* tokenizer.bin's own encoding and decoding (sentencepiece.c); tempo_encode and tempo_decode call them. */
int tempo_sentencepiece_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err);
const char *tempo_sentencepiece_decode(const Tokenizer *t, int prev, int token, char byte_buf[2]);
/* The shared vocabulary (vocab.c). Sorts sorted_ids[0..n_sorted) by piece bytes (ties by id), as tempo_lookup needs. */
void tempo_sort_pieces(Tokenizer *t);
/* The id of the token with exactly these bytes (tokenizer.json: in the BPE vocabulary), or -1. */
int tempo_lookup(const Tokenizer *t, const char *bytes, int len);
/* tokenizer.json: the end offset of each pre-token of text[0..len) (at most len of them). */
int tempo_pre_tokenize(const Tokenizer *t, const char *text, size_t len, size_t *ends, size_t *n, char *err);
/* Byte-level BPE encoding of a tokenizer.json (tokenizer_json.c); tempo_encode calls it. */
int tempo_bpe_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err);
/* GPT-2's byte-level text of raw bytes (each byte as one printable character), NUL-terminated;
 * `out` holds 2 * len + 1 bytes. */
void tempo_to_byte_level(const char *bytes, int len, char *out);
/* The regex a tokenizer.json names for this pre-tokenizer. */
const char *tempo_pre_tokenizer_regex(PreTokenizer p);

/* The masks every row used, dense [mask_layers][n_rows][n_rows]; the caller frees it (NULL: out of memory). */
uint8_t *tempo_generation_allowed(const Generation *gen);
/* The attention the kept rows paid, dense [kept layers][kept heads][kept
 * rows][n_rows] (every one when nothing was chosen), and *kept (may be
 * NULL): the lists, rows cut to those the run reached. NULL when not
 * captured, no kept row was reached, or out of memory. */
float *tempo_generation_attention(const Generation *gen, const Config *c, AttentionKeep *kept);

#endif
