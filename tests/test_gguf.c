/* GGUF: the block dequantizers on hand-built blocks whose values are worked
 * out here from the documented layouts; the strict reader on valid and
 * broken files; models, RoPE factors and tokenizers from GGUF files; the
 * quantized path against an f32 copy; stories260K converted to GGUF. */
#include "helpers.h"

#include <ctype.h>

#include "../formats/gguf.h"
#include "../tools/synth_gguf.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

Test(quant, block_sizes_match_ggml) {
    const int values[8] = {1, 1, 1, 32, 32, 256, 256, 256};
    const size_t bytes[8] = {4, 2, 2, 34, 18, 144, 176, 210};
    for (int t = 0; t < 8; t++) {
        cr_expect_eq(tempo_block_values((WeightType)t), values[t], "type %d", t);
        cr_expect_eq(tempo_block_bytes((WeightType)t), bytes[t], "type %d", t);
    }
    cr_expect_eq(tempo_row_bytes(WEIGHT_Q4_K, 512), 288);
}

Test(quant, half_and_bfloat_convert_exactly) {
    cr_expect_eq(tempo_f16_to_f32(0x3C00), 1.0f);
    cr_expect_eq(tempo_f16_to_f32(0xC000), -2.0f);
    cr_expect_eq(tempo_f16_to_f32(0x0001), ldexpf(1.0f, -24));
    cr_expect_eq(tempo_f16_to_f32(0x7BFF), 65504.0f);
    cr_expect(isinf(tempo_f16_to_f32(0x7C00)));
    cr_expect_eq(tempo_bf16_to_f32(0x3F80), 1.0f);
    for (uint32_t h = 0; h < 65536; h++) { /* every non-NaN half survives float and back */
        float v = tempo_f16_to_f32((uint16_t)h);
        if (!isnan(v)) cr_assert_eq(tempo_f32_to_f16(v), h, "half 0x%04x -> %g -> 0x%04x", h, v, tempo_f32_to_f16(v));
    }
    cr_expect_eq(tempo_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3C00, "a tie rounds to even");
}

Test(quant, q8_0_and_q4_0) {
    uint8_t q8[34], q4[18];
    float y[32];
    put16(q8, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j - 16);
    tempo_dequantize(WEIGHT_Q8_0, q8, 32, y);
    for (int j = 0; j < 32; j++) cr_expect_eq(y[j], (j - 16) * 0.5f, "q8_0 value %d", j);
    put16(q4, 0x4000); /* d = 2 */
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(j | (15 - j) << 4);
    tempo_dequantize(WEIGHT_Q4_0, q4, 32, y);
    for (int j = 0; j < 16; j++) {
        cr_expect_eq(y[j], (j - 8) * 2.0f, "q4_0 value %d (low nibble)", j);
        cr_expect_eq(y[16 + j], (7 - j) * 2.0f, "q4_0 value %d (high nibble)", 16 + j);
    }
}

/* Scales sc_j = 10 + 7j and mins m_j = 3 + 8j (6 bits each) packed as ggml's K_SCALE_SIZE = 12 bytes. */
static void pack_k4_scales(uint8_t s[12], int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) sc[j] = 10 + 7 * j, mn[j] = 3 + 8 * j;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

/* Q4_K, and Q5_K (with_high): d = 1, dmin = 0.5; qs byte l of pair i holds
 * l%16 (sub-block 2i) and 15 - l%16 (sub-block 2i+1); Q5_K adds 16 where
 * bit 2i (l odd) or 2i+1 (l%4 == 0) of qh[l] is set. */
static void check_k4(WeightType t) {
    int five = t == WEIGHT_Q5_K, sc[8], mn[8];
    uint8_t b[176] = {0};
    float y[256];
    put16(b, 0x3C00), put16(b + 2, 0x3800);
    pack_k4_scales(b + 4, sc, mn);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) {
            qs[32 * i + l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
            if (five) qh[l] |= (uint8_t)((l % 2 ? 1 : 0) << (2 * i) | (l % 4 == 0 ? 2 : 0) << (2 * i));
        }
    tempo_dequantize(t, b, 256, y);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) {
            int q_lo = l % 16 + (five && l % 2 ? 16 : 0), q_hi = 15 - l % 16 + (five && l % 4 == 0 ? 16 : 0);
            cr_expect_eq(y[64 * i + l], (float)(sc[2 * i] * q_lo) - 0.5f * mn[2 * i], "%s value %d", tempo_weight_type_name(t), 64 * i + l);
            cr_expect_eq(y[64 * i + 32 + l], (float)(sc[2 * i + 1] * q_hi) - 0.5f * mn[2 * i + 1], "%s value %d",
                         tempo_weight_type_name(t), 64 * i + 32 + l);
        }
}

Test(quant, q4_k_six_bit_scales_and_mins) { check_k4(WEIGHT_Q4_K); }
Test(quant, q5_k_fifth_bit) { check_k4(WEIGHT_Q5_K); }

/* Q6_K: value v has q = v % 64 and scale sc[v/16] = ±3(k+1); d = 0.25; y = d sc (q - 32). */
Test(quant, q6_k_signed_scales) {
    uint8_t b[210] = {0};
    float y[256];
    int8_t *sc = (int8_t *)(b + 192);
    for (int k = 0; k < 16; k++) sc[k] = (int8_t)((k % 2 ? -3 : 3) * (k + 1));
    put16(b + 208, 0x3400);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            int q[4];
            for (int k = 0; k < 4; k++) q[k] = (128 * h + 32 * k + l) % 64;
            b[64 * h + l] = (uint8_t)((q[0] & 15) | (q[2] & 15) << 4);
            b[64 * h + l + 32] = (uint8_t)((q[1] & 15) | (q[3] & 15) << 4);
            b[128 + 32 * h + l] = (uint8_t)(q[0] >> 4 | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
        }
    tempo_dequantize(WEIGHT_Q6_K, b, 256, y);
    for (int v = 0; v < 256; v++) cr_expect_eq(y[v], 0.25f * sc[v / 16] * (float)(v % 64 - 32), "q6_k value %d", v);
}

/* ---- the reader ---- */

/* A small valid file: a few keys, an F32 vector and a [2][32] Q8_0 matrix. `patch` may alter the writer's buffers first. */
static uint8_t *small_file(size_t *len, void (*patch)(GgufWriter *)) {
    GgufWriter w;
    char err[TEMPO_ERR_SIZE];
    uint8_t q8[68] = {0}, *out;
    float v[32] = {0};
    tempo_gguf_writer_init(&w, 32);
    tempo_gguf_put_string(&w, "general.architecture", "llama");
    tempo_gguf_put_u32(&w, "llama.block_count", 1);
    tempo_gguf_put_bool(&w, "x.flag", 1);
    tempo_gguf_put_tensor(&w, "a.weight", WEIGHT_F32, 0, 32, v);
    tempo_gguf_put_tensor(&w, "b.weight", WEIGHT_Q8_0, 2, 32, q8);
    if (patch) patch(&w);
    cr_assert_eq(tempo_gguf_finish(&w, &out, len, err), 0, "%s", err);
    tempo_gguf_writer_free(&w);
    return out;
}

static void expect_parse_error(void (*patch)(GgufWriter *), const char *needle) {
    size_t len;
    uint8_t *buf = small_file(&len, patch);
    GgufFile g;
    char err[TEMPO_ERR_SIZE] = "";
    cr_expect_neq(tempo_gguf_parse(&g, buf, len, "t.gguf", err), 0, "a broken file parsed (expected: %s)", needle);
    cr_expect(strstr(err, needle) != NULL, "error \"%s\" does not name \"%s\"", err, needle);
    free(buf);
}

/* The small file, parsed; the caller frees *buf and g. */
static uint8_t *parse_small_file(GgufFile *g, size_t *len) {
    char err[TEMPO_ERR_SIZE];
    uint8_t *buf = small_file(len, NULL);
    cr_assert_eq(tempo_gguf_parse(g, buf, *len, "t.gguf", err), 0, "%s", err);
    return buf;
}

Test(gguf_reader, valid_file_reads) {
    size_t len;
    GgufFile g;
    char err[TEMPO_ERR_SIZE];
    uint8_t *buf = parse_small_file(&g, &len);
    const GgufTensor *b = tempo_gguf_tensor(&g, "b.weight");
    cr_assert(b && b->type == WEIGHT_Q8_0 && b->ne[0] == 32 && b->ne[1] == 2 && b->bytes == 68);
    cr_expect_eq(b->offset % 32, 0, "tensor data aligned in the file");
    uint64_t blocks;
    cr_expect_eq(tempo_gguf_uint(&g, "llama.block_count", 1, 0, &blocks, err), 0);
    cr_expect_eq(blocks, 1);
    cr_expect_neq(tempo_gguf_uint(&g, "general.architecture", 1, 0, &blocks, err), 0, "a string is not an integer");
    tempo_gguf_free(&g);
    free(buf);
}

/* Every cut short before the end of the last tensor's data fails with a message. */
Test(gguf_reader, every_truncation_is_an_error) {
    size_t len;
    GgufFile g;
    char err[TEMPO_ERR_SIZE];
    uint8_t *buf = parse_small_file(&g, &len);
    size_t end = tempo_gguf_tensor(&g, "b.weight")->offset + 68;
    tempo_gguf_free(&g);
    for (size_t cut = 0; cut < end; cut++) {
        uint8_t *copy = malloc(cut + 1);
        memcpy(copy, buf, cut);
        err[0] = '\0';
        cr_assert_neq(tempo_gguf_parse(&g, copy, cut, "t.gguf", err), 0, "a file cut to %zu bytes parsed", cut);
        cr_assert(err[0] != '\0', "no message for a file cut to %zu bytes", cut);
        free(copy);
    }
    free(buf);
}

static void bool_two(GgufWriter *w) { w->meta[w->meta_len - 1] = 2; }
static void unknown_value_type(GgufWriter *w) { w->meta[w->meta_len - 5] = 77; }
static void duplicate_key(GgufWriter *w) { tempo_gguf_put_u32(w, "llama.block_count", 2); }
static void odd_alignment(GgufWriter *w) { tempo_gguf_put_u32(w, "general.alignment", 12); }
static void string_past_end(GgufWriter *w) { memset(w->meta + 8 + 20 + 4, 0x7f, 7); } /* the architecture's length */
static void last_type(GgufWriter *w, uint32_t t) { memcpy(w->infos + w->infos_len - 12, &t, 4); }
static void last_offset(GgufWriter *w, uint64_t o) { memcpy(w->infos + w->infos_len - 8, &o, 8); }
static void unknown_tensor_type(GgufWriter *w) { last_type(w, 99); }
static void mxfp4_tensor(GgufWriter *w) { last_type(w, 39); }
static void k_quant_misfit(GgufWriter *w) { last_type(w, 12); }
static void misaligned(GgufWriter *w) { last_offset(w, 40); }
static void overlapping(GgufWriter *w) { last_offset(w, 0); }
static void past_end(GgufWriter *w) { last_offset(w, 1 << 20); }
static void far_past_end(GgufWriter *w) { last_offset(w, 0xFFFFFF0000000000u); } /* no pointer may be formed from it (fuzz find) */
static void same_name(GgufWriter *w) { memcpy(w->infos + w->infos_len - 12 - 16 - 4 - 8, "a", 1); }

Test(gguf_reader, each_failure_is_named) {
    size_t len;
    uint8_t *buf = small_file(&len, NULL);
    GgufFile g;
    char err[TEMPO_ERR_SIZE];
    struct { size_t at; uint32_t value; const char *needle; } header[] = {
        {0, 0x46554747 ^ 1, "not a GGUF file"}, {4, 1, "version 1"}, {4, 0x03000000, "big-endian"}, {4, 4, "unsupported version 4"},
        {8, 0x7fffffff, "cannot fit"}};
    for (size_t i = 0; i < sizeof header / sizeof header[0]; i++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        memcpy(copy + header[i].at, &header[i].value, 4);
        cr_expect_neq(tempo_gguf_parse(&g, copy, len, "t.gguf", err), 0);
        cr_expect(strstr(err, header[i].needle), "error \"%s\" does not name \"%s\"", err, header[i].needle);
        free(copy);
    }
    free(buf);
    expect_parse_error(bool_two, "neither 0 nor 1");
    expect_parse_error(unknown_value_type, "unknown value type 77");
    expect_parse_error(duplicate_key, "llama.block_count appears twice");
    expect_parse_error(odd_alignment, "general.alignment 12");
    expect_parse_error(string_past_end, "claims");
    expect_parse_error(unknown_tensor_type, "type 99 is not one tempo reads");
    expect_parse_error(mxfp4_tensor, "tensor b.weight: type 39 (MXFP4) is not one tempo reads (F32, F16, Q4_0,");
    expect_parse_error(k_quant_misfit, "rows of 32 values do not fill Q4_K blocks of 256");
    expect_parse_error(misaligned, "not a multiple of general.alignment");
    expect_parse_error(overlapping, "overlaps");
    expect_parse_error(past_end, "runs past the end of the file");
    expect_parse_error(far_past_end, "runs past the end of the file");
    expect_parse_error(same_name, "name appears twice");
}

/* The error for a type tempo cannot read names the tensor and the type and
 * lists exactly the readable ones: each WeightType (the IQ grid types too), once. */
Test(gguf_reader, unreadable_type_lists_every_readable_one) {
    size_t len;
    uint8_t *buf = small_file(&len, mxfp4_tensor);
    GgufFile g;
    char err[TEMPO_ERR_SIZE] = "";
    cr_assert_neq(tempo_gguf_parse(&g, buf, len, "t.gguf", err), 0);
    cr_expect(strstr(err, "bad GGUF t.gguf: tensor b.weight: type 39 (MXFP4) is not one tempo reads (F32, "), "%s", err);
    cr_expect(err[strlen(err) - 1] == ')', "the list in \"%s\" is cut short", err);
    const char *list = strstr(err, "reads (");
    cr_assert(list, "no list in \"%s\"", err);
    int listed = 1;
    for (const char *p = list; *p; p++) listed += *p == ',';
    cr_expect_eq(listed, WEIGHT_N_TYPES, "\"%s\" lists %d types, tempo reads %d", err, listed, WEIGHT_N_TYPES);
    for (int t = 0; t < WEIGHT_N_TYPES; t++) { /* " NAME," or "(NAME," or " NAME)" */
        char name[16], *u = name;
        snprintf(name, sizeof name, "%s", tempo_weight_type_name((WeightType)t));
        for (; *u; u++) *u = (char)toupper((unsigned char)*u);
        int found = 0;
        for (const char *p = strstr(list, name); p && !found; p = strstr(p + 1, name))
            found = strchr(" (", p[-1]) && strchr(",)", p[strlen(name)]);
        cr_expect(found, "\"%s\" does not list %s", err, name);
    }
    free(buf);
}

/* Each WeightType's number in a GGUF file is ggml's (enum ggml_type in
 * ggml.h, written out here): a type read under its neighbour's number (Q1_0
 * 41 after NVFP4's 40, Q2_0 42) would dequantize other bytes. */
Test(gguf_reader, weight_types_have_ggml_numbers) {
    static const struct { WeightType t; uint32_t ggml; } numbers[] = {
        {WEIGHT_F32, 0},      {WEIGHT_F16, 1},      {WEIGHT_Q4_0, 2},     {WEIGHT_Q4_1, 3},    {WEIGHT_Q5_0, 6},
        {WEIGHT_Q5_1, 7},     {WEIGHT_Q8_0, 8},     {WEIGHT_Q2_K, 10},    {WEIGHT_Q3_K, 11},   {WEIGHT_Q4_K, 12},
        {WEIGHT_Q5_K, 13},    {WEIGHT_Q6_K, 14},    {WEIGHT_IQ2_XXS, 16}, {WEIGHT_IQ2_XS, 17}, {WEIGHT_IQ3_XXS, 18},
        {WEIGHT_IQ1_S, 19},   {WEIGHT_IQ4_NL, 20},  {WEIGHT_IQ3_S, 21},   {WEIGHT_IQ2_S, 22},  {WEIGHT_IQ4_XS, 23},
        {WEIGHT_IQ1_M, 29},   {WEIGHT_BF16, 30},    {WEIGHT_TQ1_0, 34},   {WEIGHT_TQ2_0, 35},  {WEIGHT_Q1_0, 41},
        {WEIGHT_Q2_0, 42}};
    cr_expect_eq(sizeof numbers / sizeof numbers[0], WEIGHT_N_TYPES, "a WeightType is missing from the table");
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        cr_expect_eq(tempo_gguf_ggml_type(numbers[i].t), numbers[i].ggml, "%s: ggml type %u, ggml.h says %u",
                     tempo_weight_type_name(numbers[i].t), tempo_gguf_ggml_type(numbers[i].t), numbers[i].ggml);
}

/* ---- models ---- */

Test(gguf_model, config_and_llama3_rope_factors) {
    Model m;
    load_synth(&m, "synth-gguf-q4_k.gguf");
    const Config *c = &m.config;
    cr_expect(c->dim == 256 && c->hidden_dim == 512 && c->n_layers == 2 && c->n_heads == 4 && c->n_kv_heads == 2);
    cr_expect(c->vocab_size == 384 && c->seq_len == 256 && !c->shared_classifier && c->rope_interleaved);
    cr_expect(c->norm_eps == 1e-5f && c->bos_token_id == 1 && c->n_eos == 1 && c->eos_token_ids[0] == 2);
    double want[512], plain[512];
    RopeScaling rs = {ROPE_LLAMA3, 8.0, 1.0, 4.0, 64};
    tempo_rope_inv_freq(&rs, c->head_dim, c->rope_theta, want);
    tempo_rope_inv_freq(NULL, c->head_dim, c->rope_theta, plain);
    int scaled = 0;
    for (int i = 0; i < c->head_dim / 2; i++) { /* factors are stored as float32 */
        cr_expect(fabs(m.rope_inv_freq[i] / want[i] - 1) < 1e-6, "inv_freq[%d] %g, llama3 formula %g", i, m.rope_inv_freq[i], want[i]);
        scaled += m.rope_inv_freq[i] < plain[i] * 0.99;
    }
    cr_expect(scaled > 0, "no frequency was scaled");
    tempo_model_free(&m);
}

/* The sha256 of n floats (little-endian bytes), through sha256sum. */
static void floats_sha256(const float *x, size_t n, char sha[65]) {
    char path[4096];
    FILE *f = fopen(scratch_path("gguf-floats", path, sizeof path), "wb");
    cr_assert(f && fwrite(x, sizeof *x, n, f) == n, "cannot write %s", path);
    fclose(f);
    file_sha256(path, sha);
    unlink(path);
}

/* Every tensor of every synthetic GGUF file, dequantized by tempo, is bitwise what the reference computes. */
Test(gguf_model, dequantized_tensors_equal_reference) {
    cJSON *golden = read_json_file(GOLDEN_DIR "/gguf-dequant.json");
    for (const cJSON *file = golden->child; file; file = file->next) {
        char path[4096], err[TEMPO_ERR_SIZE], sha[65];
        synth_path(file->string, path, sizeof path);
        file_sha256(path, sha);
        cr_assert_str_eq(sha, cJSON_GetObjectItem(file, "model_sha256")->valuestring, "%s changed since make golden", path);
        size_t len;
        unsigned char *buf;
        cr_assert_eq(tempo_read_file(path, "model", &buf, &len, err), 0, "%s", err);
        GgufFile g;
        cr_assert_eq(tempo_gguf_parse(&g, buf, len, path, err), 0, "%s", err);
        const cJSON *tensors = cJSON_GetObjectItem(file, "tensors");
        cr_assert_eq((uint64_t)cJSON_GetArraySize(tensors), g.n_tensors);
        for (const cJSON *t = tensors->child; t; t = t->next) {
            const GgufTensor *x = tempo_gguf_tensor(&g, t->string);
            cr_assert(x, "%s lacks %s", path, t->string);
            size_t n = (size_t)(x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3]);
            float *y = malloc(n * sizeof *y);
            tempo_dequantize(x->type, x->data, n, y);
            floats_sha256(y, n, sha);
            cr_expect_str_eq(sha, t->valuestring, "%s %s (%s) differs from the reference", file->string, t->string, tempo_weight_type_name(x->type));
            free(y);
        }
        tempo_gguf_free(&g);
        free(buf);
    }
    cJSON_Delete(golden);
}

/* Logits of a fixed 7-row isolated batch (two parallel sets). */
static float *batch_logits(const Model *m) {
    static const int tokens[7] = {1, 17, 99, 98, 5, 200, 31}, positions[7] = {0, 1, 2, 2, 3, 4, 4}, sets[7] = {0, 1, 2, 2, 3, 4, 4};
    uint8_t allowed[49];
    tempo_mask_rows(MASK_ISOLATED, sets, 0, 7, allowed);
    float *logits;
    full_forward(m, 7, tokens, positions, allowed, 1, &logits, NULL, NULL);
    return logits;
}

/* A GGUF file holding the same metadata with every tensor dequantized to F32 (written to `out`). */
static void write_f32_copy(const char *path, const char *out) {
    char err[TEMPO_ERR_SIZE];
    size_t len, flen;
    unsigned char *buf;
    uint8_t *file;
    cr_assert_eq(tempo_read_file(path, "model", &buf, &len, err), 0, "%s", err);
    GgufFile g;
    cr_assert_eq(tempo_gguf_parse(&g, buf, len, path, err), 0, "%s", err);
    GgufWriter w;
    tempo_gguf_writer_init(&w, (uint32_t)g.alignment);
    w.meta = malloc(g.infos_offset - 24);
    memcpy(w.meta, buf + 24, g.infos_offset - 24);
    w.meta_len = w.meta_cap = g.infos_offset - 24, w.n_kv = g.n_kv;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        float *y = malloc(t->ne[0] * t->ne[1] * sizeof *y);
        tempo_dequantize(t->type, t->data, t->ne[0] * t->ne[1], y);
        tempo_gguf_put_tensor(&w, name, WEIGHT_F32, t->n_dims == 2 ? t->ne[1] : 0, t->ne[0], y);
        free(y);
    }
    cr_assert_eq(tempo_gguf_finish(&w, &file, &flen, err), 0, "%s", err);
    FILE *f = fopen(out, "wb");
    cr_assert(f && fwrite(file, 1, flen, f) == flen && fclose(f) == 0, "cannot write %s", out);
    tempo_gguf_writer_free(&w);
    tempo_gguf_free(&g);
    free(file);
    free(buf);
}

/* tempo on a quantized file equals tempo on an f32 file holding its dequantized weights. */
static void check_against_f32_copy(const char *path) {
    char copy[4096];
    scratch_path("gguf-f32", copy, sizeof copy);
    write_f32_copy(path, copy);
    Model q, f;
    load_model(&q, path);
    load_model(&f, copy);
    float *a = batch_logits(&q), *b = batch_logits(&f);
    size_t at;
    double d = max_abs_diff(a, b, (size_t)7 * q.config.vocab_size, &at);
    cr_expect(d <= 1e-5, "%s: logits differ from its f32 copy by %.3g at %zu", path, d, at);
    free(a), free(b);
    tempo_model_free(&q), tempo_model_free(&f);
    unlink(copy);
}

Test(gguf_model, quantized_logits_equal_f32_copy) {
    const char *types[] = {"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "f16", "bf16"};
    for (int i = 0; i < 7; i++) {
        char file[64], path[4096];
        snprintf(file, sizeof file, "synth-gguf-%s.gguf", types[i]);
        check_against_f32_copy(synth_path(file, path, sizeof path));
    }
    char path[4096];
    check_against_f32_copy(synth_path("stories260K-q8_0.gguf", path, sizeof path));
}

/* stories260K copied tensor by tensor into GGUF computes what stories260K.bin computes. */
Test(gguf_model, stories260K_f32_gguf_equals_checkpoint) {
    Model g, b;
    load_synth(&g, "stories260K-f32.gguf");
    load_real(&b, "stories260K.bin");
    cr_assert(memcmp(&g.config, &b.config, sizeof g.config) == 0, "configs differ");
    float *x = batch_logits(&g), *y = batch_logits(&b);
    cr_expect(memcmp(x, y, (size_t)7 * g.config.vocab_size * sizeof(float)) == 0, "logits are not bitwise equal");
    free(x), free(y);
    tempo_model_free(&g), tempo_model_free(&b);
}

/* The generated text of a command (stdout). */
static void command_output(const char *cmd, char *out, size_t len) {
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
}

Test(gguf_model, stories260K_gguf_text_without_z_equals_tok512) {
    char model[4096], tok[4096], gguf[4096], q8[4096], cmd[16384], a[8192], b[8192], c[8192];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    synth_path("stories260K-f32.gguf", gguf, sizeof gguf);
    synth_path("stories260K-q8_0.gguf", q8, sizeof q8);
    const char *flags = "-p 'Once upon a time, Lily' -n 48 --threshold 0.1 2>/dev/null";
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s %s", TEMPO_BIN, model, tok, flags);
    command_output(cmd, a, sizeof a);
    snprintf(cmd, sizeof cmd, "%s generate -m %s %s", TEMPO_BIN, gguf, flags);
    command_output(cmd, b, sizeof b);
    cr_expect_str_eq(b, a, "text from the GGUF file and its own tokenizer differs from stories260K.bin with tok512.bin");
    snprintf(cmd, sizeof cmd, "%s generate -m %s %s", TEMPO_BIN, q8, flags);
    command_output(cmd, c, sizeof c);
    cr_expect(strlen(c) > 40, "the Q8_0 file generated no text");
}

/* ---- tokenizers ---- */

static const char *const texts[] = {"Once upon a time, Lily saw a big red ball.", "  two  spaces\tand a tab\n", "Über café 東京 🙂",
                                    "x", "The cat's mat -- isn't it? 1234567 3.14"};

static void expect_same_encoding(const Tokenizer *a, const Tokenizer *b, const char *what) {
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int x[256], y[256], nx, ny;
        char err[TEMPO_ERR_SIZE];
        cr_assert_eq(tempo_encode(a, texts[i], x, 256, &nx, err), 0, "%s", err);
        cr_assert_eq(tempo_encode(b, texts[i], y, 256, &ny, err), 0, "%s", err);
        cr_expect(nx == ny && memcmp(x, y, (size_t)nx * sizeof(int)) == 0, "%s: \"%s\" encodes differently", what, texts[i]);
        for (int k = 1; k < nx; k++) {
            char ba[2], bb[2];
            cr_expect_str_eq(tempo_decode(a, x[k - 1], x[k], ba), tempo_decode(b, x[k - 1], x[k], bb), "%s: token %d decodes differently", what, x[k]);
        }
    }
}

static void gguf_tokenizer(const char *file, Model *m, Tokenizer *t) {
    char err[TEMPO_ERR_SIZE];
    load_synth(m, file);
    cr_assert_eq(tempo_gguf_model_tokenizer(m, t, err), 0, "%s", err);
}

Test(gguf_tokenizer, sentencepiece_equals_tokenizer_bin) {
    Model m;
    Tokenizer g, b;
    gguf_tokenizer("stories260K-f32.gguf", &m, &g);
    load_tokenizer(&b, "tok512.bin", 512);
    cr_expect_eq(g.kind, TOKENIZER_SENTENCEPIECE);
    for (int i = 0; i < 512; i++)
        cr_expect(g.piece_len[i] == b.piece_len[i] && memcmp(g.pieces[i], b.pieces[i], (size_t)g.piece_len[i]) == 0 && g.scores[i] == b.scores[i],
                  "piece %d differs", i);
    expect_same_encoding(&g, &b, "stories260K GGUF");
    tempo_tokenizer_free(&g), tempo_tokenizer_free(&b);
    tempo_model_free(&m);
}

/* The byte-level BPE vocabularies of the GGUF files encode as the tokenizer.json synth trains with the same settings. */
static void check_bpe(const char *file, PreTokenizer pre) {
    Model m;
    Tokenizer g, j;
    char err[TEMPO_ERR_SIZE], path[4096];
    int bos, eos[2], n_eos;
    scratch_path("gguf-tok", path, sizeof path);
    gguf_tokenizer(file, &m, &g);
    SynthConfig s;
    tempo_synth_defaults(&s);
    s.vocab_size = m.config.vocab_size, s.pre_tokenizer = pre;
    cr_assert_eq(tempo_synth_tokenizer_json(&s, path, &bos, eos, &n_eos, err), 0, "%s", err);
    cr_assert_eq(tempo_tokenizer_load(&j, path, s.vocab_size, err), 0, "%s", err);
    cr_expect(g.kind == TOKENIZER_BYTE_LEVEL && g.pre_tokenizer == pre && g.n_merges == j.n_merges && g.n_prefix == j.n_prefix);
    cr_expect(m.config.bos_token_id == bos && m.config.n_eos == n_eos && m.config.eos_token_ids[0] == eos[0]);
    expect_same_encoding(&g, &j, file);
    tempo_tokenizer_free(&g), tempo_tokenizer_free(&j);
    tempo_model_free(&m);
    unlink(path);
}

Test(gguf_tokenizer, gpt2_bpe_equals_tokenizer_json) { check_bpe("synth-gguf-f16.gguf", PRETOKENIZE_GPT2); }
Test(gguf_tokenizer, llama3_bpe_equals_tokenizer_json) { check_bpe("synth-gguf-bf16.gguf", PRETOKENIZE_LLAMA3); }

Test(gguf_model, cut_file_gets_one_line) {
    char path[4096];
    synth_path("synth-gguf-f32.gguf", path, sizeof path);
    char cut[4096], cmd[8192], msg[4096];
    scratch_path("gguf-cut.gguf", cut, sizeof cut);
    snprintf(cmd, sizeof cmd, "%s check %s.missing", TEMPO_BIN, path);
    cr_expect_neq(run_command(cmd, msg, sizeof msg), 0);
    snprintf(cmd, sizeof cmd, "head -c 100 %s > %s && %s check %s", path, cut, TEMPO_BIN, cut);
    cr_expect_neq(run_command(cmd, msg, sizeof msg), 0);
    cr_expect(strstr(msg, "bad GGUF") && strstr(msg, "cannot fit in 100 bytes") && !strchr(strchr(msg, '\n') + 1, '\n'), "cut file: %s", msg);
    unlink(cut);
}
