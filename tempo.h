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

/* Writes a formatted message into err (TEMPO_ERR_SIZE bytes); returns -1. */
int tempo_error(char *err, const char *fmt, ...);
/* Grows *buf so it holds at least `need` elements of `elem` bytes (doubling). */
int tempo_grow(void **buf, size_t *cap, size_t need, size_t elem, char *err);
/* n OpenMP threads (n <= 0: leave as is); OpenBLAS on the calling thread. */
void tempo_set_threads(int n);

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

/* How a matrix's values are stored. F32, F16 and BF16 hold one value per
 * element; the GGUF block types hold tempo_block_values() values per block
 * (kernels/kernels.h). */
typedef enum {
    WEIGHT_F32, WEIGHT_F16, WEIGHT_BF16, WEIGHT_Q8_0, WEIGHT_Q4_0, WEIGHT_Q4_K, WEIGHT_Q5_K, WEIGHT_Q6_K,
    WEIGHT_Q4_1, WEIGHT_Q5_0, WEIGHT_Q5_1, WEIGHT_Q2_K, WEIGHT_Q3_K, WEIGHT_IQ4_NL, WEIGHT_IQ4_XS, WEIGHT_TQ1_0, WEIGHT_TQ2_0,
    WEIGHT_IQ2_XXS, WEIGHT_IQ2_XS, WEIGHT_IQ2_S, WEIGHT_IQ3_XXS, WEIGHT_IQ3_S, WEIGHT_IQ1_S, WEIGHT_IQ1_M,
    WEIGHT_Q1_0, WEIGHT_Q2_0,
    WEIGHT_N_TYPES
} WeightType;

/* A row-major [rows][cols] matrix in its stored type, usually pointing into
 * the mapped file; row r starts tempo_row_bytes(type, cols) * r bytes in. */
typedef struct {
    const void *data;
    WeightType type;
} Matrix;

/* "f32", "q4_k", ... */
const char *tempo_weight_type_name(WeightType t);
/* Block layouts, row sizes and the conversion of stored values to f32 are
 * kernels (kernels/kernels.h: tempo_row_bytes, tempo_dequantize). */

typedef struct {             /* one layer; matrices are [out][in] */
    const float *rms_att;    /* [dim] */
    Matrix wq;               /* [n_heads*head_dim][dim] */
    Matrix wk;               /* [n_kv_heads*head_dim][dim] */
    Matrix wv;               /* [n_kv_heads*head_dim][dim] */
    Matrix wo;               /* [dim][n_heads*head_dim] */
    const float *rms_ffn;    /* [dim] */
    Matrix w1;               /* [hidden][dim]  gate */
    Matrix w2;               /* [dim][hidden]  down */
    Matrix w3;               /* [hidden][dim]  up */
} LayerWeights;

typedef struct {             /* matrices point into the mapped file, in its stored type */
    Matrix token_embedding;  /* [vocab][dim] */
    LayerWeights *layers;    /* [n_layers] */
    const float *rms_final;  /* [dim] */
    Matrix wcls;             /* [vocab][dim] */
} Weights;

/* ---- kernels: the steps that have a tuned version ---- */

/* ---- masks: which keys a row may attend to ---- */

typedef enum { MASK_CAUSAL, MASK_ISOLATED, MASK_VISIBLE } MaskKind;

/* A mask as a rule, or a dense one. The rule: row q sees key k iff k <= q,
 * the key is not pruned for q (hidden_from[k] < 0 or q < hidden_from[k]),
 * and, where the layer's kind is isolated, k is q or not in q's set.
 * Dense: dense[layer][q - dense_first][k] (any pattern, read as given).
 * A cell is computed when needed (tempo_mask_cell): no N x N buffer. */
typedef struct {
    MaskKind kind;               /* rule: the kind of every layer (layer_kinds NULL) */
    const MaskKind *layer_kinds; /* rule: [layers] the kind per layer, or NULL */
    const int *sets;             /* rule: [rows] set id per physical row */
    const int *hidden_from;      /* rule: [rows] first row that no longer sees this row (pruned), -1 never; or NULL */
    int layers;                  /* 1 (one mask for every layer) or n_layers */
    const uint8_t *dense;        /* NULL: the rule; else [layers][dense_rows][dense_keys], 1 = may attend */
    int dense_first, dense_rows, dense_keys; /* dense: rows dense_first.. over keys 0..dense_keys-1 */
} Mask;

/* The rule of one kind for every layer over rows grouped by `sets`. */
Mask tempo_mask_rule(MaskKind kind, const int *sets);
/* A dense mask of rows first..first+rows-1 over `keys` keys, [layers][rows][keys]. */
Mask tempo_mask_dense(const uint8_t *allowed, int layers, int first, int rows, int keys);
/* 1 if row q may attend to key `key` in layer `layer` (the one rule). */
int tempo_mask_cell(const Mask *m, int layer, int q, int key);
/* Rows first..first+k-1 of the n x n rule of `kind` over `sets`, dense: writes [k][first+k]. */
void tempo_mask_rows(MaskKind kind, const int *sets, int first, int k, uint8_t *allowed);

/* ---- kernels: the steps that have a tuned version ---- */

/* One layer's attention for the k new rows (physical rows n_keys-k..n_keys-1)
 * over n_keys cached rows, and which probabilities to keep. */
typedef struct {
    const float *q;         /* [k][n_heads*head_dim], RoPE applied */
    const float *keys;      /* [n_keys][n_kv_heads*head_dim], RoPE applied */
    const float *values;    /* [n_keys][n_kv_heads*head_dim] */
    const Mask *mask;       /* read at (layer, row, key) by tempo_mask_cell */
    int layer;
    int k, n_keys;
    const int *keep_rows;   /* indices 0..k-1 of the rows whose probabilities are kept, ascending; NULL: all k */
    int n_keep_rows;        /* with keep_rows */
    const int *keep_heads;  /* the heads whose probabilities are kept, ascending; NULL: every head */
    int n_keep_heads;       /* with keep_heads */
} AttentionInputs;

/* One of several products of the same input: out[n][d] = in[n][m] W^T. */
typedef struct {
    float *out;
    Matrix w;
    int d;
} Product;

/* The kernels a forward pass calls. tempo_plain_kernels (tempo.c) are the
 * definitions, in plain loops with a fixed summation order; the tuned ones
 * (kernels/, tempo_fast_kernels) are tested equal to them. */
typedef struct {
    const char *name;
    unsigned weight_types; /* bit t set: reads matrices stored as WeightType t */
    /* out[n][d] = in[n][m] W^T for W [d][m]; scratch holds matmul_scratch(n, m) floats */
    void (*matmul)(float *out, const float *in, Matrix w, int n, int m, int d, float *scratch);
    size_t (*matmul_scratch)(int n, int m);
    /* p[j].out = in p[j].w^T for `count` products of one input [n][m], each as matmul computes it
     * (NULL: matmul per product); a kernel may run them as one parallel step */
    void (*products)(const Product *p, int count, const float *in, int n, int m, float *scratch);
    /* out[cols] = row `row` of a [rows][cols] matrix as f32 (the embedding lookup) */
    void (*matrix_row)(Matrix w, int row, int cols, float *out);
    /* out [k][n_heads*head_dim]: per head, P = softmax_allowed(Q K^T / sqrt(head_dim)), out = P V;
     * scores: attention_scratch(c, k, n_keys) floats; probs (NULL: not kept): [kept heads][kept rows][n_keys]
     * receives P of the kept heads and rows (AttentionInputs.keep_*). Never an n_keys x n_keys buffer. */
    void (*attention)(const Config *c, const AttentionInputs *a, float *out, float *scores, float *probs);
    size_t (*attention_scratch)(const Config *c, int k, int n_keys);
    /* n new K or V values as the cache stores them, in place (NULL: kept as f32) */
    void (*cache_store)(float *values, size_t n);
    /* RMSNorm of n rows as an engine computes it (NULL: tempo.c's definition) */
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, int dim, float eps);
    /* RoPE's rotation of one pair (a, b) by the angle (c, s), in place, as an engine computes it
     * (NULL: a' = a c - b s, b' = a s + b c) */
    void (*rope_pair)(float *a, float *b, float c, float s);
    /* the SwiGLU gate x = silu(x) * g of n values as an engine computes it (NULL: tempo.c's) */
    void (*swiglu)(float *x, const float *g, size_t n);
    /* 1: the products' order depends on how many rows a call has (ggml's
     * kernels), so a trace is recomputed in the calls its engine made */
    int by_call;
} Kernels;

/* The plain definitions (f32 weights only). */
extern const Kernels tempo_plain_kernels;
/* The files a model was loaded from (mapped, with their path): owned by formats/. */
typedef struct ModelFiles ModelFiles;

/* How RoPE angles are formed (NOTES "Numerics of real engines"): exactly
 * (in double, then rounded), or as an engine does in float32: transformers
 * multiplies position and f32 inv_freq in f32; ggml multiplies the angle by
 * theta^(-2/head_dim) in f32 from one frequency to the next. */
typedef enum { ROPE_ANGLES_EXACT, ROPE_ANGLES_TORCH, ROPE_ANGLES_GGML } RopeAngles;

/* How a forward pass computes (NOTES "Numerics of real engines"): exact (the
 * reference), ggml (llama.cpp's CPU arithmetic, with its cache type and
 * flash attention setting), torch (transformers' f32 RoPE angles). A
 * profile is given to a Model by tempo_model_set_numerics (kernels/kernels.h). */
typedef enum { NUMERICS_EXACT, NUMERICS_GGML, NUMERICS_TORCH } NumericsProfile;
typedef struct {
    int profile;    /* NumericsProfile */
    int kv_f16;     /* ggml: the K/V cache stores f16 */
    int flash_attn; /* ggml: flash attention */
    int repack_off; /* ggml: Q4_0 weights in their stored layout (llama.cpp's default repacks them) */
} Numerics;

typedef struct {
    Config config;
    Weights weights;
    const Kernels *kernels; /* set by the loaders (the fast ones); NULL: tempo_plain_kernels */
    RopeAngles rope_angles; /* ROPE_ANGLES_EXACT unless a numerics profile says otherwise */
    double *rope_inv_freq;  /* [head_dim/2]: theta^(-2i/head_dim), rescaled for llama3/linear */
    float *converted;       /* owned f32 values: norm vectors not stored as aligned f32, or NULL */
    size_t converted_bytes;
    ModelFiles *files;      /* or NULL; freed by tempo_model_free */
} Model;

/* Checkpoints are loaded by formats/ (formats.h: tempo_model_load).
 * 1 if `token` is one of the model's end-of-sequence tokens. */
int tempo_is_eos(const Config *c, int token);

/* ---- the math ---- */

/* Softmax in place over the allowed entries (allowed NULL: all); masked entries get exactly 0. */
void tempo_softmax(float *x, const uint8_t *allowed, int n);

/* ---- forward pass and KV cache ---- */

/* The KV cache plus scratch space for one batch of new rows. Physical rows
 * 0..n_rows-1 are cached, their keys already rotated by their logical positions. */
typedef struct {
    int capacity;        /* physical rows that fit */
    int n_rows;          /* physical rows cached */
    float *key_cache;    /* [layer][capacity][kv_dim], RoPE already applied */
    float *value_cache;  /* [layer][capacity][kv_dim] */
    /* scratch, sized for scratch_rows new rows against scratch_keys keys */
    int scratch_rows, scratch_keys;
    float *x, *xb, *q, *att_out, *hb, *hb2, *rope_cos, *rope_sin;
    float *weight_panel;  /* the matmul kernel's scratch (Kernels.matmul_scratch), panel_values floats */
    size_t panel_values;
    float *scores;        /* the attention kernel's scratch (Kernels.attention_scratch), score_values floats */
    size_t score_values;
    int *kept_rows;       /* [scratch_rows]: the new rows whose attention is kept */
} State;

int tempo_state_init(State *s, const Config *c, int capacity, char *err);
void tempo_state_free(State *s);

/* Which attention probabilities a forward pass keeps: the listed layers,
 * heads and physical rows (each ascending, no repeats; NULL: all of them). */
typedef struct {
    const int *layers; int n_layers;
    const int *heads; int n_heads;
    const int *rows; int n_rows;
} AttentionKeep;

/* What a forward pass returns; any pointer may be NULL to skip it. For k new
 * rows against n_keys = (rows cached before) + k keys:
 *   logits    [k][vocab], or [last_logits][vocab] for the last rows only
 *   hidden    [k][dim]      the final hidden state (after the last RMSNorm)
 *   attention [kept layers][kept heads][kept new rows][n_keys] softmax
 *             probabilities; keep NULL: [n_layers][n_heads][k][n_keys] */
typedef struct {
    float *logits;
    float *hidden;
    float *attention;
    const AttentionKeep *keep;
    int last_logits; /* > 0: logits only for the last last_logits rows ([last_logits][vocab]); 0: every row */
} Outputs;

/* Appends k rows to the cache and computes them under `mask` (rows are
 * physical: the new ones are s->n_rows..s->n_rows+k-1; a dense mask must
 * cover them and every key). A row with no allowed key, a token out of
 * range, a position outside [0, seq_len), a full cache, or logits or a
 * final hidden state that are not finite (an overflow of f32) is an error
 * and leaves the cache unchanged. */
int tempo_forward(const Model *m, State *s, int k, const int *tokens, const int *logical_pos,
                  const Mask *mask, Outputs out, char *err);

/* The oracle path: all n rows from an empty cache. Rows go through the
 * cache tempo_forward_chunk_rows at a time: then the scratch holds a
 * chunk's rows, not n (the KV cache holds all n). */
int tempo_forward_full(const Model *m, int n, const int *tokens, const int *logical_pos,
                       const Mask *mask, Outputs out, char *err);
/* Rows per tempo_forward call of tempo_forward_full over n rows:
 * TEMPO_CHUNK_ROWS when n is more and the rows may go in turn, else n. They
 * may not under a dense mask (it may show a row later ones) or when
 * attention is kept (its rows are laid out over all n keys). */
#define TEMPO_CHUNK_ROWS 4096
int tempo_forward_chunk_rows(int n, int dense_mask, int keeps_attention);
/* The place of `value` in an ascending keep list (NULL: every value, in order), or -1 when not kept. */
int tempo_kept_slot(const int *list, int n, int value);

/* ---- TEMPO generation ---- */

typedef enum { NEXT_LAST_ROW, NEXT_MEAN } NextFrom;
typedef enum { SCHEDULE_CONSTANT, SCHEDULE_BEZIER, SCHEDULE_LINEAR } Schedule;
typedef enum { EMULATE_NONE, EMULATE_LAST_MEMBER_ONLY } Emulation;

/* Pruning weighs at most this many members of a set: max_width may not exceed it with prune on. */
#define TEMPO_PRUNE_MAX_WIDTH 64

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
    int capture_attention;  /* keep attention for the trace: what attention_keep lists */
    const AttentionKeep *attention_keep; /* with capture_attention: the layers, heads, rows kept (NULL: all) */
    int keep_logits;        /* every row's logits (default 1); 0: only the rows the next set is drawn from (append_rows) */
    Numerics numerics;      /* the arithmetic (recorded in traces); the caller gives it to the Model */
    int position_gap;       /* G >= 0: step s sits at logical position n_prompt + G + s (0: right after the prompt) */
} GenConfig;

void tempo_gen_defaults(GenConfig *g, const Config *c);
int tempo_gen_validate(const GenConfig *g, const Config *c, char *err);
/* Threshold used at logical step `step` of `max_steps`. */
float tempo_threshold_at(const GenConfig *g, int step);
/* Masks a run keeps: 1, or n_layers when an isolated run isolates only some layers (--isolate-layers). */
int tempo_mask_layers(const GenConfig *g, const Config *c);
/* The mask kind layer l uses: the run's mode when one mask serves every
 * layer (mask_layers 1); with a mask per layer (--isolate-layers), isolated
 * only for the isolated layers of an isolated run. */
MaskKind tempo_layer_mask_kind(const GenConfig *g, int mask_layers, int l);

/* One selected token: a physical row of the sequence (or, under
 * last-member-only emulation, possibly no row: row = -1). */
typedef struct {
    int token;
    float prob;
    int row;          /* physical index, -1 when not fed to the model */
    int logical_pos;  /* shared by the whole set; also the set's id */
    int pruned_at;    /* step at which pruned, -1 if live */
} Member;

/* One member weighed by pruning after step `step`: its share of the
 * attention its set received from that step's rows, against the bar
 * prune_threshold / live. Sets of steps step - prune_window .. step - 1
 * are weighed (the window). */
typedef struct {
    int step;          /* the step whose rows paid the attention */
    int set_step;      /* the step whose set was weighed */
    int member;        /* index into Generation.members */
    int live;          /* live members of the set when weighed */
    double share;      /* the member's share of the set's received attention, in [0, 1] */
    double bar;        /* prune_threshold / live: pruned when share < bar */
    int strongest;     /* 1: the set's strongest member, never pruned */
    int pruned;        /* 1: pruned by this decision */
} PruneDecision;

typedef struct {
    int logical_pos;
    float threshold;
    int first_member, n_members; /* into Generation.members */
    double seconds;              /* forward time of this step */
} Step;

/* The whole run: prompt rows, then one Step per logical step. The mask is
 * kept as its rule (tempo_generation_mask): the mode, each layer's kind, the
 * sets and the row each pruned row is hidden from, which gives every row
 * exactly the mask row it was computed with (a row is pruned only after the
 * step that computed it, and hidden from the next step's rows on). When
 * kept, row i's attention: the kept rows one after another, each [kept
 * layers][kept heads][i+1] (with every row, layer and head kept: at L H i(i+1)/2). */
typedef struct {
    int n_prompt;
    int n_rows;
    int *tokens, *positions, *sets, *pruned; /* per physical row; pruned = step or -1 */
    int *hidden_from;        /* per physical row: the first row that no longer sees it (pruned), -1 never */
    MaskKind mode;           /* the run's mode */
    int mask_layers;         /* 1, or n_layers with --isolate-layers */
    MaskKind *layer_kinds;   /* [mask_layers]: the kind each layer's mask has (tempo_layer_mask_kind) */
    float *attention;        /* the kept rows' attention, n_attention floats; NULL: none kept */
    size_t n_attention;
    int attention_captured;  /* 1: attention holds what attention_keep lists */
    AttentionKeep attention_keep; /* its lists point into the GenConfig's (NULL: all); rows may pass n_rows */
    float *logits;           /* [n_rows][vocab], or rows logits_first.. only (keep_logits 0) */
    int logits_first;
    int n_members;
    Member *members;
    int n_steps;
    Step *steps;
    int n_decisions;         /* pruning decisions, in the order taken (none without prune) */
    PruneDecision *decisions;
    const char *stop_reason; /* "eos", "max-tokens", "context-full", "empty-set" */
    double prefill_seconds, total_seconds;
    size_t cap_rows, cap_attention, cap_logits, cap_members, cap_steps, cap_decisions;
} Generation;

/* The most rows a generation from n_prompt rows can reach, its KV cache's
 * capacity: the prompt, then max_width rows (one under --emulate, at most
 * the vocabulary) for each step the context has positions for. */
int tempo_generation_capacity(const GenConfig *g, const Config *c, int n_prompt);
int tempo_generate(const Model *m, const int *prompt, int n_prompt, const GenConfig *g,
                   Generation *out, char *err);
void tempo_generation_free(Generation *gen);
/* The run's mask as a rule over its rows (pointing into gen), read with tempo_mask_cell. */
Mask tempo_generation_mask(const Generation *gen);

/* The logits of physical row `row` (must be kept). */
const float *tempo_row_logits(const Generation *gen, int row, int vocab);
/* Sorts token ids by probability, most probable first (ties: lower id). */
void tempo_sort_by_probability(int *ids, int n, const float *probs);
/* p = softmax(logits) of one row (the distribution TEMPO selects from). */
void tempo_probs(float *p, const float *logits, int vocab);
/* TEMPO's selection: token ids with p >= threshold, most probable first
 * (ties: lower id), at most max_width; 0 when none clears the threshold
 * (tempo_generate then takes tempo_argmax). `candidates` holds the vocabulary. */
int tempo_select_tokens(const float *probs, int vocab, float threshold, int max_width, int *candidates);
int tempo_argmax(const float *p, int n);
/* One step's parallel set: tempo_select_tokens with g's max_width, else the
 * argmax alone (0 with g->stop_on_empty). Returns its width. */
int tempo_choose_set(const float *probs, int vocab, float threshold, const GenConfig *g, int *candidates);
/* The next-token distribution: softmax(last_row), or with NEXT_MEAN the
 * mean of softmax(set_rows[i]) over the last set's n_set live members (the
 * last row when n_set is 0). tmp: [vocab] scratch. */
void tempo_next_distribution(NextFrom from, const float *const *set_rows, int n_set, const float *last_row, int vocab,
                             float *probs, float *tmp);

#endif
