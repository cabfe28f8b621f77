/* tempo attention and the pictures, as a person meets them: a trace read
 * without the model, arguments refused before any work, no nan, and every
 * SVG rendered to PNG by rsvg-convert and checked against the trace it
 * shows by tests/check_pictures.py (which reads the trace itself). */
#include "helpers.h"
#include "../tools/pictures.h"

#define PICTURES BUILD_DIR "/pictures"
#define PY "/usr/bin/python3"

/* Runs a shell command; fails the test unless it exits 0. Returns its output in out. */
static void run_ok(const char *cmd, char *out, size_t len) {
    int rc = run_command_capture(cmd, out, len, 1);
    cr_assert_eq(rc, 0, "`%s` failed (%d):\n%s", cmd, rc, out);
}

/* stories260K.bin and tok512.bin (buffers of 4096 bytes); fails clearly if missing. */
static void stories_paths(char *model, char *tok) {
    weights_path("stories260K.bin", model, 4096);
    weights_path("tok512.bin", tok, 4096);
}

/* A stories260K run at threshold 0.2 in `mode`: its trace (every row's attention unless `extra` chooses), JSON and tree
 * picture, named by `name`. */
static void stories_run(const char *name, const char *mode, const char *extra) {
    char model[4096], tok[4096], cmd[12000], out[65536];
    stories_paths(model, tok);
    snprintf(cmd, sizeof cmd, "mkdir -p " PICTURES " && %s generate -m %s -z %s -p 'Once upon a time' --threshold 0.2 -n 30 "
             "--mode %s %s %s --trace " PICTURES "/%s.st --json " PICTURES "/%s.json --svg-tree " PICTURES "/%s-tree.svg --quiet",
             TEMPO_BIN, model, tok, mode, extra, strstr(extra, "--attention") ? "" : "--attention-rows all", name, name, name);
    run_ok(cmd, out, sizeof out);
}

/* rsvg-convert renders the SVG (it must succeed) and the PNG is checked. */
static void render(const char *svg) {
    char png[4096], cmd[9000], out[4096];
    snprintf(png, sizeof png, "%.*s.png", (int)(strlen(svg) - 4), svg);
    snprintf(cmd, sizeof cmd, "rsvg-convert '%s' -o '%s' && " PY " tests/check_pictures.py png '%s'", svg, png, png);
    run_ok(cmd, out, sizeof out);
}

static void check_picture(const char *args) {
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, PY " tests/check_pictures.py %s", args);
    run_ok(cmd, out, sizeof out);
}

/* tempo attention on a run's trace with the model (for --svg-pair) and tokenizer. */
static void attention_pictures(const char *name, const char *flags) {
    char model[4096], tok[4096], cmd[12000], out[65536];
    stories_paths(model, tok);
    snprintf(cmd, sizeof cmd, "%s attention " PICTURES "/%s.st -m %s -z %s %s", TEMPO_BIN, name, model, tok, flags);
    run_ok(cmd, out, sizeof out);
}

/* A run named `name`, a picture of it drawn by tempo attention `flags`, rendered, then checked (check_pictures.py `check`). */
static void picture_case(const char *name, const char *mode, const char *flags, const char *svg, const char *check) {
    stories_run(name, mode, "");
    attention_pictures(name, flags);
    render(svg);
    check_picture(check);
}

Test(pictures, heatmap_marks_masked_cells_as_the_trace_masks_them) {
    picture_case("iso", "isolated", "--heatmap 1:0 --rows 5-25 --svg " PICTURES "/iso-heatmap.svg", PICTURES "/iso-heatmap.svg",
                 "heatmap " PICTURES "/iso-heatmap.svg " PICTURES "/iso.st 1 0 5 25");
    char *svg = read_text_file(PICTURES "/iso-heatmap.svg", NULL);
    cr_assert(strstr(svg, "isolated mode") && strstr(svg, "sibling hidden</text>"), "the isolation pattern is pointed out");
    free(svg);
}

Test(pictures, visible_heatmap_hides_no_sibling) {
    picture_case("vis", "visible", "--heatmap 3:2 --svg " PICTURES "/vis-heatmap.svg", PICTURES "/vis-heatmap.svg",
                 "heatmap " PICTURES "/vis-heatmap.svg " PICTURES "/vis.st 3 2 0 -1");
    char *svg = read_text_file(PICTURES "/vis-heatmap.svg", NULL);
    cr_assert(strstr(svg, "visible mode") && !strstr(svg, "cell masked sibling") && strstr(svg, "sees its sibling</text>"),
              "a visible run's heatmap hides no sibling, and says so");
    free(svg);
}

Test(pictures, grid_has_key_labels_scale_and_masked_siblings) {
    picture_case("grid", "isolated", "--svg-grid " PICTURES "/grid.svg --row 22", PICTURES "/grid.svg",
                 "grid " PICTURES "/grid.svg " PICTURES "/grid.st 22");
}

Test(pictures, isolated_visible_pair_differs_only_after_the_first_set) {
    picture_case("pair", "isolated", "--heatmap 1:0 --svg-pair " PICTURES "/pair.svg", PICTURES "/pair.svg",
                 "pair " PICTURES "/pair.svg " PICTURES "/pair.st 1 0 0 -1");
}

Test(pictures, tree_shows_every_member_and_strikes_the_pruned) {
    char model[4096], tok[4096], cmd[12000], out[65536];
    stories_paths(model, tok);
    snprintf(cmd, sizeof cmd, "mkdir -p " PICTURES " && %s generate -m %s -z %s -p 'Once upon a time' --threshold 0.1 -n 40 "
             "--prune attention --json " PICTURES "/pruned.json --svg-tree " PICTURES "/pruned-tree.svg --quiet", TEMPO_BIN, model, tok);
    run_ok(cmd, out, sizeof out);
    render(PICTURES "/pruned-tree.svg");
    check_picture("tree " PICTURES "/pruned-tree.svg " PICTURES "/pruned.json");
    cJSON *run = read_json_file(PICTURES "/pruned.json");
    int pruned = 0;
    const cJSON *step, *token;
    cJSON_ArrayForEach(step, cJSON_GetObjectItem(run, "steps"))
        cJSON_ArrayForEach(token, cJSON_GetObjectItem(step, "tokens")) pruned += !cJSON_IsNull(cJSON_GetObjectItem(token, "pruned_at"));
    cJSON_Delete(run);
    cr_assert(pruned > 0, "the pruned run prunes nothing, so the picture shows no struck-out member");
    stories_run("tree", "isolated", "");
    render(PICTURES "/tree-tree.svg");
    check_picture("tree " PICTURES "/tree-tree.svg " PICTURES "/tree.json");
}

/* The run as check_pictures.py `tree` reads it (the fields of generate --json it uses). */
static void write_run_json(const Generation *gen, const char *next_from, const char *path) {
    cJSON *run = cJSON_CreateObject(), *settings = cJSON_AddObjectToObject(run, "settings");
    cJSON *steps = cJSON_AddArrayToObject(run, "steps");
    cJSON_AddStringToObject(settings, "next_from", next_from);
    for (int s = 0; s < gen->n_steps; s++) {
        cJSON *step = cJSON_CreateObject(), *tokens = cJSON_AddArrayToObject(step, "tokens");
        cJSON_AddItemToArray(steps, step);
        for (int i = 0; i < gen->steps[s].n_members; i++) {
            const Member *mem = &gen->members[gen->steps[s].first_member + i];
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "probability", mem->prob);
            if (mem->row >= 0) cJSON_AddNumberToObject(t, "physical_index", mem->row);
            else cJSON_AddNullToObject(t, "physical_index");
            if (mem->pruned_at >= 0) cJSON_AddNumberToObject(t, "pruned_at", mem->pruned_at);
            else cJSON_AddNullToObject(t, "pruned_at");
            cJSON_AddItemToArray(tokens, t);
        }
    }
    char *text = cJSON_Print(run);
    FILE *f = fopen(path, "w");
    cr_assert(f && text, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(run);
}

/* With --next-from mean the next set is drawn from every member of the set
 * before it: the tree outlines all of them and draws a black line from each
 * (with last, the tree test above checks the one last member). */
Test(pictures, tree_marks_every_member_a_mean_next_set_was_drawn_from) {
    Model m;
    Tokenizer t;
    GenConfig g;
    Generation gen;
    char err[TEMPO_ERR_SIZE];
    int prompt[64], n;
    load_real(&m, "stories260K.bin");
    load_tokenizer(&t, "tok512.bin", m.config.vocab_size);
    cr_assert_eq(tempo_encode(&t, "Once upon a time", prompt, 64, &n, err), 0, "%s", err);
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 0.2f, g.max_steps = 30, g.next_from = NEXT_MEAN;
    cr_assert_eq(tempo_generate(&m, prompt, n, &g, &gen, err), 0, "%s", err);
    int parallel = 0;
    for (int s = 0; s + 1 < gen.n_steps; s++) parallel += gen.steps[s].n_members > 1;
    cr_assert(parallel >= 2, "the mean run forms %d parallel sets before its last step: nothing to mark", parallel);
    cr_assert_eq(run_command("mkdir -p " PICTURES, err, sizeof err), 0);
    cr_assert_eq(tree_svg(PICTURES "/mean-tree.svg", &gen, &t, "stories260K.bin", "isolated", NEXT_MEAN, err), 0, "%s", err);
    write_run_json(&gen, "mean", PICTURES "/mean.json");
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    render(PICTURES "/mean-tree.svg");
    check_picture("tree " PICTURES "/mean-tree.svg " PICTURES "/mean.json");
}

static int run_split(const char *args, char *out, size_t out_len, char *err, size_t err_len);

/* The cells of an SVG (lines with class "cell") holding `needle`, from their fill on: colour, tooltip, value. */
static char *cells_of(const char *path, const char *needle) {
    char *svg = read_text_file(path, NULL), *cells = calloc(strlen(svg) + 1, 1);
    cr_assert(cells);
    for (char *line = strtok(svg, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "<rect class=\"cell") && strstr(line, needle)) strcat(strcat(cells, strstr(line, "fill=")), "\n");
    free(svg);
    return cells;
}

/* The heatmap, the grid and the ASCII heatmap of a trace keeping layer 1,
 * head 0 and rows 6-20 draw exactly the cells those of the full trace of the
 * same run draw for that slice; check_pictures.py (which places the kept
 * values by their indices) finds each equal to the trace; a layer, head or
 * row the trace lacks is named with the ones it holds. */
Test(pictures, a_partial_trace_draws_the_kept_cells_as_the_full_one) {
    static char full_text[1 << 16], part_text[1 << 16], err[8192];
    stories_run("full", "isolated", "");
    stories_run("part", "isolated", "--attention-layers 1 --attention-heads 0 --attention-rows 6-20");
    const char *draw = "--heatmap 1:0 --rows 8-18 --svg " PICTURES "/%s-heat.svg --svg-grid " PICTURES "/%s-grid.svg --row 15";
    char flags[2][1024];
    snprintf(flags[0], sizeof flags[0], draw, "full", "full");
    snprintf(flags[1], sizeof flags[1], draw, "part", "part");
    attention_pictures("full", flags[0]);
    attention_pictures("part", flags[1]);
    char *heat[2] = {cells_of(PICTURES "/full-heat.svg", ""), cells_of(PICTURES "/part-heat.svg", "")};
    char *grid[2] = {cells_of(PICTURES "/full-grid.svg", "layer 1 head 0 key"), cells_of(PICTURES "/part-grid.svg", "")};
    cr_assert(strlen(heat[0]) > 0 && strcmp(heat[0], heat[1]) == 0, "the heatmaps' cells differ");
    cr_assert(strlen(grid[0]) > 0 && strcmp(grid[0], grid[1]) == 0, "the grids' cells of layer 1 head 0 differ");
    for (int i = 0; i < 2; i++) free(heat[i]), free(grid[i]);
    check_picture("heatmap " PICTURES "/part-heat.svg " PICTURES "/part.st 1 0 8 18");
    cr_assert_eq(run_split("attention " PICTURES "/full.st --heatmap 1:0 --rows 8-18", full_text, sizeof full_text, err, sizeof err), 0);
    cr_assert_eq(run_split("attention " PICTURES "/part.st --heatmap 1:0 --rows 8-18", part_text, sizeof part_text, err, sizeof err), 0);
    cr_assert(strstr(full_text, "layer 1 head 0 (") && strcmp(strstr(full_text, "layer 1 head 0 ("), strstr(part_text, "layer 1 head 0 (")) == 0,
              "the ASCII heatmaps differ:\n%s\n%s", full_text, part_text);
    expect_error("attention " PICTURES "/part.st --heatmap 0:0", 1, "no attention for layer 0; it holds layers 1", NULL);
    expect_error("attention " PICTURES "/part.st --heatmap 1:1", 1, "no attention for head 1; it holds heads 0", NULL);
    expect_error("attention " PICTURES "/part.st --heatmap 1:0 --rows 4-9", 1, "no attention for row 4; it holds rows 6-20", NULL);
    expect_error("attention " PICTURES "/part.st --svg-grid /tmp/g.svg --row 21", 1, "no attention for row 21; it holds rows 6-20",
                 NULL);
}

/* stdout and stderr of `tempo ARGS`, separately; returns the exit status. */
static int run_split(const char *args, char *out, size_t out_len, char *err, size_t err_len) {
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "{ %s %s 2>/dev/null; }", TEMPO_BIN, args);
    int rc = run_command_capture(cmd, out, out_len, 1);
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    run_command(cmd, err, err_len);
    return rc;
}

Test(attention_cli, reads_a_trace_without_the_model_and_prints_no_nan) {
    static char out[1 << 16], err[8192];
    char tok[4096], args[9000];
    stories_run("nomodel", "isolated", "");
    int rc = run_split("attention " PICTURES "/nomodel.st --heatmap 1:0 --rows 0-12", out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "attention on a trace alone failed: %s", err);
    cr_assert(!strstr(out, "nan"), "nan in the output:\n%s", out);
    cr_assert(strstr(out, "x-mean, x-max") && strstr(out, "reduct%"), "no legend:\n%s", out);
    cr_assert(strstr(out, "n/a") && strstr(out, "note: reduct% is n/a for late"), "the late third has no parallel key:\n%s", out);
    cr_assert(strstr(out, "   1   #"), "without -z, rows are labelled by id:\n%s", out);
    snprintf(args, sizeof args, "attention " PICTURES "/nomodel.st -z %s --heatmap 1:0 --rows 0-12 --json " PICTURES "/nomodel-att.json",
             weights_path("tok512.bin", tok, sizeof tok));
    rc = run_split(args, out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 0, "attention with -z and no -m failed: %s", err);
    cr_assert(strstr(out, "   1   Once") && strstr(out, "  10 [ _g"), "rows labelled with their tokens:\n%s", out);
    cJSON *j = read_json_file(PICTURES "/nomodel-att.json");
    const cJSON *late = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "thirds"), "late");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(late, "reduction_pct")) && cJSON_GetObjectItem(late, "reduction_note"));
    cJSON_Delete(j);
}

Test(attention_cli, bad_arguments_are_refused_before_any_work) {
    static char out[1 << 16], err[8192];
    char model[4096], tok[4096], args[9000];
    stories_run("badargs", "isolated", "");
    stories_paths(model, tok);
    struct { const char *args, *needle; } cases[] = {
        {"attention " PICTURES "/badargs.st --heatmap 9:0", "--heatmap 9:0 is out of range: layers 0-4, heads 0-7"},
        {"attention " PICTURES "/badargs.st --heatmap x", "--heatmap must be LAYER:HEAD"},
        {"attention " PICTURES "/badargs.st --heatmap 0:0 --rows 3-500", "--rows 3-500 is out of range: the run has rows 0-38"},
        {"attention " PICTURES "/badargs.st --rows 2-1 --heatmap 0:0", "--rows must be A-B with 0 <= A <= B"},
        {"attention " PICTURES "/badargs.st --row 3", "--row chooses the query of --svg-grid"},
        {"attention " PICTURES "/badargs.st --svg-pair /tmp/x.svg", "--svg-pair needs -m MODEL"},
        {"attention " PICTURES "/badargs.st --threshold 0.1", "--threshold applies to a fresh run"},
        {"attention " PICTURES "/badargs.st --no-color", "unknown flag --no-color for tempo attention"},
        {"attention", "give one TRACE, or -m MODEL -z TOK -p PROMPT"},
        {"attention /nonexistent.st", "/nonexistent.st"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_error(cases[i].args, 1, cases[i].needle, NULL);
        run_split(cases[i].args, out, sizeof out, err, sizeof err);
        cr_assert(out[0] == '\0', "`%s` printed before refusing:\n%s", cases[i].args, out);
    }
    char fortune[4096], fortune_tok[4096];
    fortune_paths(fortune, fortune_tok);
    /* a model of another shape, and one of the trace's layers and heads but another width: the
     * dimensions the trace's metadata gives are checked as verify checks them */
    char narrow[4096], made[8192];
    scratch_path("narrow.bin", narrow, sizeof narrow);
    snprintf(args, sizeof args, "synth --out %s --dim 48 --hidden 172 --layers 5 --heads 8 --kv-heads 4 --vocab 512 --seq-len 512",
             narrow);
    char cmd[9200];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    cr_assert_eq(run_command(cmd, made, sizeof made), 0, "%s: %s", cmd, made);
    const char *others[2] = {fortune, narrow};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "attention " PICTURES "/badargs.st -m %s --svg-pair /tmp/x.svg", others[i]);
        expect_error(args, 1, "verify against the model that wrote it", NULL);
        run_split(args, out, sizeof out, err, sizeof err);
        cr_assert(out[0] == '\0', "a trace of another model: printed before refusing:\n%s", out);
    }
    snprintf(args, sizeof args, "attention -m %s -z %s -p 'Once upon a time' -n 400 --heatmap 9:0", model, tok);
    expect_error(args, 1, "--heatmap 9:0 is out of range", NULL);
    run_split(args, out, sizeof out, err, sizeof err);
    cr_assert(out[0] == '\0', "a fresh run printed before refusing --heatmap 9:0:\n%s", out);
}
