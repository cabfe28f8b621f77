/* bench.c - `make bench`: how fast tempo is, next to what the machine can do.
 *
 *   build/bench [--weights DIR] [--large FILE] [--threads N] [--json FILE]
 *
 * Measures the machine's OpenBLAS sgemm GFLOP/s and sgemv GB/s, then for
 * each model (each in a child process, so its peak RSS is its own): greedy
 * decode tokens/s, prefill tokens/s over 32/128/512 rows, TEMPO steps/s in
 * isolated and visible mode, the cost of a k-row step against a 1-row step,
 * and the cost of capturing attention. Prints a table and writes JSON. */
#define _GNU_SOURCE
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../formats/formats.h"
#include "../tools/synth.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

/* Best sgemm GFLOP/s over square sizes. */
static double measure_sgemm(void) {
    double best = 0;
    int sizes[] = {1024, 2048};
    for (int s = 0; s < 2; s++) {
        int n = sizes[s];
        float *a = random_floats((size_t)n * n, 1), *b = random_floats((size_t)n * n, 2), *c = malloc((size_t)n * n * 4);
        for (int rep = 0; rep < 4; rep++) {
            double t = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            t = now() - t;
            if (rep > 0 && 2.0 * n * n * n / t / 1e9 > best) best = 2.0 * n * n * n / t / 1e9;
        }
        free(a); free(b); free(c);
    }
    return best;
}

/* Best sgemv GB/s on a 256 MB matrix (far larger than the last-level cache). */
static double measure_sgemv(void) {
    int rows = 8192, cols = 8192;
    float *w = random_floats((size_t)rows * cols, 3), *x = random_floats(cols, 4), *y = malloc(rows * 4);
    double best = 0;
    for (int rep = 0; rep < 6; rep++) {
        double t = now();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1, w, cols, x, 1, 0, y, 1);
        t = now() - t;
        if (rep > 0 && (double)rows * cols * 4 / t / 1e9 > best) best = (double)rows * cols * 4 / t / 1e9;
    }
    free(w); free(x); free(y);
    return best;
}

static void check(int rc, const char *what, const char *err) {
    if (rc != 0) {
        fprintf(stderr, "bench: %s: %s\n", what, err);
        exit(1);
    }
}

static int argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (p[i] > p[best]) best = i;
    return best;
}

/* Greedy decode of `steps` tokens after a 4-token prompt; returns tokens/s. */
static double bench_decode(const Model *m, int steps, int *done) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int prompt[4] = {1, 5 % c->vocab_size, 17 % c->vocab_size, 42 % c->vocab_size};
    if (steps > c->seq_len - 4) steps = c->seq_len - 4;
    State s;
    check(tempo_state_init(&s, c, 4 + steps, err), "state", err);
    float *logits = malloc((size_t)4 * c->vocab_size * sizeof(float));
    uint8_t *allowed = malloc((size_t)(4 + steps) * 4);
    int pos[4] = {0, 1, 2, 3};
    tempo_mask_rows(MASK_CAUSAL, pos, 0, 4, allowed);
    Outputs out = {logits, NULL, NULL};
    check(tempo_forward(m, &s, 4, prompt, pos, allowed, 1, out, err), "prefill", err);
    int token = argmax(logits + 3 * c->vocab_size, c->vocab_size);
    memset(allowed, 1, (size_t)(4 + steps));
    double t = now();
    for (int i = 0; i < steps; i++) {
        int p = 4 + i;
        check(tempo_forward(m, &s, 1, &token, &p, allowed, 1, out, err), "decode", err);
        token = argmax(logits, c->vocab_size);
    }
    t = now() - t;
    *done = steps;
    free(logits); free(allowed);
    tempo_state_free(&s);
    return steps / t;
}

/* One full forward over n rows, best of a few; returns seconds. */
static double time_prefill(const Model *m, int n, int capture) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int *tokens = malloc(n * sizeof(int)), *pos = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) tokens[i] = (i * 7919 + 1) % c->vocab_size, pos[i] = i;
    uint8_t *allowed = malloc((size_t)n * n);
    tempo_mask_rows(MASK_CAUSAL, pos, 0, n, allowed);
    float *logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    float *att = capture ? malloc((size_t)c->n_layers * c->n_heads * n * n * sizeof(float)) : NULL;
    Outputs out = {logits, NULL, att};
    double best = 1e30, total = 0;
    for (int rep = 0; rep < 20 && (rep < 3 || total < 0.5); rep++) {
        double t = now();
        check(tempo_forward_full(m, n, tokens, pos, allowed, 1, out, err), "prefill", err);
        t = now() - t;
        total += t;
        if (t < best) best = t;
    }
    free(tokens); free(pos); free(allowed); free(logits); free(att);
    return best;
}

/* Time of appending k rows (one parallel set) after 64 cached rows, best of many. */
static double time_step(const Model *m, int k) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int base = 64, n = base + k;
    int *tokens = malloc(n * sizeof(int)), *pos = malloc(n * sizeof(int)), *sets = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) tokens[i] = (i * 131 + 3) % c->vocab_size, pos[i] = sets[i] = i < base ? i : base;
    uint8_t *allowed = malloc((size_t)n * n);
    float *logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    State s;
    check(tempo_state_init(&s, c, n, err), "state", err);
    tempo_mask_rows(MASK_CAUSAL, pos, 0, base, allowed);
    Outputs out = {logits, NULL, NULL};
    check(tempo_forward(m, &s, base, tokens, pos, allowed, 1, out, err), "prefix", err);
    tempo_mask_rows(MASK_ISOLATED, sets, base, k, allowed);
    double best = 1e30;
    for (int rep = 0; rep < 200; rep++) {
        s.n_rows = base; /* drop the set again: the cache rows are rewritten */
        double t = now();
        check(tempo_forward(m, &s, k, tokens + base, pos + base, allowed, 1, out, err), "step", err);
        t = now() - t;
        if (t < best) best = t;
    }
    tempo_state_free(&s);
    free(tokens); free(pos); free(sets); free(allowed); free(logits);
    return best;
}

typedef struct { double seconds; int steps, rows; } TempoTiming;

static TempoTiming time_tempo(const Model *m, const int *prompt, int n_prompt, MaskKind mode, int capture, int steps) {
    char err[TEMPO_ERR_SIZE];
    GenConfig g;
    tempo_gen_defaults(&g, &m->config);
    g.threshold = 0.05f;
    g.max_steps = steps;
    g.mode = mode;
    g.capture_attention = capture;
    TempoTiming best = {1e30, 0, 0};
    for (int rep = 0; rep < 3; rep++) {
        Generation gen;
        check(tempo_generate(m, prompt, n_prompt, &g, &gen, err), "tempo", err);
        double t = gen.total_seconds - gen.prefill_seconds;
        if (t < best.seconds) best = (TempoTiming){t, gen.n_steps, gen.n_rows - gen.n_prompt};
        tempo_generation_free(&gen);
    }
    return best;
}

/* Replays a run's steps (same rows, same set sizes) with the mask of
 * `kind`: the two modes then differ only in the mask. Best of 5, seconds. */
static double time_replay(const Model *m, const Generation *run, MaskKind kind) {
    char err[TEMPO_ERR_SIZE];
    int n = run->n_rows;
    uint8_t *allowed = malloc((size_t)n * n);
    float *logits = malloc((size_t)n * m->config.vocab_size * sizeof(float));
    Outputs out = {logits, NULL, NULL};
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        State s;
        check(tempo_state_init(&s, &m->config, n, err), "state", err);
        tempo_mask_rows(MASK_CAUSAL, run->sets, 0, run->n_prompt, allowed);
        check(tempo_forward(m, &s, run->n_prompt, run->tokens, run->positions, allowed, 1, out, err), "replay", err);
        double t = now();
        for (int first = run->n_prompt; first < n;) {
            int k = 1;
            while (first + k < n && run->sets[first + k] == run->sets[first]) k++;
            tempo_mask_rows(kind, run->sets, first, k, allowed);
            check(tempo_forward(m, &s, k, run->tokens + first, run->positions + first, allowed, 1, out, err), "replay", err);
            first += k;
        }
        t = now() - t;
        if (t < best) best = t;
        tempo_state_free(&s);
    }
    free(allowed);
    free(logits);
    return best;
}

/* Weights bytes read per decoded token and matmul FLOPs per prefill token. */
static void model_costs(const Config *c, double *bytes, double *flops_per_token) {
    double L = c->n_layers, d = c->dim, h = c->hidden_dim, q = (double)c->n_heads * c->head_dim;
    double kv = (double)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    double params = L * (d * q * 2 + d * kv * 2 + 3 * d * h) + V * d; /* every matrix + the classifier */
    *bytes = params * 4 + (L * 2 + 1) * d * 4 + d * 4; /* + norms + one embedding row */
    *flops_per_token = 2 * params;
}

/* The memory child: greedy decode and a TEMPO run as `tempo generate`
 * does them (logits of the newest rows only, no attention capture). */
static int rss_model(const char *path, int threads) {
    char err[TEMPO_ERR_SIZE];
    if (threads > 0) tempo_set_threads(threads);
    Model m;
    check(tempo_model_load(&m, path, err), path, err);
    int ids[4] = {1, 5 % m.config.vocab_size, 17 % m.config.vocab_size, 42 % m.config.vocab_size};
    int steps = m.config.seq_len - 4 < 256 ? m.config.seq_len - 4 : 256;
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.keep_logits = 0;
    g.max_steps = steps;
    g.threshold = 1.0f;
    Generation gen;
    check(tempo_generate(&m, ids, 4, &g, &gen, err), "decode", err);
    tempo_generation_free(&gen);
    g.threshold = 0.05f;
    check(tempo_generate(&m, ids, 4, &g, &gen, err), "tempo", err);
    size_t kv = (size_t)(4 + steps * g.max_width) * m.config.n_layers * m.config.n_kv_heads * m.config.head_dim * 2 * sizeof(float);
    printf("{\"kv_cache_bytes\": %zu, \"rows\": %d}\n", kv, gen.n_rows);
    tempo_generation_free(&gen);
    tempo_model_free(&m);
    return 0;
}

/* The child: measures one model and prints one JSON object on stdout. */
static int bench_model(const char *path, const char *tokenizer, const char *prompt_text, int threads) {
    char err[TEMPO_ERR_SIZE];
    if (threads > 0) tempo_set_threads(threads);
    Model m;
    check(tempo_model_load(&m, path, err), path, err);
    const Config *c = &m.config;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", path);
    struct stat st;
    char file[4200];
    snprintf(file, sizeof file, "%s/model.safetensors", path); /* a Hugging Face directory */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) stat(file, &st);
    cJSON_AddNumberToObject(o, "checkpoint_bytes", (double)st.st_size);
    int decoded;
    double decode = bench_decode(&m, 256, &decoded);
    cJSON_AddNumberToObject(o, "decode_tokens", decoded);
    cJSON_AddNumberToObject(o, "decode_tok_s", decode);
    double bytes, flops;
    model_costs(c, &bytes, &flops);
    cJSON_AddNumberToObject(o, "bytes_per_token", bytes);
    cJSON_AddNumberToObject(o, "flops_per_token", flops);
    cJSON *prefill = cJSON_AddObjectToObject(o, "prefill_tok_s");
    int sizes[] = {32, 128, 512};
    for (int i = 0; i < 3; i++) {
        if (sizes[i] > c->seq_len) continue;
        char key[16];
        snprintf(key, sizeof key, "%d", sizes[i]);
        cJSON_AddNumberToObject(prefill, key, sizes[i] / time_prefill(&m, sizes[i], 0));
    }
    int n_cap = c->seq_len < 128 ? c->seq_len : 128;
    double off = time_prefill(&m, n_cap, 0), on = time_prefill(&m, n_cap, 1);
    cJSON_AddNumberToObject(o, "capture_ratio_prefill", on / off);
    cJSON *steps = cJSON_AddObjectToObject(o, "step_seconds");
    double one = time_step(&m, 1);
    for (int k = 1; k <= 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        cJSON_AddNumberToObject(steps, key, k == 1 ? one : time_step(&m, k));
    }
    /* TEMPO: a prompt that runs long on the real models, ids for synthetic ones */
    int ids[512], n_ids = 0;
    Tokenizer tok;
    if (tokenizer && tempo_tokenizer_load(&tok, tokenizer, c->vocab_size, err) == 0) {
        check(tempo_encode(&tok, prompt_text, ids, 512, &n_ids, err), "encode", err);
        tempo_tokenizer_free(&tok);
    } else {
        n_ids = 4;
        ids[0] = 1; ids[1] = 5 % c->vocab_size; ids[2] = 17 % c->vocab_size; ids[3] = 42 % c->vocab_size;
    }
    int max_steps = c->seq_len - n_ids < 64 ? c->seq_len - n_ids : 64;
    time_tempo(&m, ids, n_ids, MASK_VISIBLE, 0, max_steps); /* warm-up */
    TempoTiming iso = {1e30, 0, 0}, vis = {1e30, 0, 0};
    for (int round = 0; round < 3; round++) { /* alternate the modes, keep each one's best */
        TempoTiming a = time_tempo(&m, ids, n_ids, MASK_ISOLATED, 0, max_steps);
        TempoTiming b = time_tempo(&m, ids, n_ids, MASK_VISIBLE, 0, max_steps);
        if (a.seconds < iso.seconds) iso = a;
        if (b.seconds < vis.seconds) vis = b;
    }
    TempoTiming cap = time_tempo(&m, ids, n_ids, MASK_ISOLATED, 1, max_steps);
    cJSON_AddNumberToObject(o, "tempo_steps_isolated", iso.steps);
    cJSON_AddNumberToObject(o, "tempo_rows_isolated", iso.rows);
    cJSON_AddNumberToObject(o, "tempo_steps_s_isolated", iso.steps / iso.seconds);
    cJSON_AddNumberToObject(o, "tempo_rows_s_isolated", iso.rows / iso.seconds);
    GenConfig g;
    tempo_gen_defaults(&g, c);
    g.threshold = 0.05f;
    g.max_steps = max_steps;
    Generation run;
    check(tempo_generate(&m, ids, n_ids, &g, &run, err), "tempo", err);
    double replay_iso = 1e30, replay_vis = 1e30;
    for (int round = 0; round < 3; round++) {
        double a = time_replay(&m, &run, MASK_ISOLATED), b = time_replay(&m, &run, MASK_VISIBLE);
        if (a < replay_iso) replay_iso = a;
        if (b < replay_vis) replay_vis = b;
    }
    tempo_generation_free(&run);
    cJSON_AddNumberToObject(o, "isolated_visible_ratio_same_rows", replay_iso / replay_vis);
    cJSON_AddNumberToObject(o, "tempo_steps_visible", vis.steps);
    cJSON_AddNumberToObject(o, "tempo_rows_visible", vis.rows);
    cJSON_AddNumberToObject(o, "tempo_steps_s_visible", vis.steps / vis.seconds);
    cJSON_AddNumberToObject(o, "tempo_rows_s_visible", vis.rows / vis.seconds);
    /* free-running, per row, since the two modes may choose different sets */
    cJSON_AddNumberToObject(o, "isolated_visible_ratio_free", (iso.seconds / iso.rows) / (vis.seconds / vis.rows));
    cJSON_AddNumberToObject(o, "capture_ratio_tempo", (cap.seconds / cap.rows) / (iso.seconds / iso.rows));
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    tempo_model_free(&m);
    return 0;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return v ? v->valuedouble : NAN;
}

/* Runs the child for one model, returns its JSON with peak RSS added. */
static cJSON *run_child(const char *self, const char *mode, const char *path, const char *tok, const char *prompt, int threads) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        execl(self, self, mode, path, tok ? tok : "-", prompt, th, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    static char buf[1 << 16];
    size_t len = 0;
    ssize_t got;
    while ((got = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)got;
    close(pipefd[0]);
    buf[len] = '\0';
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return NULL;
    cJSON *o = cJSON_Parse(buf);
    if (o) cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)ru.ru_maxrss * 1024);
    return o;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--child") == 0)
        return bench_model(argv[2], strcmp(argv[3], "-") ? argv[3] : NULL, argv[4], atoi(argv[5]));
    if (argc == 6 && strcmp(argv[1], "--rss") == 0) return rss_model(argv[2], atoi(argv[5]));
    const char *weights = "../shared/weights", *large = "build/bench-large.bin", *json = "bench.json";
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (argc % 2 == 0) {
        fprintf(stderr, "usage: bench [--weights DIR] [--large FILE] [--threads N] [--json FILE]\n");
        return 1;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--weights") == 0) weights = argv[i + 1];
        else if (strcmp(argv[i], "--large") == 0) large = argv[i + 1];
        else if (strcmp(argv[i], "--json") == 0) json = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else { fprintf(stderr, "bench: unknown flag %s\n", argv[i]); return 1; }
    }
    if (threads < 1) { fprintf(stderr, "bench: --threads must be >= 1\n"); return 1; }
    tempo_set_threads(threads);
    double t0 = now();
    double gflops = measure_sgemm(), gbs = measure_sgemv();
    printf("machine: %d threads, OpenBLAS sgemm %.1f GFLOP/s (square 1024-2048), sgemv %.2f GB/s (256 MB matrix)\n\n", threads,
           gflops, gbs);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "threads", threads);
    cJSON_AddNumberToObject(root, "sgemm_gflops", gflops);
    cJSON_AddNumberToObject(root, "sgemv_gbs", gbs);
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    char paths[4][4096], toks[3][4096];
    snprintf(paths[0], sizeof paths[0], "%s/fortune.bin", weights);
    snprintf(toks[0], sizeof toks[0], "%s/fortune-tok512.bin", weights);
    snprintf(paths[1], sizeof paths[1], "%s/stories260K.bin", weights);
    snprintf(toks[1], sizeof toks[1], "%s/tok512.bin", weights);
    snprintf(paths[2], sizeof paths[2], "%s/stories260K-hf", weights);
    snprintf(toks[2], sizeof toks[2], "%s/tok512.bin", weights);
    snprintf(paths[3], sizeof paths[3], "%s", large);
    const char *prompts[4] = {"Q: Why did the chicken", "Once upon a time", "Once upon a time", "-"};
    printf("%-22s %9s %7s %9s %9s %9s %7s %8s %8s %8s %7s %6s %6s %6s %7s %7s %9s\n", "model", "decode/s", "of-gemv", "pre32/s",
           "pre128/s", "pre512/s", "of-gemm", "steps/s", "rows/s", "vis st/s", "iso/vis", "k2/k1", "k3/k1", "k4/k1", "cap-pre", "cap-gen",
           "RSS-MB");
    for (int i = 0; i < 4; i++) {
        cJSON *o = run_child(argv[0], "--child", paths[i], i < 3 ? toks[i] : NULL, prompts[i], threads);
        cJSON *mem = run_child(argv[0], "--rss", paths[i], NULL, "-", threads);
        if (!o || !mem) {
            fprintf(stderr, "bench: measuring %s failed\n", paths[i]);
            return 1;
        }
        cJSON_DeleteItemFromObject(o, "peak_rss_bytes"); /* the measuring child holds benchmark buffers */
        cJSON_AddNumberToObject(o, "peak_rss_bytes", num(mem, "peak_rss_bytes"));
        cJSON_AddNumberToObject(o, "kv_cache_bytes", num(mem, "kv_cache_bytes"));
        cJSON_Delete(mem);
        double decode_bound = gbs * 1e9 / num(o, "bytes_per_token");
        cJSON *pre = cJSON_GetObjectItem(o, "prefill_tok_s"), *st = cJSON_GetObjectItem(o, "step_seconds");
        double p512 = num(pre, "512"), gemm_frac = p512 * num(o, "flops_per_token") / (gflops * 1e9);
        cJSON_AddNumberToObject(o, "decode_fraction_of_sgemv_bound", num(o, "decode_tok_s") / decode_bound);
        cJSON_AddNumberToObject(o, "prefill512_fraction_of_sgemm", gemm_frac);
        const char *base = strrchr(paths[i], '/');
        printf("%-22s %9.0f %6.0f%% %9.0f %9.0f %9.0f %6.0f%% %8.0f %8.0f %8.0f %7.3f %6.2f %6.2f %6.2f %7.2f %7.2f %5.0f/%.0f\n",
               base ? base + 1 : paths[i], num(o, "decode_tok_s"), 100 * num(o, "decode_tok_s") / decode_bound, num(pre, "32"),
               num(pre, "128"), p512, 100 * gemm_frac, num(o, "tempo_steps_s_isolated"), num(o, "tempo_rows_s_isolated"),
               num(o, "tempo_steps_s_visible"), num(o, "isolated_visible_ratio_same_rows"), num(st, "2") / num(st, "1"), num(st, "3") / num(st, "1"),
               num(st, "4") / num(st, "1"), num(o, "capture_ratio_prefill"), num(o, "capture_ratio_tempo"),
               num(o, "peak_rss_bytes") / 1048576, (num(o, "checkpoint_bytes") + num(o, "kv_cache_bytes")) / 1048576);
        cJSON_AddItemToArray(models, o);
    }
    printf("\nof-gemv: decode tokens/s as a share of (sgemv GB/s / weight bytes per token); of-gemm: prefill over 512 rows\n"
           "as a share of sgemm FLOP/s (2 x parameters per token); steps/s, rows/s: TEMPO at threshold 0.05, isolated;\n"
           "vis st/s: the same in visible mode; iso/vis: the same TEMPO rows replayed with the isolated mask / with the\n"
           "visible mask; "
           "kN/k1: a step adding N rows / a 1-row step; cap-*: time with attention capture / without;\n"
           " RSS-MB: peak resident of a decode + TEMPO run / (checkpoint + KV cache).\n");
    cJSON_AddNumberToObject(root, "seconds", now() - t0);
    char *text = cJSON_Print(root), err[TEMPO_ERR_SIZE];
    if (!text || tempo_write_text_file(json, text, err) != 0) {
        fprintf(stderr, "bench: cannot write %s\n", json);
        return 1;
    }
    printf("wrote %s (%.0f s)\n", json, now() - t0);
    free(text);
    cJSON_Delete(root);
    return 0;
}
