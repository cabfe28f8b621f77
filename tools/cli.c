/* cli.c - the tempo command-line tool: its commands and their flag
 * tables. The algorithm lives in tempo.c; flags.c parses flags,
 * settings.c holds the generation settings, inputs.c loads what the flags
 * name, printing.c shows the results, trace_diff.c compares traces,
 * attention_input.c and compare_suite.c serve their commands. */
#define _GNU_SOURCE
#include <errno.h>
#include "attention_input.h"
#include "audit.h"
#include "compare_numerics.h"
#include "compare_suite.h"
#include "inputs.h"
#include "memory.h"
#include "../kernels/kernels.h"
#include "pictures.h"
#include "printing.h"
#include "settings.h"
#include "synth.h"
#include "synth_gguf.h"
#include "trace_diff.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ===================================================================== */
/* Flags                                                                 */
/* ===================================================================== */
/* Each flag is defined once; each command lists the ones it takes. The
 * generation settings' flags are the table of settings.c. */

/* ---- the flags, each defined once; commands list the ones they take ---- */

static const FlagSpec F_MODEL = {"-m", NULL, FLAG_TEXT, "MODEL", NULL, 0, 0, NULL,
    "checkpoint: a llama2.c .bin file or a Hugging Face directory", .key = NULL};
static const FlagSpec F_TOKENIZER = {"-z", NULL, FLAG_TEXT, "TOK", NULL, 0, 0, NULL,
    "tokenizer.bin or tokenizer.json (a Hugging Face directory brings its own)", .key = NULL};
static const FlagSpec F_PROMPT = {"--prompt", "-p", FLAG_TEXT, "TEXT", NULL, 0, 0, NULL, "the prompt; BOS is added", .key = NULL};
static const FlagSpec F_TOKENS = {"--tokens", NULL, FLAG_TEXT, "IDS", NULL, 0, 0, NULL,
    "the prompt as comma-separated token ids (or @FILE holding them), instead of --prompt", .key = NULL};
static const FlagSpec F_THREADS = {"--threads", NULL, FLAG_INT, "N", "OpenBLAS/OpenMP's choice", 1, 1024, NULL,
    "threads for the matrix products", .key = NULL};
static const FlagSpec F_JSON = {"--json", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL, "also write the results as JSON", .key = NULL};
static const FlagSpec F_TRACE = {"--trace", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL,
    "write the run as a trace (tokens, positions, masks, logits, attention)", .key = NULL};
static const FlagSpec F_TRACE_MASK = {"--trace-mask", NULL, FLAG_TEXT, "FORM", "bits", 0, 0, "bits or rule",
    "how --trace stores the mask: packed bits (n x n / 8 bytes a mask layer), or the rule (mode, per-layer kinds, sets, "
    "pruned rows: a few bytes)", .key = NULL};
static const FlagSpec F_NO_COLOR = {"--no-color", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL, "no colours on a terminal", .key = NULL};
static const FlagSpec F_HIDE_PRUNED = {"--hide-pruned", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "leave pruned members out of the text (shown as ~tok~ otherwise)", .key = NULL};
static const FlagSpec F_VERBOSE = {"--verbose", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "each step on stderr: threshold, members and their probabilities, time", .key = NULL};
static const FlagSpec F_QUIET = {"--quiet", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL, "do not print the text", .key = NULL};
static const FlagSpec F_PROMPTS = {"--prompts", NULL, FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "a prompt suite: lines \"category<TAB>prompt\" (or a prompt), '#' comments", .key = NULL};
static const FlagSpec F_HEATMAP = {"--heatmap", NULL, FLAG_TEXT, "L:H", NULL, 0, 0, NULL, "ASCII heatmap of layer L head H", .key = NULL};
static const FlagSpec F_ROWS = {"--rows", NULL, FLAG_TEXT, "A-B", "every row", 0, 0, NULL, "rows of the heatmaps", .key = NULL};
static const FlagSpec F_SVG = {"--svg", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL, "SVG heatmap of --heatmap's layer and head", .key = NULL};
static const FlagSpec F_SVG_GRID = {"--svg-grid", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL,
    "SVG grid of every layer and head for the query --row", .key = NULL};
static const FlagSpec F_SVG_PAIR = {"--svg-pair", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL,
    "SVG of the rows teacher-forced under the isolated and the visible mask, and their difference (needs -m)", .key = NULL};
static const FlagSpec F_SVG_SERIES = {"--svg-series", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL,
    "SVG of the width and threshold over the steps (the JSON has them as \"series\")", .key = NULL};
static const FlagSpec F_SVG_TREE = {"--svg-tree", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL,
    "SVG picture of the run: the text as a path, each parallel set stacked at its position", .key = NULL};
static const FlagSpec F_ROW = {"--row", NULL, FLAG_INT, "R", "the last row", 0, 1 << 20, NULL, "query row of --svg-grid", .key = NULL};
static const FlagSpec F_POSITIONS = {"--positions", NULL, FLAG_TEXT, "P", "0,1,2,...", 0, 0, NULL,
    "logical (RoPE) position of each row, comma-separated (or @FILE)", .key = NULL};
static const FlagSpec F_SETS = {"--sets", NULL, FLAG_TEXT, "S", "the positions", 0, 0, NULL,
    "set id of each row, comma-separated or @FILE (rows of one set are isolated from each other)", .key = NULL};
static const FlagSpec F_MASK = {"--mask", NULL, FLAG_TEXT, "MASK", "causal", 0, 0, "causal, isolated, visible or a FILE",
    "the attention mask; a FILE holds one row of 0/1 per line", .key = NULL};
static const FlagSpec F_OUT_TRACE = {"--out", NULL, FLAG_OUTPUT, "TRACE", NULL, 0, 0, NULL, "write a trace of the pass", .key = NULL};
static const FlagSpec F_NO_ATTENTION = {"--no-attention", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "keep no attention (a smaller trace)", .key = NULL};
static const FlagSpec F_ATTENTION_LAYERS = {"--attention-layers", NULL, FLAG_TEXT, "L", "every layer", 0, 0, NULL,
    "layers whose attention is kept, indices and ranges: 0,2,5-7", .key = NULL};
static const FlagSpec F_ATTENTION_HEADS = {"--attention-heads", NULL, FLAG_TEXT, "H", "every head", 0, 0, NULL,
    "heads whose attention is kept, indices and ranges", .key = NULL};
static const FlagSpec F_ATTENTION_ROWS = {"--attention-rows", NULL, FLAG_TEXT, "R",
    "forward: every row; generate: the generated rows", 0, 0, NULL, "query rows whose attention is kept, indices and ranges, or all", .key = NULL};
static const FlagSpec F_ATOL = {"--atol", NULL, FLAG_NUMBER, "X", "1e-4", 0, 1e30, NULL, "absolute tolerance", .key = NULL};
static const FlagSpec F_RTOL = {"--rtol", NULL, FLAG_NUMBER, "X", "0", 0, 1e30, NULL, "relative tolerance (of B)", .key = NULL};
static const FlagSpec F_OUT = {"--out", NULL, FLAG_OUTPUT, "PATH", NULL, 0, 0, NULL, "where to write (required)", .key = NULL};
static const FlagSpec F_SEED = {"--seed", NULL, FLAG_INT, "N", "42", 0, 2147483647, NULL, "random seed", .key = NULL};
/* The synth shape's ranges are the loaders' limits (tempo_config_check in formats/model.c), so a file synth writes loads. */
static const FlagSpec F_DIM = {"--dim", NULL, FLAG_INT, "D", "64", 1, TEMPO_MAX_DIM, NULL, "residual width", .key = NULL};
static const FlagSpec F_HIDDEN = {"--hidden", NULL, FLAG_INT, "N", "172", 1, 4 * TEMPO_MAX_DIM, NULL, "SwiGLU inner width", .key = NULL};
static const FlagSpec F_LAYERS = {"--layers", NULL, FLAG_INT, "N", "2", 1, 1024, NULL, "layers", .key = NULL};
static const FlagSpec F_HEADS = {"--heads", NULL, FLAG_INT, "N", "4", 1, 1024, NULL, "query heads", .key = NULL};
static const FlagSpec F_KV_HEADS = {"--kv-heads", NULL, FLAG_INT, "N", "2", 1, 1024, NULL, "key/value heads", .key = NULL};
static const FlagSpec F_VOCAB = {"--vocab", NULL, FLAG_INT, "N", "256 (384 with --format hf)", 1, 1 << 22, NULL,
    "vocabulary size", .key = NULL};
static const FlagSpec F_SEQ_LEN = {"--seq-len", NULL, FLAG_INT, "N", "256", 1, 1 << 24, NULL, "context length", .key = NULL};
static const FlagSpec F_FORMAT = {"--format", NULL, FLAG_TEXT, "F", "llama2c", 0, 0, "llama2c, hf or gguf",
    "a llama2.c .bin, a Hugging Face directory with a tokenizer.json, or a GGUF file", .key = NULL};
static const FlagSpec F_DTYPE = {"--dtype", NULL, FLAG_TEXT, "T", "f32", 0, 0,
    "f32; bf16 with hf; f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k with gguf", "weight type", .key = NULL};
static const FlagSpec F_SYNTH_TOKENIZER = {"--tokenizer", NULL, FLAG_TEXT, "STYLE", "llama3 (hf), spm (gguf)", 0, 0,
    "llama3 or gpt2; spm too with gguf", "the tokenizer written with --format hf or gguf", .key = NULL};
static const FlagSpec F_UNTIED = {"--untied", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "a classifier of its own (tied to the embedding otherwise)", .key = NULL};

static const FlagSpec F_AUDIT_N_PROMPT = {"--n-prompt", NULL, FLAG_INT, "P", "the trace's metadata", 1, 1 << 20, NULL,
    "rows of the prompt", .key = NULL};
static const FlagSpec F_AUDIT_ATOL = {"--atol", NULL, FLAG_NUMBER, "X", "1e-4", 0, 1e30, NULL, "tolerance of the replayed logits", .key = NULL};
static const FlagSpec F_AUDIT_JSON = {"--json", NULL, FLAG_OUTPUT, "FILE", NULL, 0, 0, NULL, "also write the findings as JSON", .key = NULL};
static const FlagSpec F_VS_NUMERICS = {"--vs-numerics", NULL, FLAG_TEXT, "P", NULL, 0, 0, "exact, ggml or torch",
    "instead of isolated vs visible: one run under --numerics, its sets chosen again under P (--kv-type, --flash-attn "
    "and --repack set the ggml side)", .key = NULL};
static const FlagSpec F_CONVERT_OUT = {"--out", NULL, FLAG_OUTPUT, "FILE.gguf", NULL, 0, 0, NULL, "where to write (required)", .key = NULL};
static const FlagSpec F_CONVERT_DTYPE = {"--dtype", NULL, FLAG_TEXT, "T", "f32", 0, 0, "f32 or q8_0", "weight type of the GGUF file", .key = NULL};

/* A generation setting's flag: an entry of the table in settings.c. */
#define SETTING_FLAG(k) &SETTINGS[SET_##k]
/* Every command that generates (generate, compare, attention). */
static const FlagSpec *const generation_valued[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_TOKENS,
    SETTING_FLAG(MAX_TOKENS), SETTING_FLAG(THRESHOLD), SETTING_FLAG(MAX_WIDTH), SETTING_FLAG(MODE),
    SETTING_FLAG(ISOLATE_LAYERS), SETTING_FLAG(NEXT_FROM), SETTING_FLAG(SCHEDULE), SETTING_FLAG(FINAL_THRESHOLD),
    SETTING_FLAG(BEZIER), SETTING_FLAG(PRUNE), SETTING_FLAG(PRUNE_WINDOW), SETTING_FLAG(PRUNE_LAYERS),
    SETTING_FLAG(PRUNE_THRESHOLD), SETTING_FLAG(EMULATE), SETTING_FLAG(NUMERICS), SETTING_FLAG(KV_TYPE), SETTING_FLAG(FLASH_ATTN), SETTING_FLAG(REPACK), SETTING_FLAG(POSITION_GAP),
    &F_JSON, &F_THREADS, NULL};
static const FlagSpec *const generation_switches[] = {SETTING_FLAG(GREEDY), SETTING_FLAG(STOP_ON_EMPTY),
    SETTING_FLAG(DYNAMIC), NULL};
/* generate's own: the trace and how the text is shown */
static const FlagSpec *const generate_output[] = {&F_TRACE, &F_TRACE_MASK, &F_NO_ATTENTION, &F_ATTENTION_LAYERS, &F_ATTENTION_HEADS,
    &F_ATTENTION_ROWS, &F_SVG_TREE, &F_SVG_SERIES, &F_NO_COLOR, &F_HIDE_PRUNED, &F_VERBOSE, &F_QUIET, NULL};
/* compare runs both modes on text prompts (--mode only for --vs-numerics's one run), no --tokens */
static const FlagSpec *const compare_generation[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, SETTING_FLAG(MAX_TOKENS), SETTING_FLAG(MODE),
    SETTING_FLAG(THRESHOLD), SETTING_FLAG(MAX_WIDTH), SETTING_FLAG(ISOLATE_LAYERS), SETTING_FLAG(NEXT_FROM),
    SETTING_FLAG(SCHEDULE), SETTING_FLAG(FINAL_THRESHOLD), SETTING_FLAG(BEZIER), SETTING_FLAG(PRUNE),
    SETTING_FLAG(PRUNE_WINDOW), SETTING_FLAG(PRUNE_LAYERS), SETTING_FLAG(PRUNE_THRESHOLD), SETTING_FLAG(EMULATE),
    SETTING_FLAG(NUMERICS), SETTING_FLAG(KV_TYPE), SETTING_FLAG(FLASH_ATTN), SETTING_FLAG(REPACK), SETTING_FLAG(POSITION_GAP), &F_JSON, &F_THREADS, &F_PROMPTS, &F_VS_NUMERICS, NULL};
/* attention's own: heatmaps and pictures */
static const FlagSpec *const analysis_valued[] = {&F_HEATMAP, &F_ROWS, &F_SVG, &F_SVG_GRID, &F_ROW, &F_SVG_PAIR, &F_TRACE,
    &F_TRACE_MASK, NULL};
static const FlagSpec *const forward_flags[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_TOKENS, &F_POSITIONS,
    &F_SETS, &F_MASK, &F_OUT_TRACE, &F_THREADS, &F_NO_ATTENTION, &F_ATTENTION_LAYERS, &F_ATTENTION_HEADS,
    &F_ATTENTION_ROWS, SETTING_FLAG(NUMERICS), SETTING_FLAG(KV_TYPE), SETTING_FLAG(FLASH_ATTN), SETTING_FLAG(REPACK), NULL};
static const FlagSpec *const tolerance_flags[] = {&F_ATOL, &F_RTOL, NULL};
/* audit: the settings the engine claims (else its trace's metadata) */
static const FlagSpec *const audit_flag_specs[] = {&F_MODEL, SETTING_FLAG(MODE), SETTING_FLAG(THRESHOLD),
    SETTING_FLAG(MAX_WIDTH), &F_AUDIT_N_PROMPT, SETTING_FLAG(NEXT_FROM), &F_AUDIT_ATOL, &F_AUDIT_JSON, &F_THREADS,
    SETTING_FLAG(NUMERICS), SETTING_FLAG(KV_TYPE), SETTING_FLAG(FLASH_ATTN), SETTING_FLAG(REPACK), NULL};
static const FlagSpec *const convert_flags[] = {&F_CONVERT_OUT, &F_CONVERT_DTYPE, NULL};
static const FlagSpec *const verify_flags[] = {&F_MODEL, &F_THREADS, SETTING_FLAG(NUMERICS), SETTING_FLAG(KV_TYPE), SETTING_FLAG(FLASH_ATTN), SETTING_FLAG(REPACK), NULL};
static const FlagSpec *const encode_flags[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, NULL};
static const FlagSpec *const synth_flags[] = {&F_OUT, &F_SEED, &F_DIM, &F_HIDDEN, &F_LAYERS, &F_HEADS, &F_KV_HEADS,
    &F_VOCAB, &F_SEQ_LEN, &F_FORMAT, &F_DTYPE, &F_SYNTH_TOKENIZER, &F_UNTIED, NULL};
#undef SETTING_FLAG

/* Bytes a forward over n rows holds: the weights as they become resident,
 * the cache and the scratch of one chunk of rows, every row's logits, the kept attention, a dense
 * --mask FILE, and the trace (--out: its copies of these and the mask). */
static size_t forward_bytes(const Model *m, int n, size_t attention_values, int dense_mask, int trace) {
    const Config *c = &m->config;
    size_t logits = (size_t)n * c->vocab_size * sizeof(float), attention = attention_values * sizeof(float);
    int rows = tempo_forward_chunk_rows(n, dense_mask, attention_values > 0); /* the scratch's rows */
    size_t mask = (size_t)n * n, state = tempo_state_bytes(c, m->kernels ? m->kernels : &tempo_plain_kernels, n, rows);
    return tempo_model_resident_bytes(m) + state + logits + attention + (dense_mask ? mask : 0) +
           (trace ? logits + attention + mask : 0);
}

static int is_rule_mask(const char *name) {
    return !name || strcmp(name, "causal") == 0 || strcmp(name, "visible") == 0 || strcmp(name, "isolated") == 0;
}

/* The mask of --mask: a rule (causal, visible, isolated) over the sets, or a dense FILE read into *dense. */
static int forward_mask(const char *name, int n, const int *sets, Mask *mask, uint8_t **dense, char *err) {
    *dense = NULL;
    if (strcmp(name, "causal") == 0 || strcmp(name, "visible") == 0) *mask = tempo_mask_rule(MASK_CAUSAL, sets);
    else if (strcmp(name, "isolated") == 0) *mask = tempo_mask_rule(MASK_ISOLATED, sets);
    else {
        if (!(*dense = malloc((size_t)n * n))) return tempo_error(err, "out of memory for a %d x %d mask", n, n);
        if (tempo_mask_read(name, n, *dense, err) != 0) return -1;
        *mask = tempo_mask_dense(*dense, 1, 0, n, n);
    }
    return 0;
}

/* A command that reads no positional argument refuses a stray word (the rest of an unquoted prompt). */
static int no_positional(const Args *a, const char *command, char *err) {
    if (a->n_positional == 0) return 0;
    return tempo_error(err, "tempo %s takes no argument '%s' (a prompt of several words goes in quotes: -p \"...\")", command,
                       a->positional[0]);
}

static int cmd_forward(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "forward", (FlagTables){forward_flags, NULL, NULL}, &a, err) != 0 || no_positional(&a, "forward", err) != 0)
        return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 1;
    int *tokens = NULL, *positions = NULL, *sets = NULL, n = 0, rc = 1;
    uint8_t *dense = NULL, *allowed = NULL;
    float *logits = NULL, *attention = NULL;
    AttentionKeep keep = {0};
    const char *out_path = flag(&a, "--out"), *mask_name = flag(&a, "--mask");
    Mask mask;
    Numerics numerics;
    if (apply_numerics(&a, NULL, &m, &numerics, err) != 0) goto done;
    if (prompt_ids(&a, &m, &t, &tokens, &n, err) != 0) goto done;
    if (row_list(&a, "--positions", n, NULL, &positions, err) != 0) goto done;
    if (row_list(&a, "--sets", n, positions, &sets, err) != 0) goto done; /* sets default to the positions */
    if (attention_keep_from_flags(&a, &m.config, n, &keep, err) != 0) goto done;
    int capture = !flag(&a, "--no-attention");
    size_t att_values = capture ? attention_kept_values(&keep, &m.config, n) : 0;
    if (tempo_memory_check(forward_bytes(&m, n, att_values, !is_rule_mask(mask_name), out_path != NULL),
                           "this forward", "shrink it with --no-attention, or --attention-layers, --attention-heads, "
                           "--attention-rows, or fewer rows", err) != 0)
        goto done;
    if (forward_mask(mask_name ? mask_name : "causal", n, sets, &mask, &dense, err) != 0) goto done;
    logits = malloc((size_t)n * m.config.vocab_size * sizeof(float));
    if (capture) attention = malloc(att_values * sizeof(float));
    if (!logits || (capture && !attention)) goto oom;
    Outputs out = {.logits = logits, .attention = attention, .keep = &keep};
    if (tempo_forward_full(&m, n, tokens, positions, &mask, out, err) != 0) goto done;
    print_forward_rows(&t, &m.config, n, tokens, positions, sets, logits);
    if (out_path) {
        if (!dense && !(allowed = malloc((size_t)n * n))) goto oom;
        if (!dense) tempo_mask_rows(mask.kind, sets, 0, n, allowed); /* the trace stores the mask dense */
        Trace tr;
        if (tempo_trace_build(&tr, &m, n, tokens, positions, sets, dense ? dense : allowed, 1, logits, NULL, NULL, err) != 0 ||
            (attention && tempo_trace_add_attention(&tr, &m.config, n, &keep, attention, err) != 0))
            goto done;
        int wrc = numerics_to_trace(&tr, &numerics, err);
        if (wrc == 0) wrc = tempo_trace_write(&tr, out_path, err);
        tempo_trace_free(&tr);
        if (wrc != 0) goto done;
        print_wrote(out_path, capture ? "trace of the forward pass (tokens, positions, mask, logits, attention)"
                                     : "trace of the forward pass (tokens, positions, mask, logits; no attention)");
    }
    rc = 0;
    goto done;
oom:
    tempo_error(err, "out of memory");
done:
    free(tokens); free(positions); free(sets); free(dense); free(allowed); free(logits); free(attention);
    attention_keep_free(&keep);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* generate's files: --svg-tree, --svg-series, --json, --trace; each says what it wrote. */
static int write_generation_files(const Args *a, const Model *m, const Tokenizer *t, const GenConfig *g,
                                  const Generation *gen, char *err) {
    const char *json = flag(a, "--json"), *trace = flag(a, "--trace"), *tree = flag(a, "--svg-tree");
    const char *series = flag(a, "--svg-series"), *mode = setting_choice(SET_MODE, g->mode);
    if (tree && tree_svg(tree, gen, t, tempo_model_name(m), mode, g->next_from, err) != 0) return -1;
    if (tree) print_wrote(tree, "SVG picture of the run (each parallel set stacked at its position)");
    if (series && series_svg(series, gen, tempo_model_name(m), mode, err) != 0) return -1;
    if (series) print_wrote(series, "SVG of the width and threshold over the steps");
    if (json && write_generation_json(gen, t, g, flag(a, "--prompt"), json, err) != 0) return -1;
    if (json) print_wrote(json, "JSON of the run (settings, steps, pruning decisions, series, summary)");
    if (!trace) return 0;
    Trace tr;
    TraceMaskForm form;
    if (trace_mask_from_flags(a, &form, err) != 0 || tempo_generation_trace(gen, m, form, &tr, err) != 0) return -1;
    int rc = audit_put_settings(&tr, g, &m->config, err);
    if (rc == 0) rc = tempo_trace_write(&tr, trace, err);
    tempo_trace_free(&tr);
    if (rc == 0) print_wrote(trace, !g->capture_attention ? "trace of every row (tokens, positions, masks, logits, settings; no attention)"
                                    : "trace of every row (tokens, positions, masks, logits, settings, the attention kept)");
    return rc;
}

static int cmd_generate(int argc, char **argv, char *err) {
    Args a;
    TraceMaskForm form; /* checked before the model loads */
    if (parse_args(argc, argv, "generate", (FlagTables){generation_valued, generate_output, generation_switches}, &a, err) != 0 ||
        no_positional(&a, "generate", err) != 0 || trace_mask_from_flags(&a, &form, err) != 0)
        return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, !flag(&a, "--tokens"), err) != 0) return 1;
    int *prompt = NULL, n_prompt = 0, rc = 1;
    GenConfig g;
    Generation gen = {0};
    AttentionKeep keep = {0};
    if (settings_from_flags(&a, &m.config, &g, err) != 0 || tempo_model_set_numerics(&m, &g.numerics, err) != 0) goto done;
    if (flag(&a, "--hide-pruned") && !g.prune) {
        tempo_error(err, "--hide-pruned applies only to --prune attention");
        goto done;
    }
    if (prompt_ids(&a, &m, &t, &prompt, &n_prompt, err) != 0) goto done;
    if (generation_keep_from_flags(&a, &m.config, &g, n_prompt, &keep, err) != 0) goto done;
    if (tempo_memory_check(tempo_generation_bytes(&m, &g, n_prompt, g.keep_logits), "this generation",
                           "shrink it with --attention-layers, --attention-heads, --attention-rows or --no-attention (with "
                           "--trace), fewer --max-tokens or a shorter prompt", err) != 0 ||
        tempo_generate(&m, prompt, n_prompt, &g, &gen, err) != 0)
        goto done;
    if (!flag(&a, "--quiet")) print_generation(&gen, &t, &m.config, isatty(1) && !flag(&a, "--no-color"), flag(&a, "--hide-pruned") != NULL);
    if (flag(&a, "--verbose")) print_steps_verbose(stderr, &gen, &t, &m.config);
    if (flag(&a, "--verbose")) print_pruning_verbose(stderr, &gen, &t, &m.config, &g);
    fflush(stdout);
    print_generation_summary(stderr, &gen);
    if (strcmp(gen.stop_reason, "context-full") == 0)
        fprintf(stderr, "stopped: the context is full (seq_len %d)\n", m.config.seq_len);
    if (write_generation_files(&a, &m, &t, &g, &gen, err) != 0) goto done;
    rc = 0;
done:
    free(prompt);
    attention_keep_free(&keep);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* --atol and --rtol (parsed and range-checked by the flag parser). */
static void parse_tolerance(const Args *a, Tolerance *tol) {
    tol->atol = flag_number(a, "--atol", 1e-4);
    tol->rtol = flag_number(a, "--rtol", 0.0);
}

/* The most rows whose rule mask diff makes dense to compare with a stored one (256 MB a mask layer). */
enum { DIFF_DENSE_ROWS = 16384 };

/* Both masks as cells where either can be: every rule of up to DIFF_DENSE_ROWS rows, then a longer
 * rule against the other's cells (tempo_trace_dense_mask refuses that with one line). */
static int diff_mask_cells(Trace *A, Trace *B, char *err) {
    Trace *t[2] = {A, B};
    for (int i = 0; i < 2; i++) {
        const Tensor *tok = tempo_trace_get(t[i], "tokens");
        if (tok && tok->ndim == 1 && tok->shape[0] <= DIFF_DENSE_ROWS && tempo_trace_dense_mask(t[i], DIFF_DENSE_ROWS, err) != 0)
            return -1;
    }
    for (int i = 0; i < 2; i++)
        if (tempo_trace_get(t[1 - i], "allowed") && tempo_trace_dense_mask(t[i], DIFF_DENSE_ROWS, err) != 0) return -1;
    return 0;
}

/* Two masks left as rules (too long for cells): their kinds must agree. 1: they differ. */
static int diff_rule_kinds(const Trace *A, const Trace *B) {
    const char *ka = tempo_trace_meta_get(A, "mask_kinds"), *kb = tempo_trace_meta_get(B, "mask_kinds");
    if (tempo_trace_get(A, "allowed") || tempo_trace_get(B, "allowed") || !ka || !kb || strcmp(ka, kb) == 0) return 0;
    printf("%-10s the rules differ: A %s, B %s\n", "mask", ka, kb);
    return 1;
}

static int cmd_diff(int argc, char **argv, char *err) {
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "diff", (FlagTables){tolerance_flags, NULL, NULL}, &a, err) != 0) return 2;
    parse_tolerance(&a, &tol);
    if (a.n_positional != 2) return tempo_error(err, "usage: tempo diff A B [--atol X] [--rtol Y]"), 2;
    Trace A, B;
    if (tempo_trace_read(&A, a.positional[0], err) != 0) return 2;
    if (tempo_trace_read(&B, a.positional[1], err) != 0) {
        tempo_trace_free(&A);
        return 2;
    }
    /* masks compared cell by cell however each is stored: a rule's cells come from its sets, kinds and
     * pruned rows (two rules of other kinds over the same sets were SAME); two rules too long for cells, by kinds */
    int rc = diff_mask_cells(&A, &B, err), failed = 0;
    if (rc == 0) failed = diff_rule_kinds(&A, &B) | diff_traces(&A, &B, &tol);
    if (rc == 0) printf("%s\n", failed ? "DIFFERENT" : "SAME within tolerance");
    tempo_trace_free(&A);
    tempo_trace_free(&B);
    return rc != 0 ? 2 : failed ? 1 : 0;
}

/* A trace verify can judge holds logits or attention: with neither there is nothing to compare, which is no PASS. */
static int verify_has_outputs(const Trace *tr, const TraceLogits *l, const char *path, char *err) {
    if (l->n_rows > 0 || tempo_trace_get(tr, "attention")) return 0;
    return tempo_error(err, "trace %s holds neither logits (nor kept_rows/kept_logits) nor attention: nothing to compare", path);
}

/* The largest |trace - recomputed| logit under numerics n (-1: the trace keeps no full logits). */
static int max_dlogit_under(Model *m, const Trace *tr, const Numerics *n, double *worst, char *err) {
    const Tensor *theirs = tempo_trace_get(tr, "logits");
    float *logits = NULL, *attention = NULL;
    int rows = 0;
    *worst = -1.0;
    AttentionKeep keep;
    if (tempo_model_set_numerics(m, n, err) != 0 || trace_recompute(m, tr, &rows, &logits, &attention, &keep, err) != 0) return -1;
    size_t count = (size_t)rows * m->config.vocab_size;
    if (theirs && theirs->dtype == DT_F32 && theirs->ndim == 2 && (size_t)(theirs->shape[0] * theirs->shape[1]) == count) {
        const float *t = theirs->data;
        *worst = 0.0;
        for (size_t i = 0; i < count; i++) /* value_gap: a NaN of the engine's is an infinite gap, which no profile explains */
            if (value_gap(t[i], logits[i]) > *worst) *worst = value_gap(t[i], logits[i]);
    }
    free(logits);
    free(attention);
    return 0;
}

/* The stored types of the model's layer matrices, as "q4_k, q6_k". */
static void weight_types_in(const Model *m, char *buf, size_t size) {
    unsigned seen = 0;
    for (int l = 0; l < m->config.n_layers; l++) {
        const LayerWeights *w = &m->weights.layers[l];
        Matrix mats[] = {w->wq, w->wk, w->wv, w->wo, w->w1, w->w2, w->w3, m->weights.wcls};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) seen |= 1u << mats[i].type;
    }
    size_t w = 0;
    buf[0] = '\0';
    for (int t = 0; t < 32 && w < size; t++)
        if (seen >> t & 1u) w += (size_t)snprintf(buf + w, size - w, "%s%s", w ? ", " : "", tempo_weight_type_name((WeightType)t));
}

/* After a FAIL of the logits under exact: would the engine's arithmetic explain it? ggml
 * (with the trace's cache type and flash attention) and torch are tried. */
static int explain_exact_failure(Model *m, const Trace *tr, const Numerics *engine, double atol, char *err) {
    double exact, ggml, torch;
    Numerics exact_n = {.profile = NUMERICS_EXACT}, ggml_n = {NUMERICS_GGML, engine->kv_f16, engine->flash_attn, engine->repack_off};
    Numerics torch_n = {.profile = NUMERICS_TORCH};
    if (max_dlogit_under(m, tr, &exact_n, &exact, err) != 0 || exact < 0 || max_dlogit_under(m, tr, &ggml_n, &ggml, err) != 0 ||
        max_dlogit_under(m, tr, &torch_n, &torch, err) != 0)
        return exact < 0 ? 0 : -1;
    char ggml_name[96], types[128];
    tempo_numerics_describe(&ggml_n, ggml_name, sizeof ggml_name);
    weight_types_in(m, types, sizeof types);
    printf("exact: %.3g; %s: %.3g; torch: %.3g", exact, ggml_name, ggml, torch);
    if (ggml <= atol) printf(", so this is llama.cpp's arithmetic (%s weights), not a TEMPO fault\n", types);
    else if (torch <= atol) printf(", so this is transformers' f32 RoPE angles, not a TEMPO fault\n");
    else printf(": no numerics profile explains it\n");
    return 0;
}

/* The cache type and flash attention the trace's engine used (its metadata; absent: f32, off). */
static Numerics trace_engine_numerics(const Trace *tr, const Config *c) {
    GenConfig g;
    unsigned present;
    char err[TEMPO_ERR_SIZE];
    tempo_gen_defaults(&g, c);
    if (settings_from_trace(tr, c, &g, &present, err) != 0) tempo_gen_defaults(&g, c);
    return g.numerics;
}

static int cmd_verify(int argc, char **argv, char *err) {
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "verify", (FlagTables){verify_flags, tolerance_flags, NULL}, &a, err) != 0) return 2;
    parse_tolerance(&a, &tol);
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo verify -m MODEL TRACE"), 2;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 2;
    Trace tr, mine;
    TraceLogits kept;
    AttentionKeep keep;
    int rc = 2, n = 0, mask_layers = 1;
    float *logits = NULL, *attention = NULL;
    Numerics numerics;
    char profile[96];
    if (tempo_trace_read(&tr, a.positional[0], err) != 0) goto done_model;
    if (check_trace_model(&tr, &m, a.positional[0], err) != 0 || apply_numerics(&a, &tr, &m, &numerics, err) != 0 ||
        tempo_trace_inputs(&tr, &m.config, &n, &mask_layers, err) != 0 ||
        tempo_trace_logits(&tr, n, m.config.vocab_size, &kept, err) != 0 || verify_has_outputs(&tr, &kept, a.positional[0], err) != 0 ||
        trace_recompute(&m, &tr, &n, &logits, &attention, &keep, err) != 0)
        goto done;
    const int *tokens = tempo_trace_get(&tr, "tokens")->data, *positions = tempo_trace_get(&tr, "positions")->data;
    const Tensor *sets = tempo_trace_get(&tr, "sets"); /* tempo's own: logits and attention, the mask is the trace's */
    if (tempo_trace_build(&mine, &m, n, tokens, positions, sets && sets->dtype == DT_I32 && sets->shape[0] == n ? sets->data : positions,
                          NULL, mask_layers, logits, NULL, NULL, err) != 0)
        goto done;
    if (attention && tempo_trace_add_attention(&mine, &m.config, n, &keep, attention, err) != 0) {
        tempo_trace_free(&mine);
        goto done;
    }
    tempo_numerics_describe(&numerics, profile, sizeof profile);
    printf("verify %s: %d rows, recomputed with the full forward pass%s (A = trace, B = tempo), numerics: %s\n",
           a.positional[0], n, trace_recompute_prompt(&m, &tr, n) ? " in the engine's calls" : "", profile);
    int logits_failed = compare_logit_rows(&kept, tempo_trace_get(&mine, "logits"), &tol, err), failed = logits_failed;
    const Tensor *att = tempo_trace_get(&tr, "attention");
    if (failed >= 0 && att) failed |= compare_tensor(att, tempo_trace_get(&mine, "attention"), &tol);
    char held[400];
    if (failed >= 0 && att && (keep.layers || keep.heads || keep.rows)) /* a partial capture: what was compared */
        printf("           the trace holds the attention of %s; indices above count within those\n",
               attention_keep_text(&keep, m.config.n_layers, m.config.n_heads, n, held, sizeof held));
    if (failed >= 0) printf("%s\n", failed ? "FAIL" : "PASS");
    tempo_trace_free(&mine);
    rc = failed < 0 ? 2 : failed ? 1 : 0;
    Numerics engine = trace_engine_numerics(&tr, &m.config);
    if (logits_failed > 0 && numerics.profile == NUMERICS_EXACT && explain_exact_failure(&m, &tr, &engine, tol.atol, err) != 0) rc = 2;
done:
    tempo_trace_free(&tr);
done_model:
    free(logits);
    free(attention);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo audit: the engine's TEMPO run against the specification         */
/* ===================================================================== */

/* The settings the flags claim (the rest come from the trace's metadata). */
static int audit_flags(const Args *a, const Config *c, AuditSettings *s, char *err) {
    unsigned given;
    audit_settings_init(s, c);
    GenConfig g = s->gen;
    if (settings_read_flags(a, c, &g, &given, err) != 0) return -1;
    if (given & SETTING_BIT(SET_MODE)) s->mode = g.mode;
    if (given & SETTING_BIT(SET_THRESHOLD)) s->threshold = g.threshold;
    if (given & SETTING_BIT(SET_MAX_WIDTH)) s->max_width = g.max_width;
    if (given & SETTING_BIT(SET_NEXT_FROM)) s->next_from = g.next_from;
    s->n_prompt = (int)flag_number(a, "--n-prompt", -1);
    s->atol = (float)flag_number(a, "--atol", s->atol);
    return audit_settings_check(s, c, "", err);
}

/* Exit 0: nothing found; 1: findings; 2: unreadable input or bad flags. */
static int cmd_audit(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "audit", (FlagTables){audit_flag_specs, NULL, NULL}, &a, err) != 0) return 2;
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
    Numerics numerics;
    char profile[96];
    if (apply_numerics(&a, &tr, &m, &numerics, err) == 0 && audit_settings_from_trace(&s, &tr, &m.config, err) == 0 &&
        tempo_audit(&m, &tr, &s, &report, err) == 0) {
        tempo_numerics_describe(&numerics, profile, sizeof profile);
        printf("audit %s (numerics: %s)\n", a.positional[0], profile);
        audit_report_print(&report, stdout);
        const char *json = flag(&a, "--json");
        rc = json && audit_report_json(&report, json, err) != 0 ? 2
             : report.n_findings > 0 || audit_checks_skipped(&report) == AUDIT_CHECKS; /* nothing audited is no pass */
        if (json && rc != 2) print_wrote(json, "JSON of the audit (checks and findings)");
        audit_report_free(&report);
    }
    tempo_trace_free(&tr);
done_model:
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

static int cmd_compare(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "compare", (FlagTables){compare_generation, generation_switches, NULL}, &a, err) != 0 ||
        no_positional(&a, "compare", err) != 0)
        return 1;
    if (flag(&a, "--mode") && !flag(&a, "--vs-numerics"))
        return tempo_error(err, "compare runs both modes: --mode chooses the one run of --vs-numerics"), 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 1, err) != 0) return 1;
    GenConfig g;
    char **categories = NULL, **prompts = NULL;
    int n_prompts = 0, rc = 1;
    cJSON *root = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(root, "prompts");
    const char *json = flag(&a, "--json"), *vs = flag(&a, "--vs-numerics");
    Numerics sides[2]; /* --vs-numerics: the two profiles */
    int settings_ok = settings_from_flags(&a, &m.config, &g, err) == 0 &&
                      (vs ? numerics_sides(&g.numerics, vs, sides, err) : tempo_model_set_numerics(&m, &g.numerics, err)) == 0;
    g.keep_logits = 0; /* compare teacher-forces the rows it measures */
    if (settings_ok && compare_prompts(&a, &categories, &prompts, &n_prompts, err) == 0 &&
        (vs ? compare_numerics_all(&m, &t, &g, sides, prompts, n_prompts, runs, err)
            : compare_all(&m, &t, &g, categories, prompts, n_prompts, runs, err)) == 0 &&
        (!json || write_json(root, json, err) == 0))
        rc = 0;
    if (rc == 0 && json)
        print_wrote(json, vs ? "JSON of the comparison (per prompt: each step's sets under both profiles)"
                             : "JSON of the comparison (per prompt: teacher-forced members, summary)");
    free_prompts(categories, prompts, n_prompts);
    cJSON_Delete(root);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* The table, then each picture asked for, then the JSON. */
static int attention_outputs(const Args *a, const AttentionRequest *r, const AttentionInput *in, char *err) {
    const char *const *labels = (const char *const *)in->labels;
    int r0, r1, row, rc = 0;
    if (attention_request_rows(a, r, &in->v, &r0, &r1, &row, err) != 0) return -1;
    cJSON *root = cJSON_CreateObject();
    if (!root) return tempo_error(err, "out of memory");
    attention_report(stdout, &in->v, in->n_prompt, root);
    if (flag(a, "--heatmap")) heatmap_ascii(stdout, &in->v, labels, r->layer, r->head, r0, r1);
    const char *svg = flag(a, "--svg"), *grid = flag(a, "--svg-grid"), *pair = flag(a, "--svg-pair"), *json = flag(a, "--json");
    if (svg && (rc = heatmap_svg(svg, &in->v, labels, r->layer, r->head, r0, r1, err)) == 0)
        print_wrote(svg, "SVG heatmap of one layer and head");
    if (rc == 0 && grid && (rc = grid_svg(grid, &in->v, labels, row, err)) == 0)
        print_wrote(grid, "SVG grid of one row's attention in every layer and head");
    if (rc == 0 && pair && (rc = attention_pair_picture(pair, in, r->layer, r->head, r0, r1, err)) == 0)
        print_wrote(pair, "SVG of the rows under the isolated and the visible mask, and their difference");
    if (rc == 0 && json && (rc = write_json(root, json, err)) == 0) print_wrote(json, "JSON of the attention table");
    cJSON_Delete(root);
    return rc;
}

static int cmd_attention(int argc, char **argv, char *err) {
    Args a;
    AttentionRequest r;
    if (parse_args(argc, argv, "attention", (FlagTables){generation_valued, analysis_valued, generation_switches}, &a, err) != 0) return 1;
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
    Args a;
    if (parse_args(argc, argv, "encode", (FlagTables){encode_flags, NULL, NULL}, &a, err) != 0 || no_positional(&a, "encode", err) != 0)
        return 1;
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
    Args a;
    if (parse_args(argc, argv, "check", (FlagTables){NULL, NULL, NULL}, &a, err) != 0) return 1;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo check MODEL"), 1;
    Model m;
    if (tempo_model_load(&m, a.positional[0], err) != 0) return 1;
    const Config *c = &m.config;
    printf("%s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %s classifier\n", a.positional[0], c->dim,
           c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
           c->shared_classifier ? "tied" : "untied");
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

/* The synthetic model's shape from the flags (parsed and range-checked by the flag parser). */
static void synth_shape(const Args *a, SynthConfig *s) {
    struct { const char *flag; int *field; } ints[] = {{"--dim", &s->dim}, {"--hidden", &s->hidden_dim},
        {"--layers", &s->n_layers}, {"--heads", &s->n_heads}, {"--kv-heads", &s->n_kv_heads},
        {"--vocab", &s->vocab_size}, {"--seq-len", &s->seq_len}};
    tempo_synth_defaults(s);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) *ints[i].field = (int)flag_number(a, ints[i].flag, *ints[i].field);
    s->seed = (uint64_t)flag_number(a, "--seed", (double)s->seed);
    s->shared_classifier = flag(a, "--untied") == NULL;
}

/* --format llama2c (f32) or hf (f32 or bf16, a llama3 or gpt2 tokenizer.json). */
static int synth_llama2c_or_hf(const Args *a, SynthConfig *s, const char *format, const char *out, const char *dtype,
                               char *err) {
    if (strcmp(format, "hf") != 0 && strcmp(format, "llama2c") != 0)
        return tempo_error(err, "--format must be llama2c, hf or gguf, got '%s'", format);
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0) return tempo_error(err, "--dtype must be f32 or bf16, got '%s'", dtype);
    if (strcmp(format, "llama2c") == 0 && strcmp(dtype, "f32") != 0) return tempo_error(err, "llama2.c checkpoints are f32 only");
    const char *style = flag(a, "--tokenizer") ? flag(a, "--tokenizer") : "llama3";
    if (strcmp(style, "llama3") != 0 && strcmp(style, "gpt2") != 0)
        return tempo_error(err, "--tokenizer must be llama3 or gpt2, got '%s'", style);
    s->pre_tokenizer = strcmp(style, "gpt2") == 0 ? PRETOKENIZE_GPT2 : PRETOKENIZE_LLAMA3;
    if (strcmp(format, "llama2c") == 0) return tempo_synth_write(s, out, err);
    if (!flag(a, "--vocab")) s->vocab_size = 384; /* room for a tokenizer.json */
    return tempo_synth_write_hf(s, out, strcmp(dtype, "bf16") == 0, err);
}

static int cmd_synth(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "synth", (FlagTables){synth_flags, NULL, NULL}, &a, err) != 0 || no_positional(&a, "synth", err) != 0)
        return 1;
    SynthConfig s;
    synth_shape(&a, &s);
    const char *out = flag(&a, "--out");
    if (!out) return tempo_error(err, "missing --out FILE"), 1;
    const char *format = flag(&a, "--format") ? flag(&a, "--format") : "llama2c", *dtype = flag(&a, "--dtype") ? flag(&a, "--dtype") : "f32";
    int rc = strcmp(format, "gguf") == 0 ? synth_gguf(&a, &s, out, dtype, err) : synth_llama2c_or_hf(&a, &s, format, out, dtype, err);
    if (rc != 0) return 1;
    fprintf(stderr, "wrote %s: %s %s, dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d, %s, seed %llu\n", out,
            strcmp(format, "hf") == 0 ? "Hugging Face directory" : strcmp(format, "gguf") == 0 ? "GGUF file" : "llama2.c checkpoint",
            dtype, s.dim, s.hidden_dim, s.n_layers, s.n_heads, s.n_kv_heads, s.vocab_size, s.seq_len,
            s.shared_classifier ? "tied" : "untied", (unsigned long long)s.seed);
    return 0;
}

/* tempo convert CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0] */
static int cmd_convert(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "convert", (FlagTables){convert_flags, NULL, NULL}, &a, err) != 0) return 1;
    const char *out = flag(&a, "--out"), *dtype = flag(&a, "--dtype") ? flag(&a, "--dtype") : "f32";
    if (a.n_positional != 2 || !out) return tempo_error(err, "usage: tempo convert CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0]"), 1;
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "q8_0") != 0) return tempo_error(err, "--dtype must be f32 or q8_0, got '%s'", dtype), 1;
    if (tempo_convert_gguf(a.positional[0], a.positional[1], strcmp(dtype, "q8_0") == 0, out, err) != 0) return 1;
    print_wrote(out, strcmp(dtype, "q8_0") == 0 ? "GGUF model and tokenizer, weights q8_0" : "GGUF model and tokenizer, weights f32");
    return 0;
}

/* ===================================================================== */
/* main and help                                                         */
/* ===================================================================== */

typedef struct {
    const char *name;
    int (*run)(int, char **, char *);
    const char *usage;    /* what follows "tempo NAME" */
    const char *summary;  /* one line */
    const char *example;  /* with W=../shared/weights */
    FlagTables flags;
    int settings_claimed; /* the settings are what an engine claims: by default its trace's */
} Command;

static const Command commands[] = {
    {"generate", cmd_generate, "-m MODEL -z TOK (-p TEXT | --tokens IDS) [flags]",
     "TEMPO generation: every token with p >= threshold joins one set at one logical position",
     "./tempo generate -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 -n 24",
     {generation_valued, generation_switches, generate_output}, 0},
    {"compare", cmd_compare, "-m MODEL -z TOK (-p TEXT | --prompts FILE) [flags]",
     "isolated vs visible on the same prompt: free-running, then teacher-forced logits; or (--vs-numerics) whether "
     "another arithmetic changes the sets",
     "./tempo compare -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 -n 16",
     {compare_generation, generation_switches, NULL}, 0},
    {"attention", cmd_attention, "(TRACE [-z TOK] [-m MODEL] | -m MODEL -z TOK -p TEXT) [flags]",
     "attention paid to parallel vs single tokens, heatmaps and SVG pictures",
     "./tempo attention -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 --heatmap 4:0 "
     "--svg heat.svg",
     {generation_valued, generation_switches, analysis_valued}, 0},
    {"forward", cmd_forward, "-m MODEL [-z TOK] (-p TEXT | --tokens IDS) [flags]",
     "one full forward pass over a position map and a mask; prints each row's top token",
     "./tempo forward -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --mask isolated --out pass.st",
     {forward_flags, NULL, NULL}, 0},
    {"verify", cmd_verify, "-m MODEL TRACE [flags]",
     "recompute a trace from any engine with the full forward pass and diff it",
     "./tempo verify -m $W/stories260K.bin run.st", {verify_flags, tolerance_flags, NULL}, 0},
    {"audit", cmd_audit, "-m MODEL TRACE [flags]",
     "check an engine's TEMPO run: rows, positions, masks, selections, replay (exit 1: findings)",
     "./tempo audit -m $W/stories260K.bin run.st --json audit.json", {audit_flag_specs, NULL, NULL}, 1},
    {"diff", cmd_diff, "A B [flags]", "compare two traces tensor by tensor",
     "./tempo diff run.st pass.st --atol 1e-3", {tolerance_flags, NULL, NULL}, 0},
    {"encode", cmd_encode, "-m MODEL -z TOK -p TEXT", "print the token ids of a text (BOS first)",
     "./tempo encode -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\"", {encode_flags, NULL, NULL}, 0},
    {"check", cmd_check, "MODEL", "validate a checkpoint; report NaN/Inf weights",
     "./tempo check $W/stories260K.bin", {NULL, NULL, NULL}, 0},
    {"synth", cmd_synth, "--out PATH [flags]", "write a seeded synthetic checkpoint (test fixtures)",
     "./tempo synth --out tiny.bin --seed 7 --layers 3 --untied", {synth_flags, NULL, NULL}, 0},
    {"convert", cmd_convert, "CHECKPOINT TOKENIZER --out FILE.gguf [flags]", "a llama2.c model and its tokenizer as GGUF",
     "./tempo convert $W/stories260K.bin $W/tok512.bin --out stories.gguf --dtype q8_0", {convert_flags, NULL, NULL}, 0},
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static void print_command_help(FILE *out, const Command *c) {
    fprintf(out, "usage: tempo %s %s\n%s\n", c->name, c->usage, c->summary);
    int any = 0;
    char buf[64];
    for (int k = 0; k < 3; k++)
        for (const FlagSpec *const *t = c->flags[k]; t && *t; t++) {
            if (!any++) fprintf(out, "flags:\n");
            int claimed = c->settings_claimed && (*t)->key;
            print_flag_help(out, *t, claimed ? "the trace's metadata" : (*t)->field ? setting_default(*t, buf) : (*t)->deflt);
        }
    fprintf(out, "  %-26s %s\n", "-h, --help", "this help");
    fprintf(out, "example (W=../shared/weights):\n  %s\n", c->example);
}

static void usage(FILE *out) {
    fprintf(out, "usage: tempo COMMAND [flags]; tempo COMMAND --help lists a command's flags\n");
    for (size_t i = 0; i < n_commands; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* 1 if --help or -h stands where a flag may stand (not as a flag's value). */
static int wants_help(int argc, char **argv, const Command *c) {
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
        const FlagSpec *f = find_flag(argv[i], c->flags);
        if (f && f->type != FLAG_SWITCH) i++;
    }
    return 0;
}

/* rc, or 1 when what was printed did not reach standard output (a full disk, a closed descriptor):
 * the exit status must not say 0 when the result was lost. */
static int stdout_written(const char *command, int rc) {
    int failed = fflush(stdout) != 0, error = errno;
    if (!failed && !ferror(stdout)) return rc;
    fprintf(stderr, "tempo%s%s: error: cannot write standard output: %s\n", command ? " " : "", command ? command : "",
            failed ? strerror(error) : "an earlier write to it failed");
    return 1;
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE] = "";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return stdout_written(NULL, argc < 2 ? 1 : 0);
    }
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (wants_help(argc - 2, argv + 2, &commands[i])) {
            print_command_help(stdout, &commands[i]);
            return stdout_written(argv[1], 0);
        }
        int rc = commands[i].run(argc - 2, argv + 2, err);
        if (rc != 0 && err[0]) fprintf(stderr, "tempo %s: error: %s\n", argv[1], err);
        return stdout_written(argv[1], rc);
    }
    fprintf(stderr, "tempo: error: unknown command '%s' (try tempo --help)\n", argv[1]);
    return 1;
}
