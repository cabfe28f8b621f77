/* Every command with each of its flags at least once, from one table of
 * command lines. Under build/tests-asan they run build/tempo-asan
 * (ASan+UBSan): a row passes when the command exits as expected, nothing
 * crashes or reports a sanitizer error, and no `nan` reaches the screen. */
#include "helpers.h"

#include <ctype.h>

/* Shell variables every command line may use: $M/$Z the stories260K
 * model and tokenizer, $S a synthetic model, $T a trace, $D a scratch folder. */
static void command_env(char *buf, size_t len) {
    char model[4096], tok[4096];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    snprintf(buf, len, "export M='%s' Z='%s' S='%s/synth-tied.bin' D=/tmp/tempo-cmd-table T=/tmp/tempo-cmd-table/run.st; ",
             model, tok, BUILD_DIR);
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
    int nan_owned;      /* 1: attention's n/a column (issue 14 part 6, pictures branch) may still print nan */
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
        cr_assert(rows[i].nan_owned || !has_nan(out), "`tempo %s` printed nan:\n%s", rows[i].args, out);
    }
}

#define GEN "generate -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 "

Test(commands, compare_with_unfed_members_reads_no_logits) {
    /* --emulate last-member-only leaves every member but the last without a row (row -1) */
    CommandLine rows[] = {
        {"compare -m $M -z $Z -p 'Once upon a time' --emulate last-member-only", 0, 0},
        {"compare -m $M -z $Z -p 'Once upon a time' --emulate last-member-only --threshold 0.05 -n 8 --json $D/c.json", 0, 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
    cJSON *j = read_json_file("/tmp/tempo-cmd-table/c.json");
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

Test(commands, generate_every_flag) {
    CommandLine rows[] = {
        {GEN "--mode isolated --isolate-layers 0-1 --max-width 3 --json $D/g.json --trace $D/g.st --threads 1", 0, 0},
        {GEN "--mode visible --next-from mean --verbose --no-color", 0, 0},
        {"generate -m $M -z $Z --prompt 'Once upon' --max-tokens 5 --greedy --quiet", 0, 0},
        {"generate -m $M --tokens 1,403,407 -n 5 --stop-on-empty --threshold 0.3", 0, 0},
        {GEN "--dynamic-threshold --final-threshold 0.5 --bezier 0.2,0.8", 0, 0},
        {GEN "--threshold-schedule linear --final-threshold 0.4", 0, 0},
        {GEN "--prune attention --prune-window 2 --prune-layers 2 --prune-threshold 0.9 --hide-pruned", 0, 0},
        {GEN "--prune none --emulate last-member-only --next-from mean", 0, 0},
        {GEN "--emulate none --threshold-schedule constant", 0, 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
}

Test(commands, forward_verify_diff_every_flag) {
    CommandLine rows[] = {
        {GEN "--trace $T", 0, 0},
        {"forward -m $M -z $Z --prompt 'Once upon a time' --out $D/f.st --threads 1", 0, 0},
        {"forward -m $M -z $Z -p 'Once upon' --mask isolated --sets 0,1,1 --positions 0,1,1", 0, 0},
        {"forward -m $S --tokens 1,2,3 --mask visible --no-attention", 0, 0},
        {"verify -m $M $T --atol 1e-3 --rtol 1e-3 --threads 1", 0, 0},
        {"diff $T $D/f.st --atol 1e-4 --rtol 0", 1, 0},
        {"diff $T $T", 0, 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
}

Test(commands, compare_every_flag) {
    CommandLine rows[] = {
        {"compare -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --json $D/c.json --threads 1", 0, 0},
        {"compare -m $M -z $Z --prompt 'Once upon a time' --max-tokens 6 --max-width 2 --isolate-layers 1-2", 0, 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --next-from mean --prune attention --prune-window 2 --prune-layers 1 "
         "--prune-threshold 0.9", 0, 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --dynamic-threshold --bezier 0.1,0.9 --final-threshold 0.5", 0, 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --threshold-schedule linear --stop-on-empty --prune none --emulate none", 0, 0},
        {"compare -m $M -z $Z -p 'The dog' -n 6 --greedy", 0, 0},
        {"compare -m $M -z $Z --prompts weights/prompts.txt -n 4", 0, 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
}

Test(commands, attention_every_flag) {
    /* attention belongs to the pictures branch (issue 14 parts 6-7); its flags are listed here */
    CommandLine rows[] = {
        {GEN "--trace $D/a.st", 0, 0},
        {"attention -m $M $D/a.st --heatmap 0:1 --rows 3-8 --json $D/a.json", 0, 1},
        {"attention -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --svg $D/a.svg --heatmap 1:0", 0, 1},
        {"attention -m $M -z $Z -p 'Once upon a time' -n 6 --threshold 0.1 --svg-grid $D/g.svg --row 7", 0, 1},
        {"attention -m $M --tokens 1,403,407 -n 4", 0, 1},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
}

Test(commands, encode_check_synth_every_flag) {
    CommandLine rows[] = {
        {"encode -m $M -z $Z -p 'Once upon a time'", 0, 0},
        {"encode -m $M -z $Z --prompt 'Once'", 0, 0},
        {"check $M", 0, 0},
        {"synth --out $D/s.bin --seed 3 --dim 32 --hidden 48 --layers 2 --heads 4 --kv-heads 2 --vocab 64 --seq-len 32 "
         "--untied --format llama2c --dtype f32", 0, 0},
        {"synth --out $D/hf --format hf --dtype bf16 --tokenizer gpt2 --layers 1", 0, 0},
        {"check $D/s.bin", 0, 0},
    };
    run_table(rows, sizeof rows / sizeof rows[0]);
}
