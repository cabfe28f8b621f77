/* synth_gguf.c - GGUF files written by tempo: the writer (the layout of
 * formats/gguf.c, in the other direction), synthetic models of every
 * stored type, and llama2.c checkpoints converted by copying tensors. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "synth_gguf.h"

void tempo_gguf_writer_init(GgufWriter *w, uint32_t alignment) {
    memset(w, 0, sizeof *w);
    w->alignment = alignment;
}

void tempo_gguf_writer_free(GgufWriter *w) {
    free(w->meta);
    free(w->infos);
    free(w->data);
    memset(w, 0, sizeof *w);
}

/* Appends n bytes to a growing buffer (doubling); marks the writer failed when memory runs out. */
static void append(GgufWriter *w, uint8_t **buf, size_t *len, size_t *cap, const void *bytes, size_t n) {
    if (w->failed) return;
    if (*len + n > *cap) {
        size_t want = *cap ? *cap : 256;
        while (want < *len + n) want *= 2;
        uint8_t *grown = realloc(*buf, want);
        if (!grown) {
            w->failed = 1;
            return;
        }
        *buf = grown, *cap = want;
    }
    if (n) memcpy(*buf + *len, bytes, n);
    *len += n;
}

static void meta(GgufWriter *w, const void *bytes, size_t n) { append(w, &w->meta, &w->meta_len, &w->meta_cap, bytes, n); }
static void meta_u32(GgufWriter *w, uint32_t v) { meta(w, &v, 4); } /* little-endian hosts only, as the reader */
static void meta_u64(GgufWriter *w, uint64_t v) { meta(w, &v, 8); }

static void meta_string(GgufWriter *w, const char *s, size_t len) {
    meta_u64(w, len);
    meta(w, s, len);
}

static void key(GgufWriter *w, const char *k, GgufType t) {
    meta_string(w, k, strlen(k));
    meta_u32(w, t);
    w->n_kv++;
}

void tempo_gguf_put_u32(GgufWriter *w, const char *k, uint32_t v) { key(w, k, GGUF_UINT32), meta_u32(w, v); }
void tempo_gguf_put_f32(GgufWriter *w, const char *k, float v) { key(w, k, GGUF_FLOAT32), meta(w, &v, 4); }
void tempo_gguf_put_string(GgufWriter *w, const char *k, const char *v) { key(w, k, GGUF_STRING), meta_string(w, v, strlen(v)); }

void tempo_gguf_put_bool(GgufWriter *w, const char *k, int v) {
    uint8_t b = v != 0;
    key(w, k, GGUF_BOOL);
    meta(w, &b, 1);
}

static void array_head(GgufWriter *w, const char *k, GgufType elem, uint64_t n) {
    key(w, k, GGUF_ARRAY);
    meta_u32(w, elem);
    meta_u64(w, n);
}

void tempo_gguf_put_strings(GgufWriter *w, const char *k, uint64_t n, const char *const *v, const int *lens) {
    array_head(w, k, GGUF_STRING, n);
    for (uint64_t i = 0; i < n; i++) meta_string(w, v[i], lens ? (size_t)lens[i] : strlen(v[i]));
}

void tempo_gguf_put_f32s(GgufWriter *w, const char *k, uint64_t n, const float *v) { array_head(w, k, GGUF_FLOAT32, n), meta(w, v, 4 * n); }
void tempo_gguf_put_i32s(GgufWriter *w, const char *k, uint64_t n, const int32_t *v) { array_head(w, k, GGUF_INT32, n), meta(w, v, 4 * n); }

void tempo_gguf_put_tensor(GgufWriter *w, const char *name, WeightType t, uint64_t rows, uint64_t cols, const void *data) {
    static const uint8_t zeros[64] = {0};
    uint32_t n_dims = rows ? 2 : 1, type = tempo_gguf_ggml_type(t);
    uint64_t offset = w->data_len, ne[2] = {cols, rows}, name_len = strlen(name);
    size_t bytes = tempo_row_bytes(t, cols) * (rows ? rows : 1);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, &name_len, 8);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, name, name_len);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, &n_dims, 4);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, ne, 8 * n_dims);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, &type, 4);
    append(w, &w->infos, &w->infos_len, &w->infos_cap, &offset, 8);
    append(w, &w->data, &w->data_len, &w->data_cap, data, bytes);
    append(w, &w->data, &w->data_len, &w->data_cap, zeros, (w->alignment - w->data_len % w->alignment) % w->alignment);
    w->n_tensors++;
}

int tempo_gguf_finish(GgufWriter *w, uint8_t **out, size_t *len, char *err) {
    uint32_t version = 3;
    size_t head = 4 + 4 + 8 + 8 + w->meta_len + w->infos_len, pad = (w->alignment - head % w->alignment) % w->alignment;
    *len = head + pad + w->data_len;
    *out = w->failed ? NULL : calloc(1, *len);
    if (!*out) return tempo_error(err, "out of memory writing a GGUF file of %zu bytes", *len);
    uint8_t *p = *out;
    memcpy(p, "GGUF", 4), memcpy(p + 4, &version, 4), memcpy(p + 8, &w->n_tensors, 8), memcpy(p + 16, &w->n_kv, 8);
    if (w->meta_len) memcpy(p + 24, w->meta, w->meta_len);
    if (w->infos_len) memcpy(p + 24 + w->meta_len, w->infos, w->infos_len);
    if (w->data_len) memcpy(p + head + pad, w->data, w->data_len);
    return 0;
}

/* ---- synthetic models ---- */

static double uniform(uint64_t *state) { return (tempo_splitmix64(state) >> 11) / 9007199254740992.0; }

static void put_half(uint8_t *p, float v) {
    uint16_t h = tempo_f32_to_f16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* One random block of a quantized type whose values have a standard
 * deviation near `std`: random quants, scales in the ranges ggml's
 * quantizers produce (6-bit scales and mins, int8 Q6_K scales), the
 * super-block scales set so that d*sc*q spans a few std. */
static void random_block(WeightType t, double std, uint64_t *rng, uint8_t *b) {
    size_t n = tempo_block_bytes(t);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)tempo_splitmix64(rng);
    double jitter = 0.5 + uniform(rng);
    if (t == WEIGHT_Q8_0) put_half(b, (float)(std / 74.0 * jitter));       /* int8 quants: std 74 */
    if (t == WEIGHT_Q4_0) put_half(b, (float)(std / 4.6 * jitter));        /* q - 8 in [-8, 7]: std 4.6 */
    if (t == WEIGHT_Q4_K || t == WEIGHT_Q5_K) {
        double q_mean = t == WEIGHT_Q4_K ? 7.5 : 15.5, q_std = t == WEIGHT_Q4_K ? 4.6 : 9.2;
        double d = std / (47.0 * q_std) * jitter;                           /* scales in [32, 63]: mean 47 */
        put_half(b, (float)d);
        put_half(b + 2, (float)(d * 47.0 * q_mean / 31.5));                 /* mins in [0, 63]: mean 31.5 */
        for (int j = 0; j < 4; j++) b[4 + j] = (uint8_t)((b[4 + j] & 0xC0) | 32 | (b[4 + j] & 31)); /* low scales >= 32 */
        for (int j = 8; j < 12; j++) b[4 + j] |= 0x08;                     /* high scales' low nibble >= 8 */
    }
    if (t == WEIGHT_Q6_K) put_half(b + 208, (float)(std / (74.0 * 18.5) * jitter)); /* int8 scales, q - 32 */
}

/* A [rows][cols] matrix of normal(0, std) values stored as t (f32, f16, bf16), or random blocks of a quantized t. */
static void *random_matrix(WeightType t, uint64_t rows, uint64_t cols, double std, uint64_t *rng) {
    size_t n = (size_t)rows * cols, bytes = tempo_row_bytes(t, cols) * rows, block = tempo_block_bytes(t);
    uint8_t *out = malloc(bytes ? bytes : 1);
    for (size_t i = 0; out && tempo_block_values(t) > 1 && i < bytes / block; i++) random_block(t, std, rng, out + i * block);
    for (size_t i = 0; out && tempo_block_values(t) == 1 && i < n; i++) {
        float v = (float)(std * tempo_normal(rng));
        uint32_t bits;
        memcpy(&bits, &v, 4);
        uint16_t h = t == WEIGHT_F16 ? tempo_f32_to_f16(v) : (uint16_t)(bits >> 16);
        if (t == WEIGHT_F32) memcpy(out + 4 * i, &v, 4);
        else memcpy(out + 2 * i, &h, 2);
    }
    return out;
}

/* 1 if bytes[0..len) are well-formed UTF-8 (so that sentencepiece, which splits text into characters, can reach them). */
static int whole_utf8(const char *bytes, int len) {
    char *valid = tempo_valid_utf8(bytes, (size_t)len);
    int same = valid && strlen(valid) == (size_t)len && memcmp(valid, bytes, (size_t)len) == 0;
    free(valid);
    return same;
}

/* A sentencepiece vocabulary of V pieces: <unk>, <s>, </s>, the bytes
 * <0x00>..<0xFF>, the printable ASCII characters, then the multi-byte
 * tokens of the byte-level BPE trained on synth's text (in merge order,
 * score -rank), then <unused N>. Spaces are written as U+2581. */
static int spm_vocab(GgufWriter *w, const Tokenizer *bpe, int V, char *err) {
    char **pieces = calloc((size_t)V, sizeof *pieces);
    float *scores = calloc((size_t)V, sizeof *scores);
    int32_t *types = calloc((size_t)V, sizeof *types);
    int n = 0, rc = 0;
    const char *specials[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; pieces && scores && types && i < V; i++) {
        char text[64];
        int from = i - 3 - 256 - 95 >= 0 ? i : -1;
        if (i < 3) snprintf(text, sizeof text, "%s", specials[i]), types[i] = i == 0 ? 2 : 3;
        else if (i < 3 + 256) snprintf(text, sizeof text, "<0x%02X>", i - 3), types[i] = 6;
        else if (i < 3 + 256 + 95) snprintf(text, sizeof text, "%c", (char)(' ' + i - 259)), types[i] = 1;
        while (from >= 0 && n < bpe->vocab_size && (bpe->piece_len[n] < 2 || !whole_utf8(bpe->pieces[n], bpe->piece_len[n]))) n++;
        if (from >= 0 && n < bpe->vocab_size) {
            snprintf(text, sizeof text, "%.*s", bpe->piece_len[n] < 60 ? bpe->piece_len[n] : 60, bpe->pieces[n]);
            types[i] = 1, scores[i] = (float)-n, n++;
        } else if (from >= 0) {
            snprintf(text, sizeof text, "<unused%d>", i), types[i] = 5;
        }
        size_t len = 0; /* spaces as U+2581 */
        char spm[192];
        for (const char *c = text; *c; c++) len += (size_t)snprintf(spm + len, sizeof spm - len, "%s", *c == ' ' ? "\xe2\x96\x81" : (char[2]){*c, 0});
        if (!(pieces[i] = strdup(spm))) break;
    }
    if (!pieces || !scores || !types || !pieces[V - 1]) rc = tempo_error(err, "out of memory building a vocabulary");
    if (rc == 0) {
        tempo_gguf_put_string(w, "tokenizer.ggml.model", "llama");
        tempo_gguf_put_strings(w, "tokenizer.ggml.tokens", (uint64_t)V, (const char *const *)pieces, NULL);
        tempo_gguf_put_f32s(w, "tokenizer.ggml.scores", (uint64_t)V, scores);
        tempo_gguf_put_i32s(w, "tokenizer.ggml.token_type", (uint64_t)V, types);
        tempo_gguf_put_u32(w, "tokenizer.ggml.bos_token_id", 1);
        tempo_gguf_put_u32(w, "tokenizer.ggml.eos_token_id", 2);
    }
    for (int i = 0; pieces && i < V; i++) free(pieces[i]);
    free(pieces), free(scores), free(types);
    return rc;
}

/* Adds a random matrix (or, rows 0, a vector near 1 for norms) as tensor `name`. */
static int put_random(GgufWriter *w, const char *name, WeightType t, uint64_t rows, uint64_t cols, double std, uint64_t *rng, char *err) {
    void *m = rows ? random_matrix(t, rows, cols, std, rng) : random_matrix(WEIGHT_F32, 1, cols, 0.1, rng);
    if (!m) return tempo_error(err, "out of memory building tensor %s", name);
    for (uint64_t i = 0; !rows && i < cols; i++) ((float *)m)[i] += 1.0f;
    tempo_gguf_put_tensor(w, name, rows ? t : WEIGHT_F32, rows, cols, m);
    free(m);
    return 0;
}

/* Llama 3 RoPE scaling as convert_hf_to_gguf stores it: one divisor per
 * frequency (factor 8, low 1, high 4, original context 64, so that scaled,
 * blended and kept frequencies all occur). */
static void put_rope_factors(GgufWriter *w, const Config *c) {
    float factors[512];
    double base[512];
    tempo_rope_inv_freq(NULL, c->head_dim, c->rope_theta, base);
    RopeScaling rs = {ROPE_LLAMA3, 8.0, 1.0, 4.0, 64};
    double scaled[512];
    tempo_rope_inv_freq(&rs, c->head_dim, c->rope_theta, scaled);
    for (int i = 0; i < c->head_dim / 2; i++) factors[i] = (float)(base[i] / scaled[i]);
    tempo_gguf_put_tensor(w, "rope_freqs.weight", WEIGHT_F32, 0, (uint64_t)c->head_dim / 2, factors);
}

static void put_llama_metadata(GgufWriter *w, const Config *c, WeightType dtype) {
    tempo_gguf_put_string(w, "general.architecture", "llama");
    tempo_gguf_put_string(w, "general.name", "tempo synth");
    tempo_gguf_put_u32(w, "general.alignment", w->alignment);
    if (tempo_block_values(dtype) > 1) tempo_gguf_put_u32(w, "general.quantization_version", 2);
    tempo_gguf_put_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    tempo_gguf_put_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    tempo_gguf_put_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    tempo_gguf_put_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    tempo_gguf_put_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    tempo_gguf_put_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    tempo_gguf_put_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    tempo_gguf_put_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    tempo_gguf_put_f32(w, "llama.rope.freq_base", c->rope_theta);
}

static int write_buffer(const char *path, const uint8_t *buf, size_t len, char *err) {
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    return tempo_atomic_close(&a, fwrite(buf, 1, len, a.f) == len, err);
}

/* The finished file to `path`; frees the writer. */
static int write_gguf(GgufWriter *w, const char *path, char *err) {
    uint8_t *buf;
    size_t len;
    int rc = tempo_gguf_finish(w, &buf, &len, err);
    tempo_gguf_writer_free(w);
    if (rc == 0) rc = tempo_check_free_space(path, len, err);
    if (rc == 0) rc = write_buffer(path, buf, len, err);
    free(buf);
    return rc;
}

static int by_rank(const void *a, const void *b) { return ((const Merge *)a)->rank - ((const Merge *)b)->rank; }

/* The byte-level BPE itself (tokenizer.ggml.model gpt2): tokens as
 * byte-level text, added tokens as control tokens in raw text, merges "a b"
 * in rank order, the pre-tokenizer's name, BOS added for Llama 3 style. */
static int bpe_vocab(GgufWriter *w, const Tokenizer *bpe, int bos, const int eos[2], int n_eos, char *err) {
    int V = bpe->vocab_size, rc = 0;
    char **text = calloc((size_t)V, sizeof *text);
    int32_t *types = calloc((size_t)V, sizeof *types);
    Merge *merges = malloc((size_t)(bpe->n_merges + 1) * sizeof *merges);
    char **pairs = calloc((size_t)bpe->n_merges + 1, sizeof *pairs);
    for (int i = 0; text && types && i < V && rc == 0; i++) {
        int added = 0;
        for (int k = 0; k < bpe->n_added; k++) added |= bpe->added_ids[k] == i;
        types[i] = added ? 3 : 1;
        if (!(text[i] = malloc(2 * (size_t)bpe->piece_len[i] + 1))) rc = -1;
        else if (added) memcpy(text[i], bpe->pieces[i], (size_t)bpe->piece_len[i] + 1);
        else tempo_to_byte_level(bpe->pieces[i], bpe->piece_len[i], text[i]);
    }
    if (merges && pairs) memcpy(merges, bpe->merges, (size_t)bpe->n_merges * sizeof *merges);
    if (merges && pairs) qsort(merges, (size_t)bpe->n_merges, sizeof *merges, by_rank);
    for (int i = 0; merges && pairs && text && rc == 0 && i < bpe->n_merges; i++) {
        const char *l = text[merges[i].left], *r = text[merges[i].right];
        if (!(pairs[i] = malloc(strlen(l) + strlen(r) + 2))) rc = -1;
        else sprintf(pairs[i], "%s %s", l, r);
    }
    if (!text || !types || !merges || !pairs || rc != 0) rc = tempo_error(err, "out of memory building a vocabulary");
    if (rc == 0) {
        int llama3 = bpe->pre_tokenizer == PRETOKENIZE_LLAMA3;
        tempo_gguf_put_string(w, "tokenizer.ggml.model", "gpt2");
        tempo_gguf_put_string(w, "tokenizer.ggml.pre", llama3 ? "llama-bpe" : "gpt-2");
        tempo_gguf_put_strings(w, "tokenizer.ggml.tokens", (uint64_t)V, (const char *const *)text, NULL);
        tempo_gguf_put_i32s(w, "tokenizer.ggml.token_type", (uint64_t)V, types);
        tempo_gguf_put_strings(w, "tokenizer.ggml.merges", (uint64_t)bpe->n_merges, (const char *const *)pairs, NULL);
        tempo_gguf_put_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        tempo_gguf_put_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos[0]);
        if (n_eos > 1) tempo_gguf_put_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)eos[1]);
        tempo_gguf_put_bool(w, "tokenizer.ggml.add_bos_token", llama3);
    }
    for (int i = 0; text && i < V; i++) free(text[i]);
    for (int i = 0; pairs && i < bpe->n_merges; i++) free(pairs[i]);
    free(text), free(types), free(merges), free(pairs);
    return rc;
}

/* The vocabulary: a byte-level BPE trained on synth's text (tools/synth.c),
 * written as such or as sentencepiece pieces. */
static int synth_vocab(GgufWriter *w, const SynthConfig *s, GgufVocab vocab, char *err) {
    int bos, eos[2], n_eos;
    char *json;
    Tokenizer bpe;
    if (vocab == GGUF_VOCAB_SPM && s->vocab_size < 3 + 256 + 95 + 8)
        return tempo_error(err, "a synthetic sentencepiece vocabulary needs --vocab >= %d", 3 + 256 + 95 + 8);
    if (tempo_synth_tokenizer_text(s, &json, &bos, eos, &n_eos, err) != 0) return -1;
    int rc = tempo_tokenizer_json_parse(&bpe, json, strlen(json), s->vocab_size, "the synthetic tokenizer.json", err);
    free(json);
    if (rc != 0) return -1;
    rc = vocab == GGUF_VOCAB_SPM ? spm_vocab(w, &bpe, s->vocab_size, err) : bpe_vocab(w, &bpe, bos, eos, n_eos, err);
    tempo_tokenizer_free(&bpe);
    return rc;
}

/* One layer's nine tensors in GGUF order: name part, shape (rows 0: a vector), standard deviation. */
typedef struct {
    const char *part;
    uint64_t rows, cols;
    double std;
} LayerPart;

static void layer_parts(const Config *c, LayerPart t[9]) {
    uint64_t D = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim, Q = (uint64_t)c->n_heads * c->head_dim, K = (uint64_t)c->n_kv_heads * c->head_dim;
    double in_scale = 1.0 / sqrt((double)D);
    LayerPart parts[9] = {
        {"attn_norm", 0, D, 0}, {"attn_q", Q, D, in_scale}, {"attn_k", K, D, in_scale}, {"attn_v", K, D, in_scale},
        {"attn_output", D, Q, 1.0 / sqrt((double)Q)}, {"ffn_norm", 0, D, 0}, {"ffn_gate", H, D, in_scale},
        {"ffn_down", D, H, 1.0 / sqrt((double)H)}, {"ffn_up", H, D, in_scale}};
    memcpy(t, parts, sizeof parts);
}

/* A matrix's type in a synthetic file: K-quant files keep layer 0's ffn_down at Q6_K, as Q4_K_M does; norms F32. */
static WeightType part_type(WeightType dtype, int layer, int part, uint64_t rows) {
    if (!rows) return WEIGHT_F32;
    return tempo_block_values(dtype) == TEMPO_QK_K && layer == 0 && part == 7 ? WEIGHT_Q6_K : dtype;
}

/* The tensor data of a synthetic GGUF (its metadata and padding come on top). */
static uint64_t synth_gguf_bytes(const Config *c, WeightType dtype, int shared_classifier) {
    LayerPart t[9];
    layer_parts(c, t);
    uint64_t D = (uint64_t)c->dim, V = (uint64_t)c->vocab_size, bytes = V * tempo_row_bytes(dtype, D) + 4 * D + 2 * (uint64_t)c->head_dim;
    if (!shared_classifier) bytes += V * tempo_row_bytes(tempo_block_values(dtype) == TEMPO_QK_K ? WEIGHT_Q6_K : dtype, D);
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < 9; i++) bytes += (t[i].rows ? t[i].rows : 1) * tempo_row_bytes(part_type(dtype, l, i, t[i].rows), t[i].cols);
    return bytes;
}

int tempo_synth_write_gguf(const SynthConfig *s, WeightType dtype, GgufVocab vocab, const char *path, char *err) {
    int block = tempo_block_values(dtype), kquant = block == TEMPO_QK_K;
    if (s->dim % block || s->hidden_dim % block || s->n_heads <= 0 || s->n_kv_heads <= 0 || s->dim % s->n_heads ||
        s->n_heads % s->n_kv_heads || (s->dim / s->n_heads) % 2 || s->dim / s->n_heads > 1024)
        return tempo_error(err, "synthetic %s GGUF: dim %d and hidden %d must be multiples of %d, dim split into heads of even size",
                           tempo_weight_type_name(dtype), s->dim, s->hidden_dim, block);
    Config c = {.dim = s->dim, .hidden_dim = s->hidden_dim, .n_layers = s->n_layers, .n_heads = s->n_heads, .n_kv_heads = s->n_kv_heads,
                .vocab_size = s->vocab_size, .seq_len = s->seq_len, .head_dim = s->dim / s->n_heads, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    if (tempo_check_free_space(path, synth_gguf_bytes(&c, dtype, s->shared_classifier), err) != 0) return -1;
    GgufWriter w;
    tempo_gguf_writer_init(&w, 32);
    put_llama_metadata(&w, &c, dtype);
    uint64_t rng = s->seed, D = (uint64_t)c.dim, V = (uint64_t)c.vocab_size;
    double in_scale = 1.0 / sqrt((double)D);
    LayerPart t[9];
    layer_parts(&c, t);
    int rc = synth_vocab(&w, s, vocab, err);
    if (rc == 0) rc = put_random(&w, "token_embd.weight", dtype, V, D, s->shared_classifier ? 3.0 * in_scale : 1.0, &rng, err);
    for (int l = 0; l < c.n_layers && rc == 0; l++)
        for (int i = 0; i < 9 && rc == 0; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].part);
            rc = put_random(&w, name, part_type(dtype, l, i, t[i].rows), t[i].rows, t[i].cols, t[i].std, &rng, err);
        }
    if (rc == 0) rc = put_random(&w, "output_norm.weight", WEIGHT_F32, 0, D, 0, &rng, err);
    if (rc == 0 && !s->shared_classifier) rc = put_random(&w, "output.weight", kquant ? WEIGHT_Q6_K : dtype, V, D, 3.0 * in_scale, &rng, err);
    if (rc == 0) put_rope_factors(&w, &c);
    if (rc != 0) {
        tempo_gguf_writer_free(&w);
        return -1;
    }
    return write_gguf(&w, path, err);
}

/* ---- llama2.c checkpoints as GGUF ---- */

/* Q8_0 as ggml's reference quantizer makes it: d = max|x| / 127, q = round(x / d) (x * (1/d), in float). */
static void quantize_q8_0(const float *x, size_t n, uint8_t *out) {
    for (size_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(out, d);
        for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* One tensor copied: F32, or Q8_0 when asked and its rows fill 32-value blocks. */
static int put_copy(GgufWriter *w, const char *name, const float *x, uint64_t rows, uint64_t cols, int q8, char *err) {
    if (!(q8 && rows && cols % 32 == 0)) {
        tempo_gguf_put_tensor(w, name, WEIGHT_F32, rows, cols, x);
        return 0;
    }
    uint8_t *blocks = malloc(tempo_row_bytes(WEIGHT_Q8_0, cols) * rows);
    if (!blocks) return tempo_error(err, "out of memory converting %s", name);
    quantize_q8_0(x, (size_t)rows * cols, blocks);
    tempo_gguf_put_tensor(w, name, WEIGHT_Q8_0, rows, cols, blocks);
    free(blocks);
    return 0;
}

typedef struct {
    const char *text;
    int len, id;
} Piece;

static int by_text_then_id(const void *a, const void *b) {
    const Piece *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    int c = memcmp(x->text, y->text, (size_t)x->len);
    return c ? c : x->id - y->id;
}

/* Refuses a vocabulary holding one piece twice: llama.cpp maps text to id
 * and asserts both maps have the same size on load. */
static int unique_pieces(const char *const *text, const int *lens, int V, const char *name, char *err) {
    Piece *p = malloc((size_t)V * sizeof *p);
    if (!p) return tempo_error(err, "out of memory converting a vocabulary");
    for (int i = 0; i < V; i++) p[i] = (Piece){text[i], lens[i], i};
    qsort(p, (size_t)V, sizeof *p, by_text_then_id);
    int rc = 0;
    for (int i = 1; i < V && rc == 0; i++)
        if (p[i].len == p[i - 1].len && memcmp(p[i].text, p[i - 1].text, (size_t)p[i].len) == 0)
            rc = tempo_error(err, "tokenizer %s has pieces %d and %d both \"%.*s\": a GGUF vocabulary needs each piece once (llama.cpp refuses it)",
                             name, p[i - 1].id, p[i].id, p[i].len, p[i].text);
    free(p);
    return rc;
}

/* tokenizer.bin pieces as a GGUF sentencepiece vocabulary: spaces as U+2581;
 * 0 unknown, 1 and 2 control, <0xNN> at 3..258 bytes. */
static int copy_vocab(GgufWriter *w, const Tokenizer *t, const char *name, char *err) {
    int V = t->vocab_size, rc = 0;
    char **text = calloc((size_t)V, sizeof *text);
    int *lens = calloc((size_t)V, sizeof *lens);
    int32_t *types = calloc((size_t)V, sizeof *types);
    for (int i = 0; text && lens && types && i < V && rc == 0; i++) {
        char byte_token[8];
        snprintf(byte_token, sizeof byte_token, "<0x%02X>", (i - 3) & 0xff);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 && strcmp(t->pieces[i], byte_token) == 0 ? 6 : 1;
        if (!(text[i] = malloc(3 * (size_t)t->piece_len[i] + 1))) rc = -1;
        for (int k = 0; text[i] && k < t->piece_len[i]; k++) {
            int space = t->pieces[i][k] == ' ';
            memcpy(text[i] + lens[i], space ? "\xe2\x96\x81" : &t->pieces[i][k], space ? 3 : 1);
            lens[i] += space ? 3 : 1;
        }
    }
    if (!text || !lens || !types || rc != 0) rc = tempo_error(err, "out of memory converting a vocabulary");
    if (rc == 0) rc = unique_pieces((const char *const *)text, lens, V, name, err);
    if (rc == 0) {
        tempo_gguf_put_string(w, "tokenizer.ggml.model", "llama");
        tempo_gguf_put_strings(w, "tokenizer.ggml.tokens", (uint64_t)V, (const char *const *)text, lens);
        tempo_gguf_put_f32s(w, "tokenizer.ggml.scores", (uint64_t)V, t->scores);
        tempo_gguf_put_i32s(w, "tokenizer.ggml.token_type", (uint64_t)V, types);
        tempo_gguf_put_u32(w, "tokenizer.ggml.bos_token_id", TEMPO_BOS);
        tempo_gguf_put_u32(w, "tokenizer.ggml.eos_token_id", TEMPO_EOS);
    }
    for (int i = 0; text && i < V; i++) free(text[i]);
    free(text), free(lens), free(types);
    return rc;
}

/* Every tensor of a loaded model whose matrices are all f32 (tempo_model_f32_copy), in GGUF names. */
static int copy_tensors(GgufWriter *w, Model *m, int q8, char *err) {
    const Config *c = &m->config;
    uint64_t D = (uint64_t)c->dim, V = (uint64_t)c->vocab_size;
    int rc = put_copy(w, "token_embd.weight", m->weights.token_embedding.data, V, D, q8, err);
    for (int l = 0; l < c->n_layers && rc == 0; l++)
        for (int i = 0; i < N_LAYER_TENSORS && rc == 0; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lt->gguf_name);
            uint64_t rows = lt->cols == UNIT_NONE ? 0 : tempo_unit(c, lt->rows);
            uint64_t cols = lt->cols == UNIT_NONE ? tempo_unit(c, lt->rows) : tempo_unit(c, lt->cols);
            const float *x = lt->cols == UNIT_NONE ? *tempo_layer_vector(&m->weights, l, i) : tempo_layer_matrix(&m->weights, l, i)->data;
            rc = put_copy(w, name, x, rows, cols, q8, err);
        }
    if (rc == 0) rc = put_copy(w, "output_norm.weight", m->weights.rms_final, 0, D, q8, err);
    if (rc == 0 && !c->shared_classifier) rc = put_copy(w, "output.weight", m->weights.wcls.data, V, D, q8, err);
    return rc;
}

/* Refuses what is not a llama2.c checkpoint: converted by copying, a
 * Hugging Face directory (q/k rows in rotate_half order, RoPE scaling in
 * config.json) or a GGUF would become another model. */
static int llama2c_input(const char *checkpoint, char *err) {
    struct stat st;
    char magic[4] = {0};
    if (stat(checkpoint, &st) == 0 && S_ISDIR(st.st_mode))
        return tempo_error(err, "convert reads a llama2.c checkpoint; %s is a Hugging Face directory: use llama.cpp's convert_hf_to_gguf.py",
                           checkpoint);
    FILE *f = fopen(checkpoint, "rb");
    int gguf = f && tempo_is_gguf(magic, fread(magic, 1, 4, f));
    if (f) fclose(f);
    if (gguf) return tempo_error(err, "convert reads a llama2.c checkpoint; %s is a GGUF file already: nothing to convert", checkpoint);
    return 0;
}

int tempo_convert_gguf(const char *checkpoint, const char *tokenizer, int q8, const char *path, char *err) {
    Model loaded, m;
    Tokenizer t;
    if (llama2c_input(checkpoint, err) != 0 || tempo_model_load(&loaded, checkpoint, err) != 0) return -1;
    int copied = tempo_model_f32_copy(&loaded, &m, err); /* every matrix as f32, whatever its stored type */
    tempo_model_free(&loaded);
    if (copied != 0) return -1;
    if (tempo_tokenizer_load(&t, tokenizer, m.config.vocab_size, err) != 0) {
        tempo_model_free(&m);
        return -1;
    }
    GgufWriter w;
    tempo_gguf_writer_init(&w, 32);
    put_llama_metadata(&w, &m.config, q8 ? WEIGHT_Q8_0 : WEIGHT_F32);
    int rc = t.kind == TOKENIZER_SENTENCEPIECE ? 0 : tempo_error(err, "tokenizer %s is not a tokenizer.bin", tokenizer);
    if (rc == 0) rc = copy_vocab(&w, &t, tokenizer, err);
    if (rc == 0) rc = copy_tensors(&w, &m, q8, err);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    if (rc != 0) {
        tempo_gguf_writer_free(&w);
        return -1;
    }
    return write_gguf(&w, path, err);
}
