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

/* A prompt and gap that leave no position for step 0 (P + G = seq_len, or a prompt of seq_len tokens)
 * are refused with one message, not run to an empty "context-full"; one position left gives one step,
 * on the library and on the command line. */
Test(position_gap, no_position_left_for_a_step_is_refused) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once upon a time");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 1.0f;
    int seq_len = x.m.config.seq_len, *full = calloc((size_t)seq_len, sizeof(int));
    char err[TEMPO_ERR_SIZE], needle[160], args[8400], model[4096], tok[4096];
    Generation gen;
    g.position_gap = seq_len - x.n_ids - 1;
    generate_or_fail(&x, &g, &gen);
    cr_expect_eq(gen.n_steps, 1, "one position left made %d steps", gen.n_steps);
    tempo_generation_free(&gen);
    g.position_gap = seq_len - x.n_ids;
    cr_assert_neq(tempo_generate(&x.m, x.ids, x.n_ids, &g, &gen, err), 0, "P + G = seq_len ran");
    snprintf(needle, sizeof needle, "prompt of %d tokens and position-gap %d leave no position for a step (seq_len %d)", x.n_ids,
             g.position_gap, seq_len);
    cr_expect_str_eq(err, needle);
    g.position_gap = 0;
    cr_assert_neq(tempo_generate(&x.m, full, seq_len, &g, &gen, err), 0, "a prompt of seq_len tokens ran");
    cr_expect(strstr(err, "leave no position for a step"), "error: %s", err);
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'Once upon a time' -n 5 --position-gap %d",
             weights_path("stories260K.bin", model, sizeof model), weights_path("tok512.bin", tok, sizeof tok), seq_len - x.n_ids);
    expect_error(args, 1, needle, NULL);
    free(full);
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
        cr_assert(live >= 2, "decision %d weighs a set of %d live member(s): only two or more are weighed", i, live);
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

/* Ties for the strongest go to the set's first live member (its most probable), as the oracle's
 * max by (share, -row) does. With every key projection zero, each score is 0 and attention is
 * uniform over the keys a row may see, so every live member of a set receives exactly the same
 * share: each weighing is a tie, and its strongest must be the first live member. */
Test(pruning, a_tie_for_the_strongest_goes_to_the_first_member) {
    Loaded x;
    load_pair(&x, "fortune.bin", "fortune-tok512.bin", "A fool and his money");
    const Config *c = &x.m.config;
    float *zeros = calloc((size_t)c->n_kv_heads * c->head_dim * c->dim, sizeof(float));
    cr_assert(zeros);
    for (int l = 0; l < c->n_layers; l++) x.m.weights.layers[l].wk = (Matrix){zeros, WEIGHT_F32};
    GenConfig g;
    tempo_gen_defaults(&g, c);
    g.threshold = 0.02f, g.max_steps = 12, g.prune = 1;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    int ties = 0;
    for (int i = 0; i < gen.n_decisions; i++) {
        const PruneDecision *d = &gen.decisions[i];
        const Step *st = &gen.steps[d->set_step];
        int first_live = -1;
        for (int mi = 0; mi < st->n_members && first_live < 0; mi++)
            if (live_at(&gen.members[st->first_member + mi], d->step)) first_live = st->first_member + mi;
        cr_assert(fabs(d->share - 1.0 / d->live) < 1e-12, "decision %d: share %.17g of %d live is not a tie", i, d->share, d->live);
        cr_assert_eq(d->strongest, d->member == first_live, "decision %d: member %d strongest %d, first live member %d", i,
                     d->member, d->strongest, first_live);
        ties++;
    }
    cr_assert(ties >= 4, "the run weighed only %d members", ties);
    tempo_generation_free(&gen);
    free(zeros);
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

/* ---- compare: perplexity, thirds, layers ---- */

/* Greedy: the text is the run itself, so its perplexity is the run's own
 * probabilities of the tokens it chose (row i - 1 predicts token i), up to
 * cache-vs-recompute rounding. */
Test(compare_research, greedy_perplexity_is_the_runs_own) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once upon a time");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 1.0f, g.max_steps = 20;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    int V = x.m.config.vocab_size, P = gen.n_prompt;
    float *p = malloc((size_t)V * sizeof(float));
    double nll = 0;
    for (int s = 0; s < gen.n_steps; s++) {
        tempo_probs(p, tempo_row_logits(&gen, P + s - 1, V), V);
        nll -= log(p[gen.tokens[P + s]]);
    }
    double ppl, want = exp(nll / gen.n_steps);
    char err[TEMPO_ERR_SIZE];
    cr_assert(path_perplexity(&x.m, &gen, g.next_from, &ppl, err) == 0, "%s", err);
    cr_assert(gen.n_steps == 20 && fabs(ppl - want) <= 1e-3 * want, "perplexity %.6f, from the run %.6f", ppl, want);
    cr_assert(ppl > 1.0, "a perplexity is at least 1");
    free(p);
    tempo_generation_free(&gen);
    loaded_free(&x);
}

/* The text follows the member the next set was drawn from: under
 * --next-from last, every next set's probabilities are that member's row's. */
Test(compare_research, path_member_is_what_the_next_set_came_from) {
    Loaded x;
    load_pair(&x, "stories260K.bin", "tok512.bin", "Once upon a time");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 0.05f, g.max_steps = 24;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    int V = x.m.config.vocab_size, wide = 0;
    float *p = malloc((size_t)V * sizeof(float));
    for (int s = 0; s + 1 < gen.n_steps; s++) {
        const Member *from = &gen.members[path_member(&gen, s, NEXT_LAST_ROW)];
        wide += gen.steps[s].n_members > 1 && from != &gen.members[gen.steps[s].first_member];
        tempo_probs(p, tempo_row_logits(&gen, from->row, V), V);
        const Step *next = &gen.steps[s + 1];
        for (int i = 0; i < next->n_members; i++)
            cr_assert(p[gen.members[next->first_member + i].token] == gen.members[next->first_member + i].prob,
                      "step %d member %d was not drawn from row %d", s + 1, i, from->row);
    }
    cr_assert(wide > 0, "the run must continue from a later member somewhere to test anything");
    free(p);
    tempo_generation_free(&gen);
    loaded_free(&x);
}

/* Thirds split the later members; per-layer reduct% matches attention_stats
 * on the run's own captured attention (teacher-forced = cached, nearly). */
Test(compare_research, thirds_and_layers_add_up) {
    Loaded x;
    load_pair(&x, "fortune.bin", "fortune-tok512.bin", "The cat sat on the");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 0.05f, g.max_steps = 24;
    Comparison cmp;
    char err[TEMPO_ERR_SIZE];
    cr_assert(compare_run(&x.m, x.ids, x.n_ids, &g, &cmp, err) == 0, "%s", err);
    const CompareSummary *sum = &cmp.sum;
    int members = 0;
    double js = 0;
    for (int t = 0; t < COMPARE_THIRDS; t++) {
        members += sum->third_members[t];
        if (sum->third_members[t]) js += sum->third_js[t] * sum->third_members[t];
    }
    cr_assert(sum->later_members > 3 && members == sum->later_members, "thirds hold %d of %d", members, sum->later_members);
    cr_assert(fabs(js / members - sum->js) <= 1e-9 * sum->js, "thirds' JS %.9g, overall %.9g", js / members, sum->js);
    cr_assert(isfinite(sum->ppl_iso) && isfinite(sum->ppl_vis) && sum->ppl_iso > 1 && sum->ppl_vis > 1);
    cr_assert_eq(sum->ppl_tokens_iso, cmp.iso.n_steps);
    Generation own;
    g.capture_attention = 1;
    generate_or_fail(&x, &g, &own);
    float *att = tempo_generation_attention(&own, &x.m.config, NULL);
    uint8_t *allowed = tempo_generation_allowed(&own);
    AttentionView v = {.n = own.n_rows, .n_layers = x.m.config.n_layers, .n_heads = x.m.config.n_heads, .tokens = own.tokens,
                       .positions = own.positions, .sets = own.sets, .pruned = own.pruned, .attention = att,
                       .allowed = allowed, .mask_layers = own.mask_layers, .model = ""};
    cr_assert_eq(sum->n_layers, x.m.config.n_layers);
    for (int l = 0; l < sum->n_layers; l++) {
        double want = attention_stats(&v, l, -1, -1, 1 << 30, own.n_prompt).reduction_pct;
        cr_assert(fabs(sum->layer_reduction[l] - want) <= 1e-2, "layer %d: reduct%% %.4f, from the run %.4f", l,
                  sum->layer_reduction[l], want);
    }
    free(att); free(allowed);
    tempo_generation_free(&own);
    compare_free(&cmp);
    loaded_free(&x);
}

/* ---- the width/threshold series ---- */

/* Each bar and JSON entry states the step's set as the run has it: members,
 * fed (row >= 0), live (fed and never pruned), and the threshold. */
Test(series, svg_bars_and_json_match_the_run) {
    Loaded x;
    load_pair(&x, "fortune.bin", "fortune-tok512.bin", "A fool and his money");
    GenConfig g;
    tempo_gen_defaults(&g, &x.m.config);
    g.threshold = 0.05f, g.max_steps = 40, g.prune = 1, g.schedule = SCHEDULE_LINEAR, g.final_threshold = 0.3f;
    Generation gen;
    generate_or_fail(&x, &g, &gen);
    char path[4096], err[TEMPO_ERR_SIZE];
    scratch_path("series", path, sizeof path);
    cr_assert(series_svg(path, &gen, "fortune", "isolated", err) == 0, "%s", err);
    FILE *f = fopen(path, "r");
    char *svg = NULL;
    size_t len = 0;
    cr_assert(getdelim(&svg, &len, '\0', f) > 0);
    fclose(f);
    unlink(path);
    cJSON *built = series_json(&gen);
    char *printed = cJSON_Print(built);
    cJSON *js = cJSON_Parse(printed); /* as a reader sees it */
    free(printed);
    cJSON_Delete(built);
    int bars = 0, pruned_somewhere = 0;
    for (const char *p = strstr(svg, "class=\"width\""); p; p = strstr(p + 1, "class=\"width\""), bars++) {
        int s, members, fed, live;
        cr_assert(sscanf(p, "class=\"width\" data-step=\"%d\" data-members=\"%d\" data-fed=\"%d\" data-live=\"%d\"", &s, &members,
                         &fed, &live) == 4);
        const Step *st = &gen.steps[s];
        int want_fed = 0, want_live = 0;
        for (int i = 0; i < st->n_members; i++) {
            want_fed += gen.members[st->first_member + i].row >= 0;
            want_live += gen.members[st->first_member + i].pruned_at < 0;
        }
        pruned_somewhere |= want_live < want_fed;
        cr_assert(s == bars && members == st->n_members && fed == want_fed && live == want_live, "bar %d", bars);
        cr_assert_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "live"), s)->valueint, want_live);
        cr_assert_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "position"), s)->valueint, st->logical_pos);
        cr_assert((float)cJSON_GetArrayItem(cJSON_GetObjectItem(js, "threshold"), s)->valuedouble == st->threshold);
    }
    cr_assert_eq(bars, gen.n_steps);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(js, "members")), gen.n_steps);
    cr_assert(pruned_somewhere, "the run should prune, so live differs from fed somewhere");
    cr_assert(gen.steps[gen.n_steps - 1].threshold > gen.steps[0].threshold, "the linear schedule rises");
    cJSON_Delete(js);
    free(svg);
    tempo_generation_free(&gen);
    loaded_free(&x);
}

/* ---- the command line ---- */

/* Runs a shell line from the worktree with W set, in an empty scratch folder; stdout and stderr together. */
static int run_line(const char *line, char *out, size_t len) {
    char dir[4096], cmd[16384];
    scratch_path("research", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "(R=$(pwd); W=%s; T=%s; D=%s; mkdir $D && cd $D && %s; rc=$?; "
             "rm -rf $D; exit $rc)", WEIGHTS_DIR[0] == '/' ? WEIGHTS_DIR : "$R/" WEIGHTS_DIR,
             TEMPO_BIN[0] == '/' ? TEMPO_BIN : "$R/" TEMPO_BIN, dir, line);
    return run_command_capture(cmd, out, len, 1);
}

/* A run with --position-gap: its trace passes verify and audit (which takes
 * the gap from the metadata), and the files say they were written. */
Test(research_cli, position_gap_run_verifies_and_audits) {
    static char out[1 << 16];
    int rc = run_line("$T generate -m $W/stories260K.bin -z $W/tok512.bin -p 'Once upon a time' -n 12 --position-gap 7 "
                      "--trace g.safetensors --json g.json --svg-series s.svg --svg-tree t.svg --no-color && "
                      "$T verify g.safetensors -m $W/stories260K.bin && $T audit g.safetensors -m $W/stories260K.bin",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    const char *files[] = {"wrote g.safetensors: ", "wrote g.json: ", "wrote s.svg: ", "wrote t.svg: "};
    for (int i = 0; i < 4; i++) cr_assert(strstr(out, files[i]), "no \"%s\" line:\n%s", files[i], out);
    cr_assert(strstr(out, "tempo selects the same sets in all 12 steps"), "%s", out);
    cr_assert(strstr(out, "rows computed = 5 prompt + "), "the summary names the prompt rows:\n%s", out);
}

/* The summary line of an emulated run: tokens selected, fed, rows = prompt + generated. */
Test(research_cli, summary_line_says_what_it_counts) {
    static char out[1 << 16];
    int rc = run_line("$T generate -m $W/stories260K.bin -z $W/tok512.bin -p 'Once upon a time' -n 12 --threshold 0.05 "
                      "--emulate last-member-only --quiet", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    int steps, tokens, fed, rows, prompt, generated;
    const char *line = strstr(out, " steps selected ");
    cr_assert(line, "%s", out);
    while (line > out && line[-1] != '\n') line--;
    cr_assert(sscanf(line, "%d steps selected %d tokens, %d fed as rows", &steps, &tokens, &fed) == 3, "%s", line);
    const char *r = strstr(line, " rows computed = ");
    while (r > line && r[-1] != ' ') r--;
    cr_assert(r && sscanf(r, "%d rows computed = %d prompt + %d generated", &rows, &prompt, &generated) == 3, "%s", line);
    cr_assert(steps == 12 && tokens > fed && fed == steps, "emulation feeds one a step: %s", line);
    cr_assert(rows == prompt + generated && generated == fed && prompt == 5, "%s", line);
    cr_assert(strstr(line, "not fed"), "the unfed tokens are named: %s", line);
}

/* --verbose with --prune prints each decision with its share, bar and window. */
Test(research_cli, verbose_prints_pruning_decisions) {
    static char out[1 << 16];
    int rc = run_line("$T generate -m $W/fortune.bin -z $W/fortune-tok512.bin -p 'A fool and his money' -n 40 --threshold 0.05 "
                      "--prune attention --verbose --quiet --json g.json && grep -c '\"pruned\":[[:space:]]*true' g.json", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    int pruned_lines = 0, decisions = 0;
    for (const char *p = strstr(out, "prune after step "); p; p = strstr(p + 1, "prune after step ")) {
        int step, lo, hi, set;
        double share, bar;
        char cmp[3];
        cr_assert(sscanf(p, "prune after step %d (window steps %d-%d): step %d", &step, &lo, &hi, &set) == 4, "%.120s", p);
        const char *q = strstr(p, "' share ");
        cr_assert(q && sscanf(q, "' share %lf %2s bar %lf", &share, cmp, &bar) == 3, "%.120s", p);
        cr_assert(hi == step - 1 && lo <= set && set <= hi, "%.120s", p);
        cr_assert_eq(strcmp(cmp, "<") == 0, share < bar, "%.120s", p);
        const char *end = strchr(p, '\n');
        pruned_lines += end && end - p > 8 && strncmp(end - 8, ": pruned", 8) == 0;
        decisions++;
    }
    cr_assert(decisions > 0 && pruned_lines > 0, "decisions %d, pruned %d:\n%s", decisions, pruned_lines, out);
    const char *count = strrchr(out, '\n');
    while (count > out && count[-1] != '\n') count--;
    cr_assert_eq(atoi(count), pruned_lines, "JSON pruned decisions vs printed:\n%s", out);
}

/* compare: a legend with units; a set whose second member was EOS is named as such, not as no set. */
Test(research_cli, compare_legend_and_units) {
    static char out[1 << 16];
    int rc = run_line("$T compare -m $W/stories260K.bin -z $W/tok512.bin -p 'Once upon a time' -n 16", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "in nats (natural log)") && strstr(out, "in bits (log base 2)"), "%s", out);
    cr_assert(strstr(out, "(up to and including the first set's first member)"), "%s", out);
    cr_assert(strstr(out, "perplexity under plain greedy scoring: isolated "), "%s", out);
    cr_assert(strstr(out, "JS by third of the run: early ") && strstr(out, "reduct% per layer: L0 "), "%s", out);
}

/* convert and the attention pictures say what they wrote. */
Test(research_cli, writers_say_what_they_wrote) {
    static char out[1 << 16];
    int rc = run_line("$T convert $W/stories260K.bin $W/tok512.bin --out m.gguf && $T attention -m $W/stories260K.bin "
                      "-z $W/tok512.bin -p 'Once upon a time' -n 6 --threshold 0.05 --svg h.svg --svg-grid g.svg --json a.json "
                      ">/dev/null && ls m.gguf h.svg g.svg a.json", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    const char *said[] = {"wrote m.gguf: GGUF", "wrote h.svg: SVG heatmap", "wrote g.svg: SVG grid", "wrote a.json: JSON"};
    for (int i = 0; i < 4; i++) cr_assert(strstr(out, said[i]), "no \"%s\":\n%s", said[i], out);
}
