/* The invariants TEMPO relies on, checked on real runs: zero
 * cross-parallel attention, shared logical positions, isolated vs visible
 * differences, cache == recompute, RoPE relativity, greedy equivalence,
 * determinism, and the last-member-only emulation of the Python engine. */
#include "helpers.h"

typedef struct {
    Model m;
    Tokenizer t;
    Generation gen;
} Run;

static void run_tempo(Run *r, const char *model, const char *tok, const char *prompt, GenConfig *override,
                      void (*adjust)(GenConfig *)) {
    load_real(&r->m, model);
    load_tokenizer(&r->t, tok, r->m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &r->m.config);
    if (override) g = *override;
    g.capture_attention = 1;
    if (adjust) adjust(&g);
    int ids[512], n;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_encode(&r->t, prompt, ids, 512, &n, err) == 0, "%s", err);
    cr_assert(tempo_generate(&r->m, ids, n, &g, &r->gen, err) == 0, "%s", err);
}

static void run_free(Run *r) {
    tempo_generation_free(&r->gen);
    tempo_tokenizer_free(&r->t);
    tempo_model_free(&r->m);
}

/* Attention of stored row q to key k (k <= q) in layer l, head h. */
static float stored_attention(const Run *r, int l, int h, int q, int k) {
    size_t L = r->m.config.n_layers, H = r->m.config.n_heads;
    return r->gen.attention[L * H * ((size_t)q * (q + 1) / 2) + ((size_t)l * H + h) * (q + 1) + k];
}

static int parallel_steps(const Generation *g) {
    int n = 0;
    for (int s = 0; s < g->n_steps; s++) n += g->steps[s].n_members > 1;
    return n;
}

static void low_threshold(GenConfig *g) { g->threshold = 0.05f; g->max_steps = 40; }
static void low_threshold_visible(GenConfig *g) { low_threshold(g); g->mode = MASK_VISIBLE; }

Test(invariants, zero_cross_parallel_attention_isolated) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, low_threshold);
    cr_assert(parallel_steps(&r.gen) >= 3, "the run must form parallel sets");
    int L = r.m.config.n_layers, H = r.m.config.n_heads, checked = 0;
    for (int s = 0; s < r.gen.n_steps; s++) {
        const Step *st = &r.gen.steps[s];
        for (int a = 0; a < st->n_members; a++)
            for (int b = 0; b < a; b++) {
                int qa = r.gen.members[st->first_member + a].row, kb = r.gen.members[st->first_member + b].row;
                if (qa < 0 || kb < 0) continue; /* an EOS member is never fed */
                for (int l = 0; l < L; l++)
                    for (int h = 0; h < H; h++) {
                        float p = stored_attention(&r, l, h, qa, kb);
                        cr_assert(p == 0.0f, "row %d attends to set member %d: layer %d head %d p = %g", qa, kb, l, h, p);
                        checked++;
                    }
            }
    }
    cr_assert(checked > 0);
    run_free(&r);
}

Test(invariants, visible_later_members_attend_to_earlier_ones) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, low_threshold_visible);
    int L = r.m.config.n_layers, H = r.m.config.n_heads, checked = 0;
    for (int s = 0; s < r.gen.n_steps; s++) {
        const Step *st = &r.gen.steps[s];
        for (int a = 1; a < st->n_members; a++) {
            int qa = r.gen.members[st->first_member + a].row, kb = r.gen.members[st->first_member].row;
            if (qa < 0) continue; /* an EOS member is never fed */
            for (int l = 0; l < L; l++)
                for (int h = 0; h < H; h++) {
                    cr_assert(stored_attention(&r, l, h, qa, kb) > 0.0f, "row %d ignores row %d in layer %d head %d", qa, kb, l, h);
                    checked++;
                }
        }
    }
    cr_assert(checked > 0, "the run must form parallel sets");
    run_free(&r);
}

/* Each isolated member equals a run in which it is the only token at its
 * position after the same prefix; in visible mode only the first does. */
static void check_shared_positions(MaskKind mode) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL,
              mode == MASK_ISOLATED ? low_threshold : low_threshold_visible);
    int n = r.gen.n_rows, V = r.m.config.vocab_size, D = r.m.config.dim, later_differ = 0, later = 0;
    uint8_t *allowed = tempo_generation_allowed(&r.gen); /* one mask for every layer in these runs */
    float *logits, *hidden;
    full_forward(&r.m, n, r.gen.tokens, r.gen.positions, allowed, 1, &logits, NULL, &hidden);
    for (int s = 0; s < r.gen.n_steps; s++) {
        const Step *st = &r.gen.steps[s];
        if (st->n_members < 2) continue;
        int first = r.gen.members[st->first_member].row;
        for (int a = 0; a < st->n_members; a++) {
            int row = r.gen.members[st->first_member + a].row, solo_n = first + 1;
            if (row < 0) continue; /* an EOS member: a branch that ends, never fed */
            int *tokens = malloc(solo_n * sizeof(int)), *pos = malloc(solo_n * sizeof(int));
            uint8_t *solo = calloc((size_t)solo_n * solo_n, 1);
            for (int i = 0; i < first; i++) {
                tokens[i] = r.gen.tokens[i];
                pos[i] = r.gen.positions[i];
                memcpy(solo + (size_t)i * solo_n, allowed + (size_t)i * n, first);
            }
            tokens[first] = r.gen.tokens[row];
            pos[first] = r.gen.positions[row];
            memcpy(solo + (size_t)first * solo_n, allowed + (size_t)row * n, first); /* same view of the prefix */
            solo[(size_t)first * solo_n + first] = 1;
            float *sl, *sh;
            full_forward(&r.m, solo_n, tokens, pos, solo, 1, &sl, NULL, &sh);
            size_t at, at_h;
            double d = max_abs_diff(sl + (size_t)first * V, logits + (size_t)row * V, V, &at);
            double dh = max_abs_diff(sh + (size_t)first * D, hidden + (size_t)row * D, D, &at_h);
            if (mode == MASK_ISOLATED || a == 0) {
                cr_expect(d <= 1e-5 && dh <= 1e-5, "step %d member %d (row %d): logits differ by %.3e (token %zu), hidden by %.3e",
                          s, a, row, d, at, dh);
            } else {
                later++;
                later_differ += d > 1e-4;
            }
            free(tokens); free(pos); free(solo); free(sl); free(sh);
        }
    }
    if (mode == MASK_VISIBLE) {
        cr_assert(later > 0, "the run must have later members");
        cr_expect_eq(later_differ, later, "visible: only %d of %d later members differ from their solo run", later_differ, later);
    }
    free(allowed); free(logits); free(hidden);
    run_free(&r);
}

Test(invariants, shared_logical_positions_isolated) { check_shared_positions(MASK_ISOLATED); }
Test(invariants, shared_logical_positions_visible_first_member_only) { check_shared_positions(MASK_VISIBLE); }

static double kl_rows(const float *a, const float *b, int V) {
    double ma = a[0], mb = b[0], za = 0, zb = 0, kl = 0;
    for (int v = 1; v < V; v++) { ma = fmax(ma, a[v]); mb = fmax(mb, b[v]); }
    for (int v = 0; v < V; v++) { za += exp(a[v] - ma); zb += exp(b[v] - mb); }
    for (int v = 0; v < V; v++) {
        double p = exp(a[v] - ma) / za, q = exp(b[v] - mb) / zb;
        kl += p * log(p / q);
    }
    return kl;
}

/* Teacher-forced: the isolated run's rows under the visible mask. */
Test(invariants, isolated_visible_logit_differences) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, low_threshold);
    int n = r.gen.n_rows, V = r.m.config.vocab_size;
    uint8_t *iso = malloc((size_t)n * n), *vis = malloc((size_t)n * n);
    tempo_mask_rows(MASK_ISOLATED, r.gen.sets, 0, n, iso);
    tempo_mask_rows(MASK_VISIBLE, r.gen.sets, 0, n, vis);
    float *li, *lv;
    full_forward(&r.m, n, r.gen.tokens, r.gen.positions, iso, 1, &li, NULL, NULL);
    full_forward(&r.m, n, r.gen.tokens, r.gen.positions, vis, 1, &lv, NULL, NULL);
    int first_parallel = -1;
    for (int s = 0; s < r.gen.n_steps && first_parallel < 0; s++)
        if (r.gen.steps[s].n_members > 1) first_parallel = r.gen.members[r.gen.steps[s].first_member].row;
    cr_assert(first_parallel > 0, "the run must form a parallel set");
    cr_assert(memcmp(li, lv, (size_t)(first_parallel + 1) * V * sizeof(float)) == 0,
              "rows up to the first member of the first parallel set (row %d) must be bitwise identical", first_parallel);
    for (int s = 0; s < r.gen.n_steps; s++) {
        const Step *st = &r.gen.steps[s];
        for (int a = 1; a < st->n_members; a++) {
            int row = r.gen.members[st->first_member + a].row;
            if (row < 0) continue; /* an EOS member is never fed */
            double kl = kl_rows(li + (size_t)row * V, lv + (size_t)row * V, V);
            cr_log_info("step %d member %d row %d: KL(isolated || visible) = %.4e", s, a, row, kl);
            cr_expect(kl > 1e-8, "row %d (member %d of step %d) is the same in both modes: KL %.3e", row, a, s, kl);
        }
    }
    free(iso); free(vis); free(li); free(lv);
    run_free(&r);
}

/* Cache == recompute: every row as computed when added vs the full forward
 * of the final trace with the masks each row used. */
static void check_run_against_recompute(void (*adjust)(GenConfig *), const char *what, int need_steps) {
    /* prompts on which the modes run 64 steps (since EOS members are not fed, visible and layers
     * 1-2 end on EOS after 14 from the chicken); greedy ends on EOS after 38 from the cat */
    const char *prompt = need_steps < 64 ? "The cat sat on the"
                         : strcmp(what, "visible") == 0 || strcmp(what, "layers 1-2") == 0 ? "Q: What do you call a"
                                                                                            : "Q: Why did the chicken";
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", prompt, NULL, adjust);
    const Config *c = &r.m.config;
    int n = r.gen.n_rows, V = c->vocab_size, ML = r.gen.mask_layers;
    uint8_t *allowed = tempo_generation_allowed(&r.gen);
    float *logits, *attention;
    full_forward(&r.m, n, r.gen.tokens, r.gen.positions, allowed, ML, &logits, &attention, NULL);
    size_t at;
    double d = max_abs_diff(r.gen.logits, logits, (size_t)n * V, &at);
    cr_assert(r.gen.n_steps >= need_steps, "%s: the run must last %d steps, it made %d (stopped: %s)", what, need_steps,
              r.gen.n_steps, r.gen.stop_reason);
    cr_expect(d <= 1e-5, "%s: %d steps, %d rows: cached logits differ from recompute by %.3e at row %zu", what,
              r.gen.n_steps, n, d, at / V);
    double worst = 0;
    int wl = 0, wh = 0, wq = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++)
            for (int q = 0; q < n; q++)
                for (int k = 0; k <= q; k++) {
                    double e = fabs(stored_attention(&r, l, h, q, k) - attention[(((size_t)l * c->n_heads + h) * n + q) * n + k]);
                    if (e > worst) { worst = e; wl = l; wh = h; wq = q; }
                }
    cr_expect(worst <= 1e-5, "%s: attention differs by %.3e at layer %d head %d row %d", what, worst, wl, wh, wq);
    free(allowed); free(logits); free(attention);
    run_free(&r);
}

static void steps64_isolated(GenConfig *g) { g->threshold = 0.05f; g->max_steps = 64; }
static void steps64_visible(GenConfig *g) { steps64_isolated(g); g->mode = MASK_VISIBLE; }
static void steps64_layers(GenConfig *g) { steps64_isolated(g); g->isolate_first = 1; g->isolate_last = 2; }
static void steps64_pruned(GenConfig *g) { steps64_isolated(g); g->prune = 1; }
static void steps64_dynamic(GenConfig *g) { steps64_isolated(g); g->schedule = SCHEDULE_BEZIER; g->final_threshold = 0.5f; }
static void steps64_greedy(GenConfig *g) { g->threshold = 1.0f; g->max_steps = 64; }
static void steps64_mean(GenConfig *g) { steps64_pruned(g); g->next_from = NEXT_MEAN; g->mode = MASK_VISIBLE; }

Test(invariants, cache_equals_recompute_isolated_64_steps) { check_run_against_recompute(steps64_isolated, "isolated", 64); }
Test(invariants, cache_equals_recompute_visible_64_steps) { check_run_against_recompute(steps64_visible, "visible", 64); }
Test(invariants, cache_equals_recompute_isolate_layers_64_steps) { check_run_against_recompute(steps64_layers, "layers 1-2", 64); }
Test(invariants, cache_equals_recompute_pruned_64_steps) { check_run_against_recompute(steps64_pruned, "pruned", 64); }
Test(invariants, cache_equals_recompute_dynamic_64_steps) { check_run_against_recompute(steps64_dynamic, "dynamic", 64); }
Test(invariants, cache_equals_recompute_greedy) { check_run_against_recompute(steps64_greedy, "greedy", 32); }
Test(invariants, cache_equals_recompute_mean_next_pruned_visible) { check_run_against_recompute(steps64_mean, "mean", 64); }

/* The step whose set row q belongs to (-1: the prompt). */
static int step_of_row(const Generation *gen, int q) {
    for (int t = 0; t < gen->n_steps; t++)
        for (int b = 0; b < gen->steps[t].n_members; b++)
            if (gen->members[gen->steps[t].first_member + b].row == q) return t;
    return -1;
}

/* keep_logits 0 computes only the logits the next distribution reads: the
 * last row's (--next-from last; a step's other members need none), every
 * row of the last step (--next-from mean). The run is the same as keeping
 * them all: tokens, positions and sets, and bitwise the same last logits. */
static void expect_same_run_keeping_only_read_logits(void (*adjust)(GenConfig *), const char *what) {
    Run all, read;
    run_tempo(&all, "fortune.bin", "fortune-tok512.bin", "A fool and his money", NULL, adjust);
    GenConfig g;
    tempo_gen_defaults(&g, &all.m.config);
    adjust(&g);
    g.keep_logits = 0;
    run_tempo(&read, "fortune.bin", "fortune-tok512.bin", "A fool and his money", &g, NULL);
    int n = all.gen.n_rows, V = all.m.config.vocab_size, kept_from = n - 1;
    cr_assert(parallel_steps(&all.gen) >= 3, "%s: the run needs parallel steps", what);
    cr_assert_eq(read.gen.n_rows, n, "%s: %d rows against %d", what, read.gen.n_rows, n);
    for (int i = 0; i < n; i++)
        cr_assert(read.gen.tokens[i] == all.gen.tokens[i] && read.gen.positions[i] == all.gen.positions[i] &&
                      read.gen.sets[i] == all.gen.sets[i], "%s: row %d differs", what, i);
    while (g.next_from == NEXT_MEAN && step_of_row(&read.gen, kept_from - 1) == read.gen.n_steps - 1) kept_from--;
    cr_assert_eq(read.gen.logits_first, kept_from, "%s: logits kept from row %d, not %d", what, read.gen.logits_first, kept_from);
    cr_assert(memcmp(tempo_row_logits(&read.gen, n - 1, V), tempo_row_logits(&all.gen, n - 1, V), (size_t)V * sizeof(float)) == 0,
              "%s: the last row's logits differ", what);
    run_free(&all);
    run_free(&read);
}

Test(invariants, keeping_only_the_logits_read_changes_nothing) {
    expect_same_run_keeping_only_read_logits(steps64_isolated, "next from the last row");
    expect_same_run_keeping_only_read_logits(steps64_mean, "next from the members' mean");
}

/* The generation's rule (tempo_generation_mask) hides a pruned row from the
 * rows of every step after the one that pruned it, in every layer, and from
 * no row before: the pruning step's own rows were computed seeing it. */
static void expect_pruned_hidden_from_the_next_step(const Generation *gen, const Member *mem, int n_layers) {
    Mask mask = tempo_generation_mask(gen);
    int saw_before = 0, hidden_after = 0;
    for (int q = mem->row + 1; q < gen->n_rows; q++) {
        int added = step_of_row(gen, q), sibling = gen->sets[q] == gen->sets[mem->row];
        for (int l = 0; l < n_layers; l++) {
            int cell = tempo_mask_cell(&mask, l, q, mem->row);
            if (added > mem->pruned_at) cr_assert(cell == 0, "row %d (step %d) still sees row %d pruned at step %d", q, added,
                                                  mem->row, mem->pruned_at);
            else if (!sibling) cr_assert(cell == 1, "row %d (step %d) no longer sees row %d, pruned only at step %d", q,
                                         added, mem->row, mem->pruned_at);
            hidden_after += added > mem->pruned_at, saw_before += added <= mem->pruned_at && !sibling;
        }
    }
    cr_assert(saw_before > 0, "row %d: no row of a step up to its pruning step %d to check", mem->row, mem->pruned_at);
    (void)hidden_after;
}

Test(invariants, pruning_prunes_and_keeps_the_strongest) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "A fool and his money", NULL, steps64_pruned);
    int pruned = 0, hidden_later = 0;
    for (int s = 0; s < r.gen.n_steps; s++) {
        const Step *st = &r.gen.steps[s];
        int live = 0;
        for (int a = 0; a < st->n_members; a++) {
            const Member *mem = &r.gen.members[st->first_member + a];
            live += mem->pruned_at < 0;
            if (mem->pruned_at >= 0) {
                pruned++;
                cr_assert(mem->pruned_at > s && mem->pruned_at <= s + 4, "pruned at step %d outside the window of step %d",
                          mem->pruned_at, s);
                cr_assert(r.gen.pruned[mem->row] == mem->pruned_at, "row %d: pruned says %d, the member %d", mem->row,
                          r.gen.pruned[mem->row], mem->pruned_at);
                expect_pruned_hidden_from_the_next_step(&r.gen, mem, r.m.config.n_layers);
                hidden_later += mem->pruned_at < r.gen.n_steps - 1;
            }
        }
        cr_assert(live >= 1, "step %d lost every member", s);
    }
    cr_assert(pruned > 0 && hidden_later > 0, "the run should prune something that later rows then do not see");
    run_free(&r);
}

/* With --isolate-layers 1-2 the rule isolates a set's members in layers 1
 * and 2 only: a later member sees an earlier one in the other layers. */
Test(invariants, generation_mask_isolates_only_the_chosen_layers) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, steps64_layers);
    Mask mask = tempo_generation_mask(&r.gen);
    int L = r.m.config.n_layers, pairs = 0;
    cr_assert(L >= 4 && r.gen.mask_layers == L, "a mask per layer over %d layers", L);
    for (int q = r.gen.n_prompt; q < r.gen.n_rows; q++)
        for (int k = r.gen.n_prompt; k < q; k++) {
            if (r.gen.sets[k] != r.gen.sets[q]) continue;
            pairs++;
            for (int l = 0; l < L; l++)
                cr_assert_eq(tempo_mask_cell(&mask, l, q, k), l < 1 || l > 2, "layer %d: row %d and its sibling %d", l, q, k);
        }
    cr_assert(pairs > 0, "the run must form parallel sets");
    run_free(&r);
}

Test(invariants, rope_relativity_shift) {
    Model m;
    load_real(&m, "fortune.bin");
    int tokens[] = {1, 337, 278, 272, 269, 300, 301, 302, 267}, pos[] = {0, 1, 2, 3, 4, 5, 5, 5, 6}, shifted[9];
    int n = 9, V = m.config.vocab_size;
    for (int i = 0; i < n; i++) shifted[i] = pos[i] + 137;
    uint8_t allowed[81];
    tempo_mask_rows(MASK_ISOLATED, pos, 0, n, allowed);
    float *a, *b;
    full_forward(&m, n, tokens, pos, allowed, 1, &a, NULL, NULL);
    full_forward(&m, n, tokens, shifted, allowed, 1, &b, NULL, NULL);
    size_t at;
    double d = max_abs_diff(a, b, (size_t)n * V, &at);
    cr_expect(d <= 1e-4, "shifting every position by 137 changed logits by %.3e at row %zu", d, at / V);
    free(a); free(b);
    tempo_model_free(&m);
}

Test(invariants, rope_relativity_permuting_members) {
    Model m;
    load_real(&m, "fortune.bin");
    int tokens[] = {1, 337, 278, 300, 301, 302, 267, 261}, pos[] = {0, 1, 2, 3, 3, 3, 4, 5};
    int perm_tokens[] = {1, 337, 278, 302, 300, 301, 267, 261}; /* rows 3,4,5 -> 5,3,4 */
    int n = 8, V = m.config.vocab_size, from[3] = {5, 3, 4};
    uint8_t allowed[64];
    tempo_mask_rows(MASK_ISOLATED, pos, 0, n, allowed);
    float *a, *b;
    full_forward(&m, n, tokens, pos, allowed, 1, &a, NULL, NULL);
    full_forward(&m, n, perm_tokens, pos, allowed, 1, &b, NULL, NULL);
    size_t at;
    for (int i = 0; i < 3; i++) {
        double d = max_abs_diff(b + (size_t)(3 + i) * V, a + (size_t)from[i] * V, V, &at);
        cr_expect(d <= 1e-5, "permuted member row %d differs from original row %d by %.3e", 3 + i, from[i], d);
    }
    double d = max_abs_diff(b + 6 * V, a + 6 * V, 2 * (size_t)V, &at);
    cr_expect(d <= 1e-5, "rows after the permuted set changed by %.3e at row %zu", d, 6 + at / V);
    free(a); free(b);
    tempo_model_free(&m);
}

static void greedy(GenConfig *g) { g->threshold = 1.0f; g->max_steps = 48; }

/* Threshold above every probability is ordinary greedy decoding, checked
 * against a plain argmax loop over full recomputations. */
Test(invariants, greedy_equivalence) {
    Run r;
    run_tempo(&r, "stories260K.bin", "tok512.bin", "", NULL, greedy);
    int n = r.gen.n_rows, V = r.m.config.vocab_size, tokens[64] = {TEMPO_BOS}, pos[64];
    cr_assert_eq(r.gen.n_members, r.gen.n_steps, "greedy steps have one member each");
    for (int len = 1; len < n; len++) {
        uint8_t *allowed = malloc((size_t)len * len);
        for (int i = 0; i < len; i++) pos[i] = i;
        tempo_mask_rows(MASK_CAUSAL, pos, 0, len, allowed);
        float *logits;
        full_forward(&r.m, len, tokens, pos, allowed, 1, &logits, NULL, NULL);
        int best = 0;
        for (int v = 1; v < V; v++) if (logits[(size_t)(len - 1) * V + v] > logits[(size_t)(len - 1) * V + best]) best = v;
        tokens[len] = best;
        cr_assert_eq(r.gen.tokens[len], best, "step %d: tempo chose %d, greedy %d", len - 1, r.gen.tokens[len], best);
        free(allowed);
        free(logits);
    }
    char text[512] = "", buf[2];
    for (int i = 1; i < n && strlen(text) < 400; i++) strcat(text, tempo_decode(&r.t, r.gen.tokens[i - 1], r.gen.tokens[i], buf));
    cr_assert(strncmp(text, "Once upon a time, there was a little girl named Lily. She loved to play outside", 79) == 0,
              "stories260K greedy text: %s", text);
    run_free(&r);
}

Test(invariants, determinism_bitwise_identical_traces) {
    Run a, b;
    run_tempo(&a, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, steps64_pruned);
    run_tempo(&b, "fortune.bin", "fortune-tok512.bin", "The cat sat on the", NULL, steps64_pruned);
    int n = a.gen.n_rows, V = a.m.config.vocab_size;
    size_t att = (size_t)a.m.config.n_layers * a.m.config.n_heads * n * (n + 1) / 2;
    cr_assert_eq(n, b.gen.n_rows);
    cr_assert(memcmp(a.gen.tokens, b.gen.tokens, n * sizeof(int)) == 0, "tokens differ between runs");
    cr_assert(memcmp(a.gen.logits, b.gen.logits, (size_t)n * V * sizeof(float)) == 0, "logits differ between runs");
    cr_assert(memcmp(a.gen.attention, b.gen.attention, att * sizeof(float)) == 0, "attention differs between runs");
    cr_assert(memcmp(a.gen.pruned, b.gen.pruned, n * sizeof(int)) == 0, "pruning differs between runs");
    run_free(&a);
    run_free(&b);
}

/* The Python engine fed only the last member of each set to the model:
 * then the mask has nothing to act on and isolated == visible. */
static void emulate_iso(GenConfig *g) { g->threshold = 0.05f; g->max_steps = 40; g->emulate = EMULATE_LAST_MEMBER_ONLY; }
static void emulate_vis(GenConfig *g) { emulate_iso(g); g->mode = MASK_VISIBLE; }

Test(emulation, last_member_only_makes_isolated_equal_visible) {
    const char *prompts[] = {"The cat sat on the", "Once upon a time there lived"};
    int true_semantics_differ = 0;
    for (int p = 0; p < 2; p++) {
        Run iso, vis, true_iso, true_vis;
        run_tempo(&iso, "fortune.bin", "fortune-tok512.bin", prompts[p], NULL, emulate_iso);
        run_tempo(&vis, "fortune.bin", "fortune-tok512.bin", prompts[p], NULL, emulate_vis);
        cr_assert_eq(iso.gen.n_members, vis.gen.n_members, "emulated runs differ in size");
        cr_assert(parallel_steps(&iso.gen) > 0, "the emulated run must select parallel sets");
        for (int i = 0; i < iso.gen.n_members; i++)
            cr_assert_eq(iso.gen.members[i].token, vis.gen.members[i].token, "prompt %d: emulated modes differ at member %d", p, i);
        run_tempo(&true_iso, "fortune.bin", "fortune-tok512.bin", prompts[p], NULL, low_threshold);
        run_tempo(&true_vis, "fortune.bin", "fortune-tok512.bin", prompts[p], NULL, low_threshold_visible);
        int differ = true_iso.gen.n_members != true_vis.gen.n_members;
        for (int i = 0; !differ && i < true_iso.gen.n_members; i++)
            differ = true_iso.gen.members[i].token != true_vis.gen.members[i].token;
        true_semantics_differ += differ;
        run_free(&iso); run_free(&vis); run_free(&true_iso); run_free(&true_vis);
    }
    cr_assert(true_semantics_differ > 0, "true TEMPO semantics should separate isolated from visible on these prompts");
}

static void low_threshold_12(GenConfig *g) { g->threshold = 0.02f; g->max_steps = 12; }
/* here EOS is the last member of a set: the member before it is fed instead */
static void emulated_30(GenConfig *g) { g->threshold = 0.05f; g->max_steps = 30; g->emulate = EMULATE_LAST_MEMBER_ONLY; }

/* EOS as a lower-ranked member is a branch that ends: it stays a member of
 * its set (with its probability) but is never fed (row -1), no row holds
 * EOS, and generation goes on from the other members. */
static void check_eos_member_not_fed(const char *prompt, int steps, void (*adjust)(GenConfig *)) {
    Run r;
    run_tempo(&r, "fortune.bin", "fortune-tok512.bin", prompt, NULL, adjust);
    int eos_members = 0;
    for (int i = 0; i < r.gen.n_members; i++) {
        const Member *mem = &r.gen.members[i];
        if (!tempo_is_eos(&r.m.config, mem->token)) continue;
        eos_members++;
        cr_assert_eq(mem->row, -1, "an EOS member must not be fed (member %d has row %d)", i, mem->row);
    }
    cr_assert_gt(eos_members, 0, "this run must select EOS as a lower member");
    for (int q = 0; q < r.gen.n_rows; q++)
        cr_assert(!tempo_is_eos(&r.m.config, r.gen.tokens[q]), "row %d holds EOS", q);
    cr_assert_eq(r.gen.n_steps, steps, "generation goes on past a branch that ends");
    for (int s = 0; s < r.gen.n_steps; s++) { /* every set keeps a fed member */
        int fed = 0;
        for (int i = 0; i < r.gen.steps[s].n_members; i++) fed += r.gen.members[r.gen.steps[s].first_member + i].row >= 0;
        cr_assert_gt(fed, 0, "step %d has no fed member", s);
    }
    run_free(&r);
}

Test(eos, lower_member_is_a_branch_that_ends) { check_eos_member_not_fed("The cat sat on the", 12, low_threshold_12); }
Test(eos, last_member_not_fed_under_emulation) { check_eos_member_not_fed("The", 30, emulated_30); }
