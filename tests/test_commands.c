/* Every command with each of its flags at least once, from one table of
 * command lines. Under build/tests-asan they run build/tempo-asan
 * (ASan+UBSan): a row passes when the command exits as expected, nothing
 * crashes or reports a sanitizer error, and no `nan` reaches the screen. */
#include "helpers.h"

#include <ctype.h>

/* The path of `name` in $D, the command lines' scratch folder. */
static const char *table_path(const char *name, char *buf, size_t len) {
    char sub[256];
    snprintf(sub, sizeof sub, "cmd-table/%s", name);
    return scratch_path(sub, buf, len);
}

/* Shell variables every command line may use: $M/$Z the stories260K
 * model and tokenizer, $S a synthetic model, $T a trace, $D a scratch folder. */
static void command_env(char *buf, size_t len) {
    char model[4096], tok[4096], dir[4096], trace[4096];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("cmd-table", dir, sizeof dir);
    table_path("run.st", trace, sizeof trace);
    snprintf(buf, len, "export M='%s' Z='%s' S='%s/synth-tied.bin' D='%s' T='%s'; ", model, tok, BUILD_DIR, dir, trace);
}

/* 1 if `text` holds "nan" as a word (any case): -nan, nan, NaN. */
static int has_nan(const char *text) {
    for (const char *p = text; (p = strcasestr(p, "nan")) != NULL; p += 3) {
        int before = p == text || !isalpha((unsigned char)p[-1]), after = !isalpha((unsigned char)p[3]);
        if (before && after) return 1;
    }
    return 0;
}

typedef struct {
    const char *args;   /* after `tempo`, may use $M $Z $S $T $D */
    int status;         /* expected exit status */
} CommandLine;

static void run_table(const CommandLine *rows, size_t n) {
    static char out[1 << 20];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    for (size_t i = 0; i < n; i++) {
        snprintf(cmd, sizeof cmd, "%smkdir -p $D && %s %s", env, TEMPO_BIN, rows[i].args);
        int rc = run_command_capture(cmd, out, sizeof out, 1);
        cr_assert_eq(rc, rows[i].status, "`tempo %s` exited %d, expected %d:\n%s", rows[i].args, rc, rows[i].status, out);
        cr_assert(!strstr(out, "Sanitizer") && !strstr(out, "runtime error"), "`tempo %s`:\n%s", rows[i].args, out);
        cr_assert(!has_nan(out), "`tempo %s` printed nan:\n%s", rows[i].args, out);
    }
}

#define GEN "generate -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 "

Test(commands, compare_with_unfed_members_reads_no_logits) {
    /* --emulate last-member-only leaves every member but the last without a row (row -1) */
    CommandLine rows[] = {
        {"compare -m $M -z $Z -p 'Once upon a time' --emulate last-member-only", 0},
        {"compare -m $M -z $Z -p 'Once upon a time' --emulate last-member-only --threshold 0.05 -n 8 --json $D/c-unfed.json", 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
    char path[4096];
    cJSON *j = read_json_file(table_path("c-unfed.json", path, sizeof path));
    const cJSON *tf = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "prompts"), 0), "teacher_forced");
    int unfed = 0;
    for (const cJSON *o = tf ? tf->child : NULL; o; o = o->next) {
        int fed = !cJSON_IsNull(cJSON_GetObjectItem(o, "row"));
        unfed += !fed;
        cr_assert_eq(cJSON_GetObjectItem(o, "js") != NULL, fed, "metrics exactly for the fed members");
    }
    cr_assert_gt(unfed, 0, "the run must have members that were never fed");
    cJSON_Delete(j);
}

static const CommandLine generate_rows[] = {
        {GEN "--mode isolated --isolate-layers 0-1 --max-width 3 --json $D/g.json --trace $D/g.st --threads 1", 0},
        {GEN "--mode visible --next-from mean --verbose --no-color", 0},
        {"generate -m $M -z $Z --prompt 'Once upon' --max-tokens 5 --greedy --quiet", 0},
        {"generate -m $M --tokens 1,403,407 -n 5 --stop-on-empty --threshold 0.3", 0},
        {GEN "--dynamic-threshold --final-threshold 0.5 --bezier 0.2,0.8", 0},
        {GEN "--threshold-schedule linear --final-threshold 0.4", 0},
        {GEN "--prune attention --prune-window 2 --prune-layers 2 --prune-threshold 0.9 --hide-pruned", 0},
        {GEN "--prune none --emulate last-member-only --next-from mean", 0},
        {GEN "--emulate none --threshold-schedule constant", 0},
        {GEN "--svg-tree $D/tree.svg", 0},
        {GEN "--numerics ggml --kv-type f16 --flash-attn on --repack off --trace $D/ggml.st", 0},
        {"verify -m $M $D/ggml.st", 0},
        {GEN "--numerics torch", 0},
        {GEN "--kv-type f16", 1},
        {GEN "--position-gap 3 --svg-series $D/series.svg", 0},
        {GEN "--trace $D/part.st --attention-layers 1 --attention-heads 0-1,3 --attention-rows 2,5-9", 0},
        {"verify -m $M $D/part.st", 0},
        {GEN "--trace $D/none.st --no-attention", 0},
        {GEN "--trace $D/rule.st --trace-mask rule --prune attention", 0},
        {"verify -m $M $D/rule.st", 0},
        {GEN "--trace-mask bits", 1}, /* says how --trace stores the mask: no --trace */
        {GEN "--attention-layers 1", 1},
        {GEN "--trace $D/none.st --no-attention --attention-heads 0", 1},
        {"synth --out $D/ctx8.bin --seq-len 8", 0},
        {"generate -m $D/ctx8.bin --tokens 1,2,3,4,5,6,7,8 -n 3 --trace $D/ctx8.st", 1}, /* no position left for a step */
        /* no step (nothing clears 1.0): no row to keep by default */
        {"generate -m $D/ctx8.bin --tokens 1,2,3,4,5,6,7 -n 3 --threshold 1 --stop-on-empty --trace $D/ctx8.st", 0},
        {"verify -m $D/ctx8.bin $D/ctx8.st", 0},
    };

Test(commands, generate_every_flag) { run_table(generate_rows, sizeof generate_rows / sizeof generate_rows[0]); }

static const CommandLine forward_rows[] = {
        {GEN "--trace $T", 0},
        {"forward -m $M -z $Z --prompt 'Once upon a time' --out $D/f.st --threads 1", 0},
        {"forward -m $M -z $Z -p 'Once upon' --mask isolated --sets 0,1,1 --positions 0,1,1", 0},
        {"forward -m $S --tokens 1,2,3 --mask visible --no-attention", 0},
        {"forward -m $S --tokens 1,2,3 --numerics ggml --kv-type f16 --flash-attn off --repack on", 0},
        {"verify -m $M $T --numerics exact --kv-type f32 --flash-attn off --repack on", 0},
        {"audit -m $M $T --numerics exact --kv-type f32 --flash-attn off --repack on", 0},
        {"verify -m $M $T --atol 1e-3 --rtol 1e-3 --threads 1", 0},
        {"audit -m $M $T --mode isolated --threshold 0.1 --max-width 8 --n-prompt 5 --next-from last --atol 1e-3 "
         "--json $D/audit.json --threads 1", 0},
        {"diff $T $D/f.st --atol 1e-4 --rtol 0", 1},
        {"diff $T $T", 0},
        {"forward -m $M -z $Z -p 'Once upon a time' --attention-layers 1-2,4 --attention-heads 0,3 "
         "--attention-rows 2-4 --out $D/partial.st", 0},
        {"verify -m $M $D/partial.st", 0},
        {"forward -m $S --tokens 1,2,3 --attention-rows 5", 1},
        {"forward -m $S --tokens 1,2,3 --attention-heads 1 --no-attention", 1},
    };

Test(commands, forward_verify_diff_every_flag) { run_table(forward_rows, sizeof forward_rows / sizeof forward_rows[0]); }

static const CommandLine compare_rows[] = {
        {"compare -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --json $D/c.json --threads 1", 0},
        {"compare -m $M -z $Z --prompt 'Once upon a time' --max-tokens 6 --max-width 2 --isolate-layers 1-2", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --next-from mean --prune attention --prune-window 2 --prune-layers 1 "
         "--prune-threshold 0.9", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --dynamic-threshold --bezier 0.1,0.9 --final-threshold 0.5", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --threshold-schedule linear --stop-on-empty --prune none --emulate none", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --greedy", 0},
        {"compare -m $M -z $Z --prompts weights/prompts.txt -n 4", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 4 --numerics ggml --kv-type f16 --flash-attn on --repack off", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 4 --vs-numerics ggml --mode visible", 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --position-gap 2", 0},
    };

Test(commands, compare_every_flag) { run_table(compare_rows, sizeof compare_rows / sizeof compare_rows[0]); }

static const CommandLine attention_rows[] = {
        {GEN "--trace $D/a.st --attention-rows all", 0},
        {"attention -m $M $D/a.st --heatmap 0:1 --rows 3-8 --json $D/a.json", 0},
        {"attention -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --svg $D/a.svg --heatmap 1:0", 0},
        {"attention -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --svg-grid $D/g.svg --row 7", 0},
        {"attention -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --trace $D/ar.st --trace-mask rule", 0},
        {"attention $D/ar.st --heatmap 1:0", 0},
        {"attention -m $M --tokens 1,403,407 -n 4", 0},
        {"attention -m $M -z $Z --prompt 'Once upon' --max-tokens 4 --max-width 2 --mode visible --next-from mean "
         "--threads 1", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --mode isolated --isolate-layers 1-2 --prune attention --prune-window 2 "
         "--prune-layers 1 --prune-threshold 0.9", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --threshold-schedule linear --final-threshold 0.5 --stop-on-empty", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --dynamic-threshold --bezier 0.2,0.8 --emulate none --prune none", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --greedy --emulate last-member-only", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --position-gap 2", 0},
        {"attention -m $M -z $Z $D/a.st --svg-pair $D/p.svg --rows 0-9 --heatmap 1:0", 0},
        {"attention $D/a.st -z $Z --svg $D/b.svg", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --trace $D/b.st", 0},
        {"attention -m $M -z $Z -p 'Once upon' -n 4 --numerics torch --kv-type f32 --flash-attn off --repack on", 0},
    };

Test(commands, attention_every_flag) { run_table(attention_rows, sizeof attention_rows / sizeof attention_rows[0]); }

static const CommandLine other_rows[] = {
        {"encode -m $M -z $Z -p 'Once upon a time'", 0},
        {"encode -m $M -z $Z --prompt 'Once'", 0},
        {"check $M", 0},
        {"synth --out $D/s.bin --seed 3 --dim 32 --hidden 48 --layers 2 --heads 4 --kv-heads 2 --vocab 64 --seq-len 32 "
         "--untied --format llama2c --dtype f32", 0},
        {"synth --out $D/hf --format hf --dtype bf16 --tokenizer gpt2 --layers 1", 0},
        {"check $D/s.bin", 0},
        {"synth --out $D/q.gguf --format gguf --dtype q4_0 --tokenizer spm --layers 1", 0},
        {"convert $M $Z --out $D/stories.gguf --dtype q8_0", 0},
        {"check $D/stories.gguf", 0},
    };

Test(commands, encode_check_synth_every_flag) { run_table(other_rows, sizeof other_rows / sizeof other_rows[0]); }

/* ---- help: from the same flag tables the parser uses ---- */

/* `tempo ARGS` with stdout and stderr; returns the exit status. */
static int tempo_output(const char *args, char *out, size_t len) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    return run_command_capture(cmd, out, len, 1);
}

/* 1 if some command line of the tables for `command` holds `name` as a word. */
static int table_uses(const char *command, const char *name) {
    const CommandLine *tables[] = {generate_rows, forward_rows, compare_rows, attention_rows, other_rows};
    size_t sizes[] = {sizeof generate_rows / sizeof generate_rows[0], sizeof forward_rows / sizeof forward_rows[0],
                      sizeof compare_rows / sizeof compare_rows[0], sizeof attention_rows / sizeof attention_rows[0],
                      sizeof other_rows / sizeof other_rows[0]};
    size_t clen = strlen(command), nlen = strlen(name);
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < sizes[k]; i++) {
            const char *args = tables[k][i].args;
            if (strncmp(args, command, clen) != 0 || args[clen] != ' ') continue;
            for (const char *p = args; (p = strstr(p, name)) != NULL; p += nlen)
                if (p[-1] == ' ' && (p[nlen] == ' ' || p[nlen] == '\0')) return 1;
        }
    return 0;
}

/* Every command: --help and -h print usage, flags and an example, exit 0;
 * every flag the help lists is accepted and appears in the table above. */
Test(help, every_command_and_flag) {
    static char list[65536], text[65536];
    cr_assert_eq(tempo_output("--help", list, sizeof list), 0);
    int commands = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64], args[128];
        if (strncmp(line, "  ", 2) != 0 || sscanf(line, "%63s", name) != 1) continue;
        commands++;
        snprintf(args, sizeof args, "%s -h", name);
        cr_assert_eq(tempo_output(args, text, sizeof text), 0, "tempo %s -h failed: %s", name, text);
        snprintf(args, sizeof args, "%s --help", name);
        cr_assert_eq(tempo_output(args, text, sizeof text), 0, "tempo %s --help failed: %s", name, text);
        char want[128];
        snprintf(want, sizeof want, "usage: tempo %s ", name);
        cr_assert(strncmp(text, want, strlen(want)) == 0 && strstr(text, "example"), "tempo %s --help:\n%s", name, text);
        char *save, *copy = strdup(text);
        for (char *fl = strtok_r(copy, "\n", &save); fl; fl = strtok_r(NULL, "\n", &save)) {
            char flagname[64];
            if (strncmp(fl, "  -", 3) != 0 || sscanf(fl, "%63s", flagname) != 1 || strcmp(flagname, "-h,") == 0) continue;
            cr_assert(table_uses(name, flagname), "tempo %s %s is in the help but in no command line of the table", name,
                      flagname);
        }
        free(copy);
    }
    cr_assert_geq(commands, 9, "tempo --help lists the commands:\n%s", list);
    cr_assert_neq(tempo_output("generate --bogus", text, sizeof text), 0);
    cr_assert(strstr(text, "unknown flag --bogus for tempo generate"), "%s", text);
}

/* The defaults the help states are the ones generation uses. */
Test(help, defaults_match_the_generation_defaults) {
    static char text[65536];
    Model m;
    load_synth(&m, "synth-tied.bin");
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    tempo_model_free(&m);
    cr_assert_eq(tempo_output("generate --help", text, sizeof text), 0);
    struct { const char *flag; double value; } cases[] = {{"--threshold T", g.threshold}, {"--max-width W", g.max_width},
        {"-n N", g.max_steps}, {"--final-threshold T", g.final_threshold}, {"--prune-window N", g.prune_window},
        {"--prune-threshold X", g.prune_threshold}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *line = strstr(text, cases[i].flag), *d = line ? strstr(line, "(default ") : NULL;
        cr_assert(d, "no default for %s in:\n%s", cases[i].flag, text);
        cr_assert_float_eq(strtod(d + 9, NULL), cases[i].value, 1e-6, "%s", cases[i].flag);
    }
}

/* Appends one README block's lines to the script: each must exit 0 (diff
 * of two different traces: 1, as the README says). Returns the line count. */
static int readme_block(const char *p, const char *end, char *script, size_t cap, int *n) {
    char line_cmd[8192];
    int lines = 0;
    while (p < end) {
        const char *nl = strchr(p, '\n');
        cr_assert(strncmp(p, "    ", 4) == 0, "README command lines are indented code: %.40s", p);
        snprintf(line_cmd, sizeof line_cmd, "%.*s", (int)(nl - p - 4), p + 4);
        p = nl + 1;
        char *comment = strstr(line_cmd, " #"); /* the script is one line: a comment would end it */
        if (comment) *comment = '\0';
        if (strncmp(line_cmd, "W=", 2) == 0) {
            cr_assert_str_eq(line_cmd, "W=../shared/weights");
            *n += snprintf(script + *n, cap - (size_t)*n, " && W=%s%s", WEIGHTS_DIR[0] == '/' ? "" : "$OLDPWD/", WEIGHTS_DIR);
            continue;
        }
        int may_differ = strncmp(line_cmd, "./tempo diff", 12) == 0;
        *n += snprintf(script + *n, cap - (size_t)*n, " && { %s; rc=$?; [ $rc = 0 ]%s || { echo \"exit $rc: %s\"; false; }; }",
                       line_cmd, may_differ ? " || [ $rc = 1 ]" : "", "README line");
        lines++;
    }
    return lines;
}

/* Every README command block (between readme-commands markers) pastes and
 * runs as it is, in order, in a scratch folder of its own (two suites at
 * once do not share it): under ASan in the ASan suite, with no nan. W
 * points at the weights. */
Test(readme, commands_paste_and_run) {
    static const char open_tag[] = "<!-- readme-commands -->\n", close_tag[] = "<!-- /readme-commands -->";
    char *readme = read_text_file("README.md", NULL), cwd[4096], dir[4096], script[65536];
    cr_assert(getcwd(cwd, sizeof cwd));
    scratch_path("readme", dir, sizeof dir);
    int n = snprintf(script, sizeof script, "dir=%s && mkdir \"$dir\" && cd \"$dir\" "
                     "&& ln -s %s/%s tempo && ln -s %s/weights weights", dir, cwd, TEMPO_BIN, cwd);
    int lines = 0, blocks = 0;
    for (const char *begin = strstr(readme, open_tag); begin; begin = strstr(begin + 1, open_tag), blocks++) {
        const char *end = strstr(begin, close_tag);
        cr_assert(end, "README.md: a readme-commands block is not closed");
        lines += readme_block(begin + strlen(open_tag), end, script, sizeof script, &n);
    }
    n += snprintf(script + n, sizeof script - (size_t)n, "; rc=$?; cd / && rm -rf \"$dir\"; exit $rc");
    static char out[1 << 20];
    char cmd[70000];
    snprintf(cmd, sizeof cmd, "sh -c '%s' 2>&1", script);
    cr_assert(strchr(script, '\'') == NULL, "README commands must not hold single quotes");
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cr_assert_eq(rc, 0, "the README commands failed:\n%s", out);
    cr_assert(!has_nan(out), "the README commands printed nan:\n%s", out);
    cr_assert(!strstr(out, "Sanitizer") && !strstr(out, "runtime error"), "%s", out);
    cr_assert_geq(blocks, 4);
    cr_assert_geq(lines, 25);
    free(readme);
}

/* ---- what reaches the screen ---- */

/* The generated text: no raw control byte, no line break inside [a/b],
 * EOS members as <end>, BOS as <bos>, and the text ends with a newline
 * before the summary line. */
static void check_text(const char *out) {
    int depth = 0;
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        if (*p == '[') depth++;
        if (*p == ']') depth--;
        cr_assert(*p >= 0x20 || *p == '\n' || (*p == '\t' && depth == 0), "raw control byte 0x%02x in:\n%s", *p, out);
        cr_assert(!(depth > 0 && *p == '\n'), "a line break inside a parallel set:\n%s", out);
    }
    cr_assert(!strstr(out, "</s>") && !strstr(out, "<s>"), "a raw BOS/EOS piece:\n%s", out);
}

Test(display, control_tokens_and_eos_members) {
    static char out[1 << 16];
    char env[9000], cmd[16384], model[4096], tok[4096];
    command_env(env, sizeof env);
    fortune_paths(model, tok);
    snprintf(cmd, sizeof cmd, "%s -m %s -z %s -p 'The cat sat on the' --threshold 0.02 -n 12 --no-color 2>&1",
             TEMPO_BIN " generate", model, tok);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    check_text(out);
    cr_assert(strstr(out, "/<end>/"), "the EOS member shows as <end>:\n%s", out);
    char *summary = strstr(out, "12 steps");
    cr_assert(summary && summary > out && summary[-1] == '\n', "the summary starts a line:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s%s generate -m $M -z $Z -p 'Once upon a time' --threshold 0.2 -n 40 2>&1", env, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    check_text(out);
    snprintf(cmd, sizeof cmd, "%s%s generate -m $M -z $Z --tokens 1,403,1,407 -n 2 2>&1", env, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    check_text(out);
    cr_assert(strstr(out, "<bos>"), "a BOS inside the text shows as <bos>:\n%s", out);
}

/* make run shows TEMPO: a legend, parallel sets in isolated and in visible
 * mode, and where the modes part, in a few seconds. */
Test(make_run, shows_sets_in_both_modes) {
    static char out[1 << 16];
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "make -s --no-print-directory run WEIGHTS=%s 2>&1", WEIGHTS_DIR);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "make run failed:\n%s", out);
    cr_assert(strstr(out, "Legend: [a/b] is one parallel set"), "no legend:\n%s", out);
    const char *iso = strstr(out, "isolated mode"), *vis = strstr(out, "visible mode");
    cr_assert(iso && vis && iso < vis, "both modes, isolated first:\n%s", out);
    const char *iso_text = strchr(iso, '\n') + 1, *vis_text = strchr(vis, '\n') + 1;
    const char *iso_set = strchr(iso_text, '['), *vis_set = strchr(vis_text, '[');
    cr_assert(iso_set && iso_set < vis && strchr(iso_set, '/') < vis, "isolated mode forms no set:\n%s", out);
    cr_assert(vis_set && strchr(vis_set, '/'), "visible mode forms no set:\n%s", out);
    cr_assert(strstr(out, "free-running: the modes part at step"), "where the modes part:\n%s", out);
    check_text(out);
}

/* compare prints each member's text, names the sets where the modes part,
 * and says when no parallel set formed instead of printing zeros. */
Test(display, compare_text_and_no_set) {
    static char out[1 << 16];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%s%s compare -m $M -z $Z -p 'Once upon a time' --threshold 0.2 -n 40", env, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "top10  text\n"), "a text column:\n%s", out);
    cr_assert(strstr(out, "<- predicts the next step"), "%s", out);
    const char *part = strstr(out, "free-running: the modes part at step");
    cr_assert(part && strstr(part, "isolated [") && strstr(part, ", visible ["), "the two sets where the modes part:\n%s", out);
    check_text(out);
    snprintf(cmd, sizeof cmd, "%s%s compare -m $M -z $Z -p 'Once upon a time' --greedy -n 8", env, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "no parallel set formed"), "%s", out);
    cr_assert(!strstr(out, "later members (0)") && !strstr(out, "cosine 0.0000"), "zeros instead of words:\n%s", out);
    char suite[4096];
    scratch_path("suite.txt", suite, sizeof suite);
    snprintf(cmd, sizeof cmd, "%shead -4 weights/prompts.txt > %s && %s compare -m $M -z $Z --prompts "
             "%s --greedy -n 4 2>/dev/null", env, suite, TEMPO_BIN, suite);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_assert(strstr(out, "no parallel set formed") && !strstr(out, " -1 ") && !strstr(out, "0.000e+00"),
              "suite rows say that no set formed:\n%s", out);
}

/* Runs a shell line with $M $Z $S $T $D set; stdout and stderr together. */
static int run_env(const char *line, char *out, size_t len) {
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%smkdir -p $D && %s", env, line);
    return run_command_capture(cmd, out, len, 1);
}

Test(output, forward_text_verbose_members_synth_message) {
    static char out[1 << 16];
    char said[4096], wrote[4200];
    cr_assert_eq(run_env(TEMPO_BIN " forward -m $M -z $Z -p 'Once upon a time'", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "text -> top") && strstr(out, "<bos> -> Once") && strstr(out, "Once ->  upon"), "%s", out);
    cr_assert_eq(run_env(TEMPO_BIN " generate -m $M -z $Z -p 'Once upon a time' --threshold 0.2 -n 8 --verbose --quiet",
                         out, sizeof out), 0, "%s", out);
    for (const char *p = strstr(out, "step "); p && strncmp(p, "step ", 5) == 0; p = strchr(p, '\n') + 1) {
        int members = atoi(strstr(p, "members ") + 8), quoted = 0;
        for (const char *q = p; *q && *q != '\n'; q++) quoted += *q == '\'';
        cr_assert_eq(quoted, 2 * members, "each member with its text and probability: %.200s", p);
    }
    cr_assert(strstr(out, "members 2: ' g' 0."), "%s", out);
    cr_assert_eq(run_env(TEMPO_BIN " synth --out $D/said.bin --layers 3", out, sizeof out), 0, "%s", out);
    table_path("said.bin", said, sizeof said);
    snprintf(wrote, sizeof wrote, "wrote %s: llama2.c checkpoint f32, dim 64, hidden 172, 3 layers", said);
    cr_assert(strstr(out, wrote), "%s", out);
}

Test(output, verify_names_the_model_first_and_diff_the_shapes) {
    static char out[1 << 16];
    char model[4096], tok[4096], v4[4096], args[9000], needle[4200];
    cr_assert_eq(run_env(TEMPO_BIN " generate -m $M -z $Z -p 'Once upon a time' -n 4 --quiet --trace $D/v4.st && " TEMPO_BIN
                         " generate -m $M -z $Z -p 'Once upon a time' -n 8 --quiet --trace $D/v8.st", out, sizeof out), 0, "%s", out);
    fortune_paths(model, tok);
    table_path("v4.st", v4, sizeof v4);
    snprintf(args, sizeof args, "verify -m %s %s", model, v4);
    snprintf(needle, sizeof needle, "trace %s was written with stories260K.bin (dim 64) but -m", v4);
    expect_error(args, 2, needle, NULL);
    cr_assert_eq(run_env(TEMPO_BIN " diff $D/v4.st $D/v8.st", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "tokens     shape or dtype differs: A I32[9], B I32[15]"), "%s", out);
    cr_assert(strstr(out, "logits     shape or dtype differs: A F32[9,512], B F32[15,512]"), "%s", out);
}

Test(output, json_floats_shortest_and_progress_without_cr) {
    static char out[1 << 16];
    char path[4096];
    cr_assert_eq(run_env(TEMPO_BIN " generate -m $M -z $Z -p 'Once upon a time' --threshold 0.1 -n 6 --quiet --json $D/t.json",
                         out, sizeof out), 0, "%s", out);
    char *text = read_text_file(table_path("t.json", path, sizeof path), NULL);
    cr_assert(strstr(text, "\"threshold\":\t0.1,") && !strstr(text, "0.1000000"), "%s", text);
    cJSON *j = cJSON_Parse(text);
    for (const cJSON *st = cJSON_GetObjectItem(j, "steps")->child; st; st = st->next)
        for (const cJSON *tk = cJSON_GetObjectItem(st, "tokens")->child; tk; tk = tk->next) {
            const cJSON *p = cJSON_GetObjectItem(tk, "probability");
            char shortest[32];
            snprintf(shortest, sizeof shortest, "%.9g", (float)p->valuedouble);
            cr_assert((float)strtod(shortest, NULL) == (float)p->valuedouble, "a probability reads back to its float");
        }
    cJSON_Delete(j);
    free(text);
    cr_assert_eq(run_env("head -4 weights/prompts.txt > $D/p.txt && (" TEMPO_BIN " compare -m $M -z $Z --prompts $D/p.txt -n 4 "
                         "2>$D/progress >/dev/null)", out, sizeof out), 0, "%s", out);
    char *progress = read_text_file(table_path("progress", path, sizeof path), NULL);
    cr_assert(!strchr(progress, '\r') && strstr(progress, "[1/2] ") && strstr(progress, "[2/2] "),
              "progress lines without \\r when stderr is a file:\n%s", progress);
    free(progress);
}

/* A trace keeping part of the attention: it holds the kept layers, heads
 * and rows with their indices; verify recomputes and compares those (and
 * fails when one is changed); the attention table is made of what it
 * holds and says so; a heatmap of a layer it lacks names the layer. */
Test(commands, partial_attention_traces) {
    static char out[1 << 16];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%smkdir -p $D && %s forward -m $M -z $Z -p 'Once upon a time' --attention-layers 2 "
             "--attention-heads 1-2 --attention-rows 0,3 --out $D/part-kept.st >/dev/null && %s verify -m $M $D/part-kept.st",
             env, TEMPO_BIN, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_expect(strstr(out, "PASS"), "%s", out);
    Trace t;
    char path[4096], err[TEMPO_ERR_SIZE];
    cr_assert(tempo_trace_read(&t, table_path("part-kept.st", path, sizeof path), err) == 0, "%s", err);
    const Tensor *att = tempo_trace_get(&t, "attention"), *rows = tempo_trace_get(&t, "attention_rows");
    const Tensor *heads = tempo_trace_get(&t, "attention_heads"), *layers = tempo_trace_get(&t, "attention_layers");
    cr_assert(att && rows && heads && layers, "the partial trace lacks its attention or its indices");
    cr_expect(att->shape[0] == 1 && att->shape[1] == 2 && att->shape[2] == 2, "attention shape [%lld,%lld,%lld,%lld]",
              (long long)att->shape[0], (long long)att->shape[1], (long long)att->shape[2], (long long)att->shape[3]);
    const int *r = rows->data, *h = heads->data, *l = layers->data;
    cr_expect(r[0] == 0 && r[1] == 3 && h[0] == 1 && h[1] == 2 && l[0] == 2, "indices %d,%d / %d,%d / %d", r[0], r[1], h[0],
              h[1], l[0]);
    ((float *)att->data)[att->shape[3] + 1] += 0.25f; /* row 3, key 1 of layer 2 head 1 */
    cr_assert(tempo_trace_write(&t, table_path("part-kept-bad.st", path, sizeof path), err) == 0, "%s", err);
    tempo_trace_free(&t);
    snprintf(cmd, sizeof cmd, "%s%s verify -m $M $D/part-kept-bad.st", env, TEMPO_BIN);
    cr_expect_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "verify passed a changed kept probability:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s%s attention $D/part-kept.st", env, TEMPO_BIN);
    cr_expect_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s", out);
    cr_expect(strstr(out, "the trace holds (layers 2, heads 1-2, rows 0,3)") && strstr(out, "\n2:1 ") && strstr(out, "\n2:2 ") &&
              !strstr(out, "\n2:0 ") && !strstr(out, "\n1:1 ") && !strstr(out, "nan"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s%s attention $D/part-kept.st --heatmap 1:1 --rows 0-3", env, TEMPO_BIN);
    cr_expect_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "%s", out);
    cr_expect(strstr(out, "no attention for layer 1; it holds layers 2"), "%s", out);
}

/* generate --trace keeps, by default, the generated rows' attention (never
 * the prompt's square); the flags choose layers, heads and rows ("all": every
 * row), verify and audit read what is there and audit says what it compared. */
Test(commands, generate_trace_keeps_the_attention_asked_for) {
    static char out[1 << 16];
    char env[9000], cmd[16384], err[TEMPO_ERR_SIZE];
    command_env(env, sizeof env);
    const char *flags[3] = {"", "--attention-layers 1 --attention-heads 0", "--attention-rows all"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s{ mkdir -p $D && %s " GEN "--trace $D/gen-%d.st %s >/dev/null && %s verify -m $M $D/gen-%d.st && "
                 "%s audit -m $M $D/gen-%d.st; }", env, TEMPO_BIN, i, flags[i], TEMPO_BIN, i, TEMPO_BIN, i);
        cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "%s:\n%s", flags[i], out);
        cr_expect(strstr(out, "attention  ok") && strstr(out, "PASS") && strstr(out, "CLEAN"), "%s:\n%s", flags[i], out);
        cr_expect(!strstr(out, "attention compared on") == (i == 2), "%s: audit says what it compared:\n%s", flags[i], out);
        char name[32], path[4096];
        snprintf(name, sizeof name, "gen-%d.st", i);
        table_path(name, path, sizeof path);
        Trace t;
        cr_assert(tempo_trace_read(&t, path, err) == 0, "%s", err);
        const Tensor *att = tempo_trace_get(&t, "attention"), *rows = tempo_trace_get(&t, "attention_rows");
        int n = (int)tempo_trace_get(&t, "tokens")->shape[0], n_prompt = atoi(tempo_trace_meta_get(&t, "n_prompt"));
        cr_assert(att && att->shape[3] == n, "%s: no attention over the %d rows", flags[i], n);
        cr_expect(att->shape[0] == (i == 1 ? 1 : 5) && att->shape[1] == (i == 1 ? 1 : 8), "%s: layers/heads", flags[i]);
        cr_expect(!tempo_trace_get(&t, "attention_layers") == (i != 1) && !tempo_trace_get(&t, "attention_heads") == (i != 1));
        if (i == 2) cr_expect(!rows && att->shape[2] == n, "--attention-rows all keeps every row");
        for (int r = 0; i < 2 && r < n - n_prompt; r++)
            cr_assert(rows && rows->shape[0] == n - n_prompt && ((const int *)rows->data)[r] == n_prompt + r,
                      "%s: the default keeps the generated rows %d-%d", flags[i], n_prompt, n - 1);
        tempo_trace_free(&t);
    }
}

/* A forward whose kept attention would not fit (40,000 rows, every layer
 * and head: about 51 GB) is refused before it starts, with one line naming
 * the size, MemAvailable and the flags that shrink it. */
Test(commands, forward_too_big_is_refused_before_starting) {
    static char out[1 << 16];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%smkdir -p $D && %s synth --out $D/long.bin --seq-len 65536 >/dev/null && "
             "yes 1 | head -n 40000 | paste -sd, > $D/long.txt && %s forward -m $D/long.bin --tokens @$D/long.txt",
             env, TEMPO_BIN, TEMPO_BIN);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "%s", out);
    cr_expect(strstr(out, "GB") && strstr(out, "MemAvailable") && strstr(out, "--no-attention") &&
              strstr(out, "--attention-rows"), "%s", out);
    cr_expect(strchr(out, '\n') == strrchr(out, '\n'), "more than one line:\n%s", out);
}

/* `tempo COMMAND -m LONG --tokens @40,000 ids ARGS` (LONG a synthetic
 * model of 65,536 positions, `name` its files' stem) exits 1 with one line
 * holding each of the needles. */
static void expect_too_big(const char *name, const char *command, const char *args, const char *const *needles) {
    static char out[1 << 16];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%smkdir -p $D && %s synth --out $D/%s.bin --seq-len 65536 >/dev/null && "
             "yes 1 | head -n 40000 | paste -sd, > $D/%s.txt && %s %s -m $D/%s.bin --tokens @$D/%s.txt %s", env, TEMPO_BIN,
             name, name, TEMPO_BIN, command, name, name, args);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "%s", out);
    for (int i = 0; needles[i]; i++) cr_expect(strstr(out, needles[i]), "no \"%s\" in:\n%s", needles[i], out);
    cr_expect(strchr(out, '\n') == strrchr(out, '\n'), "more than one line:\n%s", out);
}

/* generate --trace --attention-rows all over a 40,000-token prompt would
 * keep the prompt's square (about 51 GB): refused before it starts, with
 * one line naming the size and the flags that shrink it. */
Test(commands, generate_too_big_is_refused_before_starting) {
    const char *needles[] = {"this generation would hold", "GB", "--attention-rows", "--no-attention", NULL};
    expect_too_big("long-gen", "generate", "-n 2 --trace $D/long-gen.st --attention-rows all", needles);
}

/* attention -p keeps every layer's, head's and row's attention, and makes
 * the run's mask and attention dense for its pictures: over a 40,000-token
 * prompt that is far more than the machine has, refused before the run
 * starts with one line naming the size and what shrinks it. */
Test(commands, attention_too_big_is_refused_before_starting) {
    const char *needles[] = {"this attention run would hold", "GB", "MemAvailable", "shorter prompt", NULL};
    expect_too_big("long-att", "attention", "-n 2", needles);
}

/* The prompt's square is never held unless asked: generate --trace over a
 * 6,000-row prompt (its every-layer-and-head square alone 1.15 GB) runs
 * under a 1 GB address-space limit; with --attention-rows all it cannot,
 * and says so in one line. */
Test(commands, generate_holds_no_prompt_square_unless_asked) {
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test("ASan reserves terabytes of address space, so an address-space limit cannot be used here");
#endif
    static char out[1 << 16];
    char env[9000], cmd[16384];
    command_env(env, sizeof env);
    const char *run = "%smkdir -p $D && %s synth --out $D/square.bin --seq-len 8192 >/dev/null && yes 1 | head -n 6000 | "
                      "paste -sd, > $D/square.txt && ulimit -v 1000000 && %s generate -m $D/square.bin --tokens @$D/square.txt "
                      "-n 2 --trace $D/square.st --quiet %s";
    snprintf(cmd, sizeof cmd, run, env, TEMPO_BIN, TEMPO_BIN, "");
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "the default capture needs more than 1 GB:\n%s", out);
    snprintf(cmd, sizeof cmd, run, env, TEMPO_BIN, TEMPO_BIN, "--attention-rows all");
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 1, "every row's attention fit in 1 GB?\n%s", out);
    cr_expect(strstr(out, "out of memory") && strchr(out, '\n') == strrchr(out, '\n'), "%s", out);
}
