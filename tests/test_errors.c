/* The rest of README's error table: each row triggered once. */
#include "helpers.h"
#include "../tools/memory.h"

#define SYNTH BUILD_DIR "/synth-tied.bin"

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fwrite(data, 1, n, f);
    fclose(f);
}

Test(errors, checkpoint_missing_or_not_a_file) {
    char missing[4096], args[9000], needle[4200];
    scratch_path("no-such.bin", missing, sizeof missing);
    snprintf(args, sizeof args, "forward -m %s --tokens 1", missing);
    snprintf(needle, sizeof needle, "cannot open checkpoint %s", missing);
    expect_error(args, 1, needle, NULL);
    expect_error("forward -m /dev/null --tokens 1", 1, "checkpoint /dev/null is not a regular file", NULL);
    expect_error("forward -m /tmp --tokens 1", 1, "model directory /tmp has no config.json", NULL);
}

Test(errors, head_dimension_odd) {
    char odd[4096], args[9000];
    scratch_path("odd.bin", odd, sizeof odd);
    int h[7] = {12, 16, 1, 4, 4, 16, 8};
    write_bytes(odd, h, sizeof h);
    snprintf(args, sizeof args, "forward -m %s --tokens 1", odd);
    expect_error(args, 1, "head dimension 3 is odd", NULL);
}

Test(errors, tokenizer_missing_or_malformed) {
    char missing[4096], bad[4096], args[9000], needle[4200];
    scratch_path("no-such.tok", missing, sizeof missing);
    scratch_path("bad.tok", bad, sizeof bad);
    snprintf(args, sizeof args, "forward -m " SYNTH " -z %s --prompt hi", missing);
    snprintf(needle, sizeof needle, "cannot open tokenizer %s", missing);
    expect_error(args, 1, needle, NULL);
    snprintf(args, sizeof args, "forward -m " SYNTH " -z %s --prompt hi", bad);
    int zero = 0;
    write_bytes(bad, &zero, sizeof zero);
    expect_error(args, 1, "max_token_length missing or out of range", NULL);
    struct { int max_len; float score; int len; } piece = {4, 0.0f, 9};
    write_bytes(bad, &piece, sizeof piece);
    expect_error(args, 1, "piece 0 has length 9 (max_token_length 4)", NULL);
}

Test(errors, missing_inputs) {
    expect_error("forward -m " SYNTH " --prompt hi", 1, "missing -z TOKENIZER (needed for --prompt)", NULL);
    expect_error("forward -m " SYNTH, 1, "missing --prompt TEXT or --tokens IDS", NULL);
    char tok[4096], args[9000];
    weights_path("fortune-tok512.bin", tok, sizeof tok);
    snprintf(args, sizeof args, "forward -m %s/fortune.bin -z %s --prompt hi --tokens 1", WEIGHTS_DIR, tok);
    expect_error(args, 1, "give --prompt or --tokens, not both", NULL);
    expect_error("synth", 1, "missing --out FILE", NULL);
    expect_error("compare -m " SYNTH " -p hi", 1, "missing -z TOKENIZER", NULL);
    expect_error("compare -m " SYNTH " --tokens 1", 1, "unknown flag --tokens for tempo compare", NULL);
    expect_error("check", 1, "usage: tempo check MODEL", NULL);
}

Test(errors, mask_file_missing) {
    char missing[4096], args[9000], needle[4200];
    scratch_path("no-such-mask", missing, sizeof missing);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,2 --mask %s", missing);
    snprintf(needle, sizeof needle, "cannot open mask file %s", missing);
    expect_error(args, 1, needle, NULL);
}

/* A safetensors file with this JSON header and `data_bytes` zero bytes of data. */
static void write_trace_file(const char *path, const char *json, size_t data_bytes) {
    uint64_t len = strlen(json);
    char buf[512] = {0};
    cr_assert(8 + len + data_bytes <= sizeof buf);
    memcpy(buf, &len, 8);
    memcpy(buf + 8, json, len);
    write_bytes(path, buf, 8 + len + data_bytes);
}

Test(errors, traces_that_are_not_traces) {
    struct { const char *json; size_t data; const char *needle; } cases[] = {
        {"[1,2]", 0, "the header is not a JSON object"},
        {"{\"tokens\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,8]}}", 16,
         "tensor tokens has 8 bytes for a shape that needs 16"},
        {"{\"tokens\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 16, "unsupported dtype I64"},
        {"{\"tokens\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,400]}}", 16, "data_offsets outside the file"},
        {"{\"tokens\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "trace lacks tokens or positions"},
        {"{\"__metadata__\":{\"engine\":\"no tensors at all\"}}", 0, "trace lacks tokens or positions"}, /* fuzz find */
    };
    char bad[4096], missing[4096], args[9000], needle[4200];
    scratch_path("bad.st", bad, sizeof bad);
    scratch_path("no-such.st", missing, sizeof missing);
    snprintf(args, sizeof args, "verify -m " SYNTH " %s", bad);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_trace_file(bad, cases[i].json, cases[i].data);
        expect_error(args, 2, cases[i].needle, NULL);
    }
    snprintf(args, sizeof args, "verify -m " SYNTH " %s", missing);
    snprintf(needle, sizeof needle, "cannot open trace %s", missing);
    expect_error(args, 2, needle, NULL);
}

Test(errors, nan_weights_reported_by_check) {
    FILE *in = fopen(SYNTH, "rb");
    cr_assert(in);
    static unsigned char data[1 << 20];
    size_t n = fread(data, 1, sizeof data, in);
    fclose(in);
    float nan = NAN, inf = INFINITY;
    memcpy(data + 28 + 4 * 100, &nan, 4);
    memcpy(data + 28 + 4 * 300, &inf, 4);
    char path[4096], args[9000], needle[4200], out[4096];
    scratch_path("nan.bin", path, sizeof path);
    write_bytes(path, data, n);
    snprintf(args, sizeof args, "check %s", path);
    snprintf(needle, sizeof needle, "checkpoint %s holds 2 NaN/Inf weights", path);
    expect_error(args, 1, needle, NULL);
    snprintf(args, sizeof args, TEMPO_BIN " check %s", path);
    int rc = run_command_capture(args, out, sizeof out, 1);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "token_embedding: 1 NaN, 1 Inf (first at element 100)"), "%s", out);
    rc = run_command_capture(TEMPO_BIN " check " SYNTH, out, sizeof out, 1);
    cr_assert(rc == 0 && strstr(out, "every weight is finite"), "%s", out);
}

Test(errors, unwritable_outputs_leave_nothing) {
    char trace[4096], checkpoint[4096], args[9000], needle[4200];
    scratch_path("no-dir/x.st", trace, sizeof trace);
    scratch_path("no-dir/x.bin", checkpoint, sizeof checkpoint);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,2 --out %s", trace);
    snprintf(needle, sizeof needle, "cannot write trace %s", trace);
    expect_error(args, 1, needle, NULL);
    snprintf(args, sizeof args, "synth --out %s", checkpoint);
    snprintf(needle, sizeof needle, "cannot write %s", checkpoint);
    expect_error(args, 1, needle, NULL);
}

Test(errors, analysis_arguments) {
    char model[4096], tok[4096], missing[4096], empty[4096], args[9000], needle[4200];
    fortune_paths(model, tok);
    scratch_path("no-such-prompts", missing, sizeof missing);
    scratch_path("empty-prompts", empty, sizeof empty);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat' -n 4 --heatmap 9:0", model, tok);
    expect_error(args, 1, "--heatmap 9:0 is out of range: layers 0-3, heads 0-3", NULL);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat' -n 4 --rows 5-999 --heatmap 0:0", model, tok);
    expect_error(args, 1, "--rows 5-999 is out of range: the run has rows 0-", NULL);
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'The cat' -n 4 --rows 5-9", model, tok);
    expect_error(args, 1, "--rows chooses the rows of --heatmap, --svg or --svg-pair", NULL);
    snprintf(args, sizeof args, "attention -m %s -z %s", model, tok);
    expect_error(args, 1, "give one TRACE, or -m MODEL -z TOK -p PROMPT for a fresh run", NULL);
    snprintf(args, sizeof args, "compare -m %s -z %s --prompts %s", model, tok, missing);
    snprintf(needle, sizeof needle, "cannot open prompt file %s", missing);
    expect_error(args, 1, needle, NULL);
    write_bytes(empty, "# nothing\n", 10);
    snprintf(args, sizeof args, "compare -m %s -z %s --prompts %s", model, tok, empty);
    snprintf(needle, sizeof needle, "prompt file %s holds no prompts", empty);
    expect_error(args, 1, needle, NULL);
    snprintf(args, sizeof args, "compare -m %s -z %s", model, tok);
    expect_error(args, 1, "missing -p PROMPT or --prompts FILE", NULL);
}

/* Out of memory: attention for 6,000 rows needs 1.15 GB under a 1 GB address-space limit. */
Test(errors, out_of_memory_is_an_error) {
#ifdef __SANITIZE_ADDRESS__
    cr_skip_test("ASan reserves terabytes of address space, so an address-space limit cannot be used here");
#endif
    char *ids = malloc(6000 * 2 + 1), cmd[20000];
    for (int i = 0; i < 6000; i++) memcpy(ids + 2 * i, "1,", 2);
    ids[2 * 6000 - 1] = '\0';
    snprintf(cmd, sizeof cmd, "sh -c 'ulimit -v 1000000; %s forward -m %s --tokens %s'", TEMPO_BIN, SYNTH, ids);
    char text[4096];
    int rc = run_command(cmd, text, sizeof text);
    free(ids);
    cr_assert(rc == 1 && strstr(text, "out of memory"), "exit %d: %s", rc, text);
}

/* More bytes than are available: one line naming the command, both sizes
 * and the flags that shrink it; what fits passes. */
Test(errors, memory_refusal_names_the_size_and_the_flags) {
    char err[TEMPO_ERR_SIZE];
    cr_expect(tempo_memory_fits(1000, 1000, "forward", "--no-attention", err) == 0);
    cr_assert(tempo_memory_fits((size_t)17400000000ull, (size_t)12000000000ull, "forward of 16384 rows",
                                "shrink it with --no-attention", err) != 0);
    cr_expect(strstr(err, "forward of 16384 rows") && strstr(err, "17.4 GB") && strstr(err, "12.0 GB") &&
              strstr(err, "MemAvailable") && strstr(err, "--no-attention") && !strchr(err, '\n'), "%s", err);
    size_t available;
    cr_assert(tempo_memory_available(&available, err) == 0, "%s", err);
    cr_expect(available > 0, "MemAvailable read as 0");
}

/* generate's estimate counts the attention it keeps: none < one layer and
 * head < the generated rows (the default) < every row, and asking for the
 * prompt's rows adds at least their square of every layer and head. */
Test(errors, generation_estimate_counts_the_kept_attention) {
    Model m;
    load_real(&m, "stories260K.bin");
    const Config *c = &m.config;
    GenConfig g;
    tempo_gen_defaults(&g, c);
    enum { P = 400 };
    int max_rows = tempo_generation_capacity(&g, c, P), zero = 0, *generated = malloc((size_t)max_rows * sizeof(int));
    cr_assert(generated && max_rows == P + 32 * 8, "rows %d", max_rows);
    for (int i = P; i < max_rows; i++) generated[i - P] = i;
    AttentionKeep one = {.layers = &zero, .n_layers = 1, .heads = &zero, .n_heads = 1, .rows = generated, .n_rows = max_rows - P};
    AttentionKeep rows = {.rows = generated, .n_rows = max_rows - P}, all = {0};
    g.keep_logits = 1;
    size_t none = tempo_generation_bytes(&m, &g, P, 1);
    g.capture_attention = 1, g.attention_keep = &one;
    size_t head = tempo_generation_bytes(&m, &g, P, 1);
    g.attention_keep = &rows;
    size_t gen_rows = tempo_generation_bytes(&m, &g, P, 1);
    g.attention_keep = &all;
    size_t every = tempo_generation_bytes(&m, &g, P, 1);
    cr_expect(none < head && head < gen_rows && gen_rows < every, "%zu %zu %zu %zu", none, head, gen_rows, every);
    cr_expect(every - gen_rows >= (size_t)c->n_layers * c->n_heads * P * P * sizeof(float), "%zu %zu", gen_rows, every);
    free(generated);
    tempo_model_free(&m);
}

/* The one capacity formula (tempo_generation_capacity, which tempo_generate
 * sizes its cache by and tools/memory.c estimates with) is exactly the rows
 * a run can reach: with no end-of-sequence token and a threshold every token
 * clears, each step feeds max_width rows (one under --emulate) until the
 * context's positions run out, and the run fills the cache to the row. */
static void expect_run_fills_capacity(int width, int gap, Emulation emulate) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_model_load(&m, SYNTH, err) == 0, "%s", err);
    m.config.n_eos = 0; /* no member ends the run */
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 1e-30f, g.max_width = width, g.max_steps = 1 << 20, g.position_gap = gap, g.emulate = emulate;
    g.keep_logits = 0;
    int prompt[5] = {1, 2, 3, 4, 5}, capacity = tempo_generation_capacity(&g, &m.config, 5);
    Generation gen;
    cr_assert(tempo_generate(&m, prompt, 5, &g, &gen, err) == 0, "%s", err);
    cr_assert_str_eq(gen.stop_reason, "context-full");
    cr_assert_eq(gen.n_rows, capacity, "width %d gap %d: the run reached %d rows, the capacity is %d", width, gap, gen.n_rows,
                 capacity);
    cr_assert_eq(capacity, 5 + (m.config.seq_len - 5 - gap) * (emulate == EMULATE_NONE ? width : 1), "the formula itself");
    tempo_generation_free(&gen);
    tempo_model_free(&m);
}

Test(errors, generation_capacity_is_the_rows_a_run_reaches) {
    expect_run_fills_capacity(3, 0, EMULATE_NONE);
    expect_run_fills_capacity(4, 17, EMULATE_NONE);
    expect_run_fills_capacity(4, 0, EMULATE_LAST_MEMBER_ONLY);
}
