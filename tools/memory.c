/* memory.c - refusing what will not fit: a command estimates the bytes it
 * will hold (weights resident, KV cache, captured attention, trace) and
 * checks them against MemAvailable before starting, so that it exits with
 * one line instead of being killed by the kernel. NOTES explains the estimate. */
#include "memory.h"

#include <stdio.h>
#include <string.h>

size_t tempo_model_resident_bytes(const Model *m) {
    size_t bytes = m->converted_bytes;
    for (int i = 0; i < m->n_maps; i++) bytes += m->map_sizes[i];
    return bytes;
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
