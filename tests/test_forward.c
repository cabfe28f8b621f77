/* The forward pass: KV cache == full recomputation, masks and their exact
 * zeros, and the errors the API reports for bad inputs. */
#include "helpers.h"
#include "../tools/memory.h"
#include "../tools/synth.h"

#include <unistd.h>

/* A sequence with repeated logical positions (three parallel sets). */
static const int seq_tokens[] = {1, 337, 278, 272, 269, 300, 301, 302, 267, 261, 290, 291, 280, 281, 299};
static const int seq_positions[] = {0, 1, 2, 3, 4, 5, 5, 5, 6, 7, 8, 8, 9, 9, 10};
#define SEQ_N 15

/* Appends the sequence in chunks of the given sizes and compares every
 * row's logits and attention with the full recomputation. */
static void check_cache_equals_recompute(const char *model_file, MaskKind kind, const int *chunks, int n_chunks,
                                         int relative) {
    Model m;
    load_real(&m, model_file);
    const Config *c = &m.config;
    int n = SEQ_N, V = c->vocab_size, L = c->n_layers, H = c->n_heads;
    uint8_t allowed[SEQ_N * SEQ_N];
    tempo_mask_rows(kind, seq_positions, 0, n, allowed);
    float *full_logits, *full_attention;
    full_forward(&m, n, seq_tokens, seq_positions, allowed, 1, &full_logits, &full_attention, NULL);

    State s;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_state_init(&s, c, n, err) == 0, "%s", err);
    float *logits = malloc((size_t)n * V * sizeof(float));
    float *attention = malloc((size_t)L * H * n * n * sizeof(float));
    int first = 0;
    for (int ci = 0; ci < n_chunks; ci++) {
        int k = chunks[ci];
        Mask rule = tempo_mask_rule(kind, seq_positions); /* the rule here, the dense mask for the full pass */
        Outputs out = {.logits = logits + (size_t)first * V, .hidden = NULL, .attention = attention};
        cr_assert(tempo_forward(&m, &s, k, seq_tokens + first, seq_positions + first, &rule, out, err) == 0, "%s", err);
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < k; i++) {
                    const float *mine = attention + (((size_t)l * H + h) * k + i) * (first + k);
                    const float *ref = full_attention + (((size_t)l * H + h) * n + first + i) * n;
                    size_t at;
                    double d = max_abs_diff(mine, ref, (size_t)first + k, &at);
                    cr_expect(d <= 1e-5, "%s: attention of row %d layer %d head %d differs by %.3e at key %zu",
                              model_file, first + i, l, h, d, at);
                }
        first += k;
    }
    cr_assert_eq(first, n, "chunks must cover the sequence");
    /* 1e-5 absolute; with `relative`, 1e-5 times the largest |logit| when that
     * exceeds 1 (the attention's sgemm rounds differently for different row
     * counts, so float32 resolution at large logits sets the floor: NOTES.md) */
    double scale = 1.0;
    for (size_t i = 0; relative && i < (size_t)n * V; i++) scale = fmax(scale, fabs(full_logits[i]));
    size_t at;
    double d = max_abs_diff(logits, full_logits, (size_t)n * V, &at);
    cr_expect(d <= 1e-5 * scale, "%s: cached logits differ from recompute by %.3e (limit %.3e) at row %zu token %zu",
              model_file, d, 1e-5 * scale, at / V, at % V);
    tempo_state_free(&s);
    free(logits); free(attention); free(full_logits); free(full_attention);
    tempo_model_free(&m);
}

Test(kv_cache, equals_recompute_fortune_isolated_one_row_at_a_time) {
    int chunks[SEQ_N];
    for (int i = 0; i < SEQ_N; i++) chunks[i] = 1;
    check_cache_equals_recompute("fortune.bin", MASK_ISOLATED, chunks, SEQ_N, 0);
}

Test(kv_cache, equals_recompute_fortune_visible_by_sets) {
    int chunks[] = {5, 3, 1, 1, 2, 2, 1}; /* prompt, then one chunk per parallel set */
    check_cache_equals_recompute("fortune.bin", MASK_VISIBLE, chunks, 7, 0);
}

Test(kv_cache, equals_recompute_stories260K_isolated_mixed_chunks) {
    int chunks[] = {4, 4, 1, 3, 3};
    check_cache_equals_recompute("stories260K.bin", MASK_ISOLATED, chunks, 5, 1);
}

Test(masks, isolated_cross_parallel_attention_is_exactly_zero) {
    Model m;
    load_real(&m, "stories260K.bin");
    int n = SEQ_N, L = m.config.n_layers, H = m.config.n_heads;
    uint8_t allowed[SEQ_N * SEQ_N];
    tempo_mask_rows(MASK_ISOLATED, seq_positions, 0, n, allowed);
    float *logits, *attention;
    full_forward(&m, n, seq_tokens, seq_positions, allowed, 1, &logits, &attention, NULL);
    int pairs = 0;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            for (int q = 0; q < n; q++)
                for (int k = 0; k < n; k++) {
                    float p = attention[(((size_t)l * H + h) * n + q) * n + k];
                    if (k != q && seq_positions[k] == seq_positions[q]) {
                        cr_assert(p == 0.0f, "layer %d head %d: row %d attends to its set member %d with %g", l, h, q, k, p);
                        pairs++;
                    } else if (k > q) {
                        cr_assert(p == 0.0f, "layer %d head %d: row %d attends to the later row %d", l, h, q, k);
                    }
                }
    cr_assert(pairs > 0, "the sequence has parallel sets");
    free(logits);
    free(attention);
    tempo_model_free(&m);
}

Test(masks, visible_members_attend_to_earlier_members) {
    Model m;
    load_real(&m, "fortune.bin");
    int n = SEQ_N, L = m.config.n_layers, H = m.config.n_heads;
    uint8_t allowed[SEQ_N * SEQ_N];
    tempo_mask_rows(MASK_VISIBLE, seq_positions, 0, n, allowed);
    float *logits, *attention;
    full_forward(&m, n, seq_tokens, seq_positions, allowed, 1, &logits, &attention, NULL);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
            cr_expect(attention[(((size_t)l * H + h) * n + 6) * n + 5] > 0.0f, "layer %d head %d: row 6 ignores row 5", l, h);
    free(logits);
    free(attention);
    tempo_model_free(&m);
}

Test(masks, mask_rules) {
    int sets[] = {0, 1, 2, 2, 2, 3};
    uint8_t iso[36], vis[36];
    tempo_mask_rows(MASK_ISOLATED, sets, 0, 6, iso);
    tempo_mask_rows(MASK_VISIBLE, sets, 0, 6, vis);
    for (int q = 0; q < 6; q++)
        for (int k = 0; k < 6; k++) {
            int causal = k <= q;
            cr_assert_eq(vis[q * 6 + k], causal, "visible [%d][%d]", q, k);
            int same = sets[k] == sets[q] && k != q;
            cr_assert_eq(iso[q * 6 + k], causal && !same, "isolated [%d][%d]", q, k);
        }
}

/* Changing the token of a key the row may not see leaves the row bitwise equal. */
Test(masks, masked_key_is_absent_bitwise) {
    Model m;
    load_synth(&m, "synth-tied.bin");
    int tokens[] = {1, 10, 20, 30, 40, 50}, positions[] = {0, 1, 2, 2, 2, 3};
    uint8_t allowed[36];
    tempo_mask_rows(MASK_ISOLATED, positions, 0, 6, allowed);
    float *a, *b;
    full_forward(&m, 6, tokens, positions, allowed, 1, &a, NULL, NULL);
    tokens[2] = 77; /* row 3 and row 4 may not see row 2 */
    full_forward(&m, 6, tokens, positions, allowed, 1, &b, NULL, NULL);
    int V = m.config.vocab_size;
    for (int row = 3; row <= 4; row++)
        cr_assert(memcmp(a + row * V, b + row * V, V * sizeof(float)) == 0, "row %d changed with a masked key", row);
    cr_assert(memcmp(a + 5 * V, b + 5 * V, V * sizeof(float)) != 0, "row 5 sees row 2 and must change");
    free(a);
    free(b);
    tempo_model_free(&m);
}

Test(forward, bad_inputs_are_errors_and_leave_the_cache_unchanged) {
    Model m;
    load_synth(&m, "synth-tied.bin");
    State s;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_state_init(&s, &m.config, 4, err) == 0);
    int tok[2] = {1, 5}, pos[2] = {0, 1};
    uint8_t ok[4] = {1, 0, 1, 1}, empty_row[4] = {1, 0, 0, 0};
    Outputs none = {.logits = NULL, .hidden = NULL, .attention = NULL};
    Mask okm = tempo_mask_dense(ok, 1, 0, 2, 2), empty = tempo_mask_dense(empty_row, 1, 0, 2, 2);
    Mask three_layers = tempo_mask_dense(ok, 3, 0, 2, 2);
    int bad_tok[2] = {1, 256};
    cr_assert(tempo_forward(&m, &s, 2, bad_tok, pos, &okm, none, err) != 0);
    cr_assert(strstr(err, "token id 256") != NULL, "%s", err);
    int bad_pos[2] = {0, -1};
    cr_assert(tempo_forward(&m, &s, 2, tok, bad_pos, &okm, none, err) != 0);
    cr_assert(strstr(err, "logical position -1") != NULL, "%s", err);
    int far_pos[2] = {0, 256};
    cr_assert(tempo_forward(&m, &s, 2, tok, far_pos, &okm, none, err) != 0);
    cr_assert(strstr(err, "logical position 256") != NULL, "%s", err);
    cr_assert(tempo_forward(&m, &s, 2, tok, pos, &empty, none, err) != 0);
    cr_assert(strstr(err, "mask row 1") != NULL && strstr(err, "allows no key") != NULL, "%s", err);
    cr_assert(tempo_forward(&m, &s, 2, tok, pos, &three_layers, none, err) != 0);
    cr_assert(strstr(err, "mask has 3 layers") != NULL, "%s", err);
    cr_assert_eq(s.n_rows, 0, "a failed forward must not touch the cache");
    cr_assert(tempo_forward(&m, &s, 2, tok, pos, &okm, none, err) == 0, "%s", err);
    uint8_t three[3 * 5];
    memset(three, 1, sizeof three);
    int tok3[3] = {1, 2, 3}, pos3[3] = {2, 3, 4};
    Mask threem = tempo_mask_dense(three, 1, 2, 3, 5);
    cr_assert(tempo_forward(&m, &s, 3, tok3, pos3, &threem, none, err) != 0);
    cr_assert(strstr(err, "KV cache full") != NULL, "%s", err);
    tempo_state_free(&s);
    tempo_model_free(&m);
}

Test(forward, synthetic_distributions_are_peaked) {
    Model m;
    load_synth(&m, "synth-tied.bin");
    int tokens[] = {1, 10, 20, 30}, positions[] = {0, 1, 2, 3}, V = m.config.vocab_size;
    uint8_t allowed[16];
    tempo_mask_rows(MASK_CAUSAL, positions, 0, 4, allowed);
    float *logits;
    full_forward(&m, 4, tokens, positions, allowed, 1, &logits, NULL, NULL);
    int rows_with_several = 0;
    for (int r = 0; r < 4; r++) {
        double max = -1e30, sum = 0;
        for (int v = 0; v < V; v++) if (logits[r * V + v] > max) max = logits[r * V + v];
        for (int v = 0; v < V; v++) sum += exp(logits[r * V + v] - max);
        int above = 0;
        for (int v = 0; v < V; v++) above += exp(logits[r * V + v] - max) / sum > 0.05;
        rows_with_several += above >= 2;
    }
    cr_assert(rows_with_several >= 2, "only %d of 4 rows have two or more tokens above 0.05", rows_with_several);
    free(logits);
    tempo_model_free(&m);
}

/* Logits for the last rows only: the same values as when every row's are
 * asked for (the rows do not depend on each other's logits), and a count
 * outside 0..k is an error. */
Test(forward, logits_of_the_last_rows_only) {
    Model m;
    load_real(&m, "stories260K.bin");
    char err[TEMPO_ERR_SIZE];
    int tokens[6] = {1, 403, 407, 261, 378, 432}, pos[6] = {0, 1, 2, 3, 4, 5};
    size_t V = m.config.vocab_size;
    uint8_t allowed[36];
    tempo_mask_rows(MASK_CAUSAL, pos, 0, 6, allowed);
    float *every = malloc(6 * V * sizeof(float)), *last = malloc(2 * V * sizeof(float));
    Outputs all = {.logits = every}, two = {.logits = last, .last_logits = 2}, bad = {.logits = last, .last_logits = 7};
    Mask mask = tempo_mask_dense(allowed, 1, 0, 6, 6);
    cr_assert(tempo_forward_full(&m, 6, tokens, pos, &mask, all, err) == 0, "%s", err);
    cr_assert(tempo_forward_full(&m, 6, tokens, pos, &mask, two, err) == 0, "%s", err);
    cr_assert(memcmp(every + 4 * V, last, 2 * V * sizeof(float)) == 0, "the last two rows' logits differ");
    cr_assert(tempo_forward_full(&m, 6, tokens, pos, &mask, bad, err) != 0);
    cr_assert(strstr(err, "logits asked for the last 7 rows of 6 new rows"), "%s", err);
    free(every);
    free(last);
    tempo_model_free(&m);
}

/* Kilobytes of a /proc/self/status field ("VmRSS:", "VmHWM:"). */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) kb = atol(line + strlen(field));
    if (f) fclose(f);
    return kb;
}

/* A synthetic model of seq_len positions (hidden 128), written under `name` in BUILD_DIR, loaded, and removed. */
static void load_long_synth(Model *m, SynthConfig *sc, int seq_len, const char *name) {
    tempo_synth_defaults(sc);
    sc->seq_len = seq_len, sc->hidden_dim = 128;
    char path[4096], err[TEMPO_ERR_SIZE];
    snprintf(path, sizeof path, "%s/%s-%d.bin", BUILD_DIR, name, (int)getpid());
    cr_assert(tempo_synth_write(sc, path, err) == 0, "%s", err);
    load_model(m, path);
    unlink(path);
}

/* A 4,096-row forward without attention holds no N x N buffer: the peak
 * resident size (VmHWM of this test's own process) grows by less than half
 * of one N x N float buffer (32 MiB) over the size before the forward. The
 * rows' own buffers (cache, activations) are about 14 MiB here; the dense
 * path held 64 MiB of scores and 16 MiB of mask. */
Test(forward, long_forward_holds_no_n_by_n_buffer, .timeout = 300) {
    enum { N = 4096 };
    SynthConfig sc;
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_long_synth(&m, &sc, N, "synth-long");
    int *tokens = malloc(N * sizeof(int)), *pos = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) tokens[i] = (i * 7919 + 1) % sc.vocab_size, pos[i] = i;
    float logits[256];
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    long before = status_kb("VmRSS:");
    cr_assert(tempo_forward_full(&m, N, tokens, pos, &causal, (Outputs){.logits = logits, .last_logits = 1}, err) == 0,
              "%s", err);
    long grown = status_kb("VmHWM:") - before;
    cr_expect(before > 0 && grown < (long)N * N * 4 / 2 / 1024, "a %d-row forward grew the peak by %ld KiB", N, grown);
    free(tokens); free(pos);
    tempo_model_free(&m);
}

/* A forward of more than TEMPO_CHUNK_ROWS rows goes through the cache in
 * chunks (tempo_forward_full): each row's logits and hidden state as one
 * tempo_forward call over every row computes them (within rounding: the
 * matrix products run on other row counts), and so are the logits of the
 * last 100 rows alone (across the chunk edge; a misplaced row is far off);
 * a dense mask, or kept attention, is not chunked. */
Test(forward, long_forward_in_chunks_equals_one_call, .timeout = 300) {
    enum { N = TEMPO_CHUNK_ROWS + 70 };
    SynthConfig sc;
    Model m;
    char err[TEMPO_ERR_SIZE];
    load_long_synth(&m, &sc, N, "synth-chunks");
    size_t V = m.config.vocab_size, D = m.config.dim;
    int *tokens = malloc(N * sizeof(int)), *pos = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) tokens[i] = (i * 7919 + 1) % sc.vocab_size, pos[i] = i;
    float *logits[2] = {malloc(N * V * sizeof(float)), malloc(N * V * sizeof(float))}, *last = malloc(100 * V * sizeof(float));
    float *hidden[2] = {malloc(N * D * sizeof(float)), malloc(N * D * sizeof(float))};
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    cr_assert(tempo_forward_full(&m, N, tokens, pos, &causal, (Outputs){.logits = logits[0], .hidden = hidden[0]}, err) == 0, "%s", err);
    State s;
    cr_assert(tempo_state_init(&s, &m.config, N, err) == 0, "%s", err);
    cr_assert(tempo_forward(&m, &s, N, tokens, pos, &causal, (Outputs){.logits = logits[1], .hidden = hidden[1]}, err) == 0, "%s", err);
    tempo_state_free(&s);
    size_t at;
    double scale = 0.0;
    for (size_t i = 0; i < N * V; i++) scale = fmax(scale, fabs(logits[1][i]));
    double d = max_abs_diff(logits[0], logits[1], N * V, &at), dh = max_abs_diff(hidden[0], hidden[1], N * D, &at);
    cr_expect(d <= 1e-5 * scale, "chunked and whole logits differ by %.3g (scale %.3g) at row %zu", d, scale, at / V);
    cr_expect(dh <= 1e-4, "chunked and whole hidden states differ by %.3g at row %zu", dh, at / D);
    cr_assert(tempo_forward_full(&m, N, tokens, pos, &causal, (Outputs){.logits = last, .last_logits = 100}, err) == 0, "%s", err);
    d = max_abs_diff(last, logits[0] + (N - 100) * V, 100 * V, &at);
    cr_expect(d <= 1e-5 * scale, "the last 100 rows' logits differ by %.3g at row %zu", d, N - 100 + at / V);
    cr_expect(tempo_forward_full(&m, N, tokens, pos, &causal, (Outputs){.logits = last, .last_logits = N + 1}, err) != 0 &&
              strstr(err, "logits asked for the last"), "logits of more rows than given: %s", err);
    cr_expect_eq(tempo_forward_chunk_rows(N, 0, 0), TEMPO_CHUNK_ROWS);
    cr_expect_eq(tempo_forward_chunk_rows(100, 0, 0), 100);
    cr_expect_eq(tempo_forward_chunk_rows(N, 1, 0), N, "a dense mask may show later rows: not chunked");
    cr_expect_eq(tempo_forward_chunk_rows(N, 0, 1), N, "kept attention is not chunked");
    free(tokens); free(pos); free(logits[0]); free(logits[1]); free(last); free(hidden[0]); free(hidden[1]);
    tempo_model_free(&m);
}

/* tempo_state_bytes (what `tempo forward` checks against MemAvailable) is
 * what a State holds after a forward in chunks: the cache of every row,
 * the activations of one chunk, the kernels' scratch as allocated. */
Test(forward, state_bytes_estimate_is_what_a_chunked_forward_holds) {
    Model m;
    load_synth(&m, "synth-untied.bin");
    const Config *c = &m.config;
    enum { CAP = 200, CHUNK = 120 };
    int tokens[CAP], pos[CAP];
    for (int i = 0; i < CAP; i++) tokens[i] = (i * 31 + 1) % c->vocab_size, pos[i] = i % c->seq_len;
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    State s;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_state_init(&s, c, CAP, err) == 0, "%s", err);
    for (int done = 0; done < CAP; done += CHUNK) {
        int k = CAP - done < CHUNK ? CAP - done : CHUNK;
        cr_assert(tempo_forward(&m, &s, k, tokens + done, pos + done, &causal, (Outputs){0}, err) == 0, "%s", err);
    }
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = (size_t)c->dim > q_dim ? (size_t)c->dim : q_dim;
    size_t per_row = c->dim + wide + 2 * q_dim + 2 * (size_t)c->hidden_dim + 2 * (size_t)(c->head_dim / 2);
    size_t held = (2 * (size_t)c->n_layers * s.capacity * kv_dim + (size_t)s.scratch_rows * per_row + s.panel_values +
                   s.score_values) * sizeof(float) + (size_t)s.scratch_rows * sizeof(int);
    cr_expect_eq(s.scratch_rows, CHUNK, "the scratch holds %d rows, not a chunk's", s.scratch_rows);
    cr_expect_eq(tempo_state_bytes(c, m.kernels, CAP, CHUNK), held, "estimated %zu bytes, held %zu",
                 tempo_state_bytes(c, m.kernels, CAP, CHUNK), held);
    tempo_state_free(&s);
    tempo_model_free(&m);
}

/* Attention kept by request: layer 1, heads 0 and 3, rows 2, 9 and 14, fed
 * in two chunks (rows 0-9, 10-14). Each call returns [1][2][its kept
 * rows][n_keys], equal to the same entries of a full capture; an unsorted
 * or out-of-range list is an error naming it. */
Test(forward, attention_kept_by_layer_head_and_row) {
    Model m;
    load_real(&m, "stories260K.bin");
    const Config *c = &m.config;
    int n = SEQ_N, L = c->n_layers, H = c->n_heads;
    uint8_t allowed[SEQ_N * SEQ_N];
    tempo_mask_rows(MASK_ISOLATED, seq_positions, 0, n, allowed);
    float *full_logits, *full;
    full_forward(&m, n, seq_tokens, seq_positions, allowed, 1, &full_logits, &full, NULL);
    int layers[] = {1}, heads[] = {0, 3}, rows[] = {2, 9, 14};
    AttentionKeep keep = {.layers = layers, .n_layers = 1, .heads = heads, .n_heads = 2, .rows = rows, .n_rows = 3};
    Mask rule = tempo_mask_rule(MASK_ISOLATED, seq_positions);
    State s;
    char err[TEMPO_ERR_SIZE];
    cr_assert(tempo_state_init(&s, c, n, err) == 0, "%s", err);
    int chunks[2][2] = {{0, 10}, {10, 5}};
    for (int ci = 0; ci < 2; ci++) {
        int first = chunks[ci][0], k = chunks[ci][1], n_keys = first + k, kept = 0;
        for (int ri = 0; ri < 3; ri++) kept += rows[ri] >= first && rows[ri] < n_keys;
        cr_assert_eq(kept, ci == 0 ? 2 : 1, "chunk %d keeps %d rows", ci, kept);
        float *att = malloc((size_t)2 * kept * n_keys * sizeof(float));
        Outputs out = {.attention = att, .keep = &keep};
        cr_assert(tempo_forward(&m, &s, k, seq_tokens + first, seq_positions + first, &rule, out, err) == 0, "%s", err);
        for (int hi = 0; hi < 2; hi++)
            for (int ri = 0, slot = 0; ri < 3; ri++) {
                if (rows[ri] < first || rows[ri] >= n_keys) continue;
                const float *ref = full + (((size_t)1 * H + heads[hi]) * n + rows[ri]) * n;
                const float *mine = att + ((size_t)hi * kept + slot++) * n_keys;
                for (int j = 0; j < n_keys; j++)
                    cr_expect(fabsf(mine[j] - ref[j]) <= 1e-5f, "row %d head %d key %d: %g vs %g", rows[ri], heads[hi], j,
                              mine[j], ref[j]);
            }
        free(att);
    }
    int unsorted[] = {3, 1};
    AttentionKeep bad = {.heads = unsorted, .n_heads = 2}, far = {.layers = (int[]){L}, .n_layers = 1};
    s.n_rows = 0;
    float att[4096];
    cr_expect(tempo_forward(&m, &s, 1, seq_tokens, seq_positions, &rule, (Outputs){.attention = att, .keep = &bad}, err) != 0);
    cr_expect(strstr(err, "head 1") != NULL, "%s", err);
    cr_expect(tempo_forward(&m, &s, 1, seq_tokens, seq_positions, &rule, (Outputs){.attention = att, .keep = &far}, err) != 0);
    cr_expect(strstr(err, "layer") != NULL, "%s", err);
    tempo_state_free(&s);
    free(full_logits); free(full);
    tempo_model_free(&m);
}
