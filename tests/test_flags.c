/* test_flags.c - the command line's rules that keep a setting from being
 * quietly dropped (tools/flags.c parse_args, tools/settings.c
 * refuse_ignored_flags, tools/cli.c no_positional): a flag given twice, a
 * flag's value forgotten, an output that would overwrite another output or
 * an input, a stray word, and settings that act only with another. */
#include "helpers.h"

#include <sys/stat.h>

#define SYNTH BUILD_DIR "/synth-tied.bin"

/* A flag given twice, by its name or by its alias, is refused: the last one no longer wins silently. */
Test(flags, a_flag_given_twice_is_refused) {
    char json[4096], args[5000];
    scratch_path("twice.json", json, sizeof json);
    struct { const char *flags, *needle; } cases[] = {
        {"--tokens 1,5 --tokens 1,6", "flag --tokens given twice (--tokens, then --tokens): give it once"},
        {"--tokens 1,5 -n 9 --max-tokens 3", "flag -n given twice (-n, then --max-tokens): give it once"},
        {"--tokens 1,5 --max-tokens 3 -n 9", "flag -n given twice (--max-tokens, then -n): give it once"},
        {"--tokens 1,5 --threshold 0.2 --threshold 0.3", "flag --threshold given twice"},
        {"--tokens 1,5 --quiet --quiet", "flag --quiet given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "generate -m %s %s --json %s", SYNTH, cases[i].flags, json);
        expect_error(args, 1, cases[i].needle, json);
    }
}

/* A value that is one of the command's flags is a forgotten value, not a file named --quiet. */
Test(flags, a_flag_as_a_value_is_a_forgotten_value) {
    char args[5000], quiet[4096];
    scratch_path("--quiet", quiet, sizeof quiet);
    expect_error("generate -m " SYNTH " --tokens 1,5 --trace --quiet", 1,
                 "flag --trace of tempo generate needs a value, got the flag --quiet", "--quiet");
    expect_error("generate -m " SYNTH " -n --quiet --tokens 1,5", 1, "flag -n of tempo generate needs a value, got the flag --quiet",
                 NULL);
    snprintf(args, sizeof args, "generate -m %s --tokens 1,5 -n 2 --quiet --trace %s", SYNTH, quiet); /* a path: accepted */
    char out[4096];
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(access(quiet, F_OK) == 0, "the trace named .../--quiet was not written");
}

/* Two outputs on one path, or an output on a file a flag or argument reads, are refused before any work:
 * the file (the model!) is left as it was. /dev/null as two outputs is written in place, as before. */
Test(flags, an_output_never_overwrites_another_output_or_an_input) {
    char json[4096], model[4096], dot_model[4096], args[9000], out[4096], cmd[9500];
    scratch_path("same.json", json, sizeof json);
    scratch_path("model.bin", model, sizeof model);
    snprintf(cmd, sizeof cmd, "cp %s %s", SYNTH, model);
    cr_assert_eq(system(cmd), 0);
    struct stat before, after;
    cr_assert_eq(stat(model, &before), 0);
    snprintf(args, sizeof args, "generate -m %s --tokens 1,5 -n 2 --quiet --json %s --trace %s", SYNTH, json, json);
    expect_error(args, 1, "--json ", json);
    expect_error(args, 1, "names the same file as --trace: give another path", json);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2 --out %s", model, model);
    expect_error(args, 1, "--out ", NULL);
    expect_error(args, 1, "names the same file as -m: give another path", NULL);
    char *slash = strrchr(model, '/');
    snprintf(dot_model, sizeof dot_model, "%.*s/./%s", (int)(slash - model), model, slash + 1); /* another spelling, one file */
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2 --out %s", model, dot_model);
    expect_error(args, 1, "names the same file as -m", NULL);
    cr_assert_eq(stat(model, &after), 0);
    cr_assert(after.st_size == before.st_size && after.st_mtime == before.st_mtime, "the model was rewritten");
    snprintf(cmd, sizeof cmd, "%s generate -m %s --tokens 1,5 -n 2 --quiet --json /dev/null --trace /dev/null", TEMPO_BIN, SYNTH);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "/dev/null twice: %s", out);
}

/* A word no flag takes (the rest of an unquoted prompt) is refused by the commands that read none. */
Test(flags, a_stray_word_is_refused) {
    char tok[4096], model[4096], args[9000];
    weights_path("tok512.bin", tok, sizeof tok);
    weights_path("stories260K.bin", model, sizeof model);
    snprintf(args, sizeof args, "encode -m %s -z %s -p Once upon a time", model, tok);
    expect_error(args, 1, "tempo encode takes no argument 'upon' (a prompt of several words goes in quotes: -p \"...\")", NULL);
    snprintf(args, sizeof args, "generate -m %s -z %s -p Once upon", model, tok);
    expect_error(args, 1, "tempo generate takes no argument 'upon'", NULL);
    snprintf(args, sizeof args, "compare -m %s -z %s -p Once upon", model, tok);
    expect_error(args, 1, "tempo compare takes no argument 'upon'", NULL);
    expect_error("forward -m " SYNTH " --tokens 1,2 stray", 1, "tempo forward takes no argument 'stray'", NULL);
    char out[4096];
    scratch_path("synth.bin", out, sizeof out);
    snprintf(args, sizeof args, "synth --out %s stray", out);
    expect_error(args, 1, "tempo synth takes no argument 'stray'", out);
}

/* A setting that acts only with another is refused without it (the run would silently ignore it);
 * with it, accepted. */
Test(flags, a_setting_that_would_be_ignored_is_refused) {
    char json[4096], args[5000];
    scratch_path("ignored.json", json, sizeof json);
    struct { const char *flags, *needle; } refused[] = {
        {"--greedy --threshold-schedule linear", "--greedy takes one token per step: it cannot be combined with --threshold-schedule"},
        {"--greedy --dynamic-threshold", "--greedy takes one token per step: it cannot be combined with --dynamic-threshold"},
        {"--greedy --max-width 2", "--greedy takes one token per step: it cannot be combined with --max-width"},
        {"--greedy --prune attention", "--greedy takes one token per step: it cannot be combined with --prune"},
        {"--greedy --next-from mean", "--greedy takes one token per step: it cannot be combined with --next-from"},
        {"--final-threshold 0.3", "--final-threshold is where a threshold schedule ends: it needs --threshold-schedule bezier or linear"},
        {"--threshold-schedule constant --final-threshold 0.3", "--final-threshold is where a threshold schedule ends"},
        {"--threshold-schedule linear --bezier 0.1,0.9", "--bezier shapes the bezier schedule: it needs --threshold-schedule bezier"},
        {"--bezier 0.1,0.9", "--bezier shapes the bezier schedule"},
        {"--prune-window 3", "--prune-window applies only to --prune attention"},
        {"--prune none --prune-layers 1", "--prune-layers applies only to --prune attention"},
        {"--prune-threshold 0.5", "--prune-threshold applies only to --prune attention"},
        {"--dynamic-threshold --threshold-schedule linear", "--dynamic-threshold is --threshold-schedule bezier: give one of them"},
        {"--hide-pruned", "--hide-pruned applies only to --prune attention"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(args, sizeof args, "generate -m %s --tokens 1,5 -n 2 --quiet %s --json %s", SYNTH, refused[i].flags, json);
        expect_error(args, 1, refused[i].needle, json);
    }
    const char *accepted[] = {"--threshold-schedule linear --final-threshold 0.3", "--threshold-schedule bezier --bezier 0.1,0.9",
                              "--dynamic-threshold --bezier 0.1,0.9 --final-threshold 0.4",
                              "--prune attention --prune-window 2 --prune-layers 1 --prune-threshold 0.5 --hide-pruned"};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        char cmd[6000], out[4096];
        snprintf(cmd, sizeof cmd, "%s generate -m %s --tokens 1,5 -n 2 --quiet %s", TEMPO_BIN, SYNTH, accepted[i]);
        cr_assert_eq(run_command(cmd, out, sizeof out), 0, "`%s`: %s", cmd, out);
    }
}

/* Whether `path` still holds the bytes `was` (n of them). */
static int holds_bytes(const char *path, const char *was, size_t n) {
    size_t len;
    char *now = read_text_file(path, &len);
    int same = len == n && memcmp(now, was, n) == 0;
    free(now);
    return same;
}

/* An input read from @FILE (--tokens, --positions, --sets) is that file: an output naming it is refused, it stays. */
Test(flags, an_output_never_overwrites_an_at_file_input) {
    char ids[4096], rows[4096], json[4096], args[9000], cmd[9500], out[4096];
    scratch_path("ids.txt", ids, sizeof ids);
    scratch_path("rows.txt", rows, sizeof rows);
    FILE *f = fopen(ids, "w");
    cr_assert(f && fputs("1,5", f) >= 0 && fclose(f) == 0);
    f = fopen(rows, "w");
    cr_assert(f && fputs("0,1", f) >= 0 && fclose(f) == 0);
    snprintf(args, sizeof args, "generate -m %s --tokens @%s -n 2 --quiet --json %s", SYNTH, ids, ids);
    expect_error(args, 1, "names the same file as --tokens: give another path", NULL);
    const char *row_flags[] = {"--positions", "--sets"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "forward -m %s --tokens 1,5 %s @%s --out %s", SYNTH, row_flags[i], rows, rows);
        expect_error(args, 1, "names the same file as --", NULL);
    }
    cr_assert(holds_bytes(ids, "1,5", 3), "the id list was rewritten");
    cr_assert(holds_bytes(rows, "0,1", 3), "the positions file was rewritten");
    scratch_path("run.json", json, sizeof json); /* another path: accepted */
    snprintf(cmd, sizeof cmd, "%s generate -m %s --tokens @%s -n 2 --quiet --json %s", TEMPO_BIN, SYNTH, ids, json);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "`%s`: %s", cmd, out);
    cr_assert(holds_bytes(ids, "1,5", 3) && access(json, F_OK) == 0);
}

/* A Hugging Face model is a directory: no output goes inside it (by any spelling), one next to it is written. */
Test(flags, an_output_inside_the_model_directory_is_refused) {
    char hf[4096], link[4096], tok[4096], src[4096], next[4096], args[9000], cmd[9500], out[4096];
    weights_path("stories260K-hf", src, sizeof src);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("hf", hf, sizeof hf);
    scratch_path("hf-link", link, sizeof link);
    snprintf(cmd, sizeof cmd, "cp -r %s %s && chmod -R u+w %s && ln -s hf %s", src, hf, hf, link);
    cr_assert_eq(system(cmd), 0);
    size_t n_config, n_weights;
    char *config = read_text_file(strcat(strcpy(out, hf), "/config.json"), &n_config);
    char *weights = read_text_file(strcat(strcpy(out, hf), "/model.safetensors"), &n_weights);
    struct { const char *flag, *dir, *file; } cases[] = {
        {"--json", hf, "/config.json"}, {"--trace", hf, "/model.safetensors"}, {"--svg-tree", hf, "/./new.svg"},
        {"--json", link, "/config.json"}, {"--trace", link, "/new.trace"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char target[4200], needle[4500];
        snprintf(target, sizeof target, "%s%s", cases[i].dir, cases[i].file);
        snprintf(args, sizeof args, "generate -m %s -z %s --tokens 1,5 -n 2 --quiet %s %s", hf, tok, cases[i].flag, target);
        snprintf(needle, sizeof needle, "%s %s is inside the model directory %s", cases[i].flag, target, hf);
        expect_error(args, 1, needle, strstr(target, "new") ? target : NULL);
    }
    cr_assert(holds_bytes(strcat(strcpy(out, hf), "/config.json"), config, n_config), "config.json was rewritten");
    cr_assert(holds_bytes(strcat(strcpy(out, hf), "/model.safetensors"), weights, n_weights), "the weights were rewritten");
    free(config), free(weights);
    scratch_path("next.json", next, sizeof next); /* next to the directory, and /dev/null: written */
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s --tokens 1,5 -n 2 --quiet --json %s --trace /dev/null", TEMPO_BIN, hf, tok, next);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "`%s`: %s", cmd, out);
    cr_assert(access(next, F_OK) == 0, "%s was not written", next);
}

/* Two outputs not yet written are one file when their directories are one and their names equal:
 * o1 and DIR/./o1, or a path through a symlinked directory, are refused; two names are both written. */
Test(flags, two_spellings_of_one_new_output_are_refused) {
    char dir[4096], link[4096], a[4096], b[4200], args[9000], cmd[9500], out[4096];
    scratch_path("d", dir, sizeof dir);
    scratch_path("d-link", link, sizeof link);
    snprintf(cmd, sizeof cmd, "mkdir %s && ln -s d %s", dir, link);
    cr_assert_eq(system(cmd), 0);
    snprintf(a, sizeof a, "%s/o1", dir);
    const char *spellings[] = {"%s/./o1", "%s/../d/o1"};
    for (int i = 0; i < 2; i++) {
        snprintf(b, sizeof b, spellings[i], dir);
        snprintf(args, sizeof args, "generate -m %s --tokens 1,5 -n 2 --quiet --json %s --svg-tree %s", SYNTH, a, b);
        expect_error(args, 1, "names the same file as --svg-tree: give another path", a);
    }
    snprintf(b, sizeof b, "%s/o1", link);
    snprintf(args, sizeof args, "generate -m %s --tokens 1,5 -n 2 --quiet --json %s --svg-tree %s", SYNTH, a, b);
    expect_error(args, 1, "names the same file as --svg-tree", a);
    snprintf(b, sizeof b, "%s/o2", link);
    snprintf(cmd, sizeof cmd, "%s generate -m %s --tokens 1,5 -n 2 --quiet --json %s --svg-tree %s", TEMPO_BIN, SYNTH, a, b);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "`%s`: %s", cmd, out);
    cr_assert(access(a, F_OK) == 0 && access(b, F_OK) == 0, "both outputs are written");
}

/* An output of "-", standard output in other tools, is refused with the way to get it (/dev/stdout),
 * and no file named - is left behind, for each kind of output flag. */
Test(flags, a_dash_as_an_output_is_refused) {
    char dash[4096], args[5000];
    snprintf(dash, sizeof dash, "-");
    const char *forms[] = {"generate -m %s --tokens 1,5 -n 2 --json -", "generate -m %s --tokens 1,5 -n 2 --trace -",
                           "forward -m %s --tokens 1,5 --out -", "generate -m %s --tokens 1,5 -n 2 --svg-tree -"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(args, sizeof args, forms[i], SYNTH);
        expect_error(args, 1, "- would write a file named '-': give a path, or /dev/stdout for standard output", dash);
    }
}
