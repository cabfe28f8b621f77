/* The research commands' library parts: the position gap, the pruning
 * decisions a generation records, the width/threshold series, and the
 * perplexity compare gives each mode's text. */
#include "helpers.h"

#include "../tools/compare.h"
#include "../tools/pictures.h"

typedef struct {
    Model m;
    Tokenizer t;
    int ids[512], n_ids;
} Loaded;

static void load_pair(Loaded *x, const char *model, const char *tok, const char *prompt) {
    char err[TEMPO_ERR_SIZE];
    load_real(&x->m, model);
    load_tokenizer(&x->t, tok, x->m.config.vocab_size);
    cr_assert(tempo_encode(&x->t, prompt, x->ids, 512, &x->n_ids, err) == 0, "%s", err);
}

static void loaded_free(Loaded *x) {
    tempo_tokenizer_free(&x->t);
    tempo_model_free(&x->m);
}

static void generate_or_fail(const Loaded *x, const GenConfig *g, Generation *gen) {
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_generate(&x->m, x->ids, x->n_ids, g, gen, err) == 0, "%s", err);
}

/* ---- the position gap ---- */

/* Step s sits at P + G + s, the prompt at 0..P-1; the prompt's logits are
 * those of a run without a gap, the first set's are not (the gap reached
 * RoPE); and the cached rows equal a full recompute at those positions. */
Test(position_gap, steps_sit_gap_positions_ahead) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once upon a time");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.max_steps = 12;
    Generation plain, gap;
    generate_or_fail(&x, &g, &plain);
    g.position_gap = 5;
    generate_or_fail(&x, &g, &gap);
    int P = x.n_ids, V = x.m.config.vocab_size;
    cr_assert(gap.n_steps > 0);
    for (int s = 0; s < gap.n_steps; s++) {
        const Step *st = &gap.steps[s];
        cr_assert_eq(st->logical_pos, P + 5 + s, "step %d at %d, expected %d", s, st->logical_pos, P + 5 + s);
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gap.members[st->first_member + i];
            if (mem->row >= 0) cr_assert_eq(gap.positions[mem->row], P + 5 + s);
        }
    }
    for (int r = 0; r < P; r++) cr_assert_eq(gap.positions[r], r);
    cr_assert(memcmp(gap.logits, plain.logits, (size_t)P * V * sizeof(float)) == 0, "the prompt's logits changed");
    cr_assert(gap.tokens[P] == plain.tokens[P], "both runs start from the same first set");
    cr_assert(memcmp(gap.logits + (size_t)P * V, plain.logits + (size_t)P * V, (size_t)V * sizeof(float)) != 0,
              "the first set's logits ignore the gap");
    uint8_t *allowed = tempo_generation_allowed(&gap);
    float *logits, *attention;
    full_forward(&x.m, gap.n_rows, gap.tokens, gap.positions, allowed, gap.mask_layers, &logits, &attention, NULL);
    size_t at;
    double d = max_abs_diff(gap.logits, logits, (size_t)gap.n_rows * V, &at);
    cr_expect(d <= 1e-4, "cached logits differ from recompute by %.3e at row %zu (verify's tolerance)", d, at / V);
    free(allowed); free(logits); free(attention);
    tempo_generation_free(&plain);
    tempo_generation_free(&gap);
    loaded_free(&x);
}

/* The gap uses up context: with P + G + 3 = seq_len, three steps fit. */
Test(position_gap, context_full_counts_the_gap) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once upon a time");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 1.0f; /* greedy: one row a step */
    g.max_steps = 50;
    g.position_gap = x.m.config.seq_len - x.n_ids - 3;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    cr_assert_eq(gen.n_steps, 3, "made %d steps (stop %s)", gen.n_steps, gen.stop_reason);
    cr_assert_str_eq(gen.stop_reason, "context-full");
    tempo_generation_free(&gen);
    loaded_free(&x);
}

Test(position_gap, out_of_range_is_refused) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    char err[TEMPO_ERR_SIZE];
    int bad[] = {-1, x.m.config.seq_len};
    for (int i = 0; i < 2; i++) {
        g.position_gap = bad[i];
        cr_assert(tempo_gen_validate(&g, &x.m.config, err) != 0, "gap %d accepted", bad[i]);
        cr_assert(strstr(err, "position-gap") != NULL, "message: %s", err);
    }
    loaded_free(&x);
}

/* ---- pruning decisions ---- */

/* Whether member row `row` was live when step `step` weighed its set. */
static int live_at(const Member *mem, int step) { return mem->row >= 0 && (mem->pruned_at < 0 || mem->pruned_at >= step); }

/* Each decision's share, recomputed from the captured attention: the
 * attention the member's row receives from the rows of the deciding step,
 * over the last prune_layers layers and all heads, over its set's live total. */
static double share_from_attention(const Generation *gen, const Config *c, const GenConfig *g, const PruneDecision *d,
                                   int *live) {
    const Step *weighed = &gen->steps[d->set_step], *by = &gen->steps[d->step];
    double mine = 0, total = 0;
    size_t L = c->n_layers, H = c->n_heads;
    *live = 0;
    for (int mi = 0; mi < weighed->n_members; mi++) {
        const Member *mem = &gen->members[weighed->first_member + mi];
        if (!live_at(mem, d->step)) continue;
        (*live)++;
        double received = 0;
        for (int qi = 0; qi < by->n_members; qi++) {
            int q = gen->members[by->first_member + qi].row;
            if (q < 0) continue;
            for (size_t l = L - g->prune_layers; l < L; l++)
                for (size_t h = 0; h < H; h++)
                    received += gen->attention[L * H * ((size_t)q * (q + 1) / 2) + (l * H + h) * (q + 1) + mem->row];
        }
        total += received;
        if (weighed->first_member + mi == d->member) mine = received;
    }
    return mine / total;
}

Test(pruning, each_decision_states_share_bar_and_window) {
    Loaded x;
    load_pair(&x, "fortune.bin", "fortune-tok512.bin", "A fool and his money");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 0.05f, g.max_steps = 64, g.prune = 1, g.capture_attention = 1;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    int pruned_members = 0, pruned_decisions = 0;
    for (int i = 0; i < gen.n_members; i++) pruned_members += gen.members[i].pruned_at >= 0;
    cr_assert(gen.n_decisions > 0 && pruned_members > 0, "the run should weigh and prune");
    for (int i = 0; i < gen.n_decisions; i++) {
        const PruneDecision *d = &gen.decisions[i];
        const Member *mem = &gen.members[d->member];
        int live;
        cr_assert(d->set_step >= d->step - g.prune_window && d->set_step < d->step, "decision %d: set of step %d outside "
                  "the window of step %d", i, d->set_step, d->step);
        double share = share_from_attention(&gen, &x.m.config, &g, d, &live);
        cr_assert_eq(d->live, live, "decision %d: live %d, counted %d", i, d->live, live);
        cr_assert(fabs(d->share - share) <= 1e-9, "decision %d: share %.9f, from the attention %.9f", i, d->share, share);
        cr_assert(d->bar == (double)g.prune_threshold / live, "decision %d: bar %g", i, d->bar);
        cr_assert_eq(d->pruned, !d->strongest && d->share < d->bar, "decision %d: pruned %d, share %g, bar %g", i, d->pruned,
                     d->share, d->bar);
        cr_assert_eq(d->pruned, mem->pruned_at == d->step, "decision %d disagrees with the member's pruned_at", i);
        pruned_decisions += d->pruned;
    }
    cr_assert_eq(pruned_decisions, pruned_members);
    tempo_generation_free(&gen);
    loaded_free(&x);
}

/* Without pruning, nothing is weighed. */
Test(pruning, no_decisions_without_prune) {
    Loaded x;
    load_pair(&x, "fortune.bin", "fortune-tok512.bin", "A fool and his money");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 0.05f, g.max_steps = 16;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    cr_assert_eq(gen.n_decisions, 0);
    tempo_generation_free(&gen);
    loaded_free(&x);
}
