/* files.c - reading whole files, and writing files atomically (to a
 * temporary name, renamed into place when complete). */
#define _GNU_SOURCE
#include "formats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tempo_read_file(const char *path, const char *what, unsigned char **buf, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return tempo_error(err, "cannot open %s %s: %s", what, path, strerror(errno));
    size_t cap = 0;
    *buf = NULL;
    *len = 0;
    for (;;) {
        if (tempo_grow((void **)buf, &cap, *len + 65536, 1, err) != 0) {
            fclose(f);
            free(*buf);
            return -1;
        }
        size_t got = fread(*buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(*buf);
        return tempo_error(err, "cannot read %s %s", what, path);
    }
    return 0;
}

int tempo_atomic_open(AtomicFile *a, const char *path, const char *what, char *err) {
    a->what = what;
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", path, (int)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return tempo_error(err, "cannot write %s%s: %s", what, path, strerror(errno));
    return 0;
}

int tempo_atomic_close(AtomicFile *a, int ok, char *err) {
    if (ferror(a->f)) ok = 0;
    if (fclose(a->f) != 0) ok = 0;
    a->f = NULL;
    if (!ok || rename(a->tmp, a->path) != 0) {
        int e = errno;
        unlink(a->tmp);
        return tempo_error(err, "cannot write %s%s: %s", a->what, a->path, e ? strerror(e) : "write failed");
    }
    return 0;
}

int tempo_write_text_file(const char *path, const char *text, char *err) {
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    return tempo_atomic_close(&a, fputs(text, a.f) >= 0, err);
}
