/* cli.c - the tempo command-line tool: forward, generate, verify, diff,
 * encode, synth. The algorithm lives in tempo.c; this file parses flags,
 * prints and compares. */
#define _GNU_SOURCE
#include "tempo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ===================================================================== */
/* Flags                                                                 */
/* ===================================================================== */

typedef struct {
    int n;
    const char *name[64];
    const char *value[64];   /* NULL for switches */
    int n_positional;
    const char *positional[8];
} Args;

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

/* Splits argv into known flags (with values), switches and positionals. */
static int parse_args(int argc, char **argv, const char *command, const char *const *valued,
                      const char *const *switches, Args *a, char *err) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] == '-' && arg[1] != '\0') {
            if (a->n == 64) return tempo_error(err, "too many flags");
            if (in_list(arg, valued)) {
                if (i + 1 >= argc)
                    return tempo_error(err, "flag %s of tempo %s needs a value", arg, command);
                a->name[a->n] = arg;
                a->value[a->n++] = argv[++i];
            } else if (in_list(arg, switches)) {
                a->name[a->n] = arg;
                a->value[a->n++] = NULL;
            } else {
                return tempo_error(err, "unknown flag %s for tempo %s", arg, command);
            }
        } else {
            if (a->n_positional == 8) return tempo_error(err, "too many arguments");
            a->positional[a->n_positional++] = arg;
        }
    }
    return 0;
}

static const char *flag(const Args *a, const char *name) {
    for (int i = a->n - 1; i >= 0; i--)
        if (strcmp(a->name[i], name) == 0) return a->value[i] ? a->value[i] : "";
    return NULL;
}

static int parse_int(const char *s, const char *what, int lo, int hi, int *out, char *err) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return tempo_error(err, "%s must be an integer in [%d, %d], got '%s'", what, lo, hi, s);
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, const char *what, float *out, char *err) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return tempo_error(err, "%s must be a number, got '%s'", what, s);
    *out = v;
    return 0;
}

/* "1,2,3" -> ids; *n is set to the count. The caller frees *out. */
static int parse_int_list(const char *s, const char *what, int **out, int *n, char *err) {
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int *v = malloc((size_t)cap * sizeof(int));
    if (!v) return tempo_error(err, "out of memory");
    int count = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < -2147483647L || x > 2147483647L || (*end != ',' && *end != '\0')) {
            free(v);
            return tempo_error(err, "%s must be a comma-separated list of integers, got '%s'", what, s);
        }
        v[count++] = (int)x;
        if (*end == '\0') break;
        p = end + 1;
    }
    *out = v;
    *n = count;
    return 0;
}

static int load_model_and_tokenizer(const Args *a, Model *m, Tokenizer *t, int need_tokenizer, char *err) {
    const char *model_path = flag(a, "-m");
    if (!model_path) return tempo_error(err, "missing -m MODEL");
    if (tempo_model_load(m, model_path, err) != 0) return -1;
    memset(t, 0, sizeof *t);
    const char *tok_path = flag(a, "-z");
    if (!tok_path && need_tokenizer) {
        tempo_model_free(m);
        return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    }
    if (tok_path && tempo_tokenizer_load(t, tok_path, m->config.vocab_size, err) != 0) {
        tempo_model_free(m);
        return -1;
    }
    return 0;
}

static void apply_threads(const Args *a) {
    const char *s = flag(a, "--threads");
    int n;
    char ignored[TEMPO_ERR_SIZE];
    if (s && parse_int(s, "--threads", 1, 1024, &n, ignored) == 0) tempo_set_threads(n);
}

/* Prompt ids from --tokens or --prompt (BOS + encoded text). */
static int prompt_ids(const Args *a, const Model *m, const Tokenizer *t, int **ids, int *n, char *err) {
    const char *tokens = flag(a, "--tokens"), *prompt = flag(a, "--prompt");
    if (!prompt) prompt = flag(a, "-p");
    if (tokens && prompt) return tempo_error(err, "give --prompt or --tokens, not both");
    if (tokens) return parse_int_list(tokens, "--tokens", ids, n, err);
    if (!prompt) return tempo_error(err, "missing --prompt TEXT or --tokens IDS");
    if (!t->pieces) return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    int cap = (int)strlen(prompt) + 2;
    *ids = malloc((size_t)cap * sizeof(int));
    if (!*ids) return tempo_error(err, "out of memory");
    if (tempo_encode(t, prompt, *ids, cap, n, err) != 0) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    if (*n > m->config.seq_len) {
        free(*ids);
        *ids = NULL;
        return tempo_error(err, "prompt of %d tokens is longer than the context (seq_len %d)", *n,
                        m->config.seq_len);
    }
    return 0;
}

/* ===================================================================== */
/* tempo forward                                                         */
/* ===================================================================== */

/* A mask file: n lines of n characters '0'/'1' (row = query). */
static int read_mask_file(const char *path, int n, uint8_t *allowed, char *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tempo_error(err, "cannot open mask file %s: %s", path, strerror(errno));
    size_t count = 0;
    int ch, rc = 0;
    while ((ch = fgetc(f)) != EOF && rc == 0) {
        if (ch == '0' || ch == '1') {
            if (count < (size_t)n * n) allowed[count] = (uint8_t)(ch == '1');
            count++;
        } else if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            rc = tempo_error(err, "mask file %s holds '%c'; only 0, 1 and white space are allowed", path, ch);
        }
    }
    fclose(f);
    if (rc == 0 && count != (size_t)n * n)
        rc = tempo_error(err, "mask file %s has %zu entries; %d rows need %d x %d = %zu", path, count, n, n, n,
                         (size_t)n * n);
    return rc;
}

/* The per-row list of flag `name` (n entries), else a copy of `fallback`,
 * else 0..n-1. The caller frees *out. */
static int row_list(const Args *a, const char *name, int n, const int *fallback, int **out, char *err) {
    if (flag(a, name)) {
        int count;
        if (parse_int_list(flag(a, name), name, out, &count, err) != 0) return -1;
        if (count != n) return tempo_error(err, "%s has %d entries for %d tokens", name, count, n);
        return 0;
    }
    *out = malloc((size_t)n * sizeof(int));
    if (!*out) return tempo_error(err, "out of memory");
    for (int i = 0; i < n; i++) (*out)[i] = fallback ? fallback[i] : i;
    return 0;
}

static int cmd_forward(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "-z", "--prompt", "-p", "--tokens", "--positions", "--sets",
                                         "--mask", "--out", "--threads", NULL};
    static const char *const switches[] = {"--no-attention", NULL};
    Args a;
    if (parse_args(argc, argv, "forward", valued, switches, &a, err) != 0) return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 1;
    int *tokens = NULL, *positions = NULL, *sets = NULL, n = 0, rc = 1;
    uint8_t *allowed = NULL;
    float *logits = NULL, *attention = NULL;
    const char *out_path = flag(&a, "--out"), *mask = flag(&a, "--mask");
    if (!mask) mask = "causal";
    if (prompt_ids(&a, &m, &t, &tokens, &n, err) != 0) goto done;
    if (row_list(&a, "--positions", n, NULL, &positions, err) != 0) goto done;
    if (row_list(&a, "--sets", n, positions, &sets, err) != 0) goto done; /* sets default to the positions */
    allowed = malloc((size_t)n * n);
    logits = malloc((size_t)n * m.config.vocab_size * sizeof(float));
    int capture = !flag(&a, "--no-attention");
    if (capture) attention = malloc((size_t)m.config.n_layers * m.config.n_heads * n * n * sizeof(float));
    if (!allowed || !logits || (capture && !attention)) goto oom;
    if (strcmp(mask, "causal") == 0 || strcmp(mask, "visible") == 0) tempo_mask_rows(MASK_CAUSAL, sets, 0, n, allowed);
    else if (strcmp(mask, "isolated") == 0) tempo_mask_rows(MASK_ISOLATED, sets, 0, n, allowed);
    else if (read_mask_file(mask, n, allowed, err) != 0) goto done;
    Outputs out = {logits, NULL, attention};
    if (tempo_forward_full(&m, n, tokens, positions, allowed, 1, out, err) != 0) goto done;
    int V = m.config.vocab_size;
    printf("row  token  pos  set  top-token  p(top)\n");
    for (int i = 0; i < n; i++) {
        const float *lr = logits + (size_t)i * V;
        int best = 0;
        double sum = 0.0;
        for (int v = 1; v < V; v++) if (lr[v] > lr[best]) best = v;
        for (int v = 0; v < V; v++) sum += exp((double)lr[v] - lr[best]);
        printf("%3d  %5d  %3d  %3d  %9d  %.4f\n", i, tokens[i], positions[i], sets[i], best, 1.0 / sum);
    }
    if (out_path) {
        Trace tr;
        if (tempo_trace_build(&tr, &m, n, tokens, positions, sets, allowed, 1, logits, attention, NULL, err) != 0)
            goto done;
        int wrc = tempo_trace_write(&tr, out_path, err);
        tempo_trace_free(&tr);
        if (wrc != 0) goto done;
        fprintf(stderr, "wrote %s\n", out_path);
    }
    rc = 0;
    goto done;
oom:
    tempo_error(err, "out of memory");
done:
    free(tokens); free(positions); free(sets); free(allowed); free(logits); free(attention);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo generate                                                        */
/* ===================================================================== */

static int parse_generation_flags(const Args *a, const Config *c, GenConfig *g, char *err) {
    tempo_gen_defaults(g, c);
    const char *v;
    if ((v = flag(a, "--threshold")) && parse_float(v, "--threshold", &g->threshold, err) != 0) return -1;
    if (flag(a, "--greedy")) g->threshold = 1.0f;
    if ((v = flag(a, "--max-width")) && parse_int(v, "--max-width", -1000000, 1000000, &g->max_width, err) != 0) return -1;
    if ((v = flag(a, "-n")) && parse_int(v, "-n", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--max-tokens")) && parse_int(v, "--max-tokens", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--mode"))) {
        if (strcmp(v, "isolated") == 0) g->mode = MASK_ISOLATED;
        else if (strcmp(v, "visible") == 0) g->mode = MASK_VISIBLE;
        else return tempo_error(err, "--mode must be isolated or visible, got '%s'", v);
    }
    if ((v = flag(a, "--isolate-layers"))) {
        char *end;
        long lo = strtol(v, &end, 10), hi = lo;
        if (end != v && *end == '-') hi = strtol(end + 1, &end, 10);
        if (end == v || *end != '\0' || lo < 0 || hi < lo || hi >= c->n_layers)
            return tempo_error(err, "--isolate-layers must be A-B with 0 <= A <= B < %d, got '%s'",
                            c->n_layers, v);
        g->isolate_first = (int)lo;
        g->isolate_last = (int)hi;
    }
    if ((v = flag(a, "--next-from"))) {
        if (strcmp(v, "last") == 0) g->next_from = NEXT_LAST_ROW;
        else if (strcmp(v, "mean") == 0) g->next_from = NEXT_MEAN;
        else return tempo_error(err, "--next-from must be last or mean, got '%s'", v);
    }
    g->stop_on_empty = flag(a, "--stop-on-empty") != NULL;
    if (flag(a, "--dynamic-threshold")) g->schedule = SCHEDULE_BEZIER;
    if ((v = flag(a, "--threshold-schedule"))) {
        if (strcmp(v, "bezier") == 0) g->schedule = SCHEDULE_BEZIER;
        else if (strcmp(v, "linear") == 0) g->schedule = SCHEDULE_LINEAR;
        else if (strcmp(v, "constant") == 0) g->schedule = SCHEDULE_CONSTANT;
        else return tempo_error(err, "--threshold-schedule must be bezier, linear or constant, got '%s'", v);
    }
    if ((v = flag(a, "--final-threshold")) && parse_float(v, "--final-threshold", &g->final_threshold, err) != 0) return -1;
    if ((v = flag(a, "--bezier"))) {
        char *end;
        g->bezier_p1 = strtof(v, &end);
        if (*end != ',') return tempo_error(err, "--bezier must be P1,P2, got '%s'", v);
        if (parse_float(end + 1, "--bezier P2", &g->bezier_p2, err) != 0) return -1;
    }
    if ((v = flag(a, "--prune"))) {
        if (strcmp(v, "attention") == 0) g->prune = 1;
        else if (strcmp(v, "none") != 0) return tempo_error(err, "--prune must be attention or none, got '%s'", v);
    }
    if ((v = flag(a, "--prune-window")) && parse_int(v, "--prune-window", 1, 1000000, &g->prune_window, err) != 0) return -1;
    if ((v = flag(a, "--prune-layers")) && parse_int(v, "--prune-layers", 1, c->n_layers, &g->prune_layers, err) != 0) return -1;
    if ((v = flag(a, "--prune-threshold")) && parse_float(v, "--prune-threshold", &g->prune_threshold, err) != 0) return -1;
    if ((v = flag(a, "--emulate"))) {
        if (strcmp(v, "last-member-only") == 0) g->emulate = EMULATE_LAST_MEMBER_ONLY;
        else if (strcmp(v, "none") != 0) return tempo_error(err, "--emulate must be last-member-only, got '%s'", v);
    }
    g->capture_attention = flag(a, "--trace") != NULL;
    return tempo_gen_validate(g, c, err);
}

/* Text of a token, or " #id" when no tokenizer was given. */
static const char *token_text(const Tokenizer *t, int prev, int token, char buf[16]) {
    if (t->pieces) return tempo_decode(t, prev, token, buf);
    snprintf(buf, 16, " #%d", token);
    return buf;
}

/* Prints the text with parallel sets inline as [a/b/c], pruned as ~b~. */
static void print_generation(const Generation *gen, const Tokenizer *t, int color, int hide_pruned) {
    char byte_buf[16];
    int prev = gen->tokens[0];
    for (int i = 1; i < gen->n_prompt; i++) {
        fputs(token_text(t, prev, gen->tokens[i], byte_buf), stdout);
        prev = gen->tokens[i];
    }
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        const Member *mem = gen->members + st->first_member;
        if (st->n_members == 1) {
            fputs(token_text(t, prev, mem[0].token, byte_buf), stdout);
        } else {
            fputs(color ? "\033[36m[" : "[", stdout);
            int shown = 0;
            for (int i = 0; i < st->n_members; i++) {
                int pruned = mem[i].pruned_at >= 0;
                if (pruned && hide_pruned) continue;
                if (shown++) fputc('/', stdout);
                if (pruned) fputs(color ? "\033[2m~" : "~", stdout);
                fputs(token_text(t, prev, mem[i].token, byte_buf), stdout);
                if (pruned) fputs(color ? "~\033[22;36m" : "~", stdout);
            }
            fputs(color ? "]\033[0m" : "]", stdout);
        }
        prev = mem[0].token;
    }
    fputc('\n', stdout);
}

static int write_text_atomically(const char *path, const char *text, char *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return tempo_error(err, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return tempo_error(err, "cannot write %s", path);
    }
    return 0;
}

static int write_generation_json(const Generation *gen, const Tokenizer *t, const GenConfig *g, const char *prompt,
                                 const char *path, char *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "prompt", prompt ? prompt : "");
    cJSON *ptoks = cJSON_AddArrayToObject(root, "prompt_tokens");
    for (int i = 0; i < gen->n_prompt; i++) cJSON_AddItemToArray(ptoks, cJSON_CreateNumber(gen->tokens[i]));
    cJSON *set = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddNumberToObject(set, "threshold", g->threshold);
    cJSON_AddNumberToObject(set, "max_width", g->max_width);
    cJSON_AddNumberToObject(set, "max_tokens", g->max_steps);
    cJSON_AddStringToObject(set, "mode", g->mode == MASK_ISOLATED ? "isolated" : "visible");
    cJSON_AddNumberToObject(set, "isolate_first", g->isolate_first);
    cJSON_AddNumberToObject(set, "isolate_last", g->isolate_last);
    cJSON_AddStringToObject(set, "next_from", g->next_from == NEXT_MEAN ? "mean" : "last");
    const char *sched[] = {"constant", "bezier", "linear"};
    cJSON_AddStringToObject(set, "threshold_schedule", sched[g->schedule]);
    cJSON_AddNumberToObject(set, "final_threshold", g->final_threshold);
    cJSON_AddNumberToObject(set, "bezier_p1", g->bezier_p1);
    cJSON_AddNumberToObject(set, "bezier_p2", g->bezier_p2);
    cJSON_AddStringToObject(set, "prune", g->prune ? "attention" : "none");
    cJSON_AddStringToObject(set, "emulate", g->emulate ? "last-member-only" : "none");
    cJSON *steps = cJSON_AddArrayToObject(root, "steps");
    int parallel = 0, max_width = 0, prev = gen->tokens[gen->n_prompt - 1];
    char byte_buf[16];
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        cJSON *js = cJSON_CreateObject();
        cJSON_AddNumberToObject(js, "step", s);
        cJSON_AddNumberToObject(js, "logical_position", st->logical_pos);
        cJSON_AddNumberToObject(js, "threshold", st->threshold);
        cJSON_AddStringToObject(js, "next_from", g->next_from == NEXT_MEAN ? "mean" : "last");
        cJSON_AddNumberToObject(js, "seconds", st->seconds);
        cJSON *tokens = cJSON_AddArrayToObject(js, "tokens");
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gen->members[st->first_member + i];
            cJSON *jt = cJSON_CreateObject();
            cJSON_AddNumberToObject(jt, "id", mem->token);
            cJSON_AddStringToObject(jt, "text", token_text(t, prev, mem->token, byte_buf));
            cJSON_AddNumberToObject(jt, "probability", mem->prob);
            if (mem->row >= 0) cJSON_AddNumberToObject(jt, "physical_index", mem->row);
            else cJSON_AddNullToObject(jt, "physical_index");
            if (mem->pruned_at >= 0) cJSON_AddNumberToObject(jt, "pruned_at", mem->pruned_at);
            else cJSON_AddNullToObject(jt, "pruned_at");
            cJSON_AddItemToArray(tokens, jt);
        }
        cJSON_AddItemToArray(steps, js);
        parallel += st->n_members > 1;
        if (st->n_members > max_width) max_width = st->n_members;
        prev = gen->members[st->first_member].token;
    }
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(sum, "steps", gen->n_steps);
    cJSON_AddNumberToObject(sum, "parallel_steps", parallel);
    cJSON_AddNumberToObject(sum, "max_width", max_width);
    cJSON_AddNumberToObject(sum, "tokens_per_step", gen->n_steps ? (double)gen->n_members / gen->n_steps : 0.0);
    cJSON_AddNumberToObject(sum, "rows", gen->n_rows);
    cJSON_AddStringToObject(sum, "stop_reason", gen->stop_reason);
    cJSON_AddNumberToObject(sum, "prefill_seconds", gen->prefill_seconds);
    cJSON_AddNumberToObject(sum, "total_seconds", gen->total_seconds);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return tempo_error(err, "out of memory writing JSON");
    int rc = write_text_atomically(path, text, err);
    free(text);
    return rc;
}

static int cmd_generate(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "-z", "--prompt", "-p", "--tokens", "-n", "--max-tokens",
        "--threshold", "--max-width", "--mode", "--isolate-layers", "--next-from", "--threshold-schedule",
        "--final-threshold", "--bezier", "--prune", "--prune-window", "--prune-layers", "--prune-threshold",
        "--emulate", "--json", "--trace", "--threads", NULL};
    static const char *const switches[] = {"--greedy", "--stop-on-empty", "--dynamic-threshold", "--no-color",
                                           "--hide-pruned", "--verbose", "--quiet", NULL};
    Args a;
    if (parse_args(argc, argv, "generate", valued, switches, &a, err) != 0) return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, !flag(&a, "--tokens"), err) != 0) return 1;
    int *prompt = NULL, n_prompt = 0, rc = 1;
    GenConfig g;
    Generation gen = {0};
    if (parse_generation_flags(&a, &m.config, &g, err) != 0) goto done;
    if (prompt_ids(&a, &m, &t, &prompt, &n_prompt, err) != 0) goto done;
    if (tempo_generate(&m, prompt, n_prompt, &g, &gen, err) != 0) goto done;
    if (!flag(&a, "--quiet")) print_generation(&gen, &t, isatty(1) && !flag(&a, "--no-color"), flag(&a, "--hide-pruned") != NULL);
    if (flag(&a, "--verbose"))
        for (int s = 0; s < gen.n_steps; s++)
            fprintf(stderr, "step %d  pos %d  threshold %.4f  members %d  %.3f ms\n", s, gen.steps[s].logical_pos,
                    gen.steps[s].threshold, gen.steps[s].n_members, gen.steps[s].seconds * 1e3);
    fflush(stdout);
    double gen_seconds = gen.total_seconds - gen.prefill_seconds;
    fprintf(stderr, "%d steps, %d tokens in %d rows (stop: %s); %.1f tokens/s, %.1f steps/s\n", gen.n_steps,
            gen.n_members, gen.n_rows, gen.stop_reason, gen_seconds > 0 ? gen.n_members / gen_seconds : 0.0,
            gen_seconds > 0 ? gen.n_steps / gen_seconds : 0.0);
    if (strcmp(gen.stop_reason, "context-full") == 0)
        fprintf(stderr, "stopped: the context is full (seq_len %d)\n", m.config.seq_len);
    const char *json = flag(&a, "--json"), *trace = flag(&a, "--trace");
    if (json && write_generation_json(&gen, &t, &g, flag(&a, "--prompt") ? flag(&a, "--prompt") : flag(&a, "-p"), json, err) != 0)
        goto done;
    if (trace) {
        Trace tr;
        if (tempo_generation_trace(&gen, &m, &tr, err) != 0) goto done;
        int wrc = tempo_trace_write(&tr, trace, err);
        tempo_trace_free(&tr);
        if (wrc != 0) goto done;
    }
    rc = 0;
done:
    free(prompt);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* Comparing traces: tempo diff and tempo verify                         */
/* ===================================================================== */

typedef struct {
    double atol, rtol;
    int failed;
} Tolerance;

static double element(const Tensor *x, size_t i) {
    if (x->dtype == DT_F32) return ((const float *)x->data)[i];
    if (x->dtype == DT_I32) return ((const int32_t *)x->data)[i];
    return ((const uint8_t *)x->data)[i];
}

/* Writes the multi-index of flat index i as "[a,b,c]". */
static void format_index(const Tensor *x, size_t i, char *buf, size_t len) {
    size_t idx[4];
    for (int d = x->ndim - 1; d >= 0; d--) {
        idx[d] = x->shape[d] ? i % (size_t)x->shape[d] : 0;
        i = x->shape[d] ? i / (size_t)x->shape[d] : 0;
    }
    int w = snprintf(buf, len, "[");
    for (int d = 0; d < x->ndim; d++) w += snprintf(buf + w, len - (size_t)w, d ? ",%zu" : "%zu", idx[d]);
    snprintf(buf + w, len - (size_t)w, "]");
}

/* Per-row distribution metrics of two logit rows. */
static void logit_row_metrics(const float *a, const float *b, int V, double *kl, double *js, int *top1, double *top5) {
    double ma = a[0], mb = b[0], za = 0, zb = 0;
    for (int v = 1; v < V; v++) { if (a[v] > ma) ma = a[v]; if (b[v] > mb) mb = b[v]; }
    for (int v = 0; v < V; v++) { za += exp(a[v] - ma); zb += exp(b[v] - mb); }
    *kl = 0;
    *js = 0;
    for (int v = 0; v < V; v++) {
        double p = exp(a[v] - ma) / za, q = exp(b[v] - mb) / zb, mid = 0.5 * (p + q);
        if (p > 0) *kl += p * log(p / q);
        if (p > 0) *js += 0.5 * p * log2(p / mid);
        if (q > 0) *js += 0.5 * q * log2(q / mid);
    }
    int ta[5], tb[5];
    for (int r = 0; r < 5 && r < V; r++) { /* top-5 ids of each row by selection */
        ta[r] = tb[r] = -1;
        for (int v = 0; v < V; v++) {
            int used_a = 0, used_b = 0;
            for (int s = 0; s < r; s++) { used_a |= ta[s] == v; used_b |= tb[s] == v; }
            if (!used_a && (ta[r] < 0 || a[v] > a[ta[r]])) ta[r] = v;
            if (!used_b && (tb[r] < 0 || b[v] > b[tb[r]])) tb[r] = v;
        }
    }
    int k = V < 5 ? V : 5, overlap = 0;
    for (int r = 0; r < k; r++)
        for (int s = 0; s < k; s++) overlap += ta[r] == tb[s];
    *top1 = ta[0] == tb[0];
    *top5 = (double)overlap / k;
}

/* Compares one tensor of A with B; prints a line; returns 1 if outside tolerance. */
static int compare_tensor(const Tensor *x, const Tensor *y, Tolerance *tol) {
    int same_shape = x->ndim == y->ndim && x->dtype == y->dtype;
    for (int d = 0; same_shape && d < x->ndim; d++) same_shape = x->shape[d] == y->shape[d];
    if (!same_shape) {
        printf("%-10s shape or dtype differs\n", x->name);
        return 1;
    }
    size_t n = tempo_tensor_count(x), worst = 0, worst_rel = 0, bad = 0, first_bad = 0;
    double max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double p = element(x, i), q = element(y, i), diff = fabs(p - q);
        double rel = diff / (fabs(q) > 1e-30 ? fabs(q) : 1e-30);
        int exact = x->dtype != DT_F32;
        if (isnan(p) != isnan(q)) diff = INFINITY;
        if (diff > max_abs) { max_abs = diff; worst = i; }
        if (diff > 0 && rel > max_rel) { max_rel = rel; worst_rel = i; }
        if (exact ? diff != 0 : !(diff <= tol->atol + tol->rtol * fabs(q))) {
            if (!bad) first_bad = i;
            bad++;
        }
    }
    char where[64], where_rel[64], where_bad[64];
    format_index(x, worst, where, sizeof where);
    format_index(x, worst_rel, where_rel, sizeof where_rel);
    format_index(x, first_bad, where_bad, sizeof where_bad);
    printf("%-10s %-4s max abs %.3e at %s  max rel %.3e at %s", x->name, bad ? "FAIL" : "ok", max_abs, where, max_rel,
           where_rel);
    if (bad) printf("  (%zu outside tolerance, first at %s)", bad, where_bad);
    printf("\n");
    if (strcmp(x->name, "logits") == 0 && x->ndim == 2) {
        int rows = (int)x->shape[0], V = (int)x->shape[1], agree = 0, worst_row = 0;
        double kl_max = 0, js_max = 0, top5_sum = 0;
        for (int r = 0; r < rows; r++) {
            double kl, js, top5;
            int top1;
            logit_row_metrics((const float *)x->data + (size_t)r * V, (const float *)y->data + (size_t)r * V, V, &kl,
                              &js, &top1, &top5);
            if (kl > kl_max) { kl_max = kl; worst_row = r; }
            if (js > js_max) js_max = js;
            agree += top1;
            top5_sum += top5;
        }
        printf("           per row: max KL(A||B) %.3e at row %d, max JS %.3e, top-1 agreement %d/%d, mean top-5 overlap %.3f\n",
               kl_max, worst_row, js_max, agree, rows, rows ? top5_sum / rows : 0.0);
    }
    return bad > 0;
}

/* Diffs every tensor of A that B also has; tensors only in one are named. */
static int diff_traces(const Trace *A, const Trace *B, Tolerance *tol) {
    int failed = 0;
    for (int i = 0; i < A->n_tensors; i++) {
        const Tensor *y = tempo_trace_get(B, A->tensors[i].name);
        if (!y) {
            printf("%-10s only in A\n", A->tensors[i].name);
            continue;
        }
        failed |= compare_tensor(&A->tensors[i], y, tol);
    }
    for (int i = 0; i < B->n_tensors; i++)
        if (!tempo_trace_get(A, B->tensors[i].name)) printf("%-10s only in B\n", B->tensors[i].name);
    return failed;
}

static int parse_tolerance(const Args *a, Tolerance *tol, char *err) {
    float v;
    tol->atol = 1e-4;
    tol->rtol = 0.0;
    if (flag(a, "--atol")) {
        if (parse_float(flag(a, "--atol"), "--atol", &v, err) != 0) return -1;
        tol->atol = v;
    }
    if (flag(a, "--rtol")) {
        if (parse_float(flag(a, "--rtol"), "--rtol", &v, err) != 0) return -1;
        tol->rtol = v;
    }
    return 0;
}

static int cmd_diff(int argc, char **argv, char *err) {
    static const char *const valued[] = {"--atol", "--rtol", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "diff", valued, switches, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
    if (a.n_positional != 2) return tempo_error(err, "usage: tempo diff A B [--atol X] [--rtol Y]"), 2;
    Trace A, B;
    if (tempo_trace_read(&A, a.positional[0], err) != 0) return 2;
    if (tempo_trace_read(&B, a.positional[1], err) != 0) {
        tempo_trace_free(&A);
        return 2;
    }
    int failed = diff_traces(&A, &B, &tol);
    printf("%s\n", failed ? "DIFFERENT" : "SAME within tolerance");
    tempo_trace_free(&A);
    tempo_trace_free(&B);
    return failed ? 1 : 0;
}

/* Checks a trace's inputs and returns n and the mask layer count. */
static int trace_inputs(const Trace *tr, const Model *m, int *n, int *mask_layers, char *err) {
    const Tensor *tok = tempo_trace_get(tr, "tokens"), *pos = tempo_trace_get(tr, "positions");
    const Tensor *al = tempo_trace_get(tr, "allowed");
    if (!tok || !pos || !al) return tempo_error(err, "trace lacks tokens, positions or allowed");
    if (tok->dtype != DT_I32 || pos->dtype != DT_I32 || al->dtype != DT_U8 || tok->ndim != 1 || pos->ndim != 1)
        return tempo_error(err, "trace tensors have the wrong dtypes (tokens/positions I32[n], allowed U8[n,n])");
    *n = (int)tok->shape[0];
    if (pos->shape[0] != *n) return tempo_error(err, "trace has %d tokens but %lld positions", *n, (long long)pos->shape[0]);
    int ok2 = al->ndim == 2 && al->shape[0] == *n && al->shape[1] == *n;
    int ok3 = al->ndim == 3 && al->shape[0] == m->config.n_layers && al->shape[1] == *n && al->shape[2] == *n;
    if (!ok2 && !ok3) return tempo_error(err, "trace allowed must be U8[n,n] or U8[n_layers,n,n] for n = %d", *n);
    *mask_layers = ok3 ? m->config.n_layers : 1;
    if (*n < 1) return tempo_error(err, "trace has no rows");
    return 0;
}

static int cmd_verify(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "--atol", "--rtol", "--threads", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "verify", valued, switches, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo verify -m MODEL TRACE"), 2;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 2;
    Trace tr, mine;
    int rc = 2, n = 0, mask_layers = 1;
    float *logits = NULL, *attention = NULL;
    if (tempo_trace_read(&tr, a.positional[0], err) != 0) goto done_model;
    if (trace_inputs(&tr, &m, &n, &mask_layers, err) != 0) goto done;
    const Config *c = &m.config;
    logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    attention = malloc((size_t)c->n_layers * c->n_heads * n * n * sizeof(float));
    if (!logits || !attention) {
        tempo_error(err, "out of memory for a %d-row trace", n);
        goto done;
    }
    const int *tokens = tempo_trace_get(&tr, "tokens")->data, *positions = tempo_trace_get(&tr, "positions")->data;
    const uint8_t *allowed = tempo_trace_get(&tr, "allowed")->data;
    Outputs out = {logits, NULL, attention};
    if (tempo_forward_full(&m, n, tokens, positions, allowed, mask_layers, out, err) != 0) goto done;
    const Tensor *sets = tempo_trace_get(&tr, "sets");
    if (tempo_trace_build(&mine, &m, n, tokens, positions, sets && sets->dtype == DT_I32 && sets->shape[0] == n ? sets->data : positions,
                          allowed, mask_layers, logits, attention, NULL, err) != 0)
        goto done;
    printf("verify %s: %d rows, recomputed with the full forward pass (A = trace, B = tempo)\n", a.positional[0], n);
    int failed = 0;
    for (int i = 0; i < tr.n_tensors; i++) {
        const char *name = tr.tensors[i].name;
        if (strcmp(name, "logits") == 0 || strcmp(name, "attention") == 0)
            failed |= compare_tensor(&tr.tensors[i], tempo_trace_get(&mine, name), &tol);
    }
    printf("%s\n", failed ? "FAIL" : "PASS");
    tempo_trace_free(&mine);
    rc = failed ? 1 : 0;
done:
    tempo_trace_free(&tr);
done_model:
    free(logits);
    free(attention);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo encode, tempo synth                                             */
/* ===================================================================== */

static int cmd_encode(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "-z", "--prompt", "-p", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    if (parse_args(argc, argv, "encode", valued, switches, &a, err) != 0) return 1;
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 1, err) != 0) return 1;
    int *ids = NULL, n = 0, rc = prompt_ids(&a, &m, &t, &ids, &n, err) != 0;
    for (int i = 0; i < n && rc == 0; i++) printf(i ? ",%d" : "%d", ids[i]);
    if (rc == 0) printf("\n");
    free(ids);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

static int cmd_synth(int argc, char **argv, char *err) {
    static const char *const valued[] = {"--out", "--seed", "--dim", "--hidden", "--layers", "--heads", "--kv-heads",
                                         "--vocab", "--seq-len", NULL};
    static const char *const switches[] = {"--untied", NULL};
    Args a;
    if (parse_args(argc, argv, "synth", valued, switches, &a, err) != 0) return 1;
    SynthConfig s;
    tempo_synth_defaults(&s);
    struct { const char *flag; int *field; } ints[] = {{"--dim", &s.dim}, {"--hidden", &s.hidden_dim},
        {"--layers", &s.n_layers}, {"--heads", &s.n_heads}, {"--kv-heads", &s.n_kv_heads},
        {"--vocab", &s.vocab_size}, {"--seq-len", &s.seq_len}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (flag(&a, ints[i].flag) && parse_int(flag(&a, ints[i].flag), ints[i].flag, 1, 1 << 22, ints[i].field, err) != 0)
            return 1;
    int seed = 42;
    if (flag(&a, "--seed") && parse_int(flag(&a, "--seed"), "--seed", 0, 2147483647, &seed, err) != 0) return 1;
    s.seed = (uint64_t)seed;
    s.shared_classifier = flag(&a, "--untied") == NULL;
    const char *out = flag(&a, "--out");
    if (!out) return tempo_error(err, "missing --out FILE"), 1;
    return tempo_synth_write(&s, out, err) != 0;
}

/* ===================================================================== */
/* main                                                                  */
/* ===================================================================== */

static void usage(void) {
    fprintf(stderr,
            "usage: tempo COMMAND [flags]\n"
            "  forward  -m MODEL [-z TOK] (--prompt TEXT | --tokens IDS) [--positions P] [--sets S]\n"
            "           [--mask causal|isolated|visible|FILE] [--out TRACE]   one full forward pass\n"
            "  generate -m MODEL -z TOK -p PROMPT [-n STEPS] [--threshold T] [--mode isolated|visible] ...\n"
            "  verify   -m MODEL TRACE [--atol X]      recompute a trace from any engine and diff it\n"
            "  diff     A B [--atol X] [--rtol Y]      compare two traces tensor by tensor\n"
            "  encode   -m MODEL -z TOK -p TEXT        print token ids\n"
            "  synth    --out FILE [--seed N] [--untied] [--dim D ...]   write a synthetic checkpoint\n"
            "see README.md for every flag\n");
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE] = "";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 1 : 0;
    }
    struct { const char *name; int (*run)(int, char **, char *); } commands[] = {
        {"forward", cmd_forward}, {"generate", cmd_generate}, {"verify", cmd_verify},
        {"diff", cmd_diff}, {"encode", cmd_encode}, {"synth", cmd_synth}};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int rc = commands[i].run(argc - 2, argv + 2, err);
        if (rc != 0 && err[0]) fprintf(stderr, "tempo %s: error: %s\n", argv[1], err);
        return rc;
    }
    fprintf(stderr, "tempo: error: unknown command '%s' (try tempo --help)\n", argv[1]);
    return 1;
}
