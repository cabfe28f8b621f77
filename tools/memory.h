/* memory.h - refusing what will not fit (tools/memory.c): the bytes a
 * command will hold, against the memory the kernel says is available. */
#ifndef TEMPO_MEMORY_H
#define TEMPO_MEMORY_H

#include "../tempo.h"

/* Bytes of the model that become resident as it runs: its mapped files and
 * the values it converted (a copied file is resident already, and outside
 * MemAvailable). */
size_t tempo_model_resident_bytes(const Model *m);
/* Bytes a State (tempo.h) of `capacity` rows holds once a forward of `rows`
 * new rows has run with `kern`: the KV cache and the scratch that
 * tempo_state_init and tempo_forward allocate. */
size_t tempo_state_bytes(const Config *c, const Kernels *kern, int capacity, int rows);
/* Bytes tempo_generate holds for n_prompt rows under g (its cache, rows,
 * logits and kept attention), plus the trace written from it (masks as bits). */
size_t tempo_generation_bytes(const Model *m, const GenConfig *g, int n_prompt, int trace);
/* 0 if `need` bytes fit in `available`; else -1 and one line naming the
 * command, the size, what is available, and the flags that shrink it. */
int tempo_memory_fits(size_t need, size_t available, const char *what, const char *shrink, char *err);
/* tempo_memory_fits against MemAvailable (unreadable: not checked). */
int tempo_memory_check(size_t need, const char *what, const char *shrink, char *err);

#endif
