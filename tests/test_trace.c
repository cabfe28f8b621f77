/* Traces' `allowed` as bits (formats/trace.c: tempo_trace_write packs,
 * tempo_trace_parse unpacks): tempo's own traces of every mask kind read
 * back to the exact dense mask, the bits sit where NOTES says, a 2,000-row
 * mask takes an eighth of the dense bytes, malformed bits are refused with
 * one line, and dense traces (other engines', old ones) still read. A
 * generation keeps exactly the attention asked for (trace_attention). */
#include "helpers.h"

#include <sys/stat.h>

/* The tensors of a trace file as stored, without unpacking; caller frees *t, *buf. */
static void parse_raw(const char *path, unsigned char **buf, Tensor **t, int *n) {
    char err[TEMPO_ERR_SIZE];
    size_t len;
    cr_assert(tempo_read_file(path, "trace", buf, &len, err) == 0, "%s", err);
    cJSON *meta;
    unsigned dtypes = 1u << DT_F32 | 1u << DT_I32 | 1u << DT_U8;
    cr_assert(tempo_safetensors_parse(*buf, len, "trace", path, dtypes, NULL, t, n, &meta, err) == 0, "%s", err);
    cJSON_Delete(meta);
}

/* The stored bits of `path` hold `dense` ([rows][n]) at bit k % 8 of byte k / 8, least significant first. */
static void expect_bits(const char *path, const uint8_t *dense, size_t rows, int n, int ndim) {
    unsigned char *buf;
    Tensor *t;
    int count;
    parse_raw(path, &buf, &t, &count);
    const Tensor *bits = tempo_tensor_find(t, count, "allowed_bits");
    cr_assert(bits && !tempo_tensor_find(t, count, "allowed"), "tempo's trace must store allowed_bits, not allowed");
    size_t row_bytes = ((size_t)n + 7) / 8;
    cr_assert(bits->dtype == DT_U8 && bits->ndim == ndim && bits->shape[ndim - 2] == n &&
                  bits->shape[ndim - 1] == (int64_t)row_bytes,
              "allowed_bits must be U8[..., %d, %zu]", n, row_bytes);
    const uint8_t *b = bits->data;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < n; k++)
            cr_assert_eq((b[r * row_bytes + k / 8] >> (k % 8)) & 1, dense[r * n + k] != 0, "row %zu key %d", r, k);
    free(t);
    free(buf);
}

/* oracle/reference.py (its own unpacking, NumPy) reads the same dense mask from `path`. */
static void expect_oracle_reads(const char *path, const Tensor *dense) {
    char out[300], cmd[1024], text[4096];
    snprintf(out, sizeof out, "%s.oracle", path);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"oracle\"); import reference; "
             "reference.read_safetensors(sys.argv[1])[0][\"allowed\"].tofile(sys.argv[2])' %s %s",
             path, out);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "reference.py cannot read %s: %s", path, text);
    size_t len;
    char *got = read_text_file(out, &len);
    cr_assert(len == tempo_tensor_bytes(dense) && memcmp(got, dense->data, len) == 0, "reference.py reads another mask");
    free(got);
    unlink(out);
}

static size_t count_hidden_below_diagonal(const uint8_t *allowed, size_t rows, int n) {
    size_t hidden = 0;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < (int)(r % n); k++) hidden += !allowed[r * n + k];
    return hidden;
}

static void isolated(GenConfig *g) { g->mode = MASK_ISOLATED; }
static void visible(GenConfig *g) { g->mode = MASK_VISIBLE; }
static void pruned(GenConfig *g) { g->prune = 1; g->prune_threshold = 0.9f; }
static void some_layers(GenConfig *g) { g->isolate_first = 1; g->isolate_last = 2; }

/* The stored tensors of `path` hold no mask: it is the rule (metadata). */
static void expect_rule_only(const char *path) {
    unsigned char *buf;
    Tensor *t;
    int count;
    parse_raw(path, &buf, &t, &count);
    cr_assert(!tempo_tensor_find(t, count, "allowed") && !tempo_tensor_find(t, count, "allowed_bits"),
              "a rule trace must store no allowed tensor");
    cr_assert(tempo_tensor_find(t, count, "sets") && tempo_tensor_find(t, count, "pruned"), "the rule's sets and pruned");
    free(t);
    free(buf);
}

/* C's reading of the rule (tempo_trace_mask, and tempo_trace_dense_mask) gives `dense`. */
static void expect_rule_reads(const char *path, const Model *m, const Tensor *dense, const char *what) {
    char err[TEMPO_ERR_SIZE];
    Trace read;
    TraceMask tm;
    int n = (int)dense->shape[dense->ndim - 1];
    cr_assert(tempo_trace_read(&read, path, err) == 0, "%s", err);
    cr_assert(!tempo_trace_get(&read, "allowed"), "%s: the rule is not made dense on reading", what);
    cr_assert(tempo_trace_mask(&read, &m->config, n, &tm, err) == 0, "%s", err);
    cr_assert(tm.is_rule && tm.mask.layers == (dense->ndim == 3 ? dense->shape[0] : 1), "%s: the rule's layers", what);
    uint8_t *cells = tempo_mask_to_dense(&tm.mask, n);
    cr_assert(cells && memcmp(cells, dense->data, tempo_tensor_bytes(dense)) == 0, "%s: the rule read back differs", what);
    free(cells);
    tempo_trace_mask_free(&tm);
    cr_assert(tempo_trace_dense_mask(&read, n - 1, err) != 0 && strstr(err, "stores its mask as a rule"),
              "%s: a dense copy past the limit is refused: %s", what, err);
    cr_assert(tempo_trace_dense_mask(&read, n, err) == 0, "%s", err);
    const Tensor *back = tempo_trace_get(&read, "allowed");
    cr_assert(back && back->ndim == dense->ndim && memcmp(back->data, dense->data, tempo_tensor_bytes(dense)) == 0,
              "%s: the dense copy of the rule differs", what);
    tempo_trace_free(&read);
}

/* Generates on fortune.bin (threshold 0.05, 24 steps, then `adjust`), and
 * writes the trace in both forms: bits, and the rule. Each reads back (C
 * and oracle/reference.py, each its own way) to the dense mask of the
 * generation's rule, which the forward applied (invariants/cache_equals_recompute_*). */
static void round_trip(void (*adjust)(GenConfig *), const char *what, int expect_hidden) {
    char model[4096], tok[4096], err[TEMPO_ERR_SIZE], name[64], path[256], rule_path[256];
    fortune_paths(model, tok);
    Model m;
    load_model(&m, model);
    Tokenizer t;
    load_tokenizer(&t, "fortune-tok512.bin", m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &m.config);
    g.threshold = 0.05f;
    g.max_steps = 24;
    adjust(&g);
    int ids[64], n;
    Generation gen;
    Trace written, rule, read;
    cr_assert(tempo_encode(&t, "The cat sat on the", ids, 64, &n, err) == 0, "%s", err);
    cr_assert(tempo_generate(&m, ids, n, &g, &gen, err) == 0, "%s", err);
    cr_assert(tempo_generation_trace(&gen, &m, TRACE_MASK_BITS, &written, err) == 0, "%s", err);
    cr_assert(tempo_generation_trace(&gen, &m, TRACE_MASK_RULE, &rule, err) == 0, "%s", err);
    snprintf(name, sizeof name, "bits-%s.st", what);
    scratch_path(name, path, sizeof path);
    snprintf(name, sizeof name, "rule-%s.st", what);
    scratch_path(name, rule_path, sizeof rule_path);
    cr_assert(tempo_trace_write(&written, path, err) == 0 && tempo_trace_write(&rule, rule_path, err) == 0, "%s", err);
    int ML = gen.mask_layers, N = gen.n_rows;
    Tensor dense = {"allowed", DT_U8, ML == 1 ? 2 : 3, {0}, tempo_generation_allowed(&gen)};
    int64_t shape[3] = {ML, N, N};
    memcpy(dense.shape, shape + (ML == 1), (size_t)dense.ndim * sizeof(int64_t));
    cr_assert(dense.data, "out of memory");
    cr_assert(!expect_hidden || count_hidden_below_diagonal(dense.data, (size_t)ML * N, N) > 0,
              "%s: the mask must hide some earlier key to test anything", what);
    int hidden_by_pruning = 0;
    for (int k = 0; k < N; k++) hidden_by_pruning += gen.hidden_from[k] >= 0 && gen.hidden_from[k] < N;
    cr_assert(!g.prune || hidden_by_pruning > 0, "%s: no row is hidden by pruning, so the rule's pruning is not read", what);
    expect_bits(path, dense.data, (size_t)ML * N, N, dense.ndim);
    expect_oracle_reads(path, &dense);
    cr_assert(tempo_trace_read(&read, path, err) == 0, "%s", err);
    const Tensor *back = tempo_trace_get(&read, "allowed");
    cr_assert(back && back->ndim == dense.ndim && memcmp(back->shape, dense.shape, sizeof dense.shape) == 0,
              "%s: allowed read back with another shape", what);
    cr_assert(memcmp(back->data, dense.data, tempo_tensor_bytes(&dense)) == 0, "%s: allowed read back differs", what);
    expect_rule_only(rule_path);
    expect_rule_reads(rule_path, &m, &dense, what);
    expect_oracle_reads(rule_path, &dense);
    struct stat bits_st, rule_st;
    cr_assert(stat(path, &bits_st) == 0 && stat(rule_path, &rule_st) == 0 && rule_st.st_size < bits_st.st_size,
              "%s: the rule trace (%lld bytes) must be smaller than the bits one", what, (long long)rule_st.st_size);
    unlink(path);
    unlink(rule_path);
    free(dense.data);
    tempo_trace_free(&read);
    tempo_trace_free(&rule);
    tempo_trace_free(&written);
    tempo_generation_free(&gen);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

Test(trace_bits, isolated_visible_pruned_and_per_layer_masks_read_back_exactly) {
    round_trip(isolated, "isolated", 1);
    round_trip(visible, "visible", 0);
    round_trip(pruned, "pruned", 1);
    round_trip(some_layers, "layers", 1);
}

/* An isolated mask of n rows, sets of three at every other position after 10 prompt rows. */
static uint8_t *long_mask(int n, int *sets) {
    for (int i = 0, pos = 0; i < n; i++) sets[i] = i < 10 || (pos % 2) ? pos++ : (i % 3 == 2 ? pos++ : pos);
    uint8_t *allowed = malloc((size_t)n * n);
    cr_assert(allowed);
    tempo_mask_rows(MASK_ISOLATED, sets, 0, n, allowed);
    return allowed;
}

Test(trace_bits, a_2000_row_trace_stores_its_mask_in_an_eighth) {
    enum { N = 2000 };
    char err[TEMPO_ERR_SIZE], path[256];
    Model m;
    load_real(&m, "stories260K.bin");
    int *sets = malloc(N * sizeof(int)), *tokens = calloc(N, sizeof(int));
    uint8_t *allowed = long_mask(N, sets);
    Trace t, back;
    cr_assert(tempo_trace_build(&t, &m, N, tokens, sets, sets, allowed, 1, NULL, NULL, NULL, err) == 0, "%s", err);
    scratch_path("bits-long.st", path, sizeof path);
    cr_assert(tempo_trace_write(&t, path, err) == 0, "%s", err);
    unsigned char *buf;
    Tensor *raw;
    int count;
    parse_raw(path, &buf, &raw, &count);
    const Tensor *bits = tempo_tensor_find(raw, count, "allowed_bits");
    cr_assert(bits, "no allowed_bits in a long trace");
    size_t bytes = tempo_tensor_bytes(bits), limit = (size_t)N * N / 8 + N;
    cr_assert(bytes <= limit, "allowed takes %zu bytes for %d rows; n*n/8 + n is %zu", bytes, N, limit);
    struct stat st;
    cr_assert(stat(path, &st) == 0 && (size_t)st.st_size <= limit + 3 * N * 4 + 4096,
              "the trace file is %lld bytes, more than its mask, three I32 rows and a header", (long long)st.st_size);
    cr_assert(tempo_trace_read(&back, path, err) == 0, "%s", err);
    cr_assert(memcmp(tempo_trace_get(&back, "allowed")->data, allowed, (size_t)N * N) == 0, "the long mask read back differs");
    unlink(path);
    free(raw);
    free(buf);
    free(sets);
    free(tokens);
    free(allowed);
    tempo_trace_free(&back);
    tempo_trace_free(&t);
    tempo_model_free(&m);
}

/* A trace with tokens, positions (4 rows) and one more tensor, written as given (allowed_bits is not repacked). */
static void write_with(const char *path, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data) {
    char err[TEMPO_ERR_SIZE];
    int rows[4] = {1, 2, 3, 4};
    int64_t four[1] = {4};
    Trace t;
    tempo_trace_init(&t);
    cr_assert(tempo_trace_add(&t, "tokens", DT_I32, 1, four, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "positions", DT_I32, 1, four, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, name, dtype, ndim, shape, data, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&t, path, err) == 0, "%s", err);
    tempo_trace_free(&t);
}

static void expect_refused(const char *path, const char *needle) {
    char err[TEMPO_ERR_SIZE], args[1024];
    Trace t;
    cr_assert(tempo_trace_read(&t, path, err) != 0, "a trace with %s was read", needle);
    cr_assert(strstr(err, needle) != NULL, "the message lacks \"%s\": %s", needle, err);
    snprintf(args, sizeof args, "verify -m %s/stories260K.bin %s", WEIGHTS_DIR, path);
    expect_error(args, 2, needle, NULL); /* verify: 2 for bad input, 1 for a mismatch */
}

/* A 4-row trace storing its mask as a rule: sets, pruned (NULL: none), mask_kinds, n_prompt (NULL: none). */
static void write_rule(const char *path, const int *sets, int n_sets, const int *pruned, const char *form, const char *kinds,
                       const char *n_prompt) {
    char err[TEMPO_ERR_SIZE];
    int rows[4] = {1, 2, 3, 4};
    int64_t four[1] = {4}, count[1] = {n_sets};
    Trace t;
    tempo_trace_init(&t);
    cr_assert(tempo_trace_add(&t, "tokens", DT_I32, 1, four, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "positions", DT_I32, 1, four, rows, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "sets", DT_I32, 1, count, sets, err) == 0, "%s", err);
    cr_assert(!pruned || tempo_trace_add(&t, "pruned", DT_I32, 1, four, pruned, err) == 0, "%s", err);
    cr_assert(tempo_trace_meta(&t, "mask", form, err) == 0 && tempo_trace_meta(&t, "mask_kinds", kinds, err) == 0, "%s", err);
    cr_assert(!n_prompt || tempo_trace_meta(&t, "n_prompt", n_prompt, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&t, path, err) == 0, "%s", err);
    tempo_trace_free(&t);
}

/* The trace reads; its inputs are refused with `needle`, by the library and by verify (exit 2). */
static void expect_rule_refused(const char *path, const char *needle) {
    char err[TEMPO_ERR_SIZE], args[1024], model[4096];
    Model m;
    Trace t;
    int n, layers;
    weights_path("stories260K.bin", model, sizeof model);
    load_model(&m, model);
    cr_assert(tempo_trace_read(&t, path, err) == 0, "%s", err);
    cr_assert(tempo_trace_inputs(&t, &m.config, &n, &layers, err) != 0, "a rule with %s was taken", needle);
    cr_assert(strstr(err, needle) != NULL, "the message lacks \"%s\": %s", needle, err);
    tempo_trace_free(&t);
    tempo_model_free(&m);
    snprintf(args, sizeof args, "verify -m %s/stories260K.bin %s", WEIGHTS_DIR, path);
    expect_error(args, 2, needle, NULL);
}

Test(trace_rule, malformed_rules_are_refused_with_one_line) {
    char path[256];
    scratch_path("rule-bad.st", path, sizeof path);
    int sets[4] = {0, 1, 2, 2}, none[4] = {-1, -1, -1, -1}, late[4] = {-1, -1, 1, -1}, prompt[4] = {0, -1, -1, -1};
    int early[4] = {-1, -1, 0, -1};
    write_rule(path, sets, 3, none, "rule", "isolated", "2");
    expect_rule_refused(path, "sets must be I32[4]");
    write_rule(path, sets, 4, late, "rule", "isolated", "2"); /* the last step is 0: no step 1 to prune at */
    expect_rule_refused(path, "trace pruned[2] is 1");
    write_rule(path, sets, 4, early, "rule", "isolated", "2"); /* pruned by its own step */
    expect_rule_refused(path, "trace pruned[2] is 0");
    write_rule(path, sets, 4, prompt, "rule", "isolated", "2"); /* a prompt row is never pruned */
    expect_rule_refused(path, "trace pruned[0] is 0");
    write_rule(path, sets, 4, late, "rule", "isolated", NULL);
    expect_rule_refused(path, "pruned rows but no n_prompt");
    write_rule(path, sets, 4, none, "rule", "sideways", "2");
    expect_rule_refused(path, "must be causal, isolated or visible");
    write_rule(path, sets, 4, none, "rule", "isolated,visible", "2");
    expect_rule_refused(path, "names 2 kinds");
    write_rule(path, sets, 4, none, "sketch", "isolated", "2");
    expect_rule_refused(path, "trace metadata mask is 'sketch'");
    write_rule(path, sets, 4, none, "rule", "isolated", NULL); /* nothing pruned: n_prompt is not needed */
    char err[TEMPO_ERR_SIZE], model[4096];
    Model m;
    Trace t;
    int n, layers;
    weights_path("stories260K.bin", model, sizeof model);
    load_model(&m, model);
    cr_assert(tempo_trace_read(&t, path, err) == 0 && tempo_trace_inputs(&t, &m.config, &n, &layers, err) == 0, "%s", err);
    cr_assert(n == 4 && layers == 1, "a well-formed rule of 4 rows, one kind");
    tempo_trace_free(&t);
    tempo_model_free(&m);
    int64_t four[1] = {4};
    write_with(path, "sets", DT_I32, 1, four, sets); /* no mask in any form */
    expect_rule_refused(path, "trace lacks allowed (or allowed_bits, or the mask as a rule)");
    unlink(path);
}

Test(trace_bits, malformed_bits_are_refused_with_one_line) {
    char path[256];
    scratch_path("bits-bad.st", path, sizeof path);
    uint8_t causal[4] = {0x1, 0x3, 0x7, 0xf}, wide[8] = {0};
    int64_t rows_1[2] = {4, 1}, rows_2[2] = {4, 2}, flat[1] = {4};
    write_with(path, "allowed_bits", DT_U8, 2, rows_2, wide); /* 2 bytes a row: 4 keys need 1 */
    expect_refused(path, "allowed_bits has 2 bytes per row; 4 keys need 1");
    uint8_t padded[4] = {0x1, 0x3, 0x17, 0xf}; /* row 2 sets bit 4: key 4 of 4 */
    write_with(path, "allowed_bits", DT_U8, 2, rows_1, padded);
    expect_refused(path, "row 2 sets bits past key 3");
    write_with(path, "allowed_bits", DT_U8, 1, flat, causal);
    expect_refused(path, "allowed_bits must be U8[n,(n+7)/8]");
    int32_t as_int[4] = {1, 3, 7, 15};
    write_with(path, "allowed_bits", DT_I32, 2, rows_1, as_int);
    expect_refused(path, "allowed_bits must be U8[n,(n+7)/8]");
    unlink(path);
}

Test(trace_bits, a_trace_with_both_forms_is_refused) {
    char path[256], err[TEMPO_ERR_SIZE];
    scratch_path("bits-both.st", path, sizeof path);
    uint8_t dense[16] = {1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1}, bits[4] = {0x1, 0x3, 0x7, 0xf};
    int64_t square[2] = {4, 4}, packed[2] = {4, 1};
    Trace t;
    tempo_trace_init(&t);
    cr_assert(tempo_trace_add(&t, "allowed_bits", DT_U8, 2, packed, bits, err) == 0, "%s", err);
    cr_assert(tempo_trace_add(&t, "allowed", DT_U8, 2, square, dense, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&t, path, err) == 0, "%s", err); /* both kept as given: no name twice */
    tempo_trace_free(&t);
    expect_refused(path, "holds both allowed and allowed_bits");
    unlink(path);
}

Test(trace_bits, dense_traces_still_read) {
    char path[256], err[TEMPO_ERR_SIZE];
    scratch_path("dense.st", path, sizeof path);
    /* another engine's trace: dense U8 written without tempo's writer */
    int rows[4] = {1, 2, 3, 4};
    uint8_t dense[16] = {1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1};
    Tensor t[3] = {{"tokens", DT_I32, 1, {4}, rows}, {"positions", DT_I32, 1, {4}, rows}, {"allowed", DT_U8, 2, {4, 4}, dense}};
    FILE *f = fopen(path, "wb");
    cr_assert(f && tempo_safetensors_write_header(f, t, 3, NULL));
    cr_assert(fwrite(rows, 4, 4, f) == 4 && fwrite(rows, 4, 4, f) == 4 && fwrite(dense, 1, 16, f) == 16);
    fclose(f);
    Trace back;
    cr_assert(tempo_trace_read(&back, path, err) == 0, "%s", err);
    const Tensor *al = tempo_trace_get(&back, "allowed");
    cr_assert(al && al->ndim == 2 && al->shape[0] == 4 && al->shape[1] == 4 && memcmp(al->data, dense, 16) == 0,
              "a dense allowed read back differs");
    tempo_trace_free(&back);
    /* values other than 0 and 1 cannot be bits: tempo writes them dense, and reads them back as they were */
    dense[5] = 255;
    t[2].data = dense;
    Trace irregular;
    tempo_trace_init(&irregular);
    for (int i = 0; i < 3; i++)
        cr_assert(tempo_trace_add(&irregular, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, t[i].data, err) == 0, "%s", err);
    cr_assert(tempo_trace_write(&irregular, path, err) == 0, "%s", err);
    cr_assert(tempo_trace_read(&back, path, err) == 0, "%s", err);
    cr_assert(memcmp(tempo_trace_get(&back, "allowed")->data, dense, 16) == 0, "an irregular allowed read back differs");
    tempo_trace_free(&back);
    tempo_trace_free(&irregular);
    unlink(path);
}

/* ---- attention kept by request (GenConfig.attention_keep) ---- */

/* fortune.bin on "The cat sat on the" (threshold 0.05, 24 steps, pruning as
 * asked), keeping `keep` (NULL: every layer, head and row). */
static void keep_run(const Model *m, const Tokenizer *t, const AttentionKeep *keep, int prune, Generation *gen) {
    char err[TEMPO_ERR_SIZE];
    GenConfig g;
    tempo_gen_defaults(&g, &m->config);
    g.threshold = 0.05f, g.max_steps = 24, g.prune = prune, g.prune_threshold = 0.9f;
    g.capture_attention = 1, g.attention_keep = keep;
    int ids[64], n;
    cr_assert(tempo_encode(t, "The cat sat on the", ids, 64, &n, err) == 0, "%s", err);
    cr_assert(tempo_generate(m, ids, n, &g, gen, err) == 0, "%s", err);
}

/* The kept attention of `part` equals the slice of `full`'s dense
 * [L][H][n][n] at the kept layers, heads and row numbers, bitwise, in the
 * lists' order; the trace written from it holds exactly those, with the
 * indices (rows cut to those the run reached). */
static void expect_slice(const Model *m, const Generation *full, const float *dense, const Generation *part,
                         const AttentionKeep *asked, const char *what) {
    const Config *c = &m->config;
    char err[TEMPO_ERR_SIZE];
    int n = full->n_rows, L = c->n_layers, H = c->n_heads;
    cr_assert(part->n_rows == n && memcmp(part->tokens, full->tokens, (size_t)n * sizeof(int)) == 0,
              "%s: the run itself changed with what it keeps", what);
    AttentionKeep kept;
    float *att = tempo_generation_attention(part, c, &kept);
    int KL = kept.layers ? kept.n_layers : L, KH = kept.heads ? kept.n_heads : H, KR = kept.rows ? kept.n_rows : n;
    int reached = 0;
    for (int j = 0; asked->rows && j < asked->n_rows; j++) reached += asked->rows[j] < n;
    cr_assert(att && (!asked->rows || KR == reached), "%s: %d kept rows, the run reached %d", what, KR, reached);
    for (int a = 0; a < KL; a++)
        for (int b = 0; b < KH; b++)
            for (int r = 0; r < KR; r++) {
                int l = kept.layers ? kept.layers[a] : a, h = kept.heads ? kept.heads[b] : b, q = kept.rows ? kept.rows[r] : r;
                const float *want = dense + (((size_t)l * H + h) * n + q) * n;
                cr_assert(memcmp(att + (((size_t)a * KH + b) * KR + r) * n, want, (size_t)n * sizeof(float)) == 0,
                          "%s: kept slot [%d,%d,%d] is not layer %d head %d row %d of the full capture", what, a, b, r, l, h, q);
            }
    Trace tr;
    cr_assert(tempo_generation_trace(part, m, TRACE_MASK_BITS, &tr, err) == 0, "%s", err);
    const Tensor *t = tempo_trace_get(&tr, "attention");
    cr_assert(t && t->shape[0] == KL && t->shape[1] == KH && t->shape[2] == KR && t->shape[3] == n, "%s: trace shape", what);
    cr_assert(memcmp(t->data, att, (size_t)KL * KH * KR * n * sizeof(float)) == 0, "%s: the trace holds other values", what);
    const char *names[3] = {"attention_layers", "attention_heads", "attention_rows"};
    const int *lists[3] = {kept.layers, kept.heads, kept.rows}, counts[3] = {KL, KH, KR};
    for (int i = 0; i < 3; i++) {
        const Tensor *x = tempo_trace_get(&tr, names[i]);
        cr_assert(!lists[i] == !x, "%s: %s %s", what, names[i], lists[i] ? "missing" : "written for a full list");
        cr_assert(!x || (x->shape[0] == counts[i] && memcmp(x->data, lists[i], (size_t)counts[i] * sizeof(int)) == 0),
                  "%s: %s holds other indices", what, names[i]);
    }
    tempo_trace_free(&tr);
    free(att);
}

/* Rows kept in a partial run, ascending: a prompt row, members of parallel
 * sets (whose row number is not their position) and one past the run's end. */
static int chosen_rows(const Generation *full, int *rows) {
    int count = 0, moved = 0;
    rows[count++] = 2;
    for (int q = full->n_prompt + 1; q < full->n_rows; q += 3) rows[count++] = q, moved += full->positions[q] != q;
    rows[count++] = full->n_rows + 5;
    cr_assert(moved > 0, "no kept row sits at another position than its number: a mix-up could not show");
    return count;
}

Test(trace_attention, a_generation_keeps_exactly_the_asked_slice_bitwise) {
    char model[4096], tok[4096];
    fortune_paths(model, tok);
    Model m;
    Tokenizer t;
    load_model(&m, model);
    load_tokenizer(&t, "fortune-tok512.bin", m.config.vocab_size);
    cr_assert(m.config.n_layers >= 3 && m.config.n_heads >= 4, "the model needs 3 layers and 4 heads for these lists");
    for (int prune = 0; prune < 2; prune++) {
        Generation full, part;
        keep_run(&m, &t, NULL, prune, &full);
        float *dense = tempo_generation_attention(&full, &m.config, NULL);
        cr_assert(dense && full.n_steps > 4 && full.n_rows > full.n_prompt + 6, "the full run is too short");
        int one[1] = {1}, zero[1] = {0}, layers[2] = {0, 2}, heads[2] = {1, 3}, rows[64];
        int n_rows = chosen_rows(&full, rows);
        AttentionKeep cases[3] = {{.layers = one, .n_layers = 1, .heads = zero, .n_heads = 1},
                                  {.layers = layers, .n_layers = 2, .heads = heads, .n_heads = 2, .rows = rows, .n_rows = n_rows},
                                  {.rows = rows + 1, .n_rows = n_rows - 1}};
        const char *names[3] = {"layer 1 head 0", "layers 0,2 heads 1,3 some rows", "every layer and head, some rows"};
        for (int i = 0; i < 3; i++) {
            keep_run(&m, &t, &cases[i], prune, &part);
            expect_slice(&m, &full, dense, &part, &cases[i], names[i]);
            tempo_generation_free(&part);
        }
        free(dense);
        tempo_generation_free(&full);
    }
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

/* Runs `tempo ARGS` and returns its stdout and stderr (static buffer); asserts the exit status. */
static const char *tempo_says(const char *args, int status) {
    static char cmd[16384], out[65536];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc = run_command_capture(cmd, out, sizeof out, 1);
    cr_assert_eq(rc, status, "`%s` exited %d:\n%s", cmd, rc, out);
    return out;
}

/* generate --trace-mask rule on a pruned run with a mask per layer: the
 * trace is the same file run to run, verify passes recomputing under the
 * rule, audit checks the rule's cells, diff finds it equal to the bits
 * form cell by cell, attention draws from it; bad values are refused. */
Test(trace_rule, a_rule_trace_is_reproducible_and_every_reader_takes_it) {
    char model[4096], tok[4096], args[16384], name[64], rule[3][256], bits[256];
    fortune_paths(model, tok);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "rule-cli-%d.st", i);
        scratch_path(name, rule[i], sizeof rule[i]);
    }
    scratch_path("rule-cli-bits.st", bits, sizeof bits);
    const char *run = "generate -m %s -z %s -p 'A fool and his money' --threshold 0.05 -n 40 --prune attention "
                      "--isolate-layers 1-2 --quiet --trace %s %s";
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, run, model, tok, rule[i], "--trace-mask rule");
        tempo_says(args, 0);
    }
    snprintf(args, sizeof args, run, model, tok, bits, "--trace-mask bits");
    tempo_says(args, 0);
    size_t len_a, len_b;
    char *a = read_text_file(rule[0], &len_a), *b = read_text_file(rule[1], &len_b);
    cr_assert(len_a == len_b && memcmp(a, b, len_a) == 0, "two runs wrote different rule traces");
    free(a);
    free(b);
    snprintf(args, sizeof args, "verify -m %s %s", model, rule[0]);
    cr_assert(strstr(tempo_says(args, 0), "PASS"), "verify of a rule trace");
    snprintf(args, sizeof args, "audit -m %s %s", model, rule[0]);
    const char *audit = tempo_says(args, 0);
    /* the rule's cells (rule_cells), checked per layer like a stored mask */
    cr_assert(strstr(audit, "check mask       0 findings (isolated, per layer)") && strstr(audit, "CLEAN: 0 findings"), "%s", audit);
    snprintf(args, sizeof args, "audit -m %s %s --mode visible", model, rule[0]);
    cr_assert(strstr(tempo_says(args, 1), "hidden-non-sibling: "), "audit must find the cells of a rule that disagrees with the claimed settings");
    snprintf(args, sizeof args, "diff %s %s", rule[0], bits);
    const char *diff = tempo_says(args, 0);
    cr_assert(strstr(diff, "allowed    ok   max abs 0.000e+00") && strstr(diff, "SAME"), "%s", diff);
    snprintf(args, sizeof args, "attention %s --heatmap 1:0 --rows 12-20", rule[0]);
    tempo_says(args, 0);
    snprintf(args, sizeof args, run, model, tok, rule[2], "--trace-mask sketch");
    cr_assert(strstr(tempo_says(args, 1), "--trace-mask must be bits or rule, got 'sketch'"), "a bad --trace-mask");
    snprintf(args, sizeof args, "generate -m %s -z %s -p hi -n 2 --trace-mask rule", model, tok);
    cr_assert(strstr(tempo_says(args, 1), "give --trace too"), "--trace-mask without --trace");
    for (int i = 0; i < 3; i++) unlink(rule[i]);
    unlink(bits);
}

/* `src`'s bytes with the last row's position set to `value`, written to `dst`; returns that row. */
static int write_last_position(const char *src, const char *dst, int32_t value) {
    size_t len;
    char *bytes = read_text_file(src, &len);
    unsigned char *buf;
    Tensor *t;
    int count;
    parse_raw(src, &buf, &t, &count);
    const Tensor *pos = tempo_tensor_find(t, count, "positions");
    cr_assert(pos && pos->dtype == DT_I32 && pos->ndim == 1 && pos->shape[0] > 1, "%s has no positions I32[n]", src);
    int row = (int)pos->shape[0] - 1;
    memcpy(bytes + ((unsigned char *)pos->data - buf) + 4 * (size_t)row, &value, 4);
    FILE *f = fopen(dst, "wb");
    cr_assert(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0, "cannot write %s", dst);
    free(t);
    free(buf);
    free(bytes);
    return row;
}

/* A trace's positions are range-checked where it is read (tempo_trace_parse), with or without a
 * model: negative, or at or past 2^29 (no run reaches it; below it the readers' position arithmetic
 * fits an int: under tests-asan, build/tempo-asan's UBSan stops on an overflow), each refused with
 * one line naming the row and the value, by attention (no model), audit, diff and the library. A
 * run's own trace reads, and so does one whose --position-gap puts positions past its rows. */
Test(trace_positions, out_of_range_positions_are_refused_where_a_trace_is_read) {
    char model[4096], tok[4096], run[256], bad[256], gap[256], args[16384], needle[256], err[TEMPO_ERR_SIZE];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("positions-run.st", run, sizeof run);
    scratch_path("positions-bad.st", bad, sizeof bad);
    scratch_path("positions-gap.st", gap, sizeof gap);
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'Once upon a time' -n 4 --quiet --trace %s", model, tok, run);
    tempo_says(args, 0);
    struct { int32_t value; const char *command; int status; } cases[] = {
        {INT32_MAX, "attention %s", 1}, {INT32_MIN, "audit -m %s %s", 2}, {-1, "attention %s", 1},
        {1 << 29, "diff %s %s", 2}, {(1 << 29) - 1, "attention %s", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int row = write_last_position(run, bad, cases[i].value);
        int with_model = strncmp(cases[i].command, "audit", 5) == 0;
        snprintf(args, sizeof args, cases[i].command, with_model ? model : bad, bad);
        if (cases[i].status == 0) {
            tempo_says(args, 0);
            continue;
        }
        snprintf(needle, sizeof needle, "logical position %d at row %d is out of range [0, 536870912) (no run reaches 2^29)",
                 (int)cases[i].value, row);
        expect_error(args, cases[i].status, needle, NULL);
        Trace t;
        cr_expect(tempo_trace_read(&t, bad, err) != 0 && strstr(err, needle), "tempo_trace_read: %s", err);
    }
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'Once upon a time' -n 4 --quiet --position-gap 400 --trace %s", model,
             tok, gap);
    tempo_says(args, 0);
    Trace t;
    cr_assert(tempo_trace_read(&t, gap, err) == 0, "%s", err);
    const Tensor *pos = tempo_trace_get(&t, "positions");
    cr_assert(pos && ((const int *)pos->data)[pos->shape[0] - 1] >= 400, "the gap puts the last position past 400");
    tempo_trace_free(&t);
    snprintf(args, sizeof args, "attention %s", gap);
    tempo_says(args, 0);
    snprintf(args, sizeof args, "verify -m %s %s", model, gap);
    cr_assert(strstr(tempo_says(args, 0), "PASS"), "verify of a --position-gap trace");
}

/* diff compares two masks stored as rules by their cells: the same run's rule with its kinds turned
 * visible is DIFFERENT (two rules over the same sets were SAME whatever their kinds), itself SAME. */
Test(trace_rule, diff_compares_two_rules_by_their_cells) {
    char model[4096], tok[4096], rule[4096], visible[4096], args[9000], err[TEMPO_ERR_SIZE];
    fortune_paths(model, tok);
    scratch_path("diff-rule.st", rule, sizeof rule);
    scratch_path("diff-rule-visible.st", visible, sizeof visible);
    snprintf(args, sizeof args, "generate -m %s -z %s -p 'A fool and his money' --threshold 0.05 -n 12 --quiet --trace-mask rule "
             "--trace %s", model, tok, rule);
    tempo_says(args, 0);
    Trace t;
    cr_assert(tempo_trace_read(&t, rule, err) == 0, "%s", err);
    cr_assert(tempo_trace_meta(&t, "mask_kinds", "visible", err) == 0 && tempo_trace_write(&t, visible, err) == 0, "%s", err);
    tempo_trace_free(&t);
    snprintf(args, sizeof args, "diff %s %s", rule, visible);
    cr_assert(strstr(tempo_says(args, 1), "DIFFERENT"), "two rules of other kinds over the same sets");
    snprintf(args, sizeof args, "diff %s %s", rule, rule);
    cr_assert(strstr(tempo_says(args, 0), "SAME"), "a rule trace against itself");
}
