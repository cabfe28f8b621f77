/* Shared helpers for the Criterion suite: where files are, loading models
 * with a clear failure when one is missing, running the CLI. */
#ifndef TEMPO_TEST_HELPERS_H
#define TEMPO_TEST_HELPERS_H

#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../formats/formats.h"
#include "../tools/synth.h"

#ifndef WEIGHTS_DIR
#define WEIGHTS_DIR "../shared/weights"
#endif
#ifndef BUILD_DIR
#define BUILD_DIR "build"
#endif
#ifndef TEMPO_BIN
#define TEMPO_BIN "./tempo"
#endif
#ifndef GOLDEN_DIR
#define GOLDEN_DIR "oracle/golden"
#endif

/* Path of a real model file; fails the test with a clear message if missing. */
static inline const char *weights_path(const char *file, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", WEIGHTS_DIR, file);
    if (access(buf, R_OK) != 0)
        cr_assert_fail("model file %s is missing: put the shared weights at %s (make WEIGHTS=DIR test)", buf, WEIGHTS_DIR);
    return buf;
}

static inline const char *synth_path(const char *file, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", BUILD_DIR, file);
    if (access(buf, R_OK) != 0) cr_assert_fail("synthetic model %s is missing: run make %s", buf, buf);
    return buf;
}

static inline void load_model(Model *m, const char *path) {
    char err[TEMPO_ERR_SIZE];
    if (tempo_model_load(m, path, err) != 0) cr_assert_fail("cannot load %s: %s", path, err);
}

static inline void load_real(Model *m, const char *file) {
    char buf[4096];
    load_model(m, weights_path(file, buf, sizeof buf));
}

static inline void load_synth(Model *m, const char *file) {
    char buf[4096];
    load_model(m, synth_path(file, buf, sizeof buf));
}

static inline void load_tokenizer(Tokenizer *t, const char *file, int vocab) {
    char buf[4096], err[TEMPO_ERR_SIZE];
    if (tempo_tokenizer_load(t, weights_path(file, buf, sizeof buf), vocab, err) != 0)
        cr_assert_fail("cannot load tokenizer %s: %s", buf, err);
}

/* fortune.bin and its tokenizer (buffers of 4096 bytes); fails clearly if missing. */
static inline void fortune_paths(char *model, char *tok) {
    weights_path("fortune.bin", model, 4096);
    weights_path("fortune-tok512.bin", tok, 4096);
}

/* Scratch files. Criterion runs each test in a process of its own, so
 * /tmp/tempo-test-PID belongs to one test: tests side by side (--jobs 2, or
 * another checkout's suite) share no file. The first scratch_path of a
 * process makes the directory (mkdir succeeds once; later calls see EEXIST)
 * and registers its removal with atexit, which Criterion 2.4's test process
 * runs after a pass, a cr_assert or cr_expect failure or a skip (tried); a
 * crash or a timeout (a signal) leaves it behind. */
static inline void scratch_dir(char dir[64]) { snprintf(dir, 64, "/tmp/tempo-test-%d", (int)getpid()); }

static inline int remove_entry(const char *path, const struct stat *st, int type, struct FTW *walk) {
    (void)st, (void)type, (void)walk;
    remove(path);
    return 0;
}

/* Removes this process's scratch directory and everything in it (an atexit handler). */
static inline void remove_scratch_dir(void) {
    char dir[64];
    scratch_dir(dir);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The path of `name` in this test's scratch directory, made on first use. */
static inline const char *scratch_path(const char *name, char *buf, size_t len) {
    char dir[64];
    scratch_dir(dir);
    if (mkdir(dir, 0700) == 0) cr_assert(atexit(remove_scratch_dir) == 0, "cannot register the removal of %s", dir);
    else cr_assert(errno == EEXIST, "cannot make the scratch directory %s: %s", dir, strerror(errno));
    int n = snprintf(buf, len, "%s/%s", dir, name);
    cr_assert(n >= 0 && (size_t)n < len, "the path of %s in %s does not fit in %zu bytes", name, dir, len);
    return buf;
}

/* A whole file, NUL-terminated; *len (if given) gets its size. The caller frees it. */
static inline char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) cr_assert_fail("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* A JSON file, parsed; the caller deletes it. */
static inline cJSON *read_json_file(const char *path) {
    char *text = read_text_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

/* The sha256 of a file as 64 hex digits (sha256sum), for the goldens' model and tokenizer hashes. */
static inline void file_sha256(const char *path, char sha[65]) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    sha[0] = '\0';
    cr_assert(p && fscanf(p, "%64s", sha) == 1, "cannot run sha256sum on %s", path);
    pclose(p);
}

/* a and b the same float: the same bits, or both NaN. */
static inline int same_value(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

/* Largest |a-b| over n floats; *at receives its index. */
static inline double max_abs_diff(const float *a, const float *b, size_t n, size_t *at) {
    double worst = 0.0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) d = INFINITY;
        if (d > worst) {
            worst = d;
            *at = i;
        }
    }
    return worst;
}

/* Runs a shell command; returns its exit status and what it wrote to
 * stderr (with `with_stdout`, stdout and stderr together). */
static inline int run_command_capture(const char *cmd, char *stderr_text, size_t len, int with_stdout) {
    static char full[65536];
    char errfile[4096];
    scratch_path("command-output", errfile, sizeof errfile);
    if (with_stdout) snprintf(full, sizeof full, "%s >%s 2>&1", cmd, errfile);
    else snprintf(full, sizeof full, "%s >/dev/null 2>%s", cmd, errfile);
    int status = system(full);
    FILE *f = fopen(errfile, "r");
    size_t got = f ? fread(stderr_text, 1, len - 1, f) : 0;
    stderr_text[got] = '\0';
    if (f) fclose(f);
    unlink(errfile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static inline int run_command(const char *cmd, char *stderr_text, size_t len) {
    return run_command_capture(cmd, stderr_text, len, 0);
}

/* Runs `tempo ARGS`; expects exit status `status`, a single stderr line
 * containing `needle`, and no file at `must_not_exist` (if given). */
static inline void expect_error(const char *args, int status, const char *needle, const char *must_not_exist) {
    char cmd[8192], text[8192];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc = run_command(cmd, text, sizeof text);
    cr_assert_eq(rc, status, "`%s` exited %d, expected %d; stderr: %s", cmd, rc, status, text);
    cr_assert(strstr(text, needle) != NULL, "`%s` stderr lacks \"%s\": %s", cmd, needle, text);
    char *nl = strchr(text, '\n');
    cr_assert(nl && nl[1] == '\0', "`%s` must print exactly one line, got: %s", cmd, text);
    cr_assert(strncmp(text, "tempo", 5) == 0, "the message names tempo: %s", text);
    if (must_not_exist) cr_assert(access(must_not_exist, F_OK) != 0, "`%s` left %s behind", cmd, must_not_exist);
}

/* Full forward over n rows; returns freshly allocated logits and attention. */
static inline void full_forward(const Model *m, int n, const int *tokens, const int *positions, const uint8_t *allowed,
                                int mask_layers, float **logits, float **attention, float **hidden) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    *logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    if (attention) *attention = malloc((size_t)c->n_layers * c->n_heads * n * n * sizeof(float));
    if (hidden) *hidden = malloc((size_t)n * c->dim * sizeof(float));
    Outputs out = {.logits = *logits, .hidden = hidden ? *hidden : NULL, .attention = attention ? *attention : NULL};
    Mask mask = tempo_mask_dense(allowed, mask_layers, 0, n, n);
    if (tempo_forward_full(m, n, tokens, positions, &mask, out, err) != 0)
        cr_assert_fail("forward failed: %s", err);
}

#endif
