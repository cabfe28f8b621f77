/* cli.c - the tempo command-line tool: forward, generate, verify, diff,
 * encode, synth. The algorithm lives in tempo.c; this file parses flags,
 * prints and compares. */
#define _GNU_SOURCE
#include "analysis.h"
#include "audit.h"
#include "pictures.h"
#include "../formats/formats.h"
#include "synth.h"
#include "synth_gguf.h"

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

/* Splits argv into known flags (with values), switches and positionals;
 * `more_valued` (may be NULL) adds command-specific flags to `valued`. */
static int parse_args(int argc, char **argv, const char *command, const char *const *valued,
                      const char *const *more_valued, const char *const *switches, Args *a, char *err) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] == '-' && arg[1] != '\0') {
            if (a->n == 64) return tempo_error(err, "too many flags");
            if (in_list(arg, valued) || (more_valued && in_list(arg, more_valued))) {
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
    char beside[4200]; /* a Hugging Face directory brings its tokenizer.json */
    snprintf(beside, sizeof beside, "%s/tokenizer.json", model_path);
    if (!tok_path && access(beside, R_OK) == 0) tok_path = beside;
    int from_gguf = !tok_path && m->n_maps > 0 && tempo_is_gguf(m->maps[0], m->map_sizes[0]); /* a GGUF file brings its own */
    if (!tok_path && !from_gguf && need_tokenizer) {
        tempo_model_free(m);
        return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    }
    if (from_gguf && tempo_gguf_model_tokenizer(m, t, err) != 0) {
        tempo_model_free(m);
        return -1;
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
    if (s && tempo_parse_int(s, "--threads", 1, 1024, &n, ignored) == 0) tempo_set_threads(n);
}

/* Prompt ids from --tokens or --prompt (BOS + encoded text). */
static int prompt_ids(const Args *a, const Model *m, const Tokenizer *t, int **ids, int *n, char *err) {
    const char *tokens = flag(a, "--tokens"), *prompt = flag(a, "--prompt");
    if (!prompt) prompt = flag(a, "-p");
    if (tokens && prompt) return tempo_error(err, "give --prompt or --tokens, not both");
    if (tokens) return parse_int_list(tokens, "--tokens", ids, n, err);
    if (!prompt) return tempo_error(err, "missing --prompt TEXT or --tokens IDS");
    if (!t->pieces) return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    int cap = (int)strlen(prompt) + TEMPO_ENCODE_EXTRA;
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
    if (parse_args(argc, argv, "forward", valued, NULL, switches, &a, err) != 0) return 1;
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
    else if (tempo_mask_read(mask, n, allowed, err) != 0) goto done;
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
    if ((v = flag(a, "--threshold")) && tempo_parse_float(v, "--threshold", &g->threshold, err) != 0) return -1;
    if (flag(a, "--greedy")) g->threshold = 1.0f;
    if ((v = flag(a, "--max-width")) && tempo_parse_int(v, "--max-width", -1000000, 1000000, &g->max_width, err) != 0) return -1;
    if ((v = flag(a, "-n")) && tempo_parse_int(v, "-n", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--max-tokens")) && tempo_parse_int(v, "--max-tokens", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--mode"))) {
        if (strcmp(v, "isolated") == 0) g->mode = MASK_ISOLATED;
        else if (strcmp(v, "visible") == 0) g->mode = MASK_VISIBLE;
        else return tempo_error(err, "--mode must be isolated or visible, got '%s'", v);
    }
    if ((v = flag(a, "--isolate-layers")) &&
        tempo_parse_range(v, "--isolate-layers", 0, c->n_layers - 1, &g->isolate_first, &g->isolate_last, err) != 0)
        return -1;
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
    if ((v = flag(a, "--final-threshold")) && tempo_parse_float(v, "--final-threshold", &g->final_threshold, err) != 0) return -1;
    if ((v = flag(a, "--bezier"))) {
        char *end;
        g->bezier_p1 = strtof(v, &end);
        if (*end != ',') return tempo_error(err, "--bezier must be P1,P2, got '%s'", v);
        if (tempo_parse_float(end + 1, "--bezier P2", &g->bezier_p2, err) != 0) return -1;
    }
    if ((v = flag(a, "--prune"))) {
        if (strcmp(v, "attention") == 0) g->prune = 1;
        else if (strcmp(v, "none") != 0) return tempo_error(err, "--prune must be attention or none, got '%s'", v);
    }
    if ((v = flag(a, "--prune-window")) && tempo_parse_int(v, "--prune-window", 1, 1000000, &g->prune_window, err) != 0) return -1;
    if ((v = flag(a, "--prune-layers")) && tempo_parse_int(v, "--prune-layers", 1, c->n_layers, &g->prune_layers, err) != 0) return -1;
    if ((v = flag(a, "--prune-threshold")) && tempo_parse_float(v, "--prune-threshold", &g->prune_threshold, err) != 0) return -1;
    if ((v = flag(a, "--emulate"))) {
        if (strcmp(v, "last-member-only") == 0) g->emulate = EMULATE_LAST_MEMBER_ONLY;
        else if (strcmp(v, "none") != 0) return tempo_error(err, "--emulate must be last-member-only, got '%s'", v);
    }
    g->capture_attention = flag(a, "--trace") != NULL;
    g->keep_logits = g->capture_attention; /* only a trace needs every row's logits */
    return tempo_gen_validate(g, c, err);
}

/* Text of a token, or " #id" when no tokenizer was given. */
static const char *token_text(const Tokenizer *t, int prev, int token, char buf[16]) {
    if (t->pieces) return tempo_decode(t, prev, token, buf);
    snprintf(buf, 16, " #%d", token);
    return buf;
}

/* Prints the text with parallel sets inline as [a/b/c], pruned as ~b~. */
static void print_generation(const Generation *gen, const Tokenizer *t, int bos, int color, int hide_pruned) {
    char byte_buf[16];
    int prev = gen->tokens[0];
    for (int i = gen->tokens[0] == bos; i < gen->n_prompt; i++) {
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
            const char *text = token_text(t, prev, mem->token, byte_buf);
            char *valid = tempo_valid_utf8(text, strlen(text)); /* JSON must be UTF-8 */
            cJSON_AddStringToObject(jt, "text", valid ? valid : "");
            free(valid);
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
    int rc = tempo_write_text_file(path, text, err);
    free(text);
    return rc;
}

/* Flags of every command that generates (generate, compare, attention). */
static const char *const generation_valued[] = {"-m", "-z", "--prompt", "-p", "--tokens", "-n", "--max-tokens",
    "--threshold", "--max-width", "--mode", "--isolate-layers", "--next-from", "--threshold-schedule",
    "--final-threshold", "--bezier", "--prune", "--prune-window", "--prune-layers", "--prune-threshold",
    "--emulate", "--json", "--trace", "--threads", NULL};
static const char *const generation_switches[] = {"--greedy", "--stop-on-empty", "--dynamic-threshold", "--no-color",
                                                  "--hide-pruned", "--verbose", "--quiet", NULL};

/* --svg-tree FILE: a picture of the run (pictures.c, tree_svg). */
static const char *const generate_valued[] = {"--svg-tree", NULL};

static int cmd_generate(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "generate", generation_valued, generate_valued, generation_switches, &a, err) != 0) return 1;
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
    if (!flag(&a, "--quiet")) print_generation(&gen, &t, m.config.bos_token_id, isatty(1) && !flag(&a, "--no-color"), flag(&a, "--hide-pruned") != NULL);
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
    const char *json = flag(&a, "--json"), *trace = flag(&a, "--trace"), *tree = flag(&a, "--svg-tree");
    if (tree && tree_svg(tree, &gen, &t, strrchr(m.path, '/') ? strrchr(m.path, '/') + 1 : m.path,
                         g.mode == MASK_ISOLATED ? "isolated" : "visible", err) != 0)
        goto done;
    if (json && write_generation_json(&gen, &t, &g, flag(&a, "--prompt") ? flag(&a, "--prompt") : flag(&a, "-p"), json, err) != 0)
        goto done;
    if (trace) {
        Trace tr;
        if (tempo_generation_trace(&gen, &m, &tr, err) != 0) goto done;
        int wrc = audit_put_settings(&tr, &g, &m.config, err);
        if (wrc == 0) wrc = tempo_trace_write(&tr, trace, err);
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
            LogitMetrics lm = logit_metrics((const float *)x->data + (size_t)r * V, (const float *)y->data + (size_t)r * V, V);
            if (lm.kl_ab > kl_max) { kl_max = lm.kl_ab; worst_row = r; }
            if (lm.js > js_max) js_max = lm.js;
            agree += lm.argmax_agree;
            top5_sum += lm.top5;
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
        if (tempo_parse_float(flag(a, "--atol"), "--atol", &v, err) != 0) return -1;
        tol->atol = v;
    }
    if (flag(a, "--rtol")) {
        if (tempo_parse_float(flag(a, "--rtol"), "--rtol", &v, err) != 0) return -1;
        tol->rtol = v;
    }
    return 0;
}

static int cmd_diff(int argc, char **argv, char *err) {
    static const char *const valued[] = {"--atol", "--rtol", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "diff", valued, NULL, switches, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
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

static int cmd_verify(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "--atol", "--rtol", "--threads", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "verify", valued, NULL, switches, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo verify -m MODEL TRACE"), 2;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 2;
    Trace tr, mine;
    int rc = 2, n = 0, mask_layers = 1;
    float *logits = NULL, *attention = NULL;
    if (tempo_trace_read(&tr, a.positional[0], err) != 0) goto done_model;
    if (tempo_trace_inputs(&tr, &m.config, &n, &mask_layers, err) != 0) goto done;
    if (trace_recompute(&m, &tr, &n, &logits, &attention, err) != 0) goto done;
    const int *tokens = tempo_trace_get(&tr, "tokens")->data, *positions = tempo_trace_get(&tr, "positions")->data;
    const uint8_t *allowed = tempo_trace_get(&tr, "allowed")->data;
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
/* tempo audit: the engine's TEMPO run against the specification         */
/* ===================================================================== */

static int audit_flags(const Args *a, const Config *c, AuditSettings *s, char *err) {
    const char *v;
    audit_settings_init(s, c);
    if ((v = flag(a, "--mode"))) {
        if (strcmp(v, "isolated") != 0 && strcmp(v, "visible") != 0)
            return tempo_error(err, "--mode must be isolated or visible, got '%s'", v);
        s->mode = strcmp(v, "isolated") == 0 ? MASK_ISOLATED : MASK_VISIBLE;
    }
    if ((v = flag(a, "--next-from"))) {
        if (strcmp(v, "last") != 0 && strcmp(v, "mean") != 0) return tempo_error(err, "--next-from must be last or mean, got '%s'", v);
        s->next_from = strcmp(v, "last") == 0 ? NEXT_LAST_ROW : NEXT_MEAN;
    }
    if ((v = flag(a, "--threshold")) && tempo_parse_float(v, "--threshold", &s->threshold, err) != 0) return -1;
    if (v && !(s->threshold > 0.0f && s->threshold <= 1.0f)) return tempo_error(err, "threshold %g is outside (0, 1]", s->threshold);
    if ((v = flag(a, "--max-width")) && tempo_parse_int(v, "--max-width", 1, 1 << 20, &s->max_width, err) != 0) return -1;
    if ((v = flag(a, "--n-prompt")) && tempo_parse_int(v, "--n-prompt", 1, 1 << 20, &s->n_prompt, err) != 0) return -1;
    if ((v = flag(a, "--atol")) && tempo_parse_float(v, "--atol", &s->atol, err) != 0) return -1;
    if (v && s->atol < 0) return tempo_error(err, "--atol %g must not be negative", s->atol);
    return 0;
}

/* Exit 0: nothing found; 1: findings; 2: unreadable input or bad flags. */
static int cmd_audit(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "--mode", "--threshold", "--max-width", "--n-prompt", "--next-from",
                                         "--atol", "--json", "--threads", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    if (parse_args(argc, argv, "audit", valued, NULL, switches, &a, err) != 0) return 2;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo audit -m MODEL TRACE [--mode M] [--threshold T] ..."), 2;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 2;
    Trace tr;
    AuditSettings s;
    AuditReport report;
    int rc = 2;
    if (audit_flags(&a, &m.config, &s, err) != 0 || tempo_trace_read(&tr, a.positional[0], err) != 0) goto done_model;
    if (audit_settings_from_trace(&s, &tr, &m.config, err) == 0 && tempo_audit(&m, &tr, &s, &report, err) == 0) {
        printf("audit %s\n", a.positional[0]);
        audit_report_print(&report, stdout);
        const char *json = flag(&a, "--json");
        rc = json && audit_report_json(&report, json, err) != 0 ? 2 : report.n_findings > 0;
        audit_report_free(&report);
    }
    tempo_trace_free(&tr);
done_model:
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo compare: isolated vs visible, free-running and teacher-forced    */
/* ===================================================================== */

typedef struct {
    int steps, parallel_steps, rows, later_members, first_divergence, prefix_rows;
    double prefix_max_abs, iso_seconds, vis_seconds;
    double kl_iv, kl_vi, js, cosine, top1, top5, top10, argmax; /* means over later members */
} CompareSummary;

static void add_metrics_json(cJSON *o, const LogitMetrics *m) {
    cJSON_AddNumberToObject(o, "kl_isolated_visible", m->kl_ab);
    cJSON_AddNumberToObject(o, "kl_visible_isolated", m->kl_ba);
    cJSON_AddNumberToObject(o, "js", m->js);
    cJSON_AddNumberToObject(o, "cosine", m->cosine);
    cJSON_AddNumberToObject(o, "top1", m->top1);
    cJSON_AddNumberToObject(o, "top5", m->top5);
    cJSON_AddNumberToObject(o, "top10", m->top10);
    cJSON_AddBoolToObject(o, "argmax_agree", m->argmax_agree);
}

static int same_step(const Generation *a, const Generation *b, int s) {
    if (s >= a->n_steps || s >= b->n_steps || a->steps[s].n_members != b->steps[s].n_members) return 0;
    for (int i = 0; i < a->steps[s].n_members; i++)
        if (a->members[a->steps[s].first_member + i].token != b->members[b->steps[s].first_member + i].token) return 0;
    return 1;
}

/* Runs one prompt both ways and teacher-forced; prints per-step lines
 * unless quiet; fills the summary and a JSON object. */
static int compare_prompt(const Model *m, const Tokenizer *t, const char *prompt, const GenConfig *base, int quiet,
                          CompareSummary *sum, cJSON *out, char *err) {
    const Config *c = &m->config;
    int ids_cap = (int)strlen(prompt) + TEMPO_ENCODE_EXTRA, *ids = malloc((size_t)ids_cap * sizeof(int)), n_ids = 0, V = c->vocab_size;
    GenConfig gi = *base, gv = *base;
    gi.mode = MASK_ISOLATED;
    gv.mode = MASK_VISIBLE;
    Generation iso = {0}, vis = {0};
    uint8_t *mask_iso = NULL, *mask_vis = NULL;
    float *li = NULL, *lv = NULL;
    int rc = -1;
    memset(sum, 0, sizeof *sum);
    if (!ids || tempo_encode(t, prompt, ids, ids_cap, &n_ids, err) != 0) goto done;
    if (n_ids > c->seq_len) {
        tempo_error(err, "prompt of %d tokens is longer than the context (seq_len %d)", n_ids, c->seq_len);
        goto done;
    }
    /* timing: each mode runs twice, alternating, and keeps its faster run (the first run warms caches and threads) */
    for (int round = 0; round < 2; round++) {
        Generation again_iso, again_vis;
        Generation *gi_out = round ? &again_iso : &iso, *gv_out = round ? &again_vis : &vis;
        if (tempo_generate(m, ids, n_ids, &gi, gi_out, err) != 0) goto done;
        if (tempo_generate(m, ids, n_ids, &gv, gv_out, err) != 0) {
            if (round) tempo_generation_free(&again_iso);
            goto done;
        }
        if (round) {
            if (again_iso.total_seconds < iso.total_seconds) iso.total_seconds = again_iso.total_seconds;
            if (again_vis.total_seconds < vis.total_seconds) vis.total_seconds = again_vis.total_seconds;
            tempo_generation_free(&again_iso);
            tempo_generation_free(&again_vis);
        }
    }
    int n = iso.n_rows, ML = iso.mask_layers;
    /* teacher-forced: the isolated run's rows, with siblings made visible to later members */
    mask_iso = tempo_generation_allowed(&iso);
    mask_vis = tempo_generation_allowed(&iso);
    li = malloc((size_t)n * V * sizeof(float));
    lv = malloc((size_t)n * V * sizeof(float));
    if (!mask_iso || !mask_vis || !li || !lv) {
        tempo_error(err, "out of memory comparing %d rows", n);
        goto done;
    }
    for (int l = 0; l < ML; l++)
        for (int q = 0; q < n; q++)
            for (int k = 0; k < q; k++)
                if (iso.sets[k] == iso.sets[q]) mask_vis[((size_t)l * n + q) * n + k] = 1;
    Outputs oi = {li, NULL, NULL}, ov = {lv, NULL, NULL};
    if (tempo_forward_full(m, n, iso.tokens, iso.positions, mask_iso, ML, oi, err) != 0 ||
        tempo_forward_full(m, n, iso.tokens, iso.positions, mask_vis, ML, ov, err) != 0)
        goto done;

    sum->steps = iso.n_steps;
    sum->rows = n;
    sum->iso_seconds = iso.total_seconds;
    sum->vis_seconds = vis.total_seconds;
    sum->first_divergence = -1;
    int steps_max = iso.n_steps > vis.n_steps ? iso.n_steps : vis.n_steps;
    for (int s = 0; s < steps_max && sum->first_divergence < 0; s++)
        if (!same_step(&iso, &vis, s)) sum->first_divergence = s;
    int first_parallel_row = n;
    for (int s = 0; s < iso.n_steps && first_parallel_row == n; s++)
        if (iso.steps[s].n_members > 1) first_parallel_row = iso.members[iso.steps[s].first_member + 1].row;
    sum->prefix_rows = first_parallel_row;
    for (size_t i = 0; i < (size_t)first_parallel_row * V; i++) {
        double d = fabs((double)li[i] - lv[i]);
        if (d > sum->prefix_max_abs) sum->prefix_max_abs = d;
    }
    cJSON_AddStringToObject(out, "prompt", prompt);
    cJSON *tf = cJSON_AddArrayToObject(out, "teacher_forced");
    if (!quiet) printf("prompt: %s\nstep  pos  member  row  token   KL(i||v)   KL(v||i)   JS        cosine  top1 top5 top10\n", prompt);
    for (int s = 0; s < iso.n_steps; s++) {
        const Step *st = &iso.steps[s];
        if (st->n_members < 2) continue;
        sum->parallel_steps++;
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &iso.members[st->first_member + i];
            LogitMetrics lm = logit_metrics(li + (size_t)mem->row * V, lv + (size_t)mem->row * V, V);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", s);
            cJSON_AddNumberToObject(o, "member", i);
            cJSON_AddNumberToObject(o, "row", mem->row);
            cJSON_AddNumberToObject(o, "token", mem->token);
            cJSON_AddBoolToObject(o, "predicts_next", i == st->n_members - 1);
            add_metrics_json(o, &lm);
            cJSON_AddItemToArray(tf, o);
            if (!quiet)
                printf("%4d %4d  %6d %4d  %5d  %9.3e  %9.3e  %9.3e  %.4f  %.1f  %.1f  %.1f%s\n", s, st->logical_pos, i, mem->row,
                       mem->token, lm.kl_ab, lm.kl_ba, lm.js, lm.cosine, lm.top1, lm.top5, lm.top10,
                       i == st->n_members - 1 ? "  <- predicts the next step" : "");
            if (i == 0) continue;
            sum->later_members++;
            sum->kl_iv += lm.kl_ab; sum->kl_vi += lm.kl_ba; sum->js += lm.js; sum->cosine += lm.cosine;
            sum->top1 += lm.top1; sum->top5 += lm.top5; sum->top10 += lm.top10; sum->argmax += lm.argmax_agree;
        }
    }
    if (sum->later_members) {
        double k = sum->later_members;
        sum->kl_iv /= k; sum->kl_vi /= k; sum->js /= k; sum->cosine /= k;
        sum->top1 /= k; sum->top5 /= k; sum->top10 /= k; sum->argmax /= k;
    }
    cJSON *js = cJSON_AddObjectToObject(out, "summary");
    cJSON_AddNumberToObject(js, "steps_isolated", iso.n_steps);
    cJSON_AddNumberToObject(js, "steps_visible", vis.n_steps);
    cJSON_AddNumberToObject(js, "parallel_steps", sum->parallel_steps);
    cJSON_AddNumberToObject(js, "rows", n);
    cJSON_AddNumberToObject(js, "identical_prefix_rows", sum->prefix_rows);
    cJSON_AddNumberToObject(js, "prefix_max_abs_diff", sum->prefix_max_abs);
    cJSON_AddNumberToObject(js, "later_members", sum->later_members);
    LogitMetrics mean = {sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10, 0};
    add_metrics_json(js, &mean);
    cJSON_AddNumberToObject(js, "argmax_agreement", sum->argmax);
    cJSON_AddNumberToObject(js, "first_divergent_step", sum->first_divergence);
    cJSON_AddNumberToObject(js, "isolated_seconds", sum->iso_seconds);
    cJSON_AddNumberToObject(js, "visible_seconds", sum->vis_seconds);
    if (!quiet) {
        printf("rows before the first parallel member: %d, max |isolated - visible| there: %g%s\n", sum->prefix_rows,
               sum->prefix_max_abs, sum->prefix_max_abs == 0 ? " (bitwise identical)" : "");
        printf("later members (%d): mean KL(i||v) %.4e  KL(v||i) %.4e  JS %.4e  cosine %.4f  top1 %.3f top5 %.3f top10 %.3f\n",
               sum->later_members, sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10);
        if (sum->first_divergence < 0) printf("free-running: isolated and visible select the same sets at every step\n");
        else printf("free-running: the selected sets first differ at step %d\n", sum->first_divergence);
        printf("time: isolated %.2f ms, visible %.2f ms, ratio %.3f\n", sum->iso_seconds * 1e3, sum->vis_seconds * 1e3,
               sum->vis_seconds > 0 ? sum->iso_seconds / sum->vis_seconds : 0.0);
    }
    rc = 0;
done:
    free(ids); free(mask_iso); free(mask_vis); free(li); free(lv);
    tempo_generation_free(&iso);
    tempo_generation_free(&vis);
    return rc;
}

/* Reads a prompt suite: lines "category<TAB>prompt" (or just a prompt); '#' comments. */
static int read_prompts(const char *path, char ***categories, char ***prompts, int *n, char *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tempo_error(err, "cannot open prompt file %s: %s", path, strerror(errno));
    char line[4096];
    int cap = 0;
    *n = 0;
    *categories = *prompts = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            char **c2 = realloc(*categories, (size_t)cap * sizeof(char *)), **p2 = c2 ? realloc(*prompts, (size_t)cap * sizeof(char *)) : NULL;
            if (c2) *categories = c2;
            if (!c2 || !p2) {
                fclose(f);
                return tempo_error(err, "out of memory reading %s", path);
            }
            *prompts = p2;
        }
        char *tab = strchr(line, '\t');
        (*categories)[*n] = strndup(tab ? line : "-", tab ? (size_t)(tab - line) : 1);
        (*prompts)[*n] = strdup(tab ? tab + 1 : line);
        (*n)++;
    }
    fclose(f);
    if (*n == 0) return tempo_error(err, "prompt file %s holds no prompts", path);
    return 0;
}

/* What compare and attention take beyond the generation flags. */
static const char *const analysis_valued[] = {"--prompts", "--heatmap", "--rows", "--svg", "--svg-grid", "--row", NULL};

static int cmd_compare(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "compare", generation_valued, analysis_valued, generation_switches, &a, err) != 0) return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 1, err) != 0) return 1;
    GenConfig g;
    char **categories = NULL, **prompts = NULL;
    int n_prompts = 0, rc = 1;
    cJSON *root = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(root, "prompts");
    const char *prompt = flag(&a, "--prompt") ? flag(&a, "--prompt") : flag(&a, "-p"), *file = flag(&a, "--prompts");
    if (parse_generation_flags(&a, &m.config, &g, err) != 0) goto done;
    g.capture_attention = 0;
    if (file) {
        if (read_prompts(file, &categories, &prompts, &n_prompts, err) != 0) goto done;
    } else if (prompt) {
        categories = malloc(sizeof(char *));
        prompts = malloc(sizeof(char *));
        if (!categories || !prompts) goto done;
        categories[0] = strdup("-");
        prompts[0] = strdup(prompt);
        n_prompts = 1;
    } else {
        tempo_error(err, "missing -p PROMPT or --prompts FILE");
        goto done;
    }
    CompareSummary *sums = calloc((size_t)n_prompts, sizeof *sums);
    if (!sums) goto done;
    for (int i = 0; i < n_prompts; i++) {
        if (n_prompts > 1) fprintf(stderr, "\r[%d/%d] %-40.40s", i + 1, n_prompts, prompts[i]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(runs, o);
        cJSON_AddStringToObject(o, "category", categories[i]);
        if (compare_prompt(&m, &t, prompts[i], &g, n_prompts > 1, &sums[i], o, err) != 0) {
            free(sums);
            goto done;
        }
    }
    if (n_prompts > 1) {
        fprintf(stderr, "\n");
        printf("%-10s %-32s %5s %4s %6s %10s %10s %7s %6s %6s %5s %6s\n", "category", "prompt", "steps", "par", "later",
               "KL(i||v)", "JS", "cosine", "top1", "top5", "div@", "t i/v");
        CompareSummary all = {0};
        int with_later = 0;
        for (int i = 0; i < n_prompts; i++) {
            CompareSummary *s = &sums[i];
            printf("%-10s %-32.32s %5d %4d %6d %10.3e %10.3e %7.4f %6.3f %6.3f %5d %6.3f\n", categories[i], prompts[i], s->steps,
                   s->parallel_steps, s->later_members, s->kl_iv, s->js, s->cosine, s->top1, s->top5, s->first_divergence,
                   s->vis_seconds > 0 ? s->iso_seconds / s->vis_seconds : 0.0);
            all.steps += s->steps; all.parallel_steps += s->parallel_steps; all.later_members += s->later_members;
            all.iso_seconds += s->iso_seconds; all.vis_seconds += s->vis_seconds;
            all.kl_iv += s->kl_iv * s->later_members; all.js += s->js * s->later_members;
            all.cosine += s->cosine * s->later_members; all.top1 += s->top1 * s->later_members;
            all.top5 += s->top5 * s->later_members;
            with_later += s->later_members > 0;
            if (s->prefix_max_abs != 0) printf("  note: rows before the first parallel set differ by %g\n", s->prefix_max_abs);
        }
        double k = all.later_members ? all.later_members : 1;
        printf("%-10s %-32s %5d %4d %6d %10.3e %10.3e %7.4f %6.3f %6.3f %5s %6.3f\n", "all", "(weighted by later members)",
               all.steps, all.parallel_steps, all.later_members, all.kl_iv / k, all.js / k, all.cosine / k, all.top1 / k,
               all.top5 / k, "-", all.vis_seconds > 0 ? all.iso_seconds / all.vis_seconds : 0.0);
    }
    free(sums);
    const char *json = flag(&a, "--json");
    if (json) {
        char *text = cJSON_Print(root);
        if (!text || tempo_write_text_file(json, text, err) != 0) {
            free(text);
            goto done;
        }
        free(text);
    }
    rc = 0;
done:
    for (int i = 0; i < n_prompts; i++) {
        free(categories[i]);
        free(prompts[i]);
    }
    free(categories);
    free(prompts);
    cJSON_Delete(root);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo attention: attention to parallel tokens, heatmaps, pictures      */
/* ===================================================================== */

static const char *const attention_valued[] = {"--heatmap", "--rows", "--svg", "--svg-grid", "--row", "--svg-pair", NULL};

/* What tempo attention was asked for; its syntax is checked before any work. */
typedef struct {
    int layer, head;       /* --heatmap L:H; 0:0 without it */
    int r0, r1, have_rows; /* --rows A-B: rows [r0, r1) */
    int row, have_row;     /* --row R for --svg-grid */
} AttentionRequest;

/* What tempo attention reads: a trace, or a fresh run of a model. */
typedef struct {
    Model m;
    Tokenizer t;
    Trace tr;
    Generation gen;
    AttentionView v;
    int n_prompt;
    char **labels;   /* [v.n] token texts for axes */
    char model_name[256];
} AttentionInput;

/* "A:B" or "A-B" into two ints. */
static int parse_pair(const char *s, char sep, int *a, int *b) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end != sep || x < INT32_MIN || x > INT32_MAX) return -1;
    const char *rest = end + 1;
    long y = strtol(rest, &end, 10);
    if (end == rest || *end != '\0' || errno || y < INT32_MIN || y > INT32_MAX) return -1;
    *a = (int)x;
    *b = (int)y;
    return 0;
}

/* Flags that do nothing for this input are refused rather than dropped. */
static int attention_unused_flags(const Args *a, int from_trace, char *err) {
    static const char *const output_only[] = {"--no-color", "--hide-pruned", "--verbose", "--quiet", NULL};
    static const char *const for_trace[] = {"-m", "-z", "--json", "--threads", "--heatmap", "--rows", "--svg", "--svg-grid",
                                            "--row", "--svg-pair", NULL};
    for (int i = 0; i < a->n; i++) {
        if (in_list(a->name[i], output_only))
            return tempo_error(err, "%s does nothing in tempo attention", a->name[i]);
        if (from_trace && !in_list(a->name[i], for_trace))
            return tempo_error(err, "%s applies to a fresh run (-p PROMPT), not to a trace already written", a->name[i]);
    }
    return 0;
}

static int attention_request(const Args *a, AttentionRequest *r, char *err) {
    const char *v;
    memset(r, 0, sizeof *r);
    if ((v = flag(a, "--heatmap")) && (parse_pair(v, ':', &r->layer, &r->head) != 0 || r->layer < 0 || r->head < 0))
        return tempo_error(err, "--heatmap must be LAYER:HEAD, two numbers from 0, got '%s'", v);
    if ((v = flag(a, "--rows"))) {
        if (parse_pair(v, '-', &r->r0, &r->r1) != 0 || r->r0 < 0 || r->r1 < r->r0 || r->r1 == INT32_MAX)
            return tempo_error(err, "--rows must be A-B with 0 <= A <= B, got '%s'", v);
        r->r1++;
        r->have_rows = 1;
    }
    if ((v = flag(a, "--row")) && tempo_parse_int(v, "--row", 0, 1 << 20, &r->row, err) != 0) return -1;
    r->have_row = v != NULL;
    if (r->have_row && !flag(a, "--svg-grid")) return tempo_error(err, "--row chooses the query of --svg-grid; give --svg-grid FILE");
    if (r->have_rows && !flag(a, "--heatmap") && !flag(a, "--svg") && !flag(a, "--svg-pair"))
        return tempo_error(err, "--rows chooses the rows of --heatmap, --svg or --svg-pair; give one of them");
    if (flag(a, "--svg-pair") && !flag(a, "-m"))
        return tempo_error(err, "--svg-pair needs -m MODEL: it recomputes the rows under both masks");
    int have_prompt = flag(a, "-p") || flag(a, "--prompt") || flag(a, "--tokens");
    if (a->n_positional > 1 || (a->n_positional == 1) == have_prompt)
        return tempo_error(err, "give one TRACE, or -m MODEL -z TOK -p PROMPT for a fresh run");
    return attention_unused_flags(a, a->n_positional == 1, err);
}

/* The request against the data: layers and heads (n < 0: rows not known yet). */
static int attention_request_fits(const AttentionRequest *r, int n_layers, int n_heads, int n, char *err) {
    if (r->layer >= n_layers || r->head >= n_heads)
        return tempo_error(err, "--heatmap %d:%d is out of range: layers 0-%d, heads 0-%d", r->layer, r->head, n_layers - 1,
                           n_heads - 1);
    if (n >= 0 && r->have_rows && r->r1 > n)
        return tempo_error(err, "--rows %d-%d is out of range: the run has rows 0-%d", r->r0, r->r1 - 1, n - 1);
    if (n >= 0 && r->have_row && r->row >= n)
        return tempo_error(err, "--row %d is out of range: the run has rows 0-%d", r->row, n - 1);
    return 0;
}

/* -z without -m: the vocabulary size comes from the trace. */
static int attention_tokenizer(const Args *a, AttentionInput *in, char *err) {
    const char *vocab = tempo_trace_meta_get(&in->tr, "vocab_size");
    const Tensor *logits = tempo_trace_get(&in->tr, "logits");
    int size = 0;
    if (vocab && tempo_parse_int(vocab, "trace metadata vocab_size", 1, 1 << 24, &size, err) != 0) return -1;
    if (!vocab && logits && logits->ndim == 2) size = (int)logits->shape[1];
    if (size <= 0) return tempo_error(err, "-z needs the vocabulary size, which the trace does not record; give -m MODEL too");
    return tempo_tokenizer_load(&in->t, flag(a, "-z"), size, err);
}

static int attention_from_trace(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    if (tempo_trace_read(&in->tr, a->positional[0], err) != 0) return -1;
    if (attention_view_from_trace(&in->tr, &in->v, &in->n_prompt, err) != 0) return -1;
    if (attention_request_fits(r, in->v.n_layers, in->v.n_heads, in->v.n, err) != 0) return -1;
    if (!flag(a, "-m")) return flag(a, "-z") ? attention_tokenizer(a, in, err) : 0;
    if (load_model_and_tokenizer(a, &in->m, &in->t, 0, err) != 0) return -1;
    const Config *c = &in->m.config;
    if (c->n_layers != in->v.n_layers || c->n_heads != in->v.n_heads)
        return tempo_error(err, "the trace has %d layers x %d heads but %s has %d x %d", in->v.n_layers, in->v.n_heads,
                           flag(a, "-m"), c->n_layers, c->n_heads);
    for (int i = 0; i < in->v.n; i++)
        if (in->v.tokens[i] < 0 || in->v.tokens[i] >= c->vocab_size)
            return tempo_error(err, "trace token %d at row %d is outside the vocabulary of %s (%d)", in->v.tokens[i], i,
                               flag(a, "-m"), c->vocab_size);
    return 0;
}

static int attention_fresh_run(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    GenConfig g;
    int *prompt = NULL, n_prompt = 0;
    if (load_model_and_tokenizer(a, &in->m, &in->t, flag(a, "-p") || flag(a, "--prompt"), err) != 0) return -1;
    const Config *c = &in->m.config;
    if (attention_request_fits(r, c->n_layers, c->n_heads, -1, err) != 0 || parse_generation_flags(a, c, &g, err) != 0 ||
        prompt_ids(a, &in->m, &in->t, &prompt, &n_prompt, err) != 0)
        return -1;
    g.capture_attention = g.keep_logits = 1;
    int rc = tempo_generate(&in->m, prompt, n_prompt, &g, &in->gen, err);
    free(prompt);
    if (rc != 0 || tempo_generation_trace(&in->gen, &in->m, &in->tr, err) != 0) return -1;
    if (flag(a, "--trace") && tempo_trace_write(&in->tr, flag(a, "--trace"), err) != 0) return -1;
    if (attention_view_from_trace(&in->tr, &in->v, &in->n_prompt, err) != 0) return -1;
    return attention_request_fits(r, c->n_layers, c->n_heads, in->v.n, err);
}

/* The trace or the run, its view, and a label for every row. */
static int attention_load(const Args *a, const AttentionRequest *r, AttentionInput *in, char *err) {
    if ((a->n_positional == 1 ? attention_from_trace(a, r, in, err) : attention_fresh_run(a, r, in, err)) != 0) return -1;
    if (!in->v.model[0] && in->m.path[0]) { /* a trace without a model name: the one given */
        const char *base = strrchr(in->m.path, '/');
        snprintf(in->model_name, sizeof in->model_name, "%s", base ? base + 1 : in->m.path);
        in->v.model = in->model_name;
    }
    in->labels = calloc((size_t)in->v.n, sizeof(char *));
    if (!in->labels) return tempo_error(err, "out of memory");
    for (int i = 0; i < in->v.n; i++)
        if (!(in->labels[i] = token_label(&in->t, i ? in->v.tokens[i - 1] : -1, in->v.tokens[i])))
            return tempo_error(err, "out of memory");
    return 0;
}

static void attention_input_free(AttentionInput *in) {
    for (int i = 0; in->labels && i < in->v.n; i++) free(in->labels[i]);
    free(in->labels);
    tempo_trace_free(&in->tr);
    tempo_generation_free(&in->gen);
    tempo_tokenizer_free(&in->t);
    tempo_model_free(&in->m);
}

/* --svg-pair: the view's rows under both masks, drawn side by side. */
static int attention_pair_picture(const char *path, const AttentionInput *in, int l, int h, int r0, int r1, char *err) {
    AttentionView iso, vis;
    void *buffers;
    if (attention_pair(&in->m, &in->v, &iso, &vis, &buffers, err) != 0) return -1;
    int rc = pair_svg(path, &iso, &vis, (const char *const *)in->labels, l, h, r0, r1, err);
    free(buffers);
    return rc;
}

/* The table, then each picture asked for, then the JSON. */
static int attention_outputs(const Args *a, const AttentionRequest *r, const AttentionInput *in, char *err) {
    const char *const *labels = (const char *const *)in->labels;
    int r0 = r->have_rows ? r->r0 : 0, r1 = r->have_rows ? r->r1 : in->v.n, rc = 0;
    cJSON *root = cJSON_CreateObject();
    if (!root) return tempo_error(err, "out of memory");
    attention_report(stdout, &in->v, in->n_prompt, root);
    if (flag(a, "--heatmap")) heatmap_ascii(stdout, &in->v, labels, r->layer, r->head, r0, r1);
    const char *svg = flag(a, "--svg"), *grid = flag(a, "--svg-grid"), *pair = flag(a, "--svg-pair"), *json = flag(a, "--json");
    if (svg) rc = heatmap_svg(svg, &in->v, labels, r->layer, r->head, r0, r1, err);
    if (rc == 0 && grid) rc = grid_svg(grid, &in->v, labels, r->have_row ? r->row : in->v.n - 1, err);
    if (rc == 0 && pair) rc = attention_pair_picture(pair, in, r->layer, r->head, r0, r1, err);
    char *text = rc == 0 && json ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0 && json) rc = text ? tempo_write_text_file(json, text, err) : tempo_error(err, "out of memory writing JSON");
    free(text);
    return rc;
}

static int cmd_attention(int argc, char **argv, char *err) {
    Args a;
    AttentionRequest r;
    if (parse_args(argc, argv, "attention", generation_valued, attention_valued, generation_switches, &a, err) != 0) return 1;
    if (attention_request(&a, &r, err) != 0) return 1;
    apply_threads(&a);
    AttentionInput in;
    memset(&in, 0, sizeof in);
    tempo_trace_init(&in.tr);
    int rc = attention_load(&a, &r, &in, err) != 0 || attention_outputs(&a, &r, &in, err) != 0;
    attention_input_free(&in);
    return rc;
}

/* ===================================================================== */
/* tempo encode, tempo synth                                             */
/* ===================================================================== */

static int cmd_encode(int argc, char **argv, char *err) {
    static const char *const valued[] = {"-m", "-z", "--prompt", "-p", NULL};
    static const char *const switches[] = {NULL};
    Args a;
    if (parse_args(argc, argv, "encode", valued, NULL, switches, &a, err) != 0) return 1;
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

/* tempo check MODEL: validates a checkpoint and reports NaN/Inf weights. */
static int cmd_check(int argc, char **argv, char *err) {
    static const char *const valued[] = {NULL};
    static const char *const switches[] = {NULL};
    Args a;
    if (parse_args(argc, argv, "check", valued, NULL, switches, &a, err) != 0) return 1;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo check MODEL"), 1;
    Model m;
    if (tempo_model_load(&m, a.positional[0], err) != 0) return 1;
    const Config *c = &m.config;
    printf("%s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %s classifier\n", a.positional[0], c->dim,
           c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
           c->shared_classifier ? "tied" : "untied");
    if (m.converted_bytes > 0)
        printf("f16/bf16 weights converted to f32: %.1f MB in memory\n", m.converted_bytes / 1e6);
    size_t bad = tempo_model_check(&m, stdout);
    tempo_model_free(&m);
    if (bad) return tempo_error(err, "checkpoint %s holds %zu NaN/Inf weights", a.positional[0], bad), 1;
    printf("ok: every weight is finite\n");
    return 0;
}

/* tempo synth --format gguf: --dtype any stored type, --tokenizer spm (default), llama3 or gpt2 (byte-level BPE). */
static int synth_gguf(const Args *a, SynthConfig *s, const char *out, const char *dtype, char *err) {
    static const char *const types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};
    int t = 0;
    while (t < 8 && strcmp(dtype, types[t]) != 0) t++;
    if (t == 8) return tempo_error(err, "--dtype must be f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k, got '%s'", dtype), 1;
    const char *style = flag(a, "--tokenizer") ? flag(a, "--tokenizer") : "spm";
    if (strcmp(style, "spm") != 0 && strcmp(style, "llama3") != 0 && strcmp(style, "gpt2") != 0)
        return tempo_error(err, "--tokenizer must be spm, llama3 or gpt2, got '%s'", style), 1;
    s->pre_tokenizer = strcmp(style, "gpt2") == 0 ? PRETOKENIZE_GPT2 : PRETOKENIZE_LLAMA3;
    if (!flag(a, "--vocab")) s->vocab_size = 384;
    if (!flag(a, "--dim")) s->dim = 256;
    if (!flag(a, "--hidden")) s->hidden_dim = 512;
    GgufVocab vocab = strcmp(style, "spm") == 0 ? GGUF_VOCAB_SPM : GGUF_VOCAB_BPE;
    return tempo_synth_write_gguf(s, (WeightType)t, vocab, out, err) != 0;
}

static int cmd_synth(int argc, char **argv, char *err) {
    static const char *const valued[] = {"--out", "--seed", "--dim", "--hidden", "--layers", "--heads", "--kv-heads",
                                         "--vocab", "--seq-len", "--format", "--dtype", "--tokenizer", NULL};
    static const char *const switches[] = {"--untied", NULL};
    Args a;
    if (parse_args(argc, argv, "synth", valued, NULL, switches, &a, err) != 0) return 1;
    SynthConfig s;
    tempo_synth_defaults(&s);
    struct { const char *flag; int *field; } ints[] = {{"--dim", &s.dim}, {"--hidden", &s.hidden_dim},
        {"--layers", &s.n_layers}, {"--heads", &s.n_heads}, {"--kv-heads", &s.n_kv_heads},
        {"--vocab", &s.vocab_size}, {"--seq-len", &s.seq_len}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (flag(&a, ints[i].flag) && tempo_parse_int(flag(&a, ints[i].flag), ints[i].flag, 1, 1 << 22, ints[i].field, err) != 0)
            return 1;
    int seed = 42;
    if (flag(&a, "--seed") && tempo_parse_int(flag(&a, "--seed"), "--seed", 0, 2147483647, &seed, err) != 0) return 1;
    s.seed = (uint64_t)seed;
    s.shared_classifier = flag(&a, "--untied") == NULL;
    const char *out = flag(&a, "--out");
    if (!out) return tempo_error(err, "missing --out FILE"), 1;
    const char *format = flag(&a, "--format") ? flag(&a, "--format") : "llama2c", *dtype = flag(&a, "--dtype") ? flag(&a, "--dtype") : "f32";
    if (strcmp(format, "gguf") == 0) return synth_gguf(&a, &s, out, dtype, err);
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0) return tempo_error(err, "--dtype must be f32 or bf16, got '%s'", dtype), 1;
    const char *style = flag(&a, "--tokenizer") ? flag(&a, "--tokenizer") : "llama3";
    if (strcmp(style, "llama3") != 0 && strcmp(style, "gpt2") != 0)
        return tempo_error(err, "--tokenizer must be llama3 or gpt2, got '%s'", style), 1;
    s.pre_tokenizer = strcmp(style, "gpt2") == 0 ? PRETOKENIZE_GPT2 : PRETOKENIZE_LLAMA3;
    if (strcmp(format, "hf") == 0 && !flag(&a, "--vocab")) s.vocab_size = 384; /* room for a tokenizer.json */
    if (strcmp(format, "hf") == 0) return tempo_synth_write_hf(&s, out, strcmp(dtype, "bf16") == 0, err) != 0;
    if (strcmp(format, "llama2c") != 0) return tempo_error(err, "--format must be llama2c, hf or gguf, got '%s'", format), 1;
    if (strcmp(dtype, "f32") != 0) return tempo_error(err, "llama2.c checkpoints are f32 only"), 1;
    return tempo_synth_write(&s, out, err) != 0;
}

/* tempo convert CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0] */
static int cmd_convert(int argc, char **argv, char *err) {
    static const char *const valued[] = {"--out", "--dtype", NULL};
    Args a;
    if (parse_args(argc, argv, "convert", valued, NULL, NULL, &a, err) != 0) return 1;
    const char *out = flag(&a, "--out"), *dtype = flag(&a, "--dtype") ? flag(&a, "--dtype") : "f32";
    if (a.n_positional != 2 || !out) return tempo_error(err, "usage: tempo convert CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0]"), 1;
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "q8_0") != 0) return tempo_error(err, "--dtype must be f32 or q8_0, got '%s'", dtype), 1;
    return tempo_convert_gguf(a.positional[0], a.positional[1], strcmp(dtype, "q8_0") == 0, out, err) != 0;
}

/* ===================================================================== */
/* main                                                                  */
/* ===================================================================== */

static void usage(void) {
    fprintf(stderr,
            "usage: tempo COMMAND [flags]\n"
            "  forward  -m MODEL [-z TOK] (--prompt TEXT | --tokens IDS) [--positions P] [--sets S]\n"
            "           [--mask causal|isolated|visible|FILE] [--out TRACE]   one full forward pass\n"
            "  generate -m MODEL -z TOK -p PROMPT [-n STEPS] [--threshold T] [--mode isolated|visible] [--svg-tree F] ...\n"
            "  verify   -m MODEL TRACE [--atol X]      recompute a trace from any engine and diff it\n"
            "  audit    -m MODEL TRACE [--mode M --threshold T --max-width W --n-prompt P --next-from F] [--json OUT]\n"
            "                                          check an engine's TEMPO run: rows, masks, selections, replay\n"
            "  diff     A B [--atol X] [--rtol Y]      compare two traces tensor by tensor\n"
            "  compare  -m MODEL -z TOK (-p PROMPT | --prompts FILE) [generation flags] [--json OUT]\n"
            "  attention (TRACE [-z TOK] [-m MODEL] | -m MODEL -z TOK -p PROMPT ...) [--heatmap L:H] [--rows A-B]\n"
            "           [--svg F] [--svg-grid F [--row R]] [--svg-pair F (needs -m)] [--json F]\n"
            "  encode   -m MODEL -z TOK -p TEXT        print token ids\n"
            "  check    MODEL                          validate a checkpoint, report NaN/Inf weights\n"
            "  synth    --out FILE [--seed N] [--untied] [--dim D ...]   write a synthetic checkpoint\n"
            "           [--format hf [--dtype bf16] [--tokenizer llama3|gpt2]]   (a directory with tokenizer.json)\n"
            "           [--format gguf [--dtype f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k] [--tokenizer spm|llama3|gpt2]]\n"
            "  convert  CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0]   a llama2.c model as GGUF\n"
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
        {"diff", cmd_diff}, {"encode", cmd_encode}, {"synth", cmd_synth}, {"convert", cmd_convert}, {"compare", cmd_compare},
        {"attention", cmd_attention}, {"check", cmd_check}, {"audit", cmd_audit}};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int rc = commands[i].run(argc - 2, argv + 2, err);
        if (rc != 0 && err[0]) fprintf(stderr, "tempo %s: error: %s\n", argv[1], err);
        return rc;
    }
    fprintf(stderr, "tempo: error: unknown command '%s' (try tempo --help)\n", argv[1]);
    return 1;
}
