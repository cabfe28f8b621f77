/* synth.h - seeded synthetic models (tools/synth.c). */
#ifndef TEMPO_SYNTH_H
#define TEMPO_SYNTH_H

#include "../formats/formats.h"

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
    uint64_t seed;
    PreTokenizer pre_tokenizer; /* style of the tokenizer.json beside a Hugging Face checkpoint */
} SynthConfig;

void tempo_synth_defaults(SynthConfig *s);
/* The seeded random numbers of every synthetic file: splitmix64, and a standard normal sample (Box-Muller). */
uint64_t tempo_splitmix64(uint64_t *state);
double tempo_normal(uint64_t *state);
/* A llama2.c checkpoint with normal random weights: norms near 1, matrices
 * N(0, 1/fan_in), a classifier giving logits with a standard deviation near 3. */
int tempo_synth_write(const SynthConfig *s, const char *path, char *err);
/* The same in Hugging Face layout: dir/config.json + dir/model.safetensors
 * (f32 or bf16) + dir/tokenizer.json. */
int tempo_synth_write_hf(const SynthConfig *s, const char *dir, int bf16, char *err);
/* A bf16 Hugging Face checkpoint of shape s whose weights are a hole in a
 * sparse file (all zeros, nothing on disk): dir/config.json +
 * dir/model.safetensors. Big models' memory and speed, without their bytes. */
int tempo_synth_write_sparse_hf(const SynthConfig *s, const char *dir, char *err);
/* A byte-level BPE tokenizer.json trained on a built-in text: Llama 3 style
 * (BOS added by the template, two EOS) or GPT-2 style (one token for both,
 * nothing added). Reports the special ids for config.json. */
int tempo_synth_tokenizer_json(const SynthConfig *s, const char *path, int *bos, int eos[2], int *n_eos, char *err);
/* The same tokenizer.json as text in memory (*json, the caller frees it): nothing written. */
int tempo_synth_tokenizer_text(const SynthConfig *s, char **json, int *bos, int eos[2], int *n_eos, char *err);
/* Refuses (one line naming both sizes) a file of `bytes` bytes at `out` that exceeds the free space
 * (statvfs f_bavail * f_frsize) of the file system it would go to; 0 when it fits or out is no file (a pipe). */
int tempo_check_free_space(const char *out, uint64_t bytes, char *err);

/* An in-memory copy of a model with every tensor converted to f32 up front
 * (owned by dst; free with tempo_model_free): the reference that weights
 * kept in their stored type must match bitwise, and the bench's f32 twin. */
int tempo_model_f32_copy(const Model *src, Model *dst, char *err);

#endif
