/* The one settings table and the one number parser: every setting
 * survives GenConfig -> trace metadata -> GenConfig and appears in the
 * JSON; a flag's range is checked once, by one rule; aliases come from the
 * table; lists take @FILE; the audit's distribution and set choice are the
 * loop's own. */
#include "helpers.h"
#include "../tools/settings.h"

#define SYNTH BUILD_DIR "/synth-tied.bin"

/* g with every table setting moved off its default (n_layers 4). */
static void every_setting_changed(GenConfig *g, const Config *c) {
    tempo_gen_defaults(g, c);
    g->threshold = 0.3f, g->max_width = 5, g->max_steps = 7, g->mode = MASK_VISIBLE;
    g->isolate_first = 1, g->isolate_last = 2, g->next_from = NEXT_MEAN, g->schedule = SCHEDULE_LINEAR;
    g->final_threshold = 0.7f, g->bezier_p1 = 0.25f, g->bezier_p2 = 0.6f, g->prune = 1, g->prune_window = 3;
    g->prune_layers = 3, g->prune_threshold = 0.4f, g->emulate = EMULATE_LAST_MEMBER_ONLY, g->stop_on_empty = 1;
    g->numerics = (Numerics){.profile = NUMERICS_GGML, .kv_f16 = 1, .flash_attn = 1, .repack_off = 1};
    g->position_gap = 9;
}

/* Each table entry with a key, read back alone from a trace holding only it,
 * moves exactly its own fields: no entry writes one key and reads another. */
Test(settings, every_setting_round_trips_through_trace_metadata) {
    Config c = {.n_layers = 4};
    GenConfig want, defaults, got;
    char err[TEMPO_ERR_SIZE];
    every_setting_changed(&want, &c);
    tempo_gen_defaults(&defaults, &c);
    Trace t;
    tempo_trace_init(&t);
    cr_assert(settings_to_trace(&t, &want, err) == 0, "%s", err);
    got = defaults;
    unsigned present;
    cr_assert(settings_from_trace(&t, &c, &got, &present, err) == 0, "%s", err);
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "GenConfig -> metadata -> GenConfig is not the identity");
    int keys = 0;
    for (int k = 0; k < N_SETTINGS; k++) {
        const FlagSpec *s = &SETTINGS[k];
        if (!s->key) continue;
        keys++;
        cr_assert(present & SETTING_BIT(k), "setting %s was not read back", s->key);
        cr_assert(tempo_trace_meta_get(&t, s->key), "setting %s was not written", s->key);
        /* changing only this setting's fields from the defaults changes exactly them */
        GenConfig one = defaults;
        memcpy((char *)&one + s->field - 1, (char *)&want + s->field - 1, 4);
        if (s->field2) memcpy((char *)&one + s->field2 - 1, (char *)&want + s->field2 - 1, 4);
        cr_assert(memcmp(&one, &defaults, sizeof one) != 0, "the test does not move setting %s", s->key);
    }
    cr_assert_geq(keys, 15, "the table holds the generation settings");
    tempo_trace_free(&t);
}

/* The JSON settings say what the metadata says, key for key. */
Test(settings, json_names_every_setting_as_the_metadata_does) {
    Config c = {.n_layers = 4};
    GenConfig g;
    char err[TEMPO_ERR_SIZE];
    every_setting_changed(&g, &c);
    Trace t;
    tempo_trace_init(&t);
    cr_assert(settings_to_trace(&t, &g, err) == 0, "%s", err);
    cJSON *built = cJSON_CreateObject();
    settings_to_json(built, &g);
    char *printed = cJSON_Print(built);
    cJSON *o = cJSON_Parse(printed); /* as a reader sees it */
    free(printed);
    cJSON_Delete(built);
    for (int i = 0; i < t.n_meta; i++) {
        const cJSON *v = cJSON_GetObjectItem(o, t.meta[i].key);
        cr_assert(v, "JSON settings lack %s", t.meta[i].key);
        char text[64];
        if (cJSON_IsString(v)) snprintf(text, sizeof text, "%s", v->valuestring);
        else if (cJSON_IsBool(v)) snprintf(text, sizeof text, "%d", cJSON_IsTrue(v));
        else cr_assert(strtod(t.meta[i].value, NULL) == v->valuedouble, "%s: %s vs %g", t.meta[i].key, t.meta[i].value,
                       v->valuedouble);
        if (cJSON_IsString(v) || cJSON_IsBool(v)) cr_assert_str_eq(text, t.meta[i].value, "%s", t.meta[i].key);
    }
    cr_assert_eq(cJSON_GetArraySize(o), t.n_meta);
    cJSON_Delete(o);
    tempo_trace_free(&t);
}

/* A bad metadata value is named with its key; a layer range is the model's. */
Test(settings, bad_metadata_is_named) {
    Config c = {.n_layers = 2};
    GenConfig g;
    char err[TEMPO_ERR_SIZE];
    unsigned present;
    struct { const char *key, *value, *needle; } cases[] = {
        {"mode", "sideways", "trace metadata mode must be isolated or visible, got 'sideways'"},
        {"isolate_layers", "0-2", "trace metadata isolate_layers must be A-B with 0 <= A <= B < 2, got '0-2'"},
        {"prune_layers", "3", "trace metadata prune_layers must be an integer in [1, 2], got '3'"},
        {"threshold", "x", "trace metadata threshold must be a number, got 'x'"},
        {"stop_on_empty", "2", "trace metadata stop_on_empty must be an integer in [0, 1], got '2'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Trace t;
        tempo_trace_init(&t);
        cr_assert(tempo_trace_meta(&t, cases[i].key, cases[i].value, err) == 0);
        tempo_gen_defaults(&g, &c);
        cr_assert(settings_from_trace(&t, &c, &g, &present, err) != 0, "%s=%s was accepted", cases[i].key, cases[i].value);
        cr_assert(strstr(err, cases[i].needle), "got: %s", err);
        tempo_trace_free(&t);
    }
}

/* One range per flag: --max-width's is tempo_gen_validate's (no second,
 * narrower one refuses 1048576); --prune-window's is the table's. */
Test(settings, a_flag_range_is_checked_once) {
    char cmd[1024], text[8192];
    snprintf(cmd, sizeof cmd, "%s generate -m %s --tokens 1,5 -n 2 --max-width 1048576 --quiet", TEMPO_BIN, SYNTH);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "--max-width 1048576 is a valid width: %s", text);
    expect_error("generate -m " SYNTH " --tokens 1,5 --max-width 0", 1, "max-width 0 must be at least 1", NULL);
    expect_error("generate -m " SYNTH " --tokens 1,5 --prune attention --max-width 1048576", 1,
                 "max-width 1048576 is more than pruning weighs (64 members a set)", NULL);
    expect_error("generate -m " SYNTH " --tokens 1,5 --prune-window 0", 1,
                 "--prune-window must be an integer in [1, 1000000], got '0'", NULL);
    expect_error("generate -m " SYNTH " --tokens 1,5 --max-tokens x", 1, "--max-tokens must be an integer, got 'x'", NULL);
    /* the audit reads the same settings with the same rule */
    expect_error("audit -m " SYNTH " /nonexistent.st --max-width 0", 2, "max-width 0 must be at least 1", NULL);
    expect_error("audit -m " SYNTH " /nonexistent.st --threshold 1.5", 2, "threshold 1.5 is outside (0, 1]", NULL);
}

/* An alias is the same flag: the same run, and the last one given wins. */
Test(settings, aliases_come_from_the_table) {
    char json_a[256], json_b[256], a[1024], b[1024], out_a[8192], out_b[8192];
    scratch_path("alias-a.json", json_a, sizeof json_a);
    scratch_path("alias-b.json", json_b, sizeof json_b);
    snprintf(a, sizeof a, "%s generate -m %s --tokens 1,5 -n 3 --json %s --quiet", TEMPO_BIN, SYNTH, json_a);
    snprintf(b, sizeof b, "%s generate -m %s --tokens 1,5 --max-tokens 3 --json %s --quiet", TEMPO_BIN, SYNTH, json_b);
    cr_assert_eq(run_command(a, out_a, sizeof out_a), 0, "%s", out_a);
    cr_assert_eq(run_command(b, out_b, sizeof out_b), 0, "%s", out_b);
    cJSON *ja = read_json_file(json_a), *jb = read_json_file(json_b);
    const cJSON *sa = cJSON_GetObjectItem(ja, "settings"), *sb = cJSON_GetObjectItem(jb, "settings");
    cr_assert_eq(cJSON_GetObjectItem(sa, "max_tokens")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(sb, "max_tokens")->valueint, 3, "--max-tokens sets max_tokens as -n does");
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    expect_error("generate -m " SYNTH " --tokens 1,5 -n 9 --max-tokens 3", 1, "flag -n given twice (-n, then --max-tokens)", NULL);
    char model[4096], tok[4096], cmd[9000];
    fortune_paths(model, tok);
    snprintf(cmd, sizeof cmd, "%s encode -m %s -z %s -p 'The cat' && %s encode -m %s -z %s --prompt 'The cat'", TEMPO_BIN,
             model, tok, TEMPO_BIN, model, tok);
    FILE *p = popen(cmd, "r");
    char l1[256] = "", l2[256] = "";
    cr_assert(p && fgets(l1, sizeof l1, p) && fgets(l2, sizeof l2, p));
    pclose(p);
    cr_assert_str_eq(l1, l2, "-p and --prompt encode alike");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* --tokens @FILE reads the same list from a file (spaces and newlines allowed). */
Test(settings, lists_take_at_file) {
    char list[256], sets[256], missing[256], bad[256], args[1024], needle[1024];
    scratch_path("list.txt", list, sizeof list);
    scratch_path("list-s.txt", sets, sizeof sets);
    scratch_path("no-such-list", missing, sizeof missing);
    scratch_path("list-bad.txt", bad, sizeof bad);
    write_text(list, "1, 5,\n7\n");
    char a[1024], b[1024], out_a[8192], out_b[8192];
    snprintf(a, sizeof a, "%s forward -m %s --tokens 1,5,7 --positions 0,1,1 --sets 0,1,1 --mask isolated 2>&1", TEMPO_BIN,
             SYNTH);
    snprintf(b, sizeof b, "%s forward -m %s --tokens @%s --positions 0,1,1 --sets @%s --mask isolated 2>&1", TEMPO_BIN,
             SYNTH, list, sets);
    write_text(sets, "0,1,1");
    cr_assert_eq(run_command_capture(a, out_a, sizeof out_a, 1), 0, "%s", out_a);
    cr_assert_eq(run_command_capture(b, out_b, sizeof out_b, 1), 0, "%s", out_b);
    cr_assert_str_eq(out_a, out_b, "the list from a file is the list");
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens @%s", missing);
    snprintf(needle, sizeof needle, "cannot open --tokens file %s: No such file or directory", missing);
    expect_error(args, 1, needle, NULL);
    write_text(bad, "1,x,3\n");
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens @%s", bad);
    snprintf(needle, sizeof needle, "--tokens file %s must be a comma-separated list of integers, got '1,x,3", bad);
    expect_error(args, 1, needle, NULL);
    write_text(bad, "");
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1 --positions @%s", bad);
    snprintf(needle, sizeof needle, "--positions file %s must be a comma-separated list of integers", bad);
    expect_error(args, 1, needle, NULL);
}

/* A list longer than one argument may be (issue 21) reads whole from a file. */
Test(settings, a_65536_entry_list_from_a_file) {
    char path[256], arg[260];
    scratch_path("list-long.txt", path, sizeof path);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < 65536; i++) fprintf(f, i ? ",%d" : "%d", (i * 7919) % 512);
    fclose(f);
    int *ids = NULL, n = 0;
    char err[TEMPO_ERR_SIZE];
    snprintf(arg, sizeof arg, "@%s", path);
    cr_assert(tempo_parse_int_list(arg, "--tokens", &ids, &n, err) == 0, "%s", err);
    cr_assert_eq(n, 65536);
    for (int i = 0; i < n; i++) cr_assert_eq(ids[i], (i * 7919) % 512, "entry %d", i);
    free(ids);
}

/* The one number parser: whole strings only, one message style. */
Test(settings, the_number_parser) {
    char err[TEMPO_ERR_SIZE];
    int a, b;
    float x, y;
    cr_assert(tempo_parse_int_pair("3:4", ':', "--heatmap", "L:H", 0, &a, &b, err) == 0 && a == 3 && b == 4);
    cr_assert(tempo_parse_int_pair("3:-1", ':', "--heatmap", "L:H", 0, &a, &b, err) != 0);
    cr_assert_str_eq(err, "--heatmap must be L:H, got '3:-1'");
    cr_assert(tempo_parse_int_pair("3:4x", ':', "w", "L:H", 0, &a, &b, err) != 0);
    cr_assert(tempo_parse_range("2", "r", 0, 5, &a, &b, err) == 0 && a == 2 && b == 2);
    cr_assert(tempo_parse_range("2-1", "r", 0, 5, &a, &b, err) != 0);
    cr_assert(tempo_parse_float_pair("0.25,1", ',', "--bezier", "P1,P2", &x, &y, err) == 0 && x == 0.25f && y == 1.0f);
    cr_assert(tempo_parse_float_pair("0.25,", ',', "--bezier", "P1,P2", &x, &y, err) != 0);
    cr_assert(tempo_parse_int("2147483648", "n", INT_MIN, INT_MAX, &a, err) != 0);
    cr_assert_str_eq(err, "n must be an integer, got '2147483648'");
    cr_assert(tempo_parse_int(" 7", "n", 0, 9, &a, err) == 0 && a == 7);
    cr_assert(tempo_parse_int("7 ", "n", 0, 9, &a, err) != 0);
    char buf[32];
    tempo_format_float(buf, 0.1f);
    cr_assert_str_eq(buf, "0.1");
}

/* The loop's rules, shared with the audit: the mean of the members'
 * softmaxes, the last row without members, and the argmax when none clears. */
Test(settings, next_distribution_and_set_choice) {
    enum { V = 4 };
    const float r0[V] = {0, 1, 2, 3}, r1[V] = {3, 2, 1, 0}, last[V] = {0, 0, 5, 0};
    const float *rows[2] = {r0, r1};
    float p[V], tmp[V], p0[V], p1[V];
    tempo_probs(p0, r0, V);
    tempo_probs(p1, r1, V);
    tempo_next_distribution(NEXT_MEAN, rows, 2, last, V, p, tmp);
    for (int v = 0; v < V; v++) cr_assert_float_eq(p[v], (p0[v] + p1[v]) / 2, 1e-7);
    tempo_next_distribution(NEXT_LAST_ROW, rows, 2, last, V, p, tmp);
    cr_assert_eq(tempo_argmax(p, V), 2);
    tempo_next_distribution(NEXT_MEAN, rows, 0, last, V, p, tmp);
    cr_assert_eq(tempo_argmax(p, V), 2, "no live member: the last row");
    Config c = {.n_layers = 1};
    GenConfig g;
    tempo_gen_defaults(&g, &c);
    int chosen[V];
    const float flat[V] = {0.25f, 0.25f, 0.3f, 0.2f};
    cr_assert_eq(tempo_choose_set(flat, V, 0.25f, &g, chosen), 3);
    cr_assert(chosen[0] == 2 && chosen[1] == 0 && chosen[2] == 1, "most probable first, ties by id");
    cr_assert_eq(tempo_choose_set(flat, V, 0.9f, &g, chosen), 1);
    cr_assert_eq(chosen[0], 2, "none clears: the argmax");
    const float tied[V] = {0.1f, 0.3f, 0.3f, 0.3f};
    cr_assert_eq(tempo_argmax(tied, V), 1, "tied maxima: the lowest id, first in the selection's order");
    cr_assert(tempo_choose_set(tied, V, 0.9f, &g, chosen) == 1 && chosen[0] == 1, "none clears a tie: its lowest id");
    g.stop_on_empty = 1;
    cr_assert_eq(tempo_choose_set(flat, V, 0.9f, &g, chosen), 0, "stop_on_empty: nothing");
}
