/* synth_gguf.h - writing GGUF files: a small writer, synthetic llama
 * models of every stored type, and llama2.c checkpoints converted by
 * copying their tensors. */
#ifndef TEMPO_SYNTH_GGUF_H
#define TEMPO_SYNTH_GGUF_H

#include "../formats/gguf.h"
#include "synth.h"

/* A GGUF file built in memory: metadata, tensor infos and data grow as they are added. */
typedef struct {
    uint8_t *meta, *infos, *data;
    size_t meta_len, infos_len, data_len, meta_cap, infos_cap, data_cap;
    uint64_t n_kv, n_tensors;
    uint32_t alignment;
    int failed;               /* out of memory: finishing reports it */
} GgufWriter;

void tempo_gguf_writer_init(GgufWriter *w, uint32_t alignment);
void tempo_gguf_writer_free(GgufWriter *w);
void tempo_gguf_put_u32(GgufWriter *w, const char *key, uint32_t v);
void tempo_gguf_put_f32(GgufWriter *w, const char *key, float v);
void tempo_gguf_put_bool(GgufWriter *w, const char *key, int v);
void tempo_gguf_put_string(GgufWriter *w, const char *key, const char *v);
void tempo_gguf_put_strings(GgufWriter *w, const char *key, uint64_t n, const char *const *v, const int *lens);
void tempo_gguf_put_f32s(GgufWriter *w, const char *key, uint64_t n, const float *v);
void tempo_gguf_put_i32s(GgufWriter *w, const char *key, uint64_t n, const int32_t *v);
/* A tensor of `rows` rows of `cols` values (rows 0: a vector), stored as t. */
void tempo_gguf_put_tensor(GgufWriter *w, const char *name, WeightType t, uint64_t rows, uint64_t cols, const void *data);
/* The whole file (version 3) into a new buffer *out of *len bytes; the caller frees it. */
int tempo_gguf_finish(GgufWriter *w, uint8_t **out, size_t *len, char *err);

typedef enum { GGUF_VOCAB_SPM, GGUF_VOCAB_BPE } GgufVocab;

/* A synthetic llama model: matrices stored as `dtype` (K-quant files put
 * output.weight and layer 0's ffn_down in Q6_K, as Q4_K_M/Q5_K_M do), norms
 * F32, llama3 RoPE factors in rope_freqs.weight, and a vocabulary. dim and
 * hidden_dim must fill the blocks of dtype (256 for K-quants). */
int tempo_synth_write_gguf(const SynthConfig *s, WeightType dtype, GgufVocab vocab, const char *path, char *err);
/* A llama2.c checkpoint and its tokenizer.bin as GGUF: every tensor copied
 * as F32, or as Q8_0 for matrices whose rows are a multiple of 32 (q8 = 1),
 * quantized by rounding as ggml's reference quantizer does. */
int tempo_convert_gguf(const char *checkpoint, const char *tokenizer, int q8, const char *path, char *err);

#endif
