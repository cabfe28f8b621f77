/* scratch_dir.h - a fuzz target's folder under /tmp, removed with all it
 * holds when the target exits (libFuzzer ends a timed run with exit()).
 * Include after _GNU_SOURCE (nftw). */
#ifndef TEMPO_FUZZ_SCRATCH_DIR_H
#define TEMPO_FUZZ_SCRATCH_DIR_H
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static char scratch_dir[] = "/tmp/tempo-fuzz-XXXXXX";

static int scratch_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *at) {
    (void)st; (void)flag; (void)at;
    remove(path); /* files first, then their folders (FTW_DEPTH) */
    return 0;
}

static void scratch_remove(void) { nftw(scratch_dir, scratch_remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* The folder, made once; aborts when /tmp refuses it. */
static const char *scratch_make(void) {
    if (!mkdtemp(scratch_dir) || atexit(scratch_remove) != 0) abort();
    return scratch_dir;
}
#endif
