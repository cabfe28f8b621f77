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
 * steps into the summary's means. */
static void summarize_members(Comparison *cmp) {
    CompareSummary *sum = &cmp->sum;
    const Generation *iso = &cmp->iso;
    for (int s = 0; s < iso->n_steps; s++) {
        const Step *st = &iso->steps[s];
        if (st->n_members < 2) continue;
        sum->parallel_steps++;
        for (int i = 1; i < st->n_members; i++) {
            if (iso->members[st->first_member + i].row < 0) continue; /* never fed: no logits */
            const LogitMetrics *lm = &cmp->member[st->first_member + i];
            sum->later_members++;
            sum->kl_iv += lm->kl_ab; sum->kl_vi += lm->kl_ba; sum->js += lm->js; sum->cosine += lm->cosine;
            sum->top1 += lm->top1; sum->top5 += lm->top5; sum->top10 += lm->top10; sum->argmax += lm->argmax_agree;
        }
    }
    if (sum->later_members == 0) return;
    double k = sum->later_members;
    sum->kl_iv /= k; sum->kl_vi /= k; sum->js /= k; sum->cosine /= k;
    sum->top1 /= k; sum->top5 /= k; sum->top10 /= k; sum->argmax /= k;
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
    cmp->member = calloc((size_t)iso->n_members + 1, sizeof(LogitMetrics));
    if (!mask_iso || !mask_vis || !li || !lv || !cmp->member) {
        tempo_error(err, "out of memory comparing %d rows", n);
        goto done;
    }
    visible_mask(iso, mask_iso, mask_vis);
    Outputs oi = {.logits = li}, ov = {.logits = lv};
    Mask dense_iso = tempo_mask_dense(mask_iso, ML, 0, n, n), dense_vis = tempo_mask_dense(mask_vis, ML, 0, n, n);
    if (tempo_forward_full(m, n, iso->tokens, iso->positions, &dense_iso, oi, err) != 0 ||
        tempo_forward_full(m, n, iso->tokens, iso->positions, &dense_vis, ov, err) != 0)
        goto done;
    measure(cmp, li, lv, V);
    rc = 0;
done:
    free(mask_iso); free(mask_vis); free(li); free(lv);
    if (rc != 0) compare_free(cmp);
    return rc;
}

void compare_free(Comparison *cmp) {
    tempo_generation_free(&cmp->iso);
    tempo_generation_free(&cmp->vis);
    free(cmp->member);
    cmp->member = NULL;
}
