/* TEMPO's rules, each tested where a plausible one-line bug would change
 * the outcome (issue 19): --sets apart from --positions, the audit's sets
 * apart from positions, a probability exactly at the threshold, the end of
 * a dynamic threshold, data_offsets just past a file's end, the pruning
 * window and share rule at their boundaries, Q4_K scales and mins with
 * different high bits, and one position per set on real runs. The expected
 * values are computed here from the rules as NOTES.md states them. */
#include "helpers.h"

#include "../formats/quant.h"
#include "audited.h"

/* ===================================================================== */
/* forward --mask isolated: siblings come from --sets, not --positions     */
/* ===================================================================== */

/* allowed[q][k] = k <= q and, isolated, k == q or k is not in q's set (NOTES 4). */
static void isolated_mask_by_hand(int n, const int *sets, uint8_t *allowed) {
    for (int q = 0; q < n; q++)
        for (int k = 0; k < n; k++) allowed[q * n + k] = k <= q && (k == q || sets[k] != sets[q]);
}

static void parse_list(const char *text, int *out, int n) {
    const char *p = text;
    for (int i = 0; i < n; i++, p++) {
        out[i] = (int)strtol(p, (char **)&p, 10);
        cr_assert(i == n - 1 || *p == ',', "bad list %s", text);
    }
}

/* Runs `tempo forward --mask isolated` with these positions and sets and
 * checks the trace's mask and logits against the mask built from the sets. */
static void check_forward_sets(const char *positions, const char *sets_text) {
    enum { N = 6 };
    const char *tokens_text = "1,403,261,263,400,300";
    int tokens[N], pos[N], sets[N];
    parse_list(tokens_text, tokens, N);
    parse_list(positions, pos, N);
    parse_list(sets_text, sets, N);
    char model[4096], path[4096], cmd[9000], out[65536], err[TEMPO_ERR_SIZE];
    weights_path("stories260K.bin", model, sizeof model);
    scratch_path("rules-forward.st", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s forward -m %s --tokens %s --positions %s --sets %s --mask isolated --out %s", TEMPO_BIN,
             model, tokens_text, positions, sets_text, path);
    cr_assert_eq(run_command_capture(cmd, out, sizeof out, 1), 0, "`%s`:\n%s", cmd, out);
    Trace tr;
    cr_assert(tempo_trace_read(&tr, path, err) == 0, "%s", err);
    const Tensor *al = tempo_trace_get(&tr, "allowed"), *lg = tempo_trace_get(&tr, "logits");
    cr_assert(al && lg && tempo_tensor_count(al) == N * N, "the trace holds the mask and the logits");
    uint8_t want[N * N];
    isolated_mask_by_hand(N, sets, want);
    for (int q = 0; q < N; q++)
        for (int k = 0; k < N; k++)
            cr_assert_eq(((const uint8_t *)al->data)[q * N + k], want[q * N + k],
                         "positions %s sets %s: mask cell (%d, %d) is %d, the sets say %d", positions, sets_text, q, k,
                         ((const uint8_t *)al->data)[q * N + k], want[q * N + k]);
    Model m;
    load_model(&m, model);
    float *logits;
    full_forward(&m, N, tokens, pos, want, 1, &logits, NULL, NULL);
    size_t at;
    double d = max_abs_diff(logits, lg->data, (size_t)N * m.config.vocab_size, &at);
    cr_assert(d <= 1e-5, "positions %s sets %s: logits differ from the set mask's by %.3e", positions, sets_text, d);
    free(logits);
    tempo_model_free(&m);
    tempo_trace_free(&tr);
}

/* One position split into two sets (row 3 sees row 2), and rows at
 * distinct positions grouped into one set (rows 2-4 hidden from each other). */
Test(rules, forward_isolated_siblings_follow_sets_not_positions) {
    check_forward_sets("0,1,2,2,3,4", "0,1,2,3,4,5");
    check_forward_sets("0,1,2,3,4,5", "0,1,2,2,2,5");
}

/* ===================================================================== */
/* The audit: expected mask keyed by the matched set; hidden-non-sibling  */
/* ===================================================================== */

static int is_mask_finding(const AuditFinding *f) {
    return strncmp(f->kind, "hidden", 6) == 0 || strncmp(f->kind, "visible", 7) == 0;
}

/* A broken loop puts the last member of a set at the next step's position,
 * while its mask still follows the set: the audit names the position, and
 * no mask cell (keyed by position, the member would look like a sibling of
 * the next set and a stranger to its own). */
Test(rules, audit_mask_follows_the_matched_set_when_a_position_shifts) {
    Audited a;
    generate_and_trace(&a, NULL);
    int shifted_step = -1, row = -1;
    for (int s = 0; s + 1 < a.gen.n_steps && shifted_step < 0; s++) {
        const Step *st = &a.gen.steps[s];
        const Member *last = &a.gen.members[st->first_member + st->n_members - 1];
        if (st->n_members >= 2 && last->row >= 0 && a.gen.members[st->first_member].row >= 0) shifted_step = s, row = last->row;
    }
    cr_assert(shifted_step >= 0, "the run must form a parallel set before its last step");
    int *positions = (int *)tempo_trace_get(&a.trace, "positions")->data;
    positions[row] += 1; /* now the next step's position */
    audit_with(&a, NULL);
    int mask = 0, position = 0;
    for (int i = 0; i < a.report.n_findings; i++) {
        const AuditFinding *f = &a.report.findings[i];
        mask += is_mask_finding(f);
        position += strcmp(f->kind, "position-mismatch") == 0 && f->step == shifted_step;
        if (is_mask_finding(f)) cr_log_error("%s: %s", f->kind, f->detail);
    }
    cr_assert_eq(mask, 0, "the mask follows the sets: %d mask findings after shifting row %d's position", mask, row);
    cr_assert_eq(position, 1, "step %d's rows sit at two positions: %d position findings", shifted_step, position);
    audited_free(&a);
}

/* A row hidden from an earlier prompt row is exactly one hidden-non-sibling cell. */
Test(rules, audit_names_a_hidden_non_sibling) {
    Audited a;
    generate_and_trace(&a, NULL);
    int q = -1;
    for (int s = 0; s < a.gen.n_steps && q < 0; s++)
        if (a.gen.steps[s].n_members >= 2) q = a.gen.members[a.gen.steps[s].first_member + 1].row;
    cr_assert(q > 0, "the run must feed a second member");
    int n = a.gen.n_rows, k = 1;
    uint8_t *allowed = tempo_trace_get(&a.trace, "allowed")->data;
    cr_assert_eq(allowed[(size_t)q * n + k], 1, "row %d sees prompt row %d before the change", q, k);
    allowed[(size_t)q * n + k] = 0;
    audit_with(&a, NULL);
    int mask = 0, named = 0;
    for (int i = 0; i < a.report.n_findings; i++) {
        const AuditFinding *f = &a.report.findings[i];
        mask += is_mask_finding(f);
        named += strcmp(f->kind, "hidden-non-sibling") == 0 && f->row == q && f->key == k;
    }
    cr_assert(mask == 1 && named == 1, "expected one mask finding, hidden-non-sibling at (%d, %d); got %d mask findings, %d named",
              q, k, mask, named);
    audited_free(&a);
}

/* ===================================================================== */
/* Selection: p >= threshold includes a probability exactly at it          */
/* ===================================================================== */

Test(rules, select_includes_a_probability_equal_to_the_threshold) {
    float probs[5] = {0.125f, 0.5f, 0.125f, 0.25f, 0.0f};
    int candidates[5];
    cr_assert_eq(tempo_select_tokens(probs, 5, 0.25f, 8, candidates), 2, "0.5 and 0.25 clear 0.25");
    cr_assert(candidates[0] == 1 && candidates[1] == 3, "most probable first: %d %d", candidates[0], candidates[1]);
    cr_assert_eq(tempo_select_tokens(probs, 5, 0.125f, 8, candidates), 4, "every p >= 0.125");
    cr_assert(candidates[2] == 0 && candidates[3] == 2, "ties: lower id first");
    cr_assert_eq(tempo_select_tokens(probs, 5, 0.5f, 8, candidates), 1, "the top token at exactly the threshold");
}

/* The threshold set to the second most probable token's own probability:
 * the first step of tempo_generate selects both tokens. */
Test(rules, generate_selects_a_token_exactly_at_the_threshold) {
    Model m;
    Tokenizer t;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, "stories260K.bin");
    load_tokenizer(&t, "tok512.bin", m.config.vocab_size);
    int ids[64], n, V = m.config.vocab_size;
    cr_assert(tempo_encode(&t, "Once upon a time", ids, 64, &n, err) == 0, "%s", err);
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 1.0f;
    g.max_steps = 1;
    Generation gen;
    cr_assert(tempo_generate(&m, ids, n, &g, &gen, err) == 0, "%s", err);
    float *probs = malloc((size_t)V * sizeof(float));
    int *order = malloc((size_t)V * sizeof(int));
    tempo_probs(probs, tempo_row_logits(&gen, n - 1, V), V);
    for (int v = 0; v < V; v++) order[v] = v;
    tempo_sort_by_probability(order, V, probs);
    tempo_generation_free(&gen);
    float second = probs[order[1]];
    cr_assert(second > probs[order[2]] && second < probs[order[0]], "the second token's probability is its own");
    g.threshold = second;
    cr_assert(tempo_generate(&m, ids, n, &g, &gen, err) == 0, "%s", err);
    cr_assert_eq(gen.n_steps, 1);
    cr_assert_eq(gen.steps[0].n_members, 2, "p = %.9g = threshold is selected (got %d members)", second, gen.steps[0].n_members);
    cr_assert(gen.members[1].token == order[1] && gen.members[1].prob == second, "the member at the threshold");
    tempo_generation_free(&gen);
    free(probs);
    free(order);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

/* ===================================================================== */
/* Dynamic threshold: start at step 0, final at step max_steps - 1         */
/* ===================================================================== */

/* threshold(s) = start + (final - start) B(s / (max - 1)), NOTES 6. */
static double threshold_by_hand(Schedule schedule, double start, double final, double p1, double p2, int step, int max) {
    double u = (double)step / (max - 1), b = u;
    if (schedule == SCHEDULE_BEZIER) b = 3 * (1 - u) * (1 - u) * u * p1 + 3 * (1 - u) * u * u * p2 + u * u * u;
    return start + (final - start) * b;
}

static void check_schedule(Schedule schedule, float start, float final, int max_steps) {
    GenConfig g;
    Config c = {.n_layers = 4};
    tempo_gen_defaults(&g, &c);
    g.schedule = schedule;
    g.threshold = start;
    g.final_threshold = final;
    g.max_steps = max_steps;
    g.bezier_p1 = 0.1f;
    g.bezier_p2 = 0.7f;
    for (int s = 0; s < max_steps; s++) {
        double want = threshold_by_hand(schedule, start, final, g.bezier_p1, g.bezier_p2, s, max_steps);
        float got = tempo_threshold_at(&g, s);
        cr_assert(fabs(got - want) <= 1e-6, "schedule %d step %d of %d: %.9g, the curve gives %.9g", schedule, s, max_steps, got,
                  want);
    }
    cr_assert_eq(tempo_threshold_at(&g, 0), start, "step 0 is the start");
    /* exactly: final - start is taken in double (in float, 0.5 -> 0.05 ended at 0.0500000119) */
    float last = tempo_threshold_at(&g, max_steps - 1);
    cr_assert_eq(last, final, "the last step reaches the final threshold %.9g, not %.9g", final, last);
    for (int past = max_steps; past < max_steps + 3; past++) /* an audit replays engines' runs that went on */
        cr_assert_eq(tempo_threshold_at(&g, past), final, "step %d, past the schedule, keeps the final threshold", past);
}

Test(rules, dynamic_threshold_follows_the_curve_to_its_final_value) {
    check_schedule(SCHEDULE_LINEAR, 0.1f, 0.6f, 7);
    check_schedule(SCHEDULE_BEZIER, 0.1f, 0.6f, 7);
    check_schedule(SCHEDULE_BEZIER, 0.5f, 0.05f, 12);
    check_schedule(SCHEDULE_LINEAR, 0.02f, 0.9f, 2);
}

/* A run records each step's threshold: the curve's, the final one at the last step. */
Test(rules, dynamic_threshold_of_each_step_of_a_run) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, "stories260K.bin");
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.schedule = SCHEDULE_BEZIER;
    g.threshold = 0.05f;
    g.final_threshold = 0.9f;
    g.max_steps = 10;
    int prompt[] = {1, 403, 261};
    Generation gen;
    cr_assert(tempo_generate(&m, prompt, 3, &g, &gen, err) == 0, "%s", err);
    cr_assert_eq(gen.n_steps, 10, "the run goes all 10 steps (%s)", gen.stop_reason);
    for (int s = 0; s < gen.n_steps; s++) {
        double want = threshold_by_hand(SCHEDULE_BEZIER, g.threshold, g.final_threshold, g.bezier_p1, g.bezier_p2, s, 10);
        cr_assert(fabs(gen.steps[s].threshold - want) <= 1e-6, "step %d threshold %.9g, the curve gives %.9g", s,
                  gen.steps[s].threshold, want);
        for (int i = 0; i < gen.steps[s].n_members; i++)
            cr_assert(gen.steps[s].n_members == 1 || gen.members[gen.steps[s].first_member + i].prob >= gen.steps[s].threshold,
                      "step %d: a member below the step's threshold", s);
    }
    cr_assert_eq(gen.steps[9].threshold, g.final_threshold, "the last step uses the final threshold");
    tempo_generation_free(&gen);
    tempo_model_free(&m);
}

/* ===================================================================== */
/* safetensors: data_offsets past the end of the data are refused         */
/* ===================================================================== */

Test(rules, safetensors_offsets_one_to_eight_bytes_past_the_end) {
    char header[256], err[TEMPO_ERR_SIZE];
    for (int past = 0; past <= 8; past++) {
        /* tensor x: F32 [4] = 16 bytes at [0, 16); the data holds 16 - past bytes */
        int len = snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
        size_t total = 8 + (size_t)len + 16 - (size_t)past;
        unsigned char *buf = calloc(total, 1); /* exactly the file: ASan sees a read past it */
        uint64_t n = (uint64_t)len;
        memcpy(buf, &n, 8);
        memcpy(buf + 8, header, (size_t)len);
        Tensor *tensors = NULL;
        int count = 0;
        cJSON *meta = NULL;
        int rc = tempo_safetensors_parse(buf, total, "safetensors", "mem.safetensors", 1u << DT_F32, NULL, &tensors, &count,
                                         &meta, err);
        if (past == 0) {
            cr_assert(rc == 0 && count == 1 && ((const unsigned char *)tensors[0].data) + 16 == buf + total,
                      "a tensor that ends at the file's end is read: %s", err);
        } else {
            cr_assert(rc != 0, "data_offsets %d bytes past the end are accepted", past);
            cr_assert(strstr(err, "tensor x has data_offsets outside the file"), "%d past: %s", past, err);
        }
        free(tensors);
        cJSON_Delete(meta);
        free(buf);
    }
}

/* ===================================================================== */
/* Pruning: the window and the share rule                                  */
/* ===================================================================== */

typedef struct {
    const Generation *gen;
    const Config *c;
    const GenConfig *g;
} PruneRun;

/* Attention stored for row q over key k (k <= q), layer l, head h. */
static double att(const PruneRun *p, int l, int h, int q, int k) {
    size_t L = p->c->n_layers, H = p->c->n_heads;
    return p->gen->attention[L * H * ((size_t)q * (q + 1) / 2) + ((size_t)l * H + h) * (q + 1) + k];
}

/* A member is live at step t when it has a row and was not pruned before t. */
static int live_at(const Member *mem, int t) { return mem->row >= 0 && (mem->pruned_at < 0 || mem->pruned_at >= t); }

/* NOTES 7, by hand: after step t adds its rows, set s's member is pruned when
 * it is not the strongest and its share of the attention the new rows pay
 * the set (last prune_layers layers, every head) is < prune_threshold /
 * (live members, or `divisor` when > 0). Writes 1/0 per member into prune;
 * returns the live count (no decision when < 2 or nothing received). */
static int prune_by_hand(const PruneRun *p, int s, int t, int divisor, int *prune) {
    const Step *st = &p->gen->steps[s], *nt = &p->gen->steps[t];
    int first = -1, last = -1;
    for (int i = 0; i < nt->n_members; i++) {
        int row = p->gen->members[nt->first_member + i].row;
        if (row < 0) continue;
        if (first < 0) first = row;
        last = row;
    }
    double share[TEMPO_PRUNE_MAX_WIDTH] = {0}, total = 0;
    int live = 0, strongest = -1;
    for (int mi = 0; mi < st->n_members; mi++) {
        const Member *mem = &p->gen->members[st->first_member + mi];
        prune[mi] = 0;
        if (!live_at(mem, t)) continue;
        live++;
        for (int l = p->c->n_layers - p->g->prune_layers; l < p->c->n_layers; l++)
            for (int h = 0; h < p->c->n_heads; h++)
                for (int q = first; q >= 0 && q <= last; q++) share[mi] += att(p, l, h, q, mem->row);
        if (strongest < 0 || share[mi] > share[strongest]) strongest = mi;
        total += share[mi];
    }
    if (live < 2 || total <= 0) return live;
    float bar = p->g->prune_threshold / (float)(divisor > 0 ? divisor : live);
    for (int mi = 0; mi < st->n_members; mi++)
        prune[mi] = live_at(&p->gen->members[st->first_member + mi], t) && mi != strongest && share[mi] / total < bar;
    return live;
}

/* fortune, a low threshold, pruning window 2: each member's pruned_at is the
 * step the rule (recomputed here from the stored attention) first prunes it
 * at, within the window and never outside it. The run must exercise the
 * window's edge, the step just past it, and a set whose live count is below
 * its size where that changes the decision. */
Test(rules, pruning_window_and_share_rule_by_hand) {
    Model m;
    Tokenizer t;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, "fortune.bin");
    load_tokenizer(&t, "fortune-tok512.bin", m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 0.03f;
    g.max_width = 6;
    g.max_steps = 48;
    g.prune = 1;
    g.prune_window = 2;
    g.prune_threshold = 0.9f;
    g.capture_attention = 1;
    int ids[64], n;
    cr_assert(tempo_encode(&t, "A fool and his money", ids, 64, &n, err) == 0, "%s", err);
    Generation gen;
    cr_assert(tempo_generate(&m, ids, n, &g, &gen, err) == 0, "%s", err);
    PruneRun p = {&gen, &m.config, &g};
    for (int s = 0; s < gen.n_steps; s++) /* pruned by a later step within the window, never by its own */
        for (int mi = 0; mi < gen.steps[s].n_members; mi++) {
            int at = gen.members[gen.steps[s].first_member + mi].pruned_at;
            cr_assert(at < 0 || (at > s && at <= s + g.prune_window), "a member of step %d pruned at step %d", s, at);
        }
    int at_edge = 0, past_edge = 0, size_matters = 0, pruned = 0;
    int prune[TEMPO_PRUNE_MAX_WIDTH], by_size[TEMPO_PRUNE_MAX_WIDTH];
    for (int step = 1; step < gen.n_steps; step++)
        for (int s = step - g.prune_window - 1; s < step; s++) {
            if (s < 0) continue;
            const Step *st = &gen.steps[s];
            int live = prune_by_hand(&p, s, step, 0, prune);
            prune_by_hand(&p, s, step, st->n_members, by_size);
            for (int mi = 0; mi < st->n_members; mi++) {
                const Member *mem = &gen.members[st->first_member + mi];
                if (!live_at(mem, step)) continue;
                if (s < step - g.prune_window) { /* just outside the window: never pruned from there */
                    cr_assert_neq(mem->pruned_at, step, "step %d pruned member %d of step %d, outside the window of %d", step, mi,
                                  s, g.prune_window);
                    past_edge += prune[mi];
                    continue;
                }
                cr_assert_eq(mem->pruned_at == step, prune[mi], "step %d, set of step %d, member %d: pruned_at %d, the rule says %s",
                             step, s, mi, mem->pruned_at, prune[mi] ? "prune" : "keep");
                pruned += prune[mi];
                at_edge += prune[mi] && s == step - g.prune_window;
                size_matters += live < st->n_members && prune[mi] != by_size[mi];
            }
        }
    cr_assert(pruned >= 3 && at_edge >= 1 && past_edge >= 1 && size_matters >= 1,
              "the run must prune (%d), at the window's edge (%d), leave one the rule would prune just past it (%d) and "
              "have a set whose live count decides (%d)", pruned, at_edge, past_edge, size_matters);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

/* With wq zero every query is 0: attention is uniform over the allowed keys,
 * so the two members of a set receive equal shares, 1/2 each. With
 * prune_threshold 1 the bar is 1/2: share < bar is false, nothing is pruned
 * (share <= bar would prune every second member). */
Test(rules, pruning_share_exactly_at_the_bar_is_kept) {
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, "stories260K.bin");
    const Config *c = &m.config;
    float *zeros = calloc((size_t)c->n_heads * c->head_dim * c->dim, sizeof(float));
    int wq_index = 0;
    while (wq_index < N_LAYER_TENSORS && strcmp(tempo_layer_tensors[wq_index].name, "wq") != 0) wq_index++;
    cr_assert(wq_index < N_LAYER_TENSORS, "no wq among the layer tensors");
    for (int l = 0; l < c->n_layers; l++) {
        Matrix *wq = tempo_layer_matrix(&m.weights, l, wq_index);
        cr_assert_eq(wq->type, WEIGHT_F32);
        wq->data = zeros;
    }
    GenConfig g;
    tempo_gen_defaults(&g, c);
    g.threshold = 0.02f;
    g.max_width = 2;
    g.max_steps = 24;
    g.prune = 1;
    g.prune_threshold = 1.0f;
    g.capture_attention = 1;
    int prompt[] = {1, 403, 261, 263};
    for (int mode = 0; mode < 2; mode++) {
        g.mode = mode ? MASK_VISIBLE : MASK_ISOLATED;
        Generation gen;
        cr_assert(tempo_generate(&m, prompt, 4, &g, &gen, err) == 0, "%s", err);
        int pairs = 0;
        for (int s = 0; s < gen.n_steps; s++) pairs += gen.steps[s].n_members == 2 && gen.members[gen.steps[s].first_member + 1].row >= 0;
        cr_assert(pairs >= 3, "the run must form sets of two (%d)", pairs);
        for (int i = 0; i < gen.n_members; i++)
            cr_assert_eq(gen.members[i].pruned_at, -1, "%s: member %d (share exactly 1/2 = the bar) pruned at step %d",
                         mode ? "visible" : "isolated", i, gen.members[i].pruned_at);
        tempo_generation_free(&gen);
    }
    free(zeros);
    tempo_model_free(&m);
}

/* ===================================================================== */
/* Q4_K / Q5_K: the high bits of scales and mins come from their own bytes */
/* ===================================================================== */

/* ggml's packing: j < 4 in the low 6 bits of bytes j (scale), j+4 (min);
 * j >= 4: low nibbles in byte j+4, top 2 bits in bytes j-4 (scale), j (min). */
static void pack_scales_mins(uint8_t s[12], const int sc[8], const int mn[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

/* Scales and mins whose top two bits differ in every upper sub-block:
 * y = d sc q - dmin m, d = 1, dmin = 0.25, q the nibble (plus 16 for Q5_K's bit, left 0). */
static void check_k_high_bits(WeightType type) {
    const int sc[8] = {63, 1, 40, 22, 9, 26, 41, 63}, mn[8] = {5, 62, 17, 33, 60, 44, 20, 7};
    for (int j = 4; j < 8; j++) cr_assert_neq(sc[j] >> 4, mn[j] >> 4);
    int five = type == WEIGHT_Q5_K;
    uint8_t b[176] = {0};
    b[1] = 0x3C;               /* d = 1 (f16 0x3C00) */
    b[3] = 0x34;               /* dmin = 0.25 (f16 0x3400) */
    pack_scales_mins(b + 4, sc, mn);
    uint8_t *qs = b + (five ? 48 : 16);
    for (int i = 0; i < 128; i++) qs[i] = (uint8_t)((i * 7 + 3) % 16 | ((i * 5 + 11) % 16) << 4);
    float y[256];
    tempo_dequantize(type, b, 256, y);
    for (int v = 0; v < 256; v++) {
        int sub = v / 32, l = v % 32, byte = qs[32 * (sub / 2) + l], q = sub % 2 ? byte >> 4 : byte & 15;
        float want = (float)(sc[sub] * q) - 0.25f * (float)mn[sub];
        cr_assert_eq(y[v], want, "%s value %d (sub-block %d): %g, expected %d * %d - %d/4 = %g", tempo_weight_type_name(type), v,
                     sub, y[v], sc[sub], q, mn[sub], want);
    }
}

Test(rules, q4_k_scales_and_mins_with_different_high_bits) { check_k_high_bits(WEIGHT_Q4_K); }
Test(rules, q5_k_scales_and_mins_with_different_high_bits) { check_k_high_bits(WEIGHT_Q5_K); }

/* ===================================================================== */
/* One logical position per set, one set per position, on real runs       */
/* ===================================================================== */

static void check_one_position_per_set(const char *model, const char *tok, const char *prompt, float threshold, MaskKind mode) {
    Model m;
    Tokenizer t;
    char err[TEMPO_ERR_SIZE];
    load_real(&m, model);
    load_tokenizer(&t, tok, m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = threshold;
    g.max_steps = 24;
    g.mode = mode;
    int ids[64], n;
    cr_assert(tempo_encode(&t, prompt, ids, 64, &n, err) == 0, "%s", err);
    Generation gen;
    cr_assert(tempo_generate(&m, ids, n, &g, &gen, err) == 0, "%s", err);
    const char *what = mode == MASK_ISOLATED ? "isolated" : "visible";
    int parallel = 0;
    for (int r = 0; r < n; r++) cr_assert(gen.positions[r] == r && gen.sets[r] == r, "%s: prompt row %d", model, r);
    for (int s = 0; s < gen.n_steps; s++) {
        const Step *st = &gen.steps[s];
        cr_assert_eq(st->logical_pos, n + s, "%s %s %g: step %d at position %d", model, what, threshold, s, st->logical_pos);
        parallel += st->n_members > 1;
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gen.members[st->first_member + i];
            cr_assert_eq(mem->logical_pos, st->logical_pos);
            if (mem->row < 0) continue;
            cr_assert(gen.positions[mem->row] == st->logical_pos && gen.sets[mem->row] == st->logical_pos,
                      "%s %s %g: step %d member %d (row %d) at position %d in set %d, the step is at %d", model, what, threshold,
                      s, i, mem->row, gen.positions[mem->row], gen.sets[mem->row], st->logical_pos);
        }
    }
    uint8_t *allowed = tempo_generation_allowed(&gen);
    cr_assert(allowed);
    for (int a = 0; a < gen.n_rows; a++)
        for (int b = 0; b < a; b++) {
            cr_assert_eq(gen.positions[a] == gen.positions[b], gen.sets[a] == gen.sets[b],
                         "%s %s %g: rows %d and %d share a position but not a set, or a set but not a position", model, what,
                         threshold, a, b);
            int siblings = gen.sets[a] == gen.sets[b];
            cr_assert_eq(allowed[(size_t)a * gen.n_rows + b], !(siblings && mode == MASK_ISOLATED),
                         "%s %s %g: row %d %s row %d", model, what, threshold, a,
                         allowed[(size_t)a * gen.n_rows + b] ? "sees" : "is hidden from", b);
        }
    cr_assert(parallel >= 1 || threshold > 0.15f, "%s %s %g: no parallel set formed", model, what, threshold);
    free(allowed);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

Test(rules, one_position_per_set_and_one_set_per_position) {
    const float thresholds[] = {0.03f, 0.1f, 0.2f};
    for (int i = 0; i < 3; i++)
        for (int mode = 0; mode < 2; mode++) {
            MaskKind k = mode ? MASK_VISIBLE : MASK_ISOLATED;
            check_one_position_per_set("stories260K.bin", "tok512.bin", "Once upon a time", thresholds[i], k);
            check_one_position_per_set("fortune.bin", "fortune-tok512.bin", "The cat sat on the", thresholds[i], k);
        }
}
