/* cli.c - the tempo command-line tool: forward, generate, verify, diff,
 * encode, synth. The algorithm lives in tempo.c; this file parses flags,
 * prints and compares. */
#define _GNU_SOURCE
#include "analysis.h"
#include "compare.h"
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
/* Each command's flags are tables of FlagSpec: the parser accepts exactly
 * these, checks numeric values against [lo, hi] where one is given, and
 * `tempo CMD --help` prints them, so the help and the parser cannot drift. */

typedef enum { FLAG_SWITCH, FLAG_INT, FLAG_NUMBER, FLAG_TEXT } FlagType;

typedef struct {
    const char *name;
    FlagType type;
    const char *value;  /* what the value is, for the help ("T", "FILE"); NULL for switches */
    const char *deflt;  /* default, NULL: none (or off for switches) */
    double lo, hi;      /* numeric range checked by the parser when lo < hi */
    const char *range;  /* range or choices in words, when checked later or model-dependent */
    const char *help;
} FlagSpec;

typedef struct {
    int n;
    const char *name[64];
    const char *value[64];   /* NULL for switches */
    int n_positional;
    const char *positional[8];
} Args;

static const FlagSpec *find_spec(const char *name, const FlagSpec *const *t1, const FlagSpec *const *t2,
                                 const FlagSpec *const *t3) {
    const FlagSpec *const *tables[3] = {t1, t2, t3};
    for (int k = 0; k < 3; k++)
        for (const FlagSpec *const *t = tables[k]; t && *t; t++)
            if (strcmp(name, (*t)->name) == 0) return *t;
    return NULL;
}

/* A numeric value's syntax and its [lo, hi] range, as the spec says. */
static int check_value(const FlagSpec *f, const char *v, char *err) {
    char *end;
    errno = 0;
    double x = f->type == FLAG_INT ? (double)strtol(v, &end, 10) : strtod(v, &end);
    int bad = errno || end == v || *end != '\0' || !isfinite(x), ranged = f->lo < f->hi;
    const char *kind = f->type == FLAG_INT ? "an integer" : "a number";
    if (bad && !ranged) return tempo_error(err, "%s must be %s, got '%s'", f->name, kind, v);
    if (bad || (ranged && (x < f->lo || x > f->hi)))
        return tempo_error(err, "%s must be %s in [%.10g, %.10g], got '%s'", f->name, kind, f->lo, f->hi, v);
    return 0;
}

/* Splits argv into the flags of up to three tables (with values),
 * switches and positionals. */
static int parse_args(int argc, char **argv, const char *command, const FlagSpec *const *t1, const FlagSpec *const *t2,
                      const FlagSpec *const *t3, Args *a, char *err) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (a->n_positional == 8) return tempo_error(err, "too many arguments");
            a->positional[a->n_positional++] = arg;
            continue;
        }
        const FlagSpec *f = find_spec(arg, t1, t2, t3);
        if (!f) return tempo_error(err, "unknown flag %s for tempo %s (see tempo %s --help)", arg, command, command);
        if (a->n == 64) return tempo_error(err, "too many flags");
        a->name[a->n] = arg;
        a->value[a->n] = NULL;
        if (f->type != FLAG_SWITCH) {
            if (i + 1 >= argc) return tempo_error(err, "flag %s of tempo %s needs a value", arg, command);
            a->value[a->n] = argv[++i];
            if (f->type != FLAG_TEXT && check_value(f, a->value[a->n], err) != 0) return -1;
        }
        a->n++;
    }
    return 0;
}

static const char *flag(const Args *a, const char *name) {
    for (int i = a->n - 1; i >= 0; i--)
        if (strcmp(a->name[i], name) == 0) return a->value[i] ? a->value[i] : "";
    return NULL;
}

/* ---- the flags, each defined once; commands list the ones they take ---- */

static const FlagSpec F_MODEL = {"-m", FLAG_TEXT, "MODEL", NULL, 0, 0, NULL,
    "checkpoint: a llama2.c .bin file or a Hugging Face directory"};
static const FlagSpec F_TOKENIZER = {"-z", FLAG_TEXT, "TOK", NULL, 0, 0, NULL,
    "tokenizer.bin or tokenizer.json (a Hugging Face directory brings its own)"};
static const FlagSpec F_PROMPT = {"--prompt", FLAG_TEXT, "TEXT", NULL, 0, 0, NULL, "the prompt; BOS is added"};
static const FlagSpec F_P = {"-p", FLAG_TEXT, "TEXT", NULL, 0, 0, NULL, "same as --prompt"};
static const FlagSpec F_TOKENS = {"--tokens", FLAG_TEXT, "IDS", NULL, 0, 0, NULL,
    "the prompt as comma-separated token ids, instead of --prompt"};
static const FlagSpec F_THREADS = {"--threads", FLAG_INT, "N", "OpenBLAS/OpenMP's choice", 1, 1024, NULL,
    "threads for the matrix products"};
static const FlagSpec F_JSON = {"--json", FLAG_TEXT, "FILE", NULL, 0, 0, NULL, "also write the results as JSON"};
static const FlagSpec F_N = {"-n", FLAG_INT, "N", "32", 0, 0, ">= 1", "logical steps to generate"};
static const FlagSpec F_MAX_TOKENS = {"--max-tokens", FLAG_INT, "N", "32", 0, 0, ">= 1", "same as -n"};
static const FlagSpec F_THRESHOLD = {"--threshold", FLAG_NUMBER, "T", "0.1", 0, 0, "(0, 1]",
    "select every token with p >= T at a step (the argmax when none clears it)"};
static const FlagSpec F_MAX_WIDTH = {"--max-width", FLAG_INT, "W", "8", 0, 0, ">= 1; <= 64 with --prune",
    "most tokens in one parallel set"};
static const FlagSpec F_MODE = {"--mode", FLAG_TEXT, "MODE", "isolated", 0, 0, "isolated or visible",
    "isolated: members of a set do not see each other; visible: they do, in order"};
static const FlagSpec F_ISOLATE_LAYERS = {"--isolate-layers", FLAG_TEXT, "A-B", "every layer", 0, 0,
    "0 <= A <= B < layers", "layers that isolate in isolated mode (the others see siblings)"};
static const FlagSpec F_NEXT_FROM = {"--next-from", FLAG_TEXT, "FROM", "last", 0, 0, "last or mean",
    "next distribution: the set's last row, or the mean over its live members"};
static const FlagSpec F_SCHEDULE = {"--threshold-schedule", FLAG_TEXT, "S", "constant", 0, 0,
    "constant, bezier or linear", "how the threshold moves from --threshold to --final-threshold"};
static const FlagSpec F_FINAL_THRESHOLD = {"--final-threshold", FLAG_NUMBER, "T", "1", 0, 0, "(0, 1]",
    "threshold at the last step of a schedule"};
static const FlagSpec F_BEZIER = {"--bezier", FLAG_TEXT, "P1,P2", "0.2,0.8", 0, 0, "each in [0, 1]",
    "control points of the bezier schedule"};
static const FlagSpec F_PRUNE = {"--prune", FLAG_TEXT, "HOW", "none", 0, 0, "none or attention",
    "retroactive pruning of members that later rows ignore"};
static const FlagSpec F_PRUNE_WINDOW = {"--prune-window", FLAG_INT, "N", "4", 1, 1000000, NULL,
    "sets within this many steps are pruning candidates"};
static const FlagSpec F_PRUNE_LAYERS = {"--prune-layers", FLAG_INT, "N", "half the layers", 0, 0, "1 to layers",
    "the last N layers' attention decides pruning"};
static const FlagSpec F_PRUNE_THRESHOLD = {"--prune-threshold", FLAG_NUMBER, "X", "0.5", 0, 0, "(0, 1]",
    "prune a member whose share of attention < X / live members"};
static const FlagSpec F_EMULATE = {"--emulate", FLAG_TEXT, "WHAT", "none", 0, 0, "none or last-member-only",
    "feed only each set's last member, as the Python engine did"};
static const FlagSpec F_GREEDY = {"--greedy", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "one token per step (threshold 1); not with --threshold or --stop-on-empty"};
static const FlagSpec F_STOP_ON_EMPTY = {"--stop-on-empty", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "end when no token clears the threshold (instead of taking the argmax)"};
static const FlagSpec F_DYNAMIC = {"--dynamic-threshold", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "same as --threshold-schedule bezier"};
static const FlagSpec F_TRACE = {"--trace", FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "write the run as a trace (tokens, positions, masks, logits, attention)"};
static const FlagSpec F_NO_COLOR = {"--no-color", FLAG_SWITCH, NULL, NULL, 0, 0, NULL, "no colours on a terminal"};
static const FlagSpec F_HIDE_PRUNED = {"--hide-pruned", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "leave pruned members out of the text (shown as ~tok~ otherwise)"};
static const FlagSpec F_VERBOSE = {"--verbose", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "each step on stderr: threshold, members and their probabilities, time"};
static const FlagSpec F_QUIET = {"--quiet", FLAG_SWITCH, NULL, NULL, 0, 0, NULL, "do not print the text"};
static const FlagSpec F_PROMPTS = {"--prompts", FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "a prompt suite: lines \"category<TAB>prompt\" (or a prompt), '#' comments"};
static const FlagSpec F_HEATMAP = {"--heatmap", FLAG_TEXT, "L:H", NULL, 0, 0, NULL, "ASCII heatmap of layer L head H"};
static const FlagSpec F_ROWS = {"--rows", FLAG_TEXT, "A-B", "every row", 0, 0, NULL, "rows of the heatmaps"};
static const FlagSpec F_SVG = {"--svg", FLAG_TEXT, "FILE", NULL, 0, 0, NULL, "SVG heatmap of --heatmap's layer and head"};
static const FlagSpec F_SVG_GRID = {"--svg-grid", FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "SVG grid of every layer and head for the query --row"};
static const FlagSpec F_SVG_PAIR = {"--svg-pair", FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "SVG of the rows teacher-forced under the isolated and the visible mask, and their difference (needs -m)"};
static const FlagSpec F_SVG_TREE = {"--svg-tree", FLAG_TEXT, "FILE", NULL, 0, 0, NULL,
    "SVG picture of the run: the text as a path, each parallel set stacked at its position"};
static const FlagSpec F_ROW = {"--row", FLAG_INT, "R", "the last row", 0, 0, NULL, "query row of --svg-grid"};
static const FlagSpec F_POSITIONS = {"--positions", FLAG_TEXT, "P", "0,1,2,...", 0, 0, NULL,
    "logical (RoPE) position of each row, comma-separated"};
static const FlagSpec F_SETS = {"--sets", FLAG_TEXT, "S", "the positions", 0, 0, NULL,
    "set id of each row (rows of one set are isolated from each other)"};
static const FlagSpec F_MASK = {"--mask", FLAG_TEXT, "MASK", "causal", 0, 0, "causal, isolated, visible or a FILE",
    "the attention mask; a FILE holds one row of 0/1 per line"};
static const FlagSpec F_OUT_TRACE = {"--out", FLAG_TEXT, "TRACE", NULL, 0, 0, NULL, "write a trace of the pass"};
static const FlagSpec F_NO_ATTENTION = {"--no-attention", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "do not keep attention (a smaller trace)"};
static const FlagSpec F_ATOL = {"--atol", FLAG_NUMBER, "X", "1e-4", 0, 1e30, NULL, "absolute tolerance"};
static const FlagSpec F_RTOL = {"--rtol", FLAG_NUMBER, "X", "0", 0, 1e30, NULL, "relative tolerance (of B)"};
static const FlagSpec F_OUT = {"--out", FLAG_TEXT, "PATH", NULL, 0, 0, NULL, "where to write (required)"};
static const FlagSpec F_SEED = {"--seed", FLAG_INT, "N", "42", 0, 2147483647, NULL, "random seed"};
static const FlagSpec F_DIM = {"--dim", FLAG_INT, "D", "64", 1, 1 << 22, NULL, "residual width"};
static const FlagSpec F_HIDDEN = {"--hidden", FLAG_INT, "N", "172", 1, 1 << 22, NULL, "SwiGLU inner width"};
static const FlagSpec F_LAYERS = {"--layers", FLAG_INT, "N", "2", 1, 1 << 22, NULL, "layers"};
static const FlagSpec F_HEADS = {"--heads", FLAG_INT, "N", "4", 1, 1 << 22, NULL, "query heads"};
static const FlagSpec F_KV_HEADS = {"--kv-heads", FLAG_INT, "N", "2", 1, 1 << 22, NULL, "key/value heads"};
static const FlagSpec F_VOCAB = {"--vocab", FLAG_INT, "N", "256 (384 with --format hf)", 1, 1 << 22, NULL,
    "vocabulary size"};
static const FlagSpec F_SEQ_LEN = {"--seq-len", FLAG_INT, "N", "256", 1, 1 << 22, NULL, "context length"};
static const FlagSpec F_FORMAT = {"--format", FLAG_TEXT, "F", "llama2c", 0, 0, "llama2c, hf or gguf",
    "a llama2.c .bin, a Hugging Face directory with a tokenizer.json, or a GGUF file"};
static const FlagSpec F_DTYPE = {"--dtype", FLAG_TEXT, "T", "f32", 0, 0,
    "f32; bf16 with hf; f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k with gguf", "weight type"};
static const FlagSpec F_SYNTH_TOKENIZER = {"--tokenizer", FLAG_TEXT, "STYLE", "llama3 (hf), spm (gguf)", 0, 0,
    "llama3 or gpt2; spm too with gguf", "the tokenizer written with --format hf or gguf"};
static const FlagSpec F_UNTIED = {"--untied", FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
    "a classifier of its own (tied to the embedding otherwise)"};

static const FlagSpec F_AUDIT_MODE = {"--mode", FLAG_TEXT, "MODE", "the trace's metadata", 0, 0, "isolated or visible",
    "the mode the engine claims to have run"};
static const FlagSpec F_AUDIT_THRESHOLD = {"--threshold", FLAG_NUMBER, "T", "the trace's metadata", 0, 0, "(0, 1]",
    "the threshold the engine claims"};
static const FlagSpec F_AUDIT_MAX_WIDTH = {"--max-width", FLAG_INT, "W", "the trace's metadata", 1, 1 << 20, NULL,
    "the largest set the engine allows"};
static const FlagSpec F_AUDIT_N_PROMPT = {"--n-prompt", FLAG_INT, "P", "the trace's metadata", 1, 1 << 20, NULL,
    "rows of the prompt"};
static const FlagSpec F_AUDIT_NEXT_FROM = {"--next-from", FLAG_TEXT, "FROM", "the trace's metadata", 0, 0, "last or mean",
    "the next-distribution rule the engine claims"};
static const FlagSpec F_AUDIT_ATOL = {"--atol", FLAG_NUMBER, "X", "1e-4", 0, 1e30, NULL, "tolerance of the replayed logits"};
static const FlagSpec F_AUDIT_JSON = {"--json", FLAG_TEXT, "FILE", NULL, 0, 0, NULL, "also write the findings as JSON"};
static const FlagSpec F_CONVERT_OUT = {"--out", FLAG_TEXT, "FILE.gguf", NULL, 0, 0, NULL, "where to write (required)"};
static const FlagSpec F_CONVERT_DTYPE = {"--dtype", FLAG_TEXT, "T", "f32", 0, 0, "f32 or q8_0", "weight type of the GGUF file"};

/* Every command that generates (generate, compare, attention). */
static const FlagSpec *const generation_valued[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_P, &F_TOKENS, &F_N,
    &F_MAX_TOKENS, &F_THRESHOLD, &F_MAX_WIDTH, &F_MODE, &F_ISOLATE_LAYERS, &F_NEXT_FROM, &F_SCHEDULE,
    &F_FINAL_THRESHOLD, &F_BEZIER, &F_PRUNE, &F_PRUNE_WINDOW, &F_PRUNE_LAYERS, &F_PRUNE_THRESHOLD, &F_EMULATE,
    &F_JSON, &F_THREADS, NULL};
static const FlagSpec *const generation_switches[] = {&F_GREEDY, &F_STOP_ON_EMPTY, &F_DYNAMIC, NULL};
/* generate's own: the trace and how the text is shown */
static const FlagSpec *const generate_output[] = {&F_TRACE, &F_SVG_TREE, &F_NO_COLOR, &F_HIDE_PRUNED, &F_VERBOSE, &F_QUIET, NULL};
/* compare runs both modes on text prompts: no --mode, no --tokens */
static const FlagSpec *const compare_generation[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_P, &F_N, &F_MAX_TOKENS,
    &F_THRESHOLD, &F_MAX_WIDTH, &F_ISOLATE_LAYERS, &F_NEXT_FROM, &F_SCHEDULE, &F_FINAL_THRESHOLD, &F_BEZIER, &F_PRUNE,
    &F_PRUNE_WINDOW, &F_PRUNE_LAYERS, &F_PRUNE_THRESHOLD, &F_EMULATE, &F_JSON, &F_THREADS, &F_PROMPTS, NULL};
/* attention's own: heatmaps and pictures */
static const FlagSpec *const analysis_valued[] = {&F_HEATMAP, &F_ROWS, &F_SVG, &F_SVG_GRID, &F_ROW, &F_SVG_PAIR, &F_TRACE, NULL};
static const FlagSpec *const forward_flags[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_P, &F_TOKENS, &F_POSITIONS,
    &F_SETS, &F_MASK, &F_OUT_TRACE, &F_THREADS, &F_NO_ATTENTION, NULL};
static const FlagSpec *const tolerance_flags[] = {&F_ATOL, &F_RTOL, NULL};
static const FlagSpec *const audit_flag_specs[] = {&F_MODEL, &F_AUDIT_MODE, &F_AUDIT_THRESHOLD, &F_AUDIT_MAX_WIDTH,
    &F_AUDIT_N_PROMPT, &F_AUDIT_NEXT_FROM, &F_AUDIT_ATOL, &F_AUDIT_JSON, &F_THREADS, NULL};
static const FlagSpec *const convert_flags[] = {&F_CONVERT_OUT, &F_CONVERT_DTYPE, NULL};
static const FlagSpec *const verify_flags[] = {&F_MODEL, &F_THREADS, NULL};
static const FlagSpec *const encode_flags[] = {&F_MODEL, &F_TOKENIZER, &F_PROMPT, &F_P, NULL};
static const FlagSpec *const synth_flags[] = {&F_OUT, &F_SEED, &F_DIM, &F_HIDDEN, &F_LAYERS, &F_HEADS, &F_KV_HEADS,
    &F_VOCAB, &F_SEQ_LEN, &F_FORMAT, &F_DTYPE, &F_SYNTH_TOKENIZER, &F_UNTIED, NULL};

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
    int from_gguf = !tok_path && tempo_model_is_gguf(m); /* a GGUF file brings its own */
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

/* --threads N (the parser checked N's range). */
static void apply_threads(const Args *a) {
    const char *s = flag(a, "--threads");
    if (s) tempo_set_threads((int)strtol(s, NULL, 10));
}

/* BOS + the encoded text, at most seq_len ids. The caller frees *ids. */
static int encode_text(const Tokenizer *t, const char *text, int seq_len, int **ids, int *n, char *err) {
    int cap = (int)strlen(text) + TEMPO_ENCODE_EXTRA;
    *ids = malloc((size_t)cap * sizeof(int));
    if (!*ids) return tempo_error(err, "out of memory");
    int rc = tempo_encode(t, text, *ids, cap, n, err);
    if (rc == 0 && *n > seq_len)
        rc = tempo_error(err, "prompt of %d tokens is longer than the context (seq_len %d)", *n, seq_len);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

/* Prompt ids from --tokens or --prompt (BOS + encoded text). */
static int prompt_ids(const Args *a, const Model *m, const Tokenizer *t, int **ids, int *n, char *err) {
    const char *tokens = flag(a, "--tokens"), *prompt = flag(a, "--prompt");
    if (!prompt) prompt = flag(a, "-p");
    if (tokens && prompt) return tempo_error(err, "give --prompt or --tokens, not both");
    if (tokens) return parse_int_list(tokens, "--tokens", ids, n, err);
    if (!prompt) return tempo_error(err, "missing --prompt TEXT or --tokens IDS");
    if (!t->pieces) return tempo_error(err, "missing -z TOKENIZER (needed for --prompt)");
    return encode_text(t, prompt, m->config.seq_len, ids, n, err);
}

/* Text of a token, or " #id" when no tokenizer was given. */
static const char *token_text(const Tokenizer *t, int prev, int token, char buf[16]) {
    if (t->pieces) return tempo_decode(t, prev, token, buf);
    snprintf(buf, 16, " #%d", token);
    return buf;
}

/* How a token shows in the text: BOS and EOS as markers (<bos>, <end>: a
 * branch that ends); inside a set, control characters as escapes (\n, \t,
 * \xNN) and a whitespace-only piece as one ␣ per space, so [a/b] stays on
 * one line; outside a set, newlines and tabs as they are. */
static void show_token(FILE *out, const Tokenizer *t, const Config *c, int prev, int token, int in_set) {
    if (token == c->bos_token_id) { fputs("<bos>", out); return; }
    if (tempo_is_eos(c, token)) { fputs("<end>", out); return; }
    char buf[16];
    const char *text = token_text(t, prev, token, buf);
    int blank = in_set && text[0] && text[strspn(text, " ")] == '\0';
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (blank) fputs("\u2423", out);
        else if ((*p == '\n' || *p == '\t') && !in_set) fputc(*p, out);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
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

/* One line per row: its token, position, set and the most probable next
 * token with its probability, as text too when a tokenizer was given. */
static void print_forward_rows(const Tokenizer *t, const Config *c, int n, const int *tokens, const int *positions,
                               const int *sets, const float *logits) {
    int V = c->vocab_size;
    float *probs = malloc((size_t)V * sizeof(float));
    if (!probs) {
        fprintf(stderr, "tempo forward: out of memory for %d probabilities\n", V);
        return;
    }
    printf("row  token  pos  set  top-token  p(top)%s\n", t->pieces ? "  text -> top" : "");
    for (int i = 0; i < n; i++) {
        tempo_probs(probs, logits + (size_t)i * V, V);
        int best = tempo_argmax(probs, V);
        printf("%3d  %5d  %3d  %3d  %9d  %.4f", i, tokens[i], positions[i], sets[i], best, probs[best]);
        if (t->pieces) {
            printf("  ");
            show_token(stdout, t, c, i ? tokens[i - 1] : -1, tokens[i], 1);
            printf(" -> ");
            show_token(stdout, t, c, tokens[i], best, 1);
        }
        printf("\n");
    }
    free(probs);
}

static int cmd_forward(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "forward", forward_flags, NULL, NULL, &a, err) != 0) return 1;
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
    Outputs out = {.logits = logits, .attention = attention};
    if (tempo_forward_full(&m, n, tokens, positions, allowed, 1, out, err) != 0) goto done;
    print_forward_rows(&t, &m.config, n, tokens, positions, sets, logits);
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

/* The value of flag `name` as the index of one of `names` (NULL-terminated);
 * *out is left alone when the flag is absent. */
static int parse_choice(const Args *a, const char *name, const char *const *names, int *out, char *err) {
    const char *v = flag(a, name);
    if (!v) return 0;
    char list[256] = "";
    int w = 0, n = 0;
    for (; names[n]; n++) {
        if (strcmp(v, names[n]) == 0) return *out = n, 0;
        w += snprintf(list + w, sizeof list - (size_t)w, "%s%s", n == 0 ? "" : names[n + 1] ? ", " : " or ", names[n]);
    }
    return tempo_error(err, "%s must be %s, got '%s'", name, list, v);
}

/* Combinations of flags where one would be silently ignored. */
static int refuse_ignored_flags(const Args *a, const GenConfig *g, char *err) {
    if (flag(a, "--greedy") && flag(a, "--threshold"))
        return tempo_error(err, "--greedy takes one token per step: it cannot be combined with --threshold");
    if (flag(a, "--greedy") && flag(a, "--stop-on-empty"))
        return tempo_error(err, "--greedy always has a token: it cannot be combined with --stop-on-empty");
    if (flag(a, "--isolate-layers") && g->mode == MASK_VISIBLE)
        return tempo_error(err, "--isolate-layers chooses the layers that isolate: it needs --mode isolated, not visible");
    return 0;
}

static int parse_generation_numbers(const Args *a, const Config *c, GenConfig *g, char *err) {
    const char *v;
    if ((v = flag(a, "--threshold")) && tempo_parse_float(v, "--threshold", &g->threshold, err) != 0) return -1;
    if ((v = flag(a, "--max-width")) && tempo_parse_int(v, "--max-width", -1000000, 1000000, &g->max_width, err) != 0) return -1;
    if ((v = flag(a, "-n")) && tempo_parse_int(v, "-n", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--max-tokens")) && tempo_parse_int(v, "--max-tokens", -1000000, 1000000, &g->max_steps, err) != 0) return -1;
    if ((v = flag(a, "--isolate-layers")) &&
        tempo_parse_range(v, "--isolate-layers", 0, c->n_layers - 1, &g->isolate_first, &g->isolate_last, err) != 0)
        return -1;
    if ((v = flag(a, "--final-threshold")) && tempo_parse_float(v, "--final-threshold", &g->final_threshold, err) != 0) return -1;
    if ((v = flag(a, "--bezier"))) {
        char *end;
        g->bezier_p1 = strtof(v, &end);
        if (*end != ',') return tempo_error(err, "--bezier must be P1,P2, got '%s'", v);
        if (tempo_parse_float(end + 1, "--bezier P2", &g->bezier_p2, err) != 0) return -1;
    }
    if ((v = flag(a, "--prune-window")) && tempo_parse_int(v, "--prune-window", 1, 1000000, &g->prune_window, err) != 0) return -1;
    if ((v = flag(a, "--prune-layers")) && tempo_parse_int(v, "--prune-layers", 1, c->n_layers, &g->prune_layers, err) != 0) return -1;
    if ((v = flag(a, "--prune-threshold")) && tempo_parse_float(v, "--prune-threshold", &g->prune_threshold, err) != 0) return -1;
    return 0;
}

static int parse_generation_flags(const Args *a, const Config *c, GenConfig *g, char *err) {
    static const char *const modes[] = {"isolated", "visible", NULL}, *const next[] = {"last", "mean", NULL};
    static const char *const schedules[] = {"constant", "bezier", "linear", NULL}, *const prune[] = {"none", "attention", NULL};
    static const char *const emulate[] = {"none", "last-member-only", NULL};
    tempo_gen_defaults(g, c);
    int mode = 0, next_from = 0, schedule = flag(a, "--dynamic-threshold") ? 1 : 0, emulation = 0;
    if (parse_generation_numbers(a, c, g, err) != 0 || parse_choice(a, "--mode", modes, &mode, err) != 0 ||
        parse_choice(a, "--next-from", next, &next_from, err) != 0 ||
        parse_choice(a, "--threshold-schedule", schedules, &schedule, err) != 0 ||
        parse_choice(a, "--prune", prune, &g->prune, err) != 0 || parse_choice(a, "--emulate", emulate, &emulation, err) != 0)
        return -1;
    g->mode = mode ? MASK_VISIBLE : MASK_ISOLATED;
    g->next_from = next_from ? NEXT_MEAN : NEXT_LAST_ROW;
    g->schedule = schedule == 1 ? SCHEDULE_BEZIER : schedule == 2 ? SCHEDULE_LINEAR : SCHEDULE_CONSTANT;
    g->emulate = emulation ? EMULATE_LAST_MEMBER_ONLY : EMULATE_NONE;
    if (flag(a, "--greedy")) g->threshold = 1.0f;
    g->stop_on_empty = flag(a, "--stop-on-empty") != NULL;
    g->capture_attention = flag(a, "--trace") != NULL;
    g->keep_logits = g->capture_attention; /* only a trace needs every row's logits */
    if (refuse_ignored_flags(a, g, err) != 0) return -1;
    return tempo_gen_validate(g, c, err);
}

/* Writes a JSON document to path. */
static int write_json(const cJSON *root, const char *path, char *err) {
    char *text = cJSON_Print(root);
    if (!text) return tempo_error(err, "out of memory writing JSON");
    int rc = tempo_write_text_file(path, text, err);
    free(text);
    return rc;
}

/* The token before step s (for decoding): the previous step's first member, or the prompt's last token. */
static int token_before(const Generation *gen, int s) {
    return s == 0 ? gen->tokens[gen->n_prompt - 1] : gen->members[gen->steps[s - 1].first_member].token;
}

/* One step: a single token, or the parallel set as [a/b/c], pruned members as ~b~. */
static void print_step(FILE *out, const Generation *gen, int s, const Tokenizer *t, const Config *c, int prev,
                       int color, int hide_pruned) {
    const Step *st = &gen->steps[s];
    const Member *mem = gen->members + st->first_member;
    if (st->n_members == 1) {
        show_token(out, t, c, prev, mem[0].token, 0);
        return;
    }
    fputs(color ? "\033[36m[" : "[", out);
    int shown = 0;
    for (int i = 0; i < st->n_members; i++) {
        int pruned = mem[i].pruned_at >= 0;
        if (pruned && hide_pruned) continue;
        if (shown++) fputc('/', out);
        if (pruned) fputs(color ? "\033[2m~" : "~", out);
        show_token(out, t, c, prev, mem[i].token, 1);
        if (pruned) fputs(color ? "~\033[22;36m" : "~", out);
    }
    fputs(color ? "]\033[0m" : "]", out);
}

/* Prints the prompt (without its BOS) and every step, then a newline. */
static void print_generation(const Generation *gen, const Tokenizer *t, const Config *c, int color, int hide_pruned) {
    int prev = gen->tokens[0];
    for (int i = gen->tokens[0] == c->bos_token_id; i < gen->n_prompt; i++) {
        show_token(stdout, t, c, prev, gen->tokens[i], 0);
        prev = gen->tokens[i];
    }
    for (int s = 0; s < gen->n_steps; s++) {
        print_step(stdout, gen, s, t, c, prev, color, hide_pruned);
        prev = gen->members[gen->steps[s].first_member].token;
    }
    fputc('\n', stdout);
}

/* A float as the shortest decimal that reads back to the same float
 * (0.1, not 0.10000000149011612); JSON has no inf or nan: null. */
static void add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtof(buf, NULL) == v) break;
    }
    cJSON_AddRawToObject(o, key, buf);
}

/* The settings a generation ran with. */
static void add_settings_json(cJSON *root, const GenConfig *g) {
    cJSON *set = cJSON_AddObjectToObject(root, "settings");
    add_float(set, "threshold", g->threshold);
    cJSON_AddNumberToObject(set, "max_width", g->max_width);
    cJSON_AddNumberToObject(set, "max_tokens", g->max_steps);
    cJSON_AddStringToObject(set, "mode", g->mode == MASK_ISOLATED ? "isolated" : "visible");
    cJSON_AddNumberToObject(set, "isolate_first", g->isolate_first);
    cJSON_AddNumberToObject(set, "isolate_last", g->isolate_last);
    cJSON_AddStringToObject(set, "next_from", g->next_from == NEXT_MEAN ? "mean" : "last");
    const char *sched[] = {"constant", "bezier", "linear"};
    cJSON_AddStringToObject(set, "threshold_schedule", sched[g->schedule]);
    add_float(set, "final_threshold", g->final_threshold);
    add_float(set, "bezier_p1", g->bezier_p1);
    add_float(set, "bezier_p2", g->bezier_p2);
    cJSON_AddStringToObject(set, "prune", g->prune ? "attention" : "none");
    cJSON_AddStringToObject(set, "emulate", g->emulate ? "last-member-only" : "none");
}

/* One selected token: id, text (valid UTF-8), probability, row, pruning. */
static cJSON *member_json(const Member *mem, const Tokenizer *t, int prev) {
    char byte_buf[16];
    cJSON *jt = cJSON_CreateObject();
    cJSON_AddNumberToObject(jt, "id", mem->token);
    const char *text = token_text(t, prev, mem->token, byte_buf);
    char *valid = tempo_valid_utf8(text, strlen(text)); /* JSON must be UTF-8 */
    cJSON_AddStringToObject(jt, "text", valid ? valid : "");
    free(valid);
    add_float(jt, "probability", mem->prob);
    if (mem->row >= 0) cJSON_AddNumberToObject(jt, "physical_index", mem->row);
    else cJSON_AddNullToObject(jt, "physical_index");
    if (mem->pruned_at >= 0) cJSON_AddNumberToObject(jt, "pruned_at", mem->pruned_at);
    else cJSON_AddNullToObject(jt, "pruned_at");
    return jt;
}

static cJSON *steps_json(const Generation *gen, const Tokenizer *t, const GenConfig *g) {
    cJSON *steps = cJSON_CreateArray();
    int prev = gen->tokens[gen->n_prompt - 1];
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        cJSON *js = cJSON_CreateObject();
        cJSON_AddNumberToObject(js, "step", s);
        cJSON_AddNumberToObject(js, "logical_position", st->logical_pos);
        add_float(js, "threshold", st->threshold);
        cJSON_AddStringToObject(js, "next_from", g->next_from == NEXT_MEAN ? "mean" : "last");
        cJSON_AddNumberToObject(js, "seconds", st->seconds);
        cJSON *tokens = cJSON_AddArrayToObject(js, "tokens");
        for (int i = 0; i < st->n_members; i++)
            cJSON_AddItemToArray(tokens, member_json(&gen->members[st->first_member + i], t, prev));
        cJSON_AddItemToArray(steps, js);
        prev = gen->members[st->first_member].token;
    }
    return steps;
}

static void add_generation_summary_json(cJSON *root, const Generation *gen) {
    int parallel = 0, max_width = 0;
    for (int s = 0; s < gen->n_steps; s++) {
        parallel += gen->steps[s].n_members > 1;
        if (gen->steps[s].n_members > max_width) max_width = gen->steps[s].n_members;
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
}

static int write_generation_json(const Generation *gen, const Tokenizer *t, const GenConfig *g, const char *prompt,
                                 const char *path, char *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "prompt", prompt ? prompt : "");
    cJSON *ptoks = cJSON_AddArrayToObject(root, "prompt_tokens");
    for (int i = 0; i < gen->n_prompt; i++) cJSON_AddItemToArray(ptoks, cJSON_CreateNumber(gen->tokens[i]));
    add_settings_json(root, g);
    cJSON_AddItemToObject(root, "steps", steps_json(gen, t, g));
    add_generation_summary_json(root, gen);
    int rc = write_json(root, path, err);
    cJSON_Delete(root);
    return rc;
}

/* --verbose: per step its position, threshold, time, and every member with
 * its probability (pruned members marked, unfed ones as not fed). */
static void print_steps_verbose(FILE *out, const Generation *gen, const Tokenizer *t, const Config *c) {
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        fprintf(out, "step %d  pos %d  threshold %.4f  %.3f ms  members %d:", s, st->logical_pos, st->threshold,
                st->seconds * 1e3, st->n_members);
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gen->members[st->first_member + i];
            fputs(i ? ", '" : " '", out);
            show_token(out, t, c, token_before(gen, s), mem->token, 1);
            fprintf(out, "' %.4f%s%s", mem->prob, mem->pruned_at >= 0 ? " (pruned)" : "", mem->row < 0 ? " (not fed)" : "");
        }
        fputc('\n', out);
    }
}

static int cmd_generate(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "generate", generation_valued, generate_output, generation_switches, &a, err) != 0) return 1;
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
    if (!flag(&a, "--quiet")) print_generation(&gen, &t, &m.config, isatty(1) && !flag(&a, "--no-color"), flag(&a, "--hide-pruned") != NULL);
    if (flag(&a, "--verbose")) print_steps_verbose(stderr, &gen, &t, &m.config);
    fflush(stdout);
    double gen_seconds = gen.total_seconds - gen.prefill_seconds;
    fprintf(stderr, "%d steps, %d tokens in %d rows (stop: %s); %.1f tokens/s, %.1f steps/s\n", gen.n_steps,
            gen.n_members, gen.n_rows, gen.stop_reason, gen_seconds > 0 ? gen.n_members / gen_seconds : 0.0,
            gen_seconds > 0 ? gen.n_steps / gen_seconds : 0.0);
    if (strcmp(gen.stop_reason, "context-full") == 0)
        fprintf(stderr, "stopped: the context is full (seq_len %d)\n", m.config.seq_len);
    const char *json = flag(&a, "--json"), *trace = flag(&a, "--trace"), *tree = flag(&a, "--svg-tree");
    if (tree && tree_svg(tree, &gen, &t, tempo_model_name(&m),
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

/* "F32[99,512]" */
static const char *describe_tensor(const Tensor *x, char *buf, size_t len) {
    int w = snprintf(buf, len, "%s[", tempo_dtype_name(x->dtype));
    for (int d = 0; d < x->ndim; d++) w += snprintf(buf + w, len - (size_t)w, d ? ",%lld" : "%lld", (long long)x->shape[d]);
    snprintf(buf + w, len - (size_t)w, "]");
    return buf;
}

/* Compares one tensor of A with B; prints a line; returns 1 if outside tolerance. */
static int compare_tensor(const Tensor *x, const Tensor *y, Tolerance *tol) {
    int same_shape = x->ndim == y->ndim && x->dtype == y->dtype;
    for (int d = 0; same_shape && d < x->ndim; d++) same_shape = x->shape[d] == y->shape[d];
    if (!same_shape) {
        char a[80], b[80];
        printf("%-10s shape or dtype differs: A %s, B %s\n", x->name, describe_tensor(x, a, sizeof a),
               describe_tensor(y, b, sizeof b));
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
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "diff", tolerance_flags, NULL, NULL, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
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

/* The trace's metadata names the model that wrote it and its dimensions
 * (tempo and engines that follow the trace format); when any disagrees
 * with -m, that is the error, before any number is compared. */
static int check_trace_model(const Trace *tr, const Model *m, const char *path, char *err) {
    const Config *c = &m->config;
    struct { const char *key; int value; } dims[] = {{"dim", c->dim}, {"n_layers", c->n_layers}, {"n_heads", c->n_heads},
        {"n_kv_heads", c->n_kv_heads}, {"vocab_size", c->vocab_size}};
    const char *model = tempo_trace_meta_get(tr, "model");
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const char *v = tempo_trace_meta_get(tr, dims[d].key);
        if (v && atoi(v) != dims[d].value)
            return tempo_error(err, "trace %s was written with %s (%s %s) but -m %s has %s %d: verify against the "
                               "model that wrote it", path, model ? model : "another model", dims[d].key, v, tempo_model_path(m),
                               dims[d].key, dims[d].value);
    }
    return 0;
}

static int cmd_verify(int argc, char **argv, char *err) {
    Args a;
    Tolerance tol;
    if (parse_args(argc, argv, "verify", verify_flags, tolerance_flags, NULL, &a, err) != 0 || parse_tolerance(&a, &tol, err) != 0) return 2;
    if (a.n_positional != 1) return tempo_error(err, "usage: tempo verify -m MODEL TRACE"), 2;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 0, err) != 0) return 2;
    Trace tr, mine;
    int rc = 2, n = 0, mask_layers = 1;
    float *logits = NULL, *attention = NULL;
    if (tempo_trace_read(&tr, a.positional[0], err) != 0) goto done_model;
    if (check_trace_model(&tr, &m, a.positional[0], err) != 0 ||
        tempo_trace_inputs(&tr, &m.config, &n, &mask_layers, err) != 0 ||
        trace_recompute(&m, &tr, &n, &logits, &attention, err) != 0)
        goto done;
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
    static const char *const modes[] = {"isolated", "visible", NULL}, *const next[] = {"last", "mean", NULL};
    const char *v;
    audit_settings_init(s, c);
    int mode = -1, next_from = -1;
    if (parse_choice(a, "--mode", modes, &mode, err) != 0 || parse_choice(a, "--next-from", next, &next_from, err) != 0)
        return -1;
    if (mode >= 0) s->mode = mode ? MASK_VISIBLE : MASK_ISOLATED;
    if (next_from >= 0) s->next_from = next_from ? NEXT_MEAN : NEXT_LAST_ROW;
    if ((v = flag(a, "--threshold")) && tempo_parse_float(v, "--threshold", &s->threshold, err) != 0) return -1;
    if (v && !(s->threshold > 0.0f && s->threshold <= 1.0f)) return tempo_error(err, "threshold %g is outside (0, 1]", s->threshold);
    if ((v = flag(a, "--max-width")) && tempo_parse_int(v, "--max-width", 1, 1 << 20, &s->max_width, err) != 0) return -1;
    if ((v = flag(a, "--n-prompt")) && tempo_parse_int(v, "--n-prompt", 1, 1 << 20, &s->n_prompt, err) != 0) return -1;
    if ((v = flag(a, "--atol")) && tempo_parse_float(v, "--atol", &s->atol, err) != 0) return -1;
    return 0;
}

/* Exit 0: nothing found; 1: findings; 2: unreadable input or bad flags. */
static int cmd_audit(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "audit", audit_flag_specs, NULL, NULL, &a, err) != 0) return 2;
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

/* The teacher-forced metrics of every member of the isolated run's
 * parallel sets; a member never fed (--emulate) has row null, no metrics. */
static cJSON *members_json(const Comparison *cmp) {
    const Generation *iso = &cmp->iso;
    cJSON *tf = cJSON_CreateArray();
    for (int s = 0; s < iso->n_steps; s++) {
        const Step *st = &iso->steps[s];
        for (int i = 0; i < st->n_members && st->n_members > 1; i++) {
            const Member *mem = &iso->members[st->first_member + i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", s);
            cJSON_AddNumberToObject(o, "member", i);
            if (mem->row >= 0) cJSON_AddNumberToObject(o, "row", mem->row);
            else cJSON_AddNullToObject(o, "row");
            cJSON_AddNumberToObject(o, "token", mem->token);
            cJSON_AddBoolToObject(o, "predicts_next", i == st->n_members - 1);
            if (mem->row >= 0) add_metrics_json(o, &cmp->member[st->first_member + i]);
            cJSON_AddItemToArray(tf, o);
        }
    }
    return tf;
}

static void add_summary_json(cJSON *out, const Comparison *cmp) {
    const CompareSummary *sum = &cmp->sum;
    cJSON *js = cJSON_AddObjectToObject(out, "summary");
    cJSON_AddNumberToObject(js, "steps_isolated", cmp->iso.n_steps);
    cJSON_AddNumberToObject(js, "steps_visible", cmp->vis.n_steps);
    cJSON_AddNumberToObject(js, "parallel_steps", sum->parallel_steps);
    cJSON_AddNumberToObject(js, "rows", sum->rows);
    cJSON_AddNumberToObject(js, "identical_prefix_rows", sum->prefix_rows);
    cJSON_AddNumberToObject(js, "prefix_max_abs_diff", sum->prefix_max_abs);
    cJSON_AddNumberToObject(js, "later_members", sum->later_members);
    LogitMetrics mean = {sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10, 0};
    add_metrics_json(js, &mean);
    cJSON_AddNumberToObject(js, "argmax_agreement", sum->argmax);
    cJSON_AddNumberToObject(js, "first_divergent_step", sum->first_divergence);
    cJSON_AddNumberToObject(js, "isolated_seconds", sum->iso_seconds);
    cJSON_AddNumberToObject(js, "visible_seconds", sum->vis_seconds);
}

/* One line per member of each parallel set of the isolated run, with its text. */
static void print_member_rows(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    const Generation *iso = &cmp->iso;
    printf("step  pos  member  row  token   KL(i||v)   KL(v||i)   JS        cosine  top1 top5 top10  text\n");
    for (int s = 0; s < iso->n_steps; s++) {
        const Step *st = &iso->steps[s];
        for (int i = 0; i < st->n_members && st->n_members > 1; i++) {
            const Member *mem = &iso->members[st->first_member + i];
            const LogitMetrics *lm = &cmp->member[st->first_member + i];
            printf("%4d %4d  %6d ", s, st->logical_pos, i);
            if (mem->row < 0)
                printf("   -  %5d  %-66s", mem->token, tempo_is_eos(c, mem->token) ? "not fed (EOS: a branch that ends)"
                                                                                     : "not fed (--emulate last-member-only)");
            else
                printf("%4d  %5d  %9.3e  %9.3e  %9.3e  %.4f  %.1f  %.1f  %.1f  ", mem->row, mem->token, lm->kl_ab, lm->kl_ba,
                       lm->js, lm->cosine, lm->top1, lm->top5, lm->top10);
            show_token(stdout, t, c, token_before(iso, s), mem->token, 1);
            printf("%s\n", i == st->n_members - 1 && mem->row >= 0 ? "  <- predicts the next step" : "");
        }
    }
}

/* Where free-running isolated and visible first select different sets, with the two sets. */
static void print_divergence(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    int s = cmp->sum.first_divergence;
    if (s < 0) {
        printf("free-running: isolated and visible select the same sets at every step\n");
        return;
    }
    const Generation *runs[2] = {&cmp->iso, &cmp->vis};
    printf("free-running: the modes part at step %d (position %d):", s, cmp->iso.n_prompt + s);
    for (int k = 0; k < 2; k++) {
        printf(k ? ", visible " : " isolated ");
        if (s < runs[k]->n_steps) print_step(stdout, runs[k], s, t, c, token_before(runs[k], s), 0, 0);
        else printf("(ended: %s)", runs[k]->stop_reason);
    }
    printf("\n");
}

static void print_compare_summary(const Comparison *cmp, const Tokenizer *t, const Config *c) {
    const CompareSummary *sum = &cmp->sum;
    printf("rows before the first parallel member: %d, max |isolated - visible| there: %g%s\n", sum->prefix_rows,
           sum->prefix_max_abs, sum->prefix_max_abs == 0 ? " (bitwise identical)" : "");
    if (sum->later_members == 0)
        printf("no parallel set formed with a fed later member: nothing differs between the masks\n");
    else
        printf("later members (%d): mean KL(i||v) %.4e  KL(v||i) %.4e  JS %.4e  cosine %.4f  top1 %.3f top5 %.3f top10 %.3f\n",
               sum->later_members, sum->kl_iv, sum->kl_vi, sum->js, sum->cosine, sum->top1, sum->top5, sum->top10);
    print_divergence(cmp, t, c);
    printf("time: isolated %.2f ms, visible %.2f ms, ratio %.3f\n", sum->iso_seconds * 1e3, sum->vis_seconds * 1e3,
           sum->vis_seconds > 0 ? sum->iso_seconds / sum->vis_seconds : 0.0);
}

/* Runs one prompt both ways and teacher-forced (compare.c); prints per-step
 * lines unless quiet; fills the summary and a JSON object. */
static int compare_prompt(const Model *m, const Tokenizer *t, const char *prompt, const GenConfig *base, int quiet,
                          CompareSummary *sum, cJSON *out, char *err) {
    int *ids = NULL, n_ids = 0;
    Comparison cmp;
    if (encode_text(t, prompt, m->config.seq_len, &ids, &n_ids, err) != 0) return -1;
    int rc = compare_run(m, ids, n_ids, base, &cmp, err);
    free(ids);
    if (rc != 0) return -1;
    *sum = cmp.sum;
    cJSON_AddStringToObject(out, "prompt", prompt);
    cJSON_AddItemToObject(out, "teacher_forced", members_json(&cmp));
    add_summary_json(out, &cmp);
    if (!quiet) {
        printf("prompt: %s\n", prompt);
        if (cmp.sum.parallel_steps) print_member_rows(&cmp, t, &m->config);
        else printf("no parallel set formed: every step selected one token\n");
        print_compare_summary(&cmp, t, &m->config);
    }
    compare_free(&cmp);
    return 0;
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

/* The prompts to compare: the --prompts file, or the one -p prompt. */
static int compare_prompts(const Args *a, char ***categories, char ***prompts, int *n, char *err) {
    const char *prompt = flag(a, "--prompt") ? flag(a, "--prompt") : flag(a, "-p"), *file = flag(a, "--prompts");
    *categories = *prompts = NULL;
    *n = 0;
    if (file) return read_prompts(file, categories, prompts, n, err);
    if (!prompt) return tempo_error(err, "missing -p PROMPT or --prompts FILE");
    *categories = malloc(sizeof(char *));
    *prompts = malloc(sizeof(char *));
    if (!*categories || !*prompts) return tempo_error(err, "out of memory");
    (*categories)[0] = strdup("-");
    (*prompts)[0] = strdup(prompt);
    *n = 1;
    return 0;
}

/* The suite table: one row per prompt, then all prompts weighted by later members. */
static void print_suite(char **categories, char **prompts, const CompareSummary *sums, int n) {
    printf("%-10s %-32s %5s %4s %6s %10s %10s %7s %6s %6s %5s %6s\n", "category", "prompt", "steps", "par", "later",
           "KL(i||v)", "JS", "cosine", "top1", "top5", "div@", "t i/v");
    CompareSummary all = {0};
    for (int i = 0; i < n; i++) {
        const CompareSummary *s = &sums[i];
        char div[16] = "none";
        if (s->first_divergence >= 0) snprintf(div, sizeof div, "%d", s->first_divergence);
        printf("%-10s %-32.32s %5d %4d %6d ", categories[i], prompts[i], s->steps, s->parallel_steps, s->later_members);
        if (s->later_members) printf("%10.3e %10.3e %7.4f %6.3f %6.3f", s->kl_iv, s->js, s->cosine, s->top1, s->top5);
        else printf("%-45s", "no parallel set formed");
        printf(" %5s %6.3f\n", div, s->vis_seconds > 0 ? s->iso_seconds / s->vis_seconds : 0.0);
        all.steps += s->steps; all.parallel_steps += s->parallel_steps; all.later_members += s->later_members;
        all.iso_seconds += s->iso_seconds; all.vis_seconds += s->vis_seconds;
        all.kl_iv += s->kl_iv * s->later_members; all.js += s->js * s->later_members;
        all.cosine += s->cosine * s->later_members; all.top1 += s->top1 * s->later_members;
        all.top5 += s->top5 * s->later_members;
        if (s->prefix_max_abs != 0) printf("  note: rows before the first parallel set differ by %g\n", s->prefix_max_abs);
    }
    double k = all.later_members;
    printf("%-10s %-32s %5d %4d %6d ", "all", "(weighted by later members)", all.steps, all.parallel_steps, all.later_members);
    if (k > 0) printf("%10.3e %10.3e %7.4f %6.3f %6.3f", all.kl_iv / k, all.js / k, all.cosine / k, all.top1 / k, all.top5 / k);
    else printf("%-45s", "no parallel set formed");
    printf(" %5s %6.3f\n", "-", all.vis_seconds > 0 ? all.iso_seconds / all.vis_seconds : 0.0);
}

/* Compares every prompt; the suite table when there are several. */
static int compare_all(const Model *m, const Tokenizer *t, const GenConfig *g, char **categories, char **prompts,
                       int n, cJSON *runs, char *err) {
    CompareSummary *sums = calloc((size_t)n, sizeof *sums);
    if (!sums) return tempo_error(err, "out of memory");
    for (int i = 0; i < n; i++) {
        if (n > 1 && isatty(2)) fprintf(stderr, "\r[%d/%d] %-40.40s", i + 1, n, prompts[i]); /* one line, rewritten */
        else if (n > 1) fprintf(stderr, "[%d/%d] %.40s\n", i + 1, n, prompts[i]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(runs, o);
        cJSON_AddStringToObject(o, "category", categories[i]);
        if (compare_prompt(m, t, prompts[i], g, n > 1, &sums[i], o, err) != 0) {
            free(sums);
            return -1;
        }
    }
    if (n > 1) {
        if (isatty(2)) fprintf(stderr, "\n");
        print_suite(categories, prompts, sums, n);
    }
    free(sums);
    return 0;
}

static void free_prompts(char **categories, char **prompts, int n) {
    for (int i = 0; i < n; i++) {
        free(categories[i]);
        free(prompts[i]);
    }
    free(categories);
    free(prompts);
}

static int cmd_compare(int argc, char **argv, char *err) {
    Args a;
    if (parse_args(argc, argv, "compare", compare_generation, generation_switches, NULL, &a, err) != 0) return 1;
    apply_threads(&a);
    Model m;
    Tokenizer t;
    if (load_model_and_tokenizer(&a, &m, &t, 1, err) != 0) return 1;
    GenConfig g;
    char **categories = NULL, **prompts = NULL;
    int n_prompts = 0, rc = 1;
    cJSON *root = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(root, "prompts");
    const char *json = flag(&a, "--json");
    if (parse_generation_flags(&a, &m.config, &g, err) == 0 &&
        compare_prompts(&a, &categories, &prompts, &n_prompts, err) == 0 &&
        compare_all(&m, &t, &g, categories, prompts, n_prompts, runs, err) == 0 && (!json || write_json(root, json, err) == 0))
        rc = 0;
    free_prompts(categories, prompts, n_prompts);
    cJSON_Delete(root);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    return rc;
}

/* ===================================================================== */
/* tempo attention: attention to parallel tokens, heatmaps, pictures      */
/* ===================================================================== */

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

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
    static const char *const for_trace[] = {"-m", "-z", "--json", "--threads", "--heatmap", "--rows", "--svg", "--svg-grid",
                                            "--row", "--svg-pair", NULL};
    for (int i = 0; i < a->n; i++) {
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
    if (!in->v.model[0] && tempo_model_path(&in->m)[0]) { /* a trace without a model name: the one given */
        snprintf(in->model_name, sizeof in->model_name, "%s", tempo_model_name(&in->m));
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
    if (parse_args(argc, argv, "attention", generation_valued, analysis_valued, generation_switches, &a, err) != 0) return 1;
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
    if (parse_args(argc, argv, "encode", encode_flags, NULL, NULL, &a, err) != 0) return 1;
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
    if (parse_args(argc, argv, "check", NULL, NULL, NULL, &a, err) != 0) return 1;
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

/* The synthetic model's shape from the flags (the parser checked each range). */
static void synth_shape(const Args *a, SynthConfig *s) {
    struct { const char *flag; int *field; } ints[] = {{"--dim", &s->dim}, {"--hidden", &s->hidden_dim},
        {"--layers", &s->n_layers}, {"--heads", &s->n_heads}, {"--kv-heads", &s->n_kv_heads},
        {"--vocab", &s->vocab_size}, {"--seq-len", &s->seq_len}};
    tempo_synth_defaults(s);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (flag(a, ints[i].flag)) *ints[i].field = (int)strtol(flag(a, ints[i].flag), NULL, 10);
    if (flag(a, "--seed")) s->seed = (uint64_t)strtol(flag(a, "--seed"), NULL, 10);
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
    if (parse_args(argc, argv, "synth", synth_flags, NULL, NULL, &a, err) != 0) return 1;
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
    if (parse_args(argc, argv, "convert", convert_flags, NULL, NULL, &a, err) != 0) return 1;
    const char *out = flag(&a, "--out"), *dtype = flag(&a, "--dtype") ? flag(&a, "--dtype") : "f32";
    if (a.n_positional != 2 || !out) return tempo_error(err, "usage: tempo convert CHECKPOINT TOKENIZER --out FILE.gguf [--dtype f32|q8_0]"), 1;
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "q8_0") != 0) return tempo_error(err, "--dtype must be f32 or q8_0, got '%s'", dtype), 1;
    return tempo_convert_gguf(a.positional[0], a.positional[1], strcmp(dtype, "q8_0") == 0, out, err) != 0;
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
    const FlagSpec *const *flags[3];
} Command;

static const Command commands[] = {
    {"generate", cmd_generate, "-m MODEL -z TOK (-p TEXT | --tokens IDS) [flags]",
     "TEMPO generation: every token with p >= threshold joins one set at one logical position",
     "./tempo generate -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 -n 24",
     {generation_valued, generation_switches, generate_output}},
    {"compare", cmd_compare, "-m MODEL -z TOK (-p TEXT | --prompts FILE) [flags]",
     "isolated vs visible on the same prompt: free-running, then teacher-forced logits",
     "./tempo compare -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 -n 16",
     {compare_generation, generation_switches, NULL}},
    {"attention", cmd_attention, "(TRACE [-z TOK] [-m MODEL] | -m MODEL -z TOK -p TEXT) [flags]",
     "attention paid to parallel vs single tokens, heatmaps and SVG pictures",
     "./tempo attention -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --threshold 0.2 --heatmap 4:0 "
     "--svg heat.svg",
     {generation_valued, generation_switches, analysis_valued}},
    {"forward", cmd_forward, "-m MODEL [-z TOK] (-p TEXT | --tokens IDS) [flags]",
     "one full forward pass over a position map and a mask; prints each row's top token",
     "./tempo forward -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\" --mask isolated --out pass.st",
     {forward_flags, NULL, NULL}},
    {"verify", cmd_verify, "-m MODEL TRACE [flags]",
     "recompute a trace from any engine with the full forward pass and diff it",
     "./tempo verify -m $W/stories260K.bin run.st", {verify_flags, tolerance_flags, NULL}},
    {"audit", cmd_audit, "-m MODEL TRACE [flags]",
     "check an engine's TEMPO run: rows, positions, masks, selections, replay (exit 1: findings)",
     "./tempo audit -m $W/stories260K.bin run.st --json audit.json", {audit_flag_specs, NULL, NULL}},
    {"diff", cmd_diff, "A B [flags]", "compare two traces tensor by tensor",
     "./tempo diff run.st pass.st --atol 1e-3", {tolerance_flags, NULL, NULL}},
    {"encode", cmd_encode, "-m MODEL -z TOK -p TEXT", "print the token ids of a text (BOS first)",
     "./tempo encode -m $W/stories260K.bin -z $W/tok512.bin -p \"Once upon a time\"", {encode_flags, NULL, NULL}},
    {"check", cmd_check, "MODEL", "validate a checkpoint; report NaN/Inf weights",
     "./tempo check $W/stories260K.bin", {NULL, NULL, NULL}},
    {"synth", cmd_synth, "--out PATH [flags]", "write a seeded synthetic checkpoint (test fixtures)",
     "./tempo synth --out tiny.bin --seed 7 --layers 3 --untied", {synth_flags, NULL, NULL}},
    {"convert", cmd_convert, "CHECKPOINT TOKENIZER --out FILE.gguf [flags]", "a llama2.c model and its tokenizer as GGUF",
     "./tempo convert $W/stories260K.bin $W/tok512.bin --out stories.gguf --dtype q8_0", {convert_flags, NULL, NULL}},
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

/* One help line per flag: name, value, what it does, default and range. */
static void print_flag_help(FILE *out, const FlagSpec *f) {
    char head[64], extra[160] = "";
    snprintf(head, sizeof head, "%s%s%s", f->name, f->value ? " " : "", f->value ? f->value : "");
    int w = 0;
    if (f->deflt) w += snprintf(extra + w, sizeof extra - (size_t)w, "default %s", f->deflt);
    if (f->range) w += snprintf(extra + w, sizeof extra - (size_t)w, "%s%s", w ? "; " : "", f->range);
    else if (f->lo < f->hi) w += snprintf(extra + w, sizeof extra - (size_t)w, "%s[%.10g, %.10g]", w ? "; " : "", f->lo, f->hi);
    fprintf(out, "  %-26s %s%s%s%s\n", head, f->help, w ? " (" : "", extra, w ? ")" : "");
}

static void print_command_help(FILE *out, const Command *c) {
    fprintf(out, "usage: tempo %s %s\n%s\n", c->name, c->usage, c->summary);
    int any = 0;
    for (int k = 0; k < 3; k++)
        for (const FlagSpec *const *t = c->flags[k]; t && *t; t++) {
            if (!any++) fprintf(out, "flags:\n");
            print_flag_help(out, *t);
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
        const FlagSpec *f = find_spec(argv[i], c->flags[0], c->flags[1], c->flags[2]);
        if (f && f->type != FLAG_SWITCH) i++;
    }
    return 0;
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE] = "";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (wants_help(argc - 2, argv + 2, &commands[i])) {
            print_command_help(stdout, &commands[i]);
            return 0;
        }
        int rc = commands[i].run(argc - 2, argv + 2, err);
        if (rc != 0 && err[0]) fprintf(stderr, "tempo %s: error: %s\n", argv[1], err);
        return rc;
    }
    fprintf(stderr, "tempo: error: unknown command '%s' (try tempo --help)\n", argv[1]);
    return 1;
}
