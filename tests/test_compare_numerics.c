/* tempo compare --vs-numerics (tools/compare_numerics.c): the first changed
 * step is where the second profile's own run parts from the first's, the
 * probabilities are each profile's own, a member at the threshold's edge
 * is lost or gained as its two probabilities say, F32 keeps every set while
 * the two sides still compute differently, and the flags refuse a
 * comparison of a profile with itself. */
#include "helpers.h"

#include "../tools/compare_numerics.h"

#define Q8_0_GGUF BUILD_DIR "/stories260K-q8_0.gguf"

static const Numerics EXACT = {.profile = NUMERICS_EXACT}, GGML = {.profile = NUMERICS_GGML};

/* The prompt "Once upon a time" as ids (tok512, the vocabulary of stories260K and its GGUF copies). */
static int prompt_ids(int *ids, int vocab) {
    Tokenizer t;
    char err[TEMPO_ERR_SIZE];
    int n = 0;
    load_tokenizer(&t, "tok512.bin", vocab);
    cr_assert(tempo_encode(&t, "Once upon a time", ids, 64, &n, err) == 0, "%s", err);
    tempo_tokenizer_free(&t);
    return n;
}

static GenConfig run_config(const Model *m, float threshold) {
    GenConfig g;
    tempo_gen_defaults(&g, &m->config);
    g.threshold = threshold, g.max_steps = 12;
    return g;
}

/* A free run under one profile. */
static void free_run(Model *m, const int *ids, int n, const GenConfig *g, const Numerics *num, Generation *gen) {
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_model_set_numerics(m, num, err) == 0 && tempo_generate(m, ids, n, g, gen, err) == 0, "%s", err);
}

static int same_tokens(const Generation *a, int s, const int *tokens, int n) {
    if (s >= a->n_steps || a->steps[s].n_members != n) return 0;
    for (int i = 0; i < n; i++)
        if (a->members[a->steps[s].first_member + i].token != tokens[i]) return 0;
    return 1;
}

/* Q8_0 weights, exact vs ggml at threshold 0.1 in `mode`: the steps before
 * the first change are kept, and the changed step's set is the one ggml's
 * own free run selects there, with its probabilities; 1 when a set changed. */
static int first_change_matches_free_runs(MaskKind mode) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_model(&m, Q8_0_GGUF);
    int ids[64], n = prompt_ids(ids, m.config.vocab_size);
    GenConfig g = run_config(&m, 0.1f);
    g.mode = mode;
    Numerics sides[2] = {EXACT, GGML};
    NumericsComparison cmp;
    cr_assert(compare_numerics_run(&m, ids, n, &g, sides, &cmp, err) == 0, "%s", err);
    Generation a, b;
    free_run(&m, ids, n, &g, &EXACT, &a);
    free_run(&m, ids, n, &g, &GGML, &b);
    int f = cmp.first_changed, changed = f >= 0;
    cr_assert_eq(cmp.kept == cmp.run.n_steps, !changed);
    cr_assert_eq(cmp.run.n_steps, a.n_steps, "A's run is the exact free run");
    for (int s = 0; s < (changed ? f : a.n_steps); s++) {
        const Step *st = &a.steps[s];
        int tokens[64];
        for (int i = 0; i < st->n_members; i++) tokens[i] = a.members[st->first_member + i].token;
        cr_assert(same_tokens(&b, s, tokens, st->n_members), "step %d is kept but ggml's own run chose another set", s);
    }
    cr_assert(!changed || same_tokens(&b, f, cmp.set_b + (size_t)f * cmp.max_width, cmp.width_b[f]),
              "step %d: B's set is not the set ggml's own run selects there", f);
    for (int i = 0; changed && i < cmp.width_b[f]; i++) {
        const Member *mem = &b.members[b.steps[f].first_member + i];
        float p = cmp.probs[1][(size_t)f * cmp.vocab + mem->token];
        cr_expect(fabsf(p - mem->prob) <= 1e-6f, "member %d: B's p %.9g, ggml's run %.9g", i, p, mem->prob);
    }
    for (int i = 0; i < a.n_members; i++) /* A's p is what the run selected with */
        cr_assert(cmp.run.members[i].token == a.members[i].token && cmp.run.members[i].prob == a.members[i].prob);
    tempo_generation_free(&a), tempo_generation_free(&b);
    compare_numerics_free(&cmp);
    tempo_model_free(&m);
    return changed;
}

Test(compare_numerics, first_change_is_where_the_second_run_parts) {
    cr_assert(first_change_matches_free_runs(MASK_ISOLATED), "ggml's Q8_0 activations changed no set: pick another threshold");
    first_change_matches_free_runs(MASK_VISIBLE); /* visible rows: the same rule, whether or not a set changes */
}

/* p of each token after the prompt, under one profile, by a plain full pass. */
static void prompt_probs(Model *m, const int *ids, int n, const Numerics *num, float *p) {
    char err[TEMPO_ERR_SIZE];
    int pos[64], V = m->config.vocab_size;
    float *logits = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) pos[i] = i;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    cr_assert(tempo_model_set_numerics(m, num, err) == 0, "%s", err);
    cr_assert(tempo_forward_full(m, n, ids, pos, &causal, (Outputs){.logits = logits}, err) == 0, "%s", err);
    tempo_probs(p, logits + (size_t)(n - 1) * V, V);
    free(logits);
}

/* A threshold between a token's two probabilities at step 0: the token is
 * in exactly one side's set there, lost or gained as its p says, with the
 * p of each profile's own forward pass. */
Test(compare_numerics, member_at_the_edge_is_lost_or_gained) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_model(&m, Q8_0_GGUF);
    int ids[64], n = prompt_ids(ids, m.config.vocab_size), V = m.config.vocab_size, edge = -1;
    float *pa = malloc((size_t)V * sizeof(float)), *pb = malloc((size_t)V * sizeof(float));
    prompt_probs(&m, ids, n, &EXACT, pa);
    prompt_probs(&m, ids, n, &GGML, pb);
    for (int v = 0; v < V; v++) /* the likely token whose p moves most, not the argmax (always in a set) */
        if (v != tempo_argmax(pa, V) && pa[v] > 0.005f && (edge < 0 || fabsf(pa[v] - pb[v]) > fabsf(pa[edge] - pb[edge])))
            edge = v;
    cr_assert(edge >= 0 && pa[edge] != pb[edge], "no token moves between the profiles");
    GenConfig g = run_config(&m, (pa[edge] + pb[edge]) / 2);
    Numerics sides[2] = {EXACT, GGML};
    NumericsComparison cmp;
    cr_assert(compare_numerics_run(&m, ids, n, &g, sides, &cmp, err) == 0, "%s", err);
    cr_assert_eq(cmp.first_changed, 0, "token %d (p %.6f / %.6f) at threshold %.6f", edge, pa[edge], pb[edge], g.threshold);
    int in_a = 0, in_b = 0;
    for (int i = 0; i < cmp.run.steps[0].n_members; i++) in_a |= cmp.run.members[i].token == edge;
    for (int i = 0; i < cmp.width_b[0]; i++) in_b |= cmp.set_b[i] == edge;
    cr_assert_eq(in_a, pa[edge] >= g.threshold);
    cr_assert_eq(in_b, pb[edge] >= g.threshold);
    cr_assert(in_a != in_b);
    cr_expect(fabsf(cmp.probs[0][edge] - pa[edge]) <= 1e-6f && fabsf(cmp.probs[1][edge] - pb[edge]) <= 1e-6f,
              "compare's p %.9g / %.9g, the forward passes' %.9g / %.9g", cmp.probs[0][edge], cmp.probs[1][edge], pa[edge],
              pb[edge]);
    cr_expect(cmp.max_dp[0] >= fabsf(pa[edge] - pb[edge]) - 1e-6f, "max |dp| %.9g misses the edge token", cmp.max_dp[0]);
    free(pa), free(pb);
    compare_numerics_free(&cmp);
    tempo_model_free(&m);
}

/* F32 weights: ggml's arithmetic keeps every set, yet the two sides
 * computed differently (had both run one profile, every |dp| would be 0). */
Test(compare_numerics, f32_keeps_every_set_and_the_sides_differ) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, "stories260K.bin");
    int ids[64], n = prompt_ids(ids, m.config.vocab_size);
    GenConfig g = run_config(&m, 0.1f);
    Numerics sides[2] = {EXACT, GGML};
    NumericsComparison cmp;
    cr_assert(compare_numerics_run(&m, ids, n, &g, sides, &cmp, err) == 0, "%s", err);
    double worst = 0.0;
    for (int s = 0; s < cmp.run.n_steps; s++) worst = fmax(worst, cmp.max_dp[s]);
    cr_assert(cmp.run.n_steps == 12 && cmp.kept == 12 && cmp.first_changed == -1, "kept %d of %d", cmp.kept, cmp.run.n_steps);
    cr_assert(worst > 0.0 && worst < 1e-4, "max |dp| %g: the sides computed alike, or F32 moved too far", worst);
    compare_numerics_free(&cmp);
    tempo_model_free(&m);
}

/* The CLI: each profile named, the JSON's counts agree with its steps, and
 * one profile twice or ggml settings without a ggml side are refused. */
Test(compare_numerics, cli_reports_and_refuses_one_profile_twice) {
    char json_path[256], cmd[1024], out[4096];
    scratch_path("vs-numerics.json", json_path, sizeof json_path);
    snprintf(cmd, sizeof cmd, "%s compare -m %s -p 'Once upon a time' -n 12 --threshold 0.1 --numerics ggml "
             "--vs-numerics exact --json %s > /dev/null", TEMPO_BIN, Q8_0_GGUF, json_path);
    cr_assert_eq(run_command(cmd, out, sizeof out), 0, "%s", out);
    cJSON *root = read_json_file(json_path), *run = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "prompts"), 0);
    unlink(json_path);
    cr_assert(run, "no prompt in the JSON");
    cr_assert(strstr(cJSON_GetObjectItem(run, "numerics_a")->valuestring, "ggml (K/V f32"));
    cr_assert_str_eq(cJSON_GetObjectItem(run, "numerics_b")->valuestring, "exact");
    const cJSON *steps = cJSON_GetObjectItem(run, "per_step"), *st;
    int kept = 0, first = -1;
    cJSON_ArrayForEach(st, steps) {
        int k = cJSON_IsTrue(cJSON_GetObjectItem(st, "kept")), changes = cJSON_GetArraySize(cJSON_GetObjectItem(st, "lost")) +
                                                                     cJSON_GetArraySize(cJSON_GetObjectItem(st, "gained"));
        kept += k;
        if (!k && first < 0) first = cJSON_GetObjectItem(st, "step")->valueint;
        cr_assert(k || changes > 0 || cJSON_GetArraySize(cJSON_GetObjectItem(st, "set_a")) > 0);
    }
    cr_assert_eq(kept, cJSON_GetObjectItem(run, "kept_steps")->valueint);
    cr_assert_eq(first, cJSON_GetObjectItem(run, "first_changed_step")->valueint);
    cr_assert(first >= 0, "the Q8_0 run changes a set at 0.1 (see first_change_is_where_the_second_run_parts)");
    cJSON_Delete(root);
    const char *refused[][2] = {{"--vs-numerics exact", "--vs-numerics exact is --numerics's profile too"},
                                {"--numerics ggml --vs-numerics ggml", "--vs-numerics ggml is --numerics's profile too"},
                                {"--vs-numerics torch --kv-type f16", "neither side is ggml"},
                                {"--vs-numerics fast", "exact, ggml or torch"},
                                {"--mode visible", "--mode chooses the one run of --vs-numerics"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(cmd, sizeof cmd, "compare -m %s -p 'Once upon a time' -n 4 %s", Q8_0_GGUF, refused[i][0]);
        expect_error(cmd, 1, refused[i][1], NULL);
    }
}

/* A set of the table, `len` bytes: the members it shows, each "TEXT (0.dddd)",
 * and those it cuts ("… N more]"); -1 when it is not closed or not cut at a member. */
static int table_set_width(const char *set, size_t len) {
    if (len < 2 || set[0] != '[' || set[len - 1] != ']') return -1;
    int n = 0, more = 0;
    const char *after = set + 1; /* just after the last member seen */
    for (const char *p = set; p + 9 < set + len; p++)
        if (strspn(p + 2, "0123456789") == 1 && strspn(p + 4, "0123456789") == 4 && strncmp(p, " (", 2) == 0 && p[3] == '.' &&
            p[8] == ')' && (p[9] == '/' || p[9] == ']'))
            n++, after = p + 9;
    if (after == set + len - 1) return n;
    if (n == 0 || sscanf(after, "/… %d more]", &more) != 1 || strstr(after, "more]") + 5 != set + len) return -1;
    return n + more;
}

/* One row of the table for step s: "step pos max|dp|  A's set -> B's set or same",
 * each set as wide as the JSON's; counts rows with an escape and with a cut set. */
static void check_table_row(const char *line, size_t len, int s, const cJSON *step, int *escaped, int *cut) {
    int row_step, pos, used = 0;
    double dp;
    cr_assert(sscanf(line, "%d %d %lf  %n", &row_step, &pos, &dp, &used) == 3 && used && row_step == s,
              "not step %d's row: %.*s", s, (int)len, line);
    const char *a = line + used, *arrow = NULL;
    for (const char *p = a; (p = strstr(p, " -> ")) && p < line + len; p++) arrow = p;
    cr_assert(arrow, "no ' -> ' in: %.*s", (int)len, line);
    const char *b = arrow + 4;
    size_t b_len = (size_t)(line + len - b);
    int width_a = cJSON_GetArraySize(cJSON_GetObjectItem(step, "set_a"));
    int width_b = cJSON_GetArraySize(cJSON_GetObjectItem(step, "set_b"));
    cr_assert_eq(table_set_width(a, (size_t)(arrow - a)), width_a, "A's set of %d: %.*s", width_a, (int)len, line);
    if (cJSON_IsTrue(cJSON_GetObjectItem(step, "kept"))) cr_assert(b_len == 4 && strncmp(b, "same", 4) == 0);
    else cr_assert_eq(table_set_width(b, b_len), width_b, "B's set of %d: %.*s", width_b, (int)len, line);
    *escaped += memmem(line, len, "\\n", 2) != NULL;
    *cut += memmem(line, len, " more]", 6) != NULL;
}

/* Wide sets (a token "\n" among them, rows of more than 511 bytes): the
 * table shows the token texts as tempo generate shows a set's (escapes, no
 * control byte), one line a step, each set closed or cut at a member. */
Test(compare_numerics, table_rows_hold_no_control_byte_and_sets_close) {
    char model[4096], tok[4096], json_path[4096], out_path[4096], cmd[16384], err[4096];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("table.json", json_path, sizeof json_path);
    scratch_path("table.txt", out_path, sizeof out_path);
    snprintf(cmd, sizeof cmd, "(%s compare -m %s -z %s -p 'They played all day.' -n 12 --threshold 0.002 --max-width 64 "
             "--vs-numerics ggml --json %s > %s)", TEMPO_BIN, model, tok, json_path, out_path);
    cr_assert_eq(run_command(cmd, err, sizeof err), 0, "%s", err);
    size_t len;
    char *text = read_text_file(out_path, &len);
    for (size_t i = 0; i < len; i++)
        cr_assert(text[i] == '\n' || ((unsigned char)text[i] >= 0x20 && text[i] != 0x7f), "control byte 0x%02x at %zu:\n%s",
                  (unsigned char)text[i], i, text);
    cJSON *root = read_json_file(json_path);
    const cJSON *steps = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "prompts"), 0), "per_step");
    const char *line = strstr(text, "A's set -> B's set\n");
    cr_assert(line && steps, "no table:\n%s", text);
    int s = 0, escaped = 0, cut = 0;
    for (line = strchr(line, '\n') + 1; strncmp(line, "kept:", 5) != 0; line = strchr(line, '\n') + 1, s++) {
        cr_assert(s < cJSON_GetArraySize(steps), "more rows than steps:\n%s", text);
        check_table_row(line, strcspn(line, "\n"), s, cJSON_GetArrayItem(steps, s), &escaped, &cut);
    }
    cr_assert_eq(s, cJSON_GetArraySize(steps), "one row a step:\n%s", text);
    cr_assert(escaped && cut, "the run must hold a token \"\\n\" (%d rows) and a set cut (%d rows):\n%s", escaped, cut, text);
    cJSON_Delete(root);
    free(text);
}
