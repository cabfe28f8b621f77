/* compare.c - isolated vs visible on the same prompt (NOTES §11): the two
 * free-running generations, where they first select different sets, and
 * the teacher-forced distances between the two masks' logits on the
 * isolated run's rows. */
#include "compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each mode runs twice, alternating, and keeps its faster time (the first
 * run warms caches and threads); the generations are the first runs. */
static int run_both_modes(const Model *m, const int *ids, int n_ids, const GenConfig *base, Comparison *cmp,
                          char *err) {
    GenConfig modes[2] = {*base, *base};
    modes[0].mode = MASK_ISOLATED;
    modes[1].mode = MASK_VISIBLE;
    modes[0].capture_attention = modes[1].capture_attention = 0; /* the logits are all compare needs */
    Generation *first[2] = {&cmp->iso, &cmp->vis};
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 2; k++) {
            Generation again = {0};
            Generation *out = round ? &again : first[k];
            if (tempo_generate(m, ids, n_ids, &modes[k], out, err) != 0) return -1;
            if (round && again.total_seconds < first[k]->total_seconds) first[k]->total_seconds = again.total_seconds;
            if (round) tempo_generation_free(&again);
        }
    return 0;
}

/* The visible mask of the isolated run's rows: causal (tempo_mask_rows,
 * MASK_VISIBLE), keeping the isolated run's pruning (a key hidden from a
 * row of another set stays hidden). `iso` and `vis` are [ML][n][n]. */
static void visible_mask(const Generation *gen, const uint8_t *iso, uint8_t *vis) {
    size_t n = (size_t)gen->n_rows;
    tempo_mask_rows(MASK_VISIBLE, gen->sets, 0, gen->n_rows, vis);
    for (int l = 1; l < gen->mask_layers; l++) memcpy(vis + (size_t)l * n * n, vis, n * n);
    for (int l = 0; l < gen->mask_layers; l++) {
        uint8_t *layer = vis + (size_t)l * n * n;
        for (size_t q = 0; q < n; q++)
            for (size_t k = 0; k < q; k++)
                if (gen->sets[k] != gen->sets[q]) layer[q * n + k] = iso[((size_t)l * n + q) * n + k];
    }
}

/* The first row whose mask differs between the modes: the first that has
 * an earlier row in its own set (n when no set has two fed rows). */
static int first_sibling_row(const Generation *gen) {
    for (int q = 1; q < gen->n_rows; q++)
        if (gen->sets[q - 1] == gen->sets[q]) return q;
    return gen->n_rows;
}

static int same_step(const Generation *a, const Generation *b, int s) {
    if (s >= a->n_steps || s >= b->n_steps || a->steps[s].n_members != b->steps[s].n_members) return 0;
    for (int i = 0; i < a->steps[s].n_members; i++)
        if (a->members[a->steps[s].first_member + i].token != b->members[b->steps[s].first_member + i].token) return 0;
    return 1;
}

/* Sums the metrics of the later members (index >= 1, fed) of parallel
 * steps into the summary's means, and JS by third of the run. */
static void summarize_members(Comparison *cmp) {
    CompareSummary *sum = &cmp->sum;
    const Generation *iso = &cmp->iso;
    for (int s = 0; s < iso->n_steps; s++) {
        int third = COMPARE_THIRDS * s / iso->n_steps;
        const Step *st = &iso->steps[s];
        if (st->n_members < 2) continue;
        sum->parallel_steps++;
        for (int i = 1; i < st->n_members; i++) {
            if (iso->members[st->first_member + i].row < 0) continue; /* never fed: no logits */
            const LogitMetrics *lm = &cmp->member[st->first_member + i];
            sum->later_members++;
            sum->kl_iv += lm->kl_ab; sum->kl_vi += lm->kl_ba; sum->js += lm->js; sum->cosine += lm->cosine;
            sum->top1 += lm->top1; sum->top5 += lm->top5; sum->top10 += lm->top10; sum->argmax += lm->argmax_agree;
            sum->third_members[third]++;
            sum->third_js[third] += lm->js;
        }
    }
    for (int t = 0; t < COMPARE_THIRDS; t++) sum->third_js[t] = sum->third_members[t] ? sum->third_js[t] / sum->third_members[t] : NAN;
    if (sum->later_members == 0) return;
    double k = sum->later_members;
    sum->kl_iv /= k; sum->kl_vi /= k; sum->js /= k; sum->cosine /= k;
    sum->top1 /= k; sum->top5 /= k; sum->top10 /= k; sum->argmax /= k;
}

/* reduct% per layer (attention_stats over every key, heads averaged) of the
 * isolated run's rows, from their teacher-forced attention `att` [L][H][n][n]
 * under the mask `allowed`. */
static void layer_reductions(CompareSummary *sum, const Generation *gen, const Config *c, const float *att,
                             const uint8_t *allowed) {
    AttentionView v = {.n = gen->n_rows, .n_layers = c->n_layers, .n_heads = c->n_heads, .tokens = gen->tokens,
                       .positions = gen->positions, .sets = gen->sets, .pruned = gen->pruned, .attention = att,
                       .allowed = allowed, .mask_layers = gen->mask_layers, .model = ""};
    sum->n_layers = c->n_layers < COMPARE_MAX_LAYERS ? c->n_layers : COMPARE_MAX_LAYERS;
    for (int l = 0; l < sum->n_layers; l++)
        sum->layer_reduction[l] = attention_stats(&v, l, -1, -1, 1 << 30, gen->n_prompt).reduction_pct;
}

/* Per-member metrics and the summary from the two teacher-forced passes
 * li and lv ([n][V]). */
static void measure(Comparison *cmp, const float *li, const float *lv, int V) {
    const Generation *iso = &cmp->iso, *vis = &cmp->vis;
    CompareSummary *sum = &cmp->sum;
    for (int i = 0; i < iso->n_members; i++) {
        int row = iso->members[i].row;
        if (row >= 0) cmp->member[i] = logit_metrics(li + (size_t)row * V, lv + (size_t)row * V, V);
    }
    sum->steps = iso->n_steps;
    sum->rows = iso->n_rows;
    sum->iso_seconds = iso->total_seconds;
    sum->vis_seconds = vis->total_seconds;
    sum->first_divergence = -1;
    int steps_max = iso->n_steps > vis->n_steps ? iso->n_steps : vis->n_steps;
    for (int s = 0; s < steps_max && sum->first_divergence < 0; s++)
        if (!same_step(iso, vis, s)) sum->first_divergence = s;
    sum->prefix_rows = first_sibling_row(iso);
    for (size_t i = 0; i < (size_t)sum->prefix_rows * V; i++) {
        double d = fabs((double)li[i] - lv[i]);
        if (d > sum->prefix_max_abs) sum->prefix_max_abs = d;
    }
    summarize_members(cmp);
}

int compare_run(const Model *m, const int *ids, int n_ids, const GenConfig *base, Comparison *cmp, char *err) {
    memset(cmp, 0, sizeof *cmp);
    if (run_both_modes(m, ids, n_ids, base, cmp, err) != 0) {
        compare_free(cmp);
        return -1;
    }
    /* teacher-forced: the isolated run's rows, with siblings made visible to later members */
    const Generation *iso = &cmp->iso;
    int n = iso->n_rows, V = m->config.vocab_size, ML = iso->mask_layers, rc = -1;
    uint8_t *mask_iso = tempo_generation_allowed(iso), *mask_vis = malloc((size_t)ML * n * n);
    float *li = malloc((size_t)n * V * sizeof(float)), *lv = malloc((size_t)n * V * sizeof(float));
    float *att = malloc((size_t)m->config.n_layers * m->config.n_heads * n * n * sizeof(float));
    cmp->member = calloc((size_t)iso->n_members + 1, sizeof(LogitMetrics));
    if (!mask_iso || !mask_vis || !li || !lv || !att || !cmp->member) {
        tempo_error(err, "out of memory comparing %d rows", n);
        goto done;
    }
    visible_mask(iso, mask_iso, mask_vis);
    Outputs oi = {.logits = li, .attention = att}, ov = {.logits = lv};
    Mask dense_iso = tempo_mask_dense(mask_iso, ML, 0, n, n), dense_vis = tempo_mask_dense(mask_vis, ML, 0, n, n);
    if (tempo_forward_full(m, n, iso->tokens, iso->positions, &dense_iso, oi, err) != 0 ||
        tempo_forward_full(m, n, iso->tokens, iso->positions, &dense_vis, ov, err) != 0)
        goto done;
    measure(cmp, li, lv, V);
    layer_reductions(&cmp->sum, iso, &m->config, att, mask_iso);
    if (path_perplexity(m, &cmp->iso, base->next_from, &cmp->sum.ppl_iso, err) != 0 ||
        path_perplexity(m, &cmp->vis, base->next_from, &cmp->sum.ppl_vis, err) != 0)
        goto done;
    cmp->sum.ppl_tokens_iso = cmp->iso.n_steps;
    cmp->sum.ppl_tokens_vis = cmp->vis.n_steps;
    rc = 0;
done:
    free(mask_iso); free(mask_vis); free(li); free(lv); free(att);
    if (rc != 0) compare_free(cmp);
    return rc;
}

void compare_free(Comparison *cmp) {
    tempo_generation_free(&cmp->iso);
    tempo_generation_free(&cmp->vis);
    free(cmp->member);
    cmp->member = NULL;
}

/* ===================================================================== */
/* The perplexity of a run's text under plain greedy scoring              */
/* ===================================================================== */

int path_member(const Generation *gen, int s, NextFrom next_from) {
    const Step *st = &gen->steps[s];
    int best = st->first_member; /* member 0 is never EOS: always fed */
    if (next_from == NEXT_MEAN) return best;
    for (int i = 1; i < st->n_members; i++)
        if (gen->members[st->first_member + i].row > gen->members[best].row) best = st->first_member + i;
    return best;
}

/* log softmax(logits)[token] = logits[token] - log sum_v exp(logits[v]), in double. */
static double log_prob(const float *logits, int vocab, int token) {
    float max = logits[0];
    for (int v = 1; v < vocab; v++) if (logits[v] > max) max = logits[v];
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)logits[v] - max);
    return (double)logits[token] - max - log(sum);
}

int path_perplexity(const Model *m, const Generation *gen, NextFrom next_from, double *ppl, char *err) {
    int P = gen->n_prompt, S = gen->n_steps, n = P + S, V = m->config.vocab_size;
    *ppl = NAN;
    if (S == 0) return 0;
    int *tokens = malloc((size_t)n * sizeof(int)), *positions = malloc((size_t)n * sizeof(int));
    float *logits = malloc((size_t)n * V * sizeof(float));
    if (!tokens || !positions || !logits) {
        free(tokens); free(positions); free(logits);
        return tempo_error(err, "out of memory scoring a text of %d tokens", n);
    }
    for (int i = 0; i < n; i++) {
        tokens[i] = i < P ? gen->tokens[i] : gen->members[path_member(gen, i - P, next_from)].token;
        positions[i] = i;
    }
    Mask causal = tempo_mask_rule(MASK_CAUSAL, positions); /* each row its own set: plain causal */
    Outputs out = {.logits = logits};
    int rc = tempo_forward_full(m, n, tokens, positions, &causal, out, err);
    if (rc == 0) {
        double nll = 0.0; /* token i is predicted by row i - 1 */
        for (int i = P; i < n; i++) nll -= log_prob(logits + (size_t)(i - 1) * V, V, tokens[i]);
        *ppl = exp(nll / S);
    }
    free(tokens); free(positions); free(logits);
    return rc;
}
