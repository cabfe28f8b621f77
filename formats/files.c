/* files.c - reading whole files (and MemAvailable), and writing them: a regular file
 * through a temporary name renamed into place when complete, anything
 * else (a device, a FIFO) in place (NOTES "Outputs"). */
#define _GNU_SOURCE
#include "formats.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* SIGPIPE blocked in this thread while an output is open: a FIFO or pipe
 * whose reader left makes write() fail with EPIPE, which is reported,
 * instead of killing tempo without a word. */
static void sigpipe_block(AtomicFile *a) {
    sigset_t pipe_only, before;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigpending(&before);
    a->sigpipe_was_pending = sigismember(&before, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
    a->sigpipe_was_blocked = sigismember(&before, SIGPIPE) == 1;
}

/* Discards a SIGPIPE our writes raised, then unblocks it unless it was blocked before. */
static void sigpipe_restore(AtomicFile *a) {
    sigset_t pipe_only, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1 && !a->sigpipe_was_pending && !a->sigpipe_was_blocked) {
        struct timespec now = {0, 0};
        sigtimedwait(&pipe_only, NULL, &now);
    }
    if (!a->sigpipe_was_blocked) pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL);
}

/* The process's own descriptors (/dev/stdout, /dev/fd/N, /proc/...):
 * written in place, so what the shell opened (a pipe) gets the bytes. */
static int own_descriptor(const char *path) {
    char link[64] = "";
    if (readlink(path, link, sizeof link - 1) < 0) link[0] = '\0';
    return strncmp(path, "/proc/", 6) == 0 || strncmp(path, "/dev/fd/", 8) == 0 || strncmp(link, "/proc/", 6) == 0;
}

/* Where `path` leads: a->path the file to replace (a symlink's target,
 * resolved), a->in_place 1 if it exists and is not a regular file. */
static int output_target(AtomicFile *a, const char *path, mode_t *mode, char *err) {
    struct stat st;
    snprintf(a->path, sizeof a->path, "%s", path);
    a->in_place = own_descriptor(path); /* a pipe's /proc link resolves to no path */
    if (a->in_place) return 0;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char resolved[PATH_MAX];
        if (!realpath(path, resolved))
            return tempo_error(err, "cannot write %s%s: a symbolic link to %s (%s)", a->what, path,
                               errno == ENOENT ? "a missing file" : "a path that does not resolve", strerror(errno));
        snprintf(a->path, sizeof a->path, "%s", resolved);
    }
    if (stat(a->path, &st) != 0) return 0; /* a new name */
    a->in_place = !S_ISREG(st.st_mode);
    *mode = st.st_mode & 07777;
    return 0;
}

int tempo_atomic_open(AtomicFile *a, const char *path, const char *what, char *err) {
    memset(a, 0, sizeof *a);
    a->what = what;
    mode_t mode = 0;
    if (output_target(a, path, &mode, err) != 0) return -1;
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", a->path, (int)getpid());
    a->f = fopen(a->in_place ? a->path : a->tmp, "wb");
    if (!a->f) return tempo_error(err, "cannot write %s%s: %s", what, path, strerror(errno));
    if (mode && !a->in_place) fchmod(fileno(a->f), mode); /* a replaced file keeps its permissions */
    sigpipe_block(a);
    errno = 0;
    return 0;
}

int tempo_atomic_close(AtomicFile *a, int ok, char *err) {
    int failed = ferror(a->f), e = failed ? errno : 0; /* the failed write's reason */
    int closed = fclose(a->f) == 0;                    /* flushes the rest: ENOSPC, EPIPE show here too */
    if (!closed && !e) e = errno;
    a->f = NULL;
    if (failed || !closed) ok = 0;
    if (ok && !a->in_place && rename(a->tmp, a->path) != 0) {
        e = errno;
        ok = 0;
    }
    if (!ok && !a->in_place) unlink(a->tmp); /* no partial file */
    sigpipe_restore(a);
    if (!ok) return tempo_error(err, "cannot write %s%s: %s", a->what, a->path, e ? strerror(e) : "write failed");
    return 0;
}

int tempo_parent_dir(const char *path, char dir[4096]) {
    const char *slash = strrchr(path, '/');
    if (slash && slash - path >= 4096) return -1;
    if (!slash) snprintf(dir, 4096, ".");
    else snprintf(dir, 4096, "%.*s", slash == path ? 1 : (int)(slash - path), path); /* "/x": "/" */
    return 0;
}

int tempo_write_text_file(const char *path, const char *text, char *err) {
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    return tempo_atomic_close(&a, fputs(text, a.f) >= 0, err);
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
