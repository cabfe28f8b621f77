/* tempo.h - public API of tempo, a reference implementation of TEMPO
 * (Threshold-Enabled Multipath Parallel Output) generation for Llama models.
 *
 * Every function that can fail returns 0 on success and -1 on failure, and
 * writes a one-line message naming the problem into `err` (TEMPO_ERR_SIZE
 * bytes). Nothing here keeps global state; all memory is owned by the
 * structs below and released by their *_free functions. */
#ifndef TEMPO_H
#define TEMPO_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define TEMPO_ERR_SIZE 512
#define TEMPO_BOS 1 /* llama2.c checkpoints; Hugging Face ones name theirs in config.json */
#define TEMPO_EOS 2

/* Writes a formatted message into err (TEMPO_ERR_SIZE bytes); returns -1. */
int tempo_error(char *err, const char *fmt, ...);

/* Output written to a temporary name beside `path` and renamed into place
 * when complete, so an interrupted run never leaves a half-written file. */
typedef struct {
    FILE *f;
    const char *what;   /* "trace ", "" ...: for messages */
    char path[4096], tmp[4200];
} AtomicFile;

int tempo_atomic_open(AtomicFile *a, const char *path, const char *what, char *err);
/* Closes; renames if `ok` and everything was written, else removes the temporary file. */
int tempo_atomic_close(AtomicFile *a, int ok, char *err);
int tempo_write_text_file(const char *path, const char *text, char *err);

/* ---- model ---- */

typedef struct {
    int dim;          /* residual stream width */
    int hidden_dim;   /* SwiGLU inner width */
    int n_layers;
    int n_heads;      /* query heads */
    int n_kv_heads;   /* key/value heads (grouped-query attention) */
    int vocab_size;
    int seq_len;      /* logical positions 0..seq_len-1 are valid */
    int head_dim;     /* dim / n_heads for llama2.c checkpoints */
    float norm_eps;   /* RMSNorm epsilon */
    float rope_theta; /* RoPE base */
    int rope_interleaved; /* 1: pairs (2i, 2i+1) as llama2.c; 0: (i, i+hd/2) as HF */
    int shared_classifier; /* 1: logits use the token embedding matrix */
    int bos_token_id;      /* -1: none */
    int n_eos;             /* generation ends at any of these tokens */
    int eos_token_ids[8];
} Config;

typedef enum { ROPE_PLAIN, ROPE_LINEAR, ROPE_LLAMA3 } RopeType;

/* RoPE frequency rescaling (Hugging Face config "rope_scaling"). */
typedef struct {
    RopeType type;
    double factor, low_freq_factor, high_freq_factor;
    int original_max_position;
} RopeScaling;

typedef struct {             /* one layer; row-major [out][in] matrices */
    const float *rms_att;         /* [dim] */
    const float *wq;              /* [n_heads*head_dim][dim] */
    const float *wk;              /* [n_kv_heads*head_dim][dim] */
    const float *wv;              /* [n_kv_heads*head_dim][dim] */
    const float *wo;              /* [dim][n_heads*head_dim] */
    const float *rms_ffn;         /* [dim] */
    const float *w1;              /* [hidden][dim]  gate */
    const float *w2;              /* [dim][hidden]  down */
    const float *w3;              /* [hidden][dim]  up */
} LayerWeights;

typedef struct {             /* pointing into the mapped file (or converted copies) */
    const float *token_embedding; /* [vocab][dim] */
    LayerWeights *layers;         /* [n_layers] */
    const float *rms_final;       /* [dim] */
    const float *wcls;            /* [vocab][dim] */
} Weights;

typedef struct {
    Config config;
    Weights weights;
    double *rope_inv_freq;  /* [head_dim/2]: theta^(-2i/head_dim), rescaled for llama3/linear */
    int n_maps;
    void *maps[64];         /* mmapped files */
    size_t map_sizes[64];
    float *converted;       /* f32 copies of bf16/f16 tensors, or NULL */
    size_t converted_bytes;
    char path[4096];
} Model;

/* A llama2.c checkpoint file, or a Hugging Face model directory
 * (config.json + *.safetensors, F32/F16/BF16; f16/bf16 are converted to f32). */
int tempo_model_load(Model *m, const char *path, char *err);
/* inv_freq[i] = theta^(-2i/head_dim), rescaled as transformers does for
 * rope_type "linear" (all / factor) and "llama3" (long wavelengths / factor,
 * a smooth blend between low_freq and high_freq wavelengths). */
void tempo_rope_inv_freq(const RopeScaling *rs, int head_dim, double theta, double *inv_freq);
/* The same over bytes in memory (not copied: keep them alive); `name` is for messages. */
int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err);
/* Reports every tensor holding NaN or Inf to `out`; returns how many such values. */
size_t tempo_model_check(const Model *m, FILE *out);
void tempo_model_free(Model *m);
/* 1 if `token` is one of the model's end-of-sequence tokens. */
int tempo_is_eos(const Config *c, int token);

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

/* A tokenizer.bin (llama2.c) or a tokenizer.json (byte-level BPE), told apart by content. */
int tempo_tokenizer_load(Tokenizer *t, const char *path, int vocab_size, char *err);
int tempo_tokenizer_from_buffer(Tokenizer *t, const void *data, size_t size, int vocab_size, char *err);
int tempo_tokenizer_json_parse(Tokenizer *t, const char *json, size_t len, int vocab_size, const char *name, char *err);
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
/* Sorts sorted_ids[0..n_sorted) by piece bytes (ties by id), as tempo_lookup needs. */
void tempo_sort_pieces(Tokenizer *t);
/* The id of the token with exactly these bytes (tokenizer.json: in the BPE vocabulary), or -1. */
int tempo_lookup(const Tokenizer *t, const char *bytes, int len);
/* tokenizer.json: the end offset of each pre-token of text[0..len) (at most len of them). */
int tempo_pre_tokenize(const Tokenizer *t, const char *text, size_t len, size_t *ends, size_t *n, char *err);
/* Byte-level BPE encoding of a tokenizer.json (tokenizer_json.c); tempo_encode calls it. */
int tempo_bpe_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err);

/* ---- forward pass and KV cache ---- */

/* The KV cache plus scratch space for one batch of new rows. Physical rows
 * 0..n_rows-1 are cached; their logical positions are stored with them. */
typedef struct {
    int capacity;        /* physical rows that fit */
    int n_rows;          /* physical rows cached */
    float *key_cache;    /* [layer][capacity][kv_dim], RoPE already applied */
    float *value_cache;  /* [layer][capacity][kv_dim] */
    int *tokens;         /* [capacity] token of each cached row */
    int *logical_pos;    /* [capacity] RoPE position of each cached row */
    /* scratch, sized for scratch_rows new rows against scratch_keys keys */
    int scratch_rows, scratch_keys;
    float *x, *xb, *q, *att_out, *hb, *hb2, *scores, *rope_cos, *rope_sin;
} State;

int tempo_state_init(State *s, const Config *c, int capacity, char *err);
void tempo_state_free(State *s);

/* What a forward pass returns; any pointer may be NULL to skip it. For k new
 * rows against n_keys = (rows cached before) + k keys:
 *   logits    [k][vocab]
 *   hidden    [k][dim]      the final hidden state (after the last RMSNorm)
 *   attention [n_layers][n_heads][k][n_keys] softmax probabilities */
typedef struct {
    float *logits;
    float *hidden;
    float *attention;
} Outputs;

/* Appends k rows to the cache and computes them. `allowed` is the mask of
 * the new rows against every key, [mask_layers][k][n_keys] bytes, 1 = may
 * attend; mask_layers is 1 (one mask for every layer) or n_layers. A row
 * with no allowed key, a token out of range, a position outside
 * [0, seq_len) or a full cache is an error and leaves the cache unchanged. */
int tempo_forward(const Model *m, State *s, int k, const int *tokens, const int *logical_pos,
                  const uint8_t *allowed, int mask_layers, Outputs out, char *err);

/* The oracle path: all n rows from an empty cache; allowed is [mask_layers][n][n]. */
int tempo_forward_full(const Model *m, int n, const int *tokens, const int *logical_pos,
                       const uint8_t *allowed, int mask_layers, Outputs out, char *err);

/* ---- masks ---- */

typedef enum { MASK_CAUSAL, MASK_ISOLATED, MASK_VISIBLE } MaskKind;

/* Rows first..first+k-1 of the n x n mask for rows grouped by `sets`:
 * causal/visible: key <= query; isolated: the same, except a query may not
 * see another member of its own set. Writes [k][first+k]. */
void tempo_mask_rows(MaskKind kind, const int *sets, int first, int k, uint8_t *allowed);
/* A mask file: n x n characters '0'/'1' (row = query), white space ignored. */
int tempo_mask_parse(const char *text, size_t len, int n, uint8_t *allowed, const char *name, char *err);
int tempo_mask_read(const char *path, int n, uint8_t *allowed, char *err);

/* ---- traces (safetensors) ---- */

typedef enum { DT_F32, DT_I32, DT_U8 } DType;

typedef struct {
    char name[64];
    DType dtype;
    int ndim;
    int64_t shape[4];
    void *data;          /* owned */
} Tensor;

typedef struct {
    int n_tensors;
    Tensor tensors[16];
    int n_meta;
    char meta_key[16][64];
    char meta_value[16][512];
} Trace;

void tempo_trace_init(Trace *t);
void tempo_trace_free(Trace *t);
/* Adds a tensor, copying `data`. */
int tempo_trace_add(Trace *t, const char *name, DType dtype, int ndim, const int64_t *shape,
                    const void *data, char *err);
int tempo_trace_meta(Trace *t, const char *key, const char *value, char *err);
const Tensor *tempo_trace_get(const Trace *t, const char *name);
/* Writes to a temporary name and renames, so a trace is never half-written. */
int tempo_trace_write(const Trace *t, const char *path, char *err);
int tempo_trace_read(Trace *t, const char *path, char *err);
int tempo_trace_parse(Trace *t, const unsigned char *buf, size_t len, const char *name, char *err);
size_t tempo_tensor_count(const Tensor *x);
/* Checks that a trace holds the inputs of a forward pass for this model:
 * tokens I32[n], positions I32[n], allowed U8[n,n] or U8[n_layers,n,n]. */
int tempo_trace_inputs(const Trace *t, const Config *c, int *n, int *mask_layers, char *err);

/* ---- TEMPO generation ---- */

typedef enum { NEXT_LAST_ROW, NEXT_MEAN } NextFrom;
typedef enum { SCHEDULE_CONSTANT, SCHEDULE_BEZIER, SCHEDULE_LINEAR } Schedule;
typedef enum { EMULATE_NONE, EMULATE_LAST_MEMBER_ONLY } Emulation;

typedef struct {
    float threshold;        /* select tokens with p >= threshold, in (0,1] */
    int max_width;          /* most tokens in one parallel set */
    int max_steps;          /* logical steps to generate */
    MaskKind mode;          /* MASK_ISOLATED or MASK_VISIBLE */
    int isolate_first, isolate_last; /* layers isolated in isolated mode (inclusive) */
    NextFrom next_from;
    int stop_on_empty;      /* end when no token clears the threshold */
    Schedule schedule;      /* threshold schedule */
    float final_threshold;
    float bezier_p1, bezier_p2;
    int prune;              /* retroactive attention pruning on */
    int prune_window;       /* sets within this many steps are candidates */
    int prune_layers;       /* last this many layers are averaged */
    float prune_threshold;  /* prune if share < prune_threshold / set size */
    Emulation emulate;
    int capture_attention;  /* keep every row's attention for the trace */
    int keep_logits;        /* keep every row's logits (default 1); 0: only the newest rows' */
} GenConfig;

void tempo_gen_defaults(GenConfig *g, const Config *c);
int tempo_gen_validate(const GenConfig *g, const Config *c, char *err);
/* Threshold used at logical step `step` of `max_steps`. */
float tempo_threshold_at(const GenConfig *g, int step);

/* One selected token: a physical row of the sequence (or, under
 * last-member-only emulation, possibly no row: row = -1). */
typedef struct {
    int token;
    float prob;
    int row;          /* physical index, -1 when not fed to the model */
    int set;          /* logical step (set id) */
    int logical_pos;
    int pruned_at;    /* step at which pruned, -1 if live */
} Member;

typedef struct {
    int logical_pos;
    float threshold;
    int first_member, n_members; /* into Generation.members */
    double seconds;              /* forward time of this step */
} Step;

/* The whole run: prompt rows, then one Step per logical step. Row i keeps
 * exactly what was computed when it was added: its mask row and attention
 * over keys 0..i, stored row after row (row i starts at blocks * i(i+1)/2). */
typedef struct {
    int n_prompt;
    int n_rows;
    int *tokens, *positions, *sets, *pruned; /* per physical row; pruned = step or -1 */
    int mask_layers;         /* 1, or n_layers with --isolate-layers */
    uint8_t *allowed;        /* row i: [mask_layers][i+1] */
    float *attention;        /* row i: [n_layers][n_heads][i+1], or NULL */
    float *logits;           /* [n_rows][vocab], or rows logits_first.. only (keep_logits 0) */
    int logits_first;
    int n_members;
    Member *members;
    int n_steps;
    Step *steps;
    const char *stop_reason; /* "eos", "max-tokens", "context-full", "empty-set" */
    double prefill_seconds, total_seconds;
    size_t cap_rows, cap_allowed, cap_attention, cap_logits, cap_members, cap_steps;
} Generation;

int tempo_generate(const Model *m, const int *prompt, int n_prompt, const GenConfig *g,
                   Generation *out, char *err);
void tempo_generation_free(Generation *gen);

/* The trace of a set of rows: dense allowed [mask_layers][n][n] (stored as
 * [n][n] when mask_layers is 1), attention [L][H][n][n] (may be NULL),
 * pruned (may be NULL). Metadata names the model and its dimensions. */
int tempo_trace_build(Trace *t, const Model *m, int n, const int *tokens, const int *positions,
                      const int *sets, const uint8_t *allowed, int mask_layers, const float *logits,
                      const float *attention, const int *pruned, char *err);
int tempo_generation_trace(const Generation *gen, const Model *m, Trace *t, char *err);
/* The masks every row used, dense [mask_layers][n_rows][n_rows]; the caller frees it (NULL: out of memory). */
uint8_t *tempo_generation_allowed(const Generation *gen);
/* The logits of physical row `row` (must be kept). */
const float *tempo_row_logits(const Generation *gen, int row, int vocab);

/* ---- synthetic models ---- */

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
    uint64_t seed;
    PreTokenizer pre_tokenizer; /* style of the tokenizer.json beside a Hugging Face checkpoint */
} SynthConfig;

void tempo_synth_defaults(SynthConfig *s);
int tempo_synth_write(const SynthConfig *s, const char *path, char *err);
/* The same in Hugging Face layout: dir/config.json + dir/model.safetensors (f32 or bf16). */
int tempo_synth_write_hf(const SynthConfig *s, const char *dir, int bf16, char *err);
/* A byte-level BPE tokenizer.json trained on a built-in text (tokenizer_json.c):
 * Llama 3 style (BOS added by the template, two EOS) or GPT-2 style (one
 * token for both, nothing added). Reports the special ids for config.json. */
int tempo_synth_tokenizer_json(const SynthConfig *s, const char *path, int *bos, int eos[2], int *n_eos, char *err);

/* ---- misc ---- */

void tempo_set_threads(int n);

#endif
