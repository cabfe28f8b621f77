/* memory.c - refusing what will not fit: a command estimates the bytes it
 * will hold (weights resident, KV cache, captured attention, trace) and
 * checks them against MemAvailable before starting, so that it exits with
 * one line instead of being killed by the kernel. NOTES explains the estimate. */
#include "memory.h"
#include "../formats/formats.h"

#include <stdio.h>
#include <string.h>

size_t tempo_model_resident_bytes(const Model *m) {
    size_t bytes = m->converted_bytes;
    for (int i = 0; m->files && i < m->files->n_maps; i++) bytes += m->files->map_sizes[i];
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

int tempo_memory_available(size_t *bytes, char *err) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    *bytes = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    if (f) fclose(f);
    if (!found) return tempo_error(err, "cannot read MemAvailable from /proc/meminfo");
    *bytes = (size_t)kb * 1024;
    return 0;
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
