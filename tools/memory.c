/* memory.c - refusing what will not fit: a command estimates the bytes it
 * will hold (weights resident, KV cache, captured attention, trace) and
 * checks them against MemAvailable before starting, so that it exits with
 * one line instead of being killed by the kernel. NOTES explains the estimate. */
#include "memory.h"
#include "../formats/formats.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

size_t tempo_model_resident_bytes(const Model *m) {
    size_t bytes = m->converted_bytes;
    for (int i = 0; m->files && i < m->files->n_maps; i++) bytes += m->files->copied[i] ? 0 : m->files->map_sizes[i];
    return bytes;
}

size_t tempo_state_bytes(const Config *c, const Kernels *kern, int capacity, int rows) {
    size_t kv_dim = (size_t)c->n_kv_heads * c->head_dim, q_dim = (size_t)c->n_heads * c->head_dim;
    size_t cache = 2 * (size_t)c->n_layers * capacity * kv_dim, wide = (size_t)c->dim > q_dim ? (size_t)c->dim : q_dim;
    size_t per_row = (size_t)c->dim + wide + 2 * q_dim + 2 * (size_t)c->hidden_dim + (size_t)c->head_dim;
    int widest = (int)(wide > (size_t)c->hidden_dim ? wide : (size_t)c->hidden_dim);
    size_t kernels = kern->matmul_scratch(rows, widest) + kern->attention_scratch(c, rows, capacity);
    return (cache + (size_t)rows * per_row + kernels) * sizeof(float) + (size_t)rows * sizeof(int);
}

/* Floats of the kept attention over rows [from, to): each kept row i pays i+1 keys a kept layer and head. */
static size_t kept_triangle(const AttentionKeep *keep, const Config *c, int from, int to) {
    size_t KLH = (size_t)(keep->layers ? keep->n_layers : c->n_layers) * (keep->heads ? keep->n_heads : c->n_heads), sum = 0;
    for (int j = 0; j < (keep->rows ? keep->n_rows : to); j++) {
        int row = keep->rows ? keep->rows[j] : j;
        if (row >= from && row < to) sum += (size_t)row + 1;
    }
    return KLH * sum;
}

size_t tempo_generation_bytes(const Model *m, const GenConfig *g, int n_prompt, int trace) {
    const Config *c = &m->config;
    const AttentionKeep all = {0}, *keep = g->attention_keep ? g->attention_keep : &all;
    size_t n = (size_t)tempo_generation_capacity(g, c, n_prompt), L = c->n_layers, H = c->n_heads;
    size_t kept = g->capture_attention ? kept_triangle(keep, c, 0, (int)n) : 0; /* grown by doubling: up to twice */
    size_t prompt_batch = g->capture_attention ? kept_triangle(keep, c, 0, n_prompt) * 2 : 0; /* rows x keys, bounded */
    size_t step_batch = (g->prune ? L * H : g->capture_attention ? L * H : 0) * (size_t)g->max_width * n;
    size_t mask_bits = (size_t)tempo_mask_layers(g, c) * n * ((n + 7) / 8); /* the run keeps the rule */
    size_t logits = (g->keep_logits ? n : (size_t)g->max_width + 1) * c->vocab_size * sizeof(float);
    size_t state = tempo_state_bytes(c, m->kernels ? m->kernels : &tempo_plain_kernels, (int)n, n_prompt);
    size_t held = tempo_model_resident_bytes(m) + state + logits + (2 * kept + prompt_batch + step_batch) * sizeof(float);
    return held + (trace ? logits + mask_bits + kept * 2 * sizeof(float) : 0); /* the trace: masks as bits (or the rule), attention */
}

int tempo_memory_fits(size_t need, size_t available, const char *what, const char *shrink, char *err) {
    if (need <= available) return 0;
    return tempo_error(err, "%s would hold about %.1f GB, more than the %.1f GB available (MemAvailable); %s", what,
                       need / 1e9, available / 1e9, shrink);
}

int tempo_memory_check(size_t need, const char *what, const char *shrink, char *err) {
    size_t available;
    char ignored[TEMPO_ERR_SIZE];
    if (tempo_memory_available(&available, ignored) != 0) return 0; /* no /proc: nothing to check against */
    return tempo_memory_fits(need, available, what, shrink, err);
}
