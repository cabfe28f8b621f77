/* Hugging Face model directories: the same model in both layouts gives the
 * same logits, llama3 RoPE frequencies match transformers' formula as the
 * reference computes it, and malformed files give named errors. */
#include "helpers.h"

#include <sys/stat.h>

Test(hf, stories260K_hf_equals_llama2c_layout) {
    Model a, b;
    load_real(&a, "stories260K.bin");
    load_real(&b, "stories260K-hf");
    cr_assert_eq(b.config.rope_interleaved, 0, "HF layout pairs rotate-half");
    int tokens[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376}, pos[] = {0, 1, 2, 3, 4, 4, 5, 6, 6, 7}, n = 10;
    uint8_t allowed[100];
    tempo_mask_rows(MASK_ISOLATED, pos, 0, n, allowed);
    float *la, *lb, *aa, *ab;
    full_forward(&a, n, tokens, pos, allowed, 1, &la, &aa, NULL);
    full_forward(&b, n, tokens, pos, allowed, 1, &lb, &ab, NULL);
    size_t at, V = a.config.vocab_size;
    double d = max_abs_diff(la, lb, n * V, &at);
    cr_expect(d <= 1e-4, "logits differ by %.3e at row %zu", d, at / V);
    d = max_abs_diff(aa, ab, (size_t)a.config.n_layers * a.config.n_heads * n * n, &at);
    cr_expect(d <= 1e-5, "attention differs by %.3e", d);
    free(la); free(lb); free(aa); free(ab);
    tempo_model_free(&a);
    tempo_model_free(&b);
}

/* Llama-3.2-3B's RoPE: theta 500000, head_dim 128, llama3 scaling factor 32,
 * low 1, high 4, original 8192; values from oracle/reference.py. */
Test(hf, llama3_rope_inverse_frequencies) {
    cJSON *j = read_json_file(GOLDEN_DIR "/llama3-rope.json");
    RopeScaling rs = {ROPE_LLAMA3, 32.0, 1.0, 4.0, 8192};
    double freq[64];
    tempo_rope_inv_freq(&rs, 128, 500000.0, freq);
    const cJSON *ref = cJSON_GetObjectItem(j, "inv_freq");
    cr_assert_eq(cJSON_GetArraySize(ref), 64);
    int scaled = 0, blended = 0;
    for (int i = 0; i < 64; i++) {
        double r = cJSON_GetArrayItem(ref, i)->valuedouble, plain = pow(500000.0, -2.0 * i / 128);
        cr_expect(fabs(freq[i] - r) <= 1e-12 * fabs(r) + 1e-300, "inv_freq[%d] = %.17g, reference %.17g", i, freq[i], r);
        scaled += fabs(r - plain / 32) < 1e-15 * plain;
        blended += fabs(r - plain) > 1e-15 * plain && fabs(r - plain / 32) > 1e-15 * plain;
    }
    cr_assert(scaled > 0 && blended > 0, "the reference covers scaled (%d) and blended (%d) frequencies", scaled, blended);
    RopeScaling lin = {ROPE_LINEAR, 4.0, 0, 0, 0};
    tempo_rope_inv_freq(&lin, 128, 10000.0, freq);
    cr_expect(fabs(freq[3] - pow(10000.0, -6.0 / 128) / 4) < 1e-15, "linear scaling divides by the factor");
    cJSON_Delete(j);
}

static void write_text(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fwrite(text, 1, n, f);
    fclose(f);
}

/* A copy of stories260K-hf in `dir` with its config.json replaced. */
static void hf_copy(const char *dir, const char *config) {
    char src[4096], cmd[9000], path[4200];
    weights_path("stories260K-hf", src, sizeof src);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp %s/model.safetensors %s/", dir, dir, src, dir);
    cr_assert(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config, strlen(config));
}

/* stories260K-hf's config with some fields changed (a JSON object keeps the first of two equal keys) */
#define CONFIG(changed) "{" changed "\"hidden_size\":64,\"intermediate_size\":172,\"num_hidden_layers\":5," \
    "\"num_attention_heads\":8,\"num_key_value_heads\":4,\"vocab_size\":512,\"max_position_embeddings\":512," \
    "\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}"

Test(hf, malformed_inputs) {
    char dir[4096], weights[4200], args[4200], not_json[4200];
    scratch_path("hf", dir, sizeof dir);
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2", dir);
    snprintf(not_json, sizeof not_json, "bad config.json in %s: not a JSON object", dir);
    struct { const char *config, *needle; } cases[] = {
        {"{not json", not_json},
        {"{\"hidden_size\":64}", "intermediate_size is missing"},
        {CONFIG("\"num_hidden_layers\":6,"), "lacks tensor model.layers.5.input_layernorm.weight"},
        {CONFIG("\"intermediate_size\":100,"), "tensor model.layers.0.mlp.gate_proj.weight has shape [172,64] but config.json implies [100,64]"},
        {CONFIG("\"tie_word_embeddings\":false,"), "lacks tensor lm_head.weight"},
        {CONFIG("\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2},"), "rope_scaling type yarn is not supported"},
        {CONFIG("\"num_attention_heads\":5,"), "dim 64 is not divisible by n_heads 5"},
        {CONFIG("\"head_dim\":7,"), "head_dim 7 must be even"},
        {CONFIG("\"eos_token_id\":[2,900],"), "eos_token_id 900 is outside the vocabulary of 512"},
        {CONFIG("\"bos_token_id\":\"<s>\","), "bos_token_id must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_copy(dir, cases[i].config);
        expect_error(args, 1, cases[i].needle, NULL);
    }
    /* a damaged safetensors header */
    hf_copy(dir, CONFIG(""));
    FILE *f = fopen(weights, "r+b");
    uint64_t huge = 1ull << 40;
    fwrite(&huge, 8, 1, f);
    fclose(f);
    expect_error(args, 1, "header length 1099511627776 exceeds the file", NULL);
    hf_copy(dir, CONFIG(""));
    f = fopen(weights, "r+b");
    fseek(f, 8, SEEK_SET);
    fputs("[[", f);
    fclose(f);
    expect_error(args, 1, "the header is not a JSON object", NULL);
    hf_copy(dir, CONFIG(""));
    unlink(weights);
    expect_error(args, 1, "holds no .safetensors file", NULL);
}

/* A bf16 model runs on its stored weights, converted tile by tile inside the
 * matrix products; converting every tensor to f32 up front (exact for bf16)
 * must give bitwise the same logits and attention: prefill rows (sgemm over
 * converted panels), then a parallel set of 3 rows and single rows (the
 * blocked kernel). */
Test(hf, bf16_weights_in_place_equal_their_f32_copy_bitwise) {
    Model bf, f32;
    char err[TEMPO_ERR_SIZE];
    load_synth(&bf, "synth-hf-bf16");
    cr_assert_eq(bf.weights.layers[0].wq.type, WEIGHT_BF16, "matrices stay bf16 after loading");
    cr_assert_eq(bf.weights.token_embedding.type, WEIGHT_BF16);
    cr_assert(tempo_model_f32_copy(&bf, &f32, err) == 0, "%s", err);
    cr_assert_eq(f32.weights.layers[0].w2.type, WEIGHT_F32);
    const Config *c = &bf.config;
    int n = 16, sets[16], tokens[16];
    for (int i = 0; i < n; i++) tokens[i] = (i * 37 + 5) % c->vocab_size, sets[i] = i < 12 ? i : i < 15 ? 12 : 13;
    size_t V = c->vocab_size, LH = (size_t)c->n_layers * c->n_heads;
    float *logits[2], *attention[2];
    const Model *models[2] = {&bf, &f32};
    for (int mi = 0; mi < 2; mi++) {
        State s;
        cr_assert(tempo_state_init(&s, c, n, err) == 0, "%s", err);
        logits[mi] = calloc((size_t)n * V, sizeof(float));
        attention[mi] = calloc(LH * n * n, sizeof(float));
        int chunks[] = {12, 3, 1};
        for (int first = 0, ci = 0; first < n; first += chunks[ci++]) {
            int k = chunks[ci];
            Mask rule = tempo_mask_rule(MASK_ISOLATED, sets);
            float *att = malloc(LH * k * (first + k) * sizeof(float));
            Outputs out = {.logits = logits[mi] + first * V, .attention = att};
            cr_assert(tempo_forward(models[mi], &s, k, tokens + first, sets + first, &rule, out, err) == 0, "%s", err);
            for (size_t lh = 0; lh < LH; lh++)
                for (int i = 0; i < k; i++)
                    memcpy(attention[mi] + (lh * n + first + i) * n, att + (lh * k + i) * (first + k), (first + k) * sizeof(float));
            free(att);
        }
        tempo_state_free(&s);
    }
    for (int row = 0; row < n; row++)
        cr_assert(memcmp(logits[0] + row * V, logits[1] + row * V, V * sizeof(float)) == 0, "row %d: bf16 logits differ from the f32 copy's", row);
    cr_assert(memcmp(attention[0], attention[1], LH * n * n * sizeof(float)) == 0, "attention differs from the f32 copy's");
    for (int i = 0; i < 2; i++) free(logits[i]), free(attention[i]);
    tempo_model_free(&f32);
    tempo_model_free(&bf);
}

/* f16 to f32 is exact: every one of the 65536 f16 values against
 * (-1)^s 2^(e-15) (1 + f/1024), or 2^-14 f/1024 when e = 0, in double. */
Test(hf, f16_conversion_is_exact_for_every_value) {
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t v = (uint16_t)h;
        float got;
        tempo_dequantize(WEIGHT_F16, &v, 1, &got);
        int sign = h >> 15, e = (h >> 10) & 31, f = h & 1023;
        if (e == 31) {
            cr_assert(f ? isnan(got) : isinf(got) && (got < 0) == sign, "f16 %04x gives %g", h, got);
            continue;
        }
        double want = e ? ldexp(1.0 + f / 1024.0, e - 15) : ldexp(f / 1024.0, -14);
        if (sign) want = -want;
        cr_assert((double)got == want && !!signbit(got) == (sign != 0), "f16 %04x gives %.9g, expected %.9g", h, got, want);
    }
    uint16_t bf[3] = {0x3f80, 0xc040, 0x0001}; /* 1, -3, the smallest subnormal 2^-133 */
    float out[3];
    tempo_dequantize(WEIGHT_BF16, bf, 3, out);
    cr_assert(out[0] == 1.0f && out[1] == -3.0f && out[2] == ldexpf(1.0f, -133), "bf16 gives %g %g %g", out[0], out[1], out[2]);
}

/* Resident memory of this process, bytes (/proc/self/statm). */
static double resident_bytes(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert(f && fscanf(f, "%ld %ld", &pages_total, &pages_resident) == 2);
    fclose(f);
    return (double)pages_resident * sysconf(_SC_PAGESIZE);
}

/* A 16 GB bf16 checkpoint of an 8B-parameter model (Llama 3 8B's shapes, a
 * sparse file: big on paper, nothing on disk). Its weights stay in the file
 * in their stored type, so it loads on a machine with 24 GB, where an f32
 * copy (32 GB) would not fit; loading touches no weight page. */
Test(hf, sparse_16gb_bf16_checkpoint_loads_in_place) {
    char dir[4096], cmd[4200], err[TEMPO_ERR_SIZE];
    scratch_path("hf-huge", dir, sizeof dir);
    int D = 4096, L = 32;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert(system(cmd) == 0);
    SynthConfig sc = {.dim = D, .hidden_dim = 14336, .n_layers = L, .n_heads = 32, .n_kv_heads = 8,
                      .vocab_size = 128256, .seq_len = 8192};
    cr_assert(tempo_synth_write_sparse_hf(&sc, dir, err) == 0, "cannot make a sparse file in /tmp: %s", err);
    struct stat st;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert(stat(path, &st) == 0);
    size_t offset = (size_t)st.st_size;
    double memory = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    cr_assert(offset / 2 > 8e9 && offset > 16e9, "%.2f B parameters, %.1f GB", offset / 2e9, offset / 1e9);
    cr_assert(2.0 * offset > memory, "its f32 copy (%.1f GB) must not fit this machine (%.1f GB)", 2.0 * offset / 1e9, memory / 1e9);
    Model m;
    double before = resident_bytes();
    cr_assert(tempo_model_load(&m, dir, err) == 0, "the 16 GB bf16 checkpoint must load: %s", err);
    double grown = resident_bytes() - before;
    cr_assert_eq(m.weights.layers[L - 1].w2.type, WEIGHT_BF16);
    cr_assert_eq(m.weights.wcls.type, WEIGHT_BF16);
    cr_assert(m.converted_bytes <= (size_t)(2 * L + 1) * D * sizeof(float), "only norm vectors are converted (%zu bytes)", m.converted_bytes);
    cr_assert(grown < 64e6, "loading made %.0f MB resident", grown / 1e6);
    tempo_model_free(&m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert(system(cmd) == 0);
}

/* Keys that ask for what tempo does not run (GELU, biases, a sliding window shorter than the
 * context, partial RoPE, another model type) and an epsilon or RoPE base out of range are refused
 * with one line naming the key; their Llama values (absent, null, silu, false, a window of the whole
 * context, 1.0, llama) load and compute the logits of the unchanged config. */
Test(hf, keys_that_change_the_model_are_refused) {
    char dir[4096], args[4200], err[TEMPO_ERR_SIZE];
    scratch_path("hf-keys", dir, sizeof dir);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2", dir);
    struct { const char *config, *needle; } refused[] = {
        {CONFIG("\"hidden_act\":\"gelu\","), "hidden_act \"gelu\" is not silu, the one tempo runs"},
        {CONFIG("\"attention_bias\":true,"), "attention_bias true is not supported"},
        {CONFIG("\"mlp_bias\":true,"), "mlp_bias true is not supported"},
        {CONFIG("\"sliding_window\":2,"), "sliding_window 2 is shorter than the context of 512"},
        {CONFIG("\"partial_rotary_factor\":0.5,"), "partial_rotary_factor 0.5 is not 1 (partial RoPE is not supported)"},
        {CONFIG("\"model_type\":\"mistral\","), "model_type \"mistral\" is not llama, the one tempo runs"},
        {CONFIG("\"rms_norm_eps\":1e300,"), "rms_norm_eps 1e+300 is out of range (0, 1)"},
        {CONFIG("\"rope_theta\":1e300,"), "rope_theta 1e+300 is out of range (1, 1e12)"},
        {CONFIG("\"attention_bias\":\"no\","), "attention_bias must be true or false"},
        {CONFIG("\"hidden_act\":1,"), "hidden_act must be a string"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        hf_copy(dir, refused[i].config);
        expect_error(args, 1, refused[i].needle, NULL);
    }
    const char *accepted[] = {CONFIG(""), CONFIG("\"hidden_act\":\"silu\",\"attention_bias\":false,\"mlp_bias\":null,"),
                              CONFIG("\"sliding_window\":512,\"partial_rotary_factor\":1.0,\"model_type\":\"llama\","),
                              CONFIG("\"sliding_window\":null,\"hidden_act\":null,\"model_type\":null,\"attention_bias\":null,")};
    int tokens[3] = {1, 403, 407}, pos[3] = {0, 1, 2};
    uint8_t allowed[9];
    tempo_mask_rows(MASK_CAUSAL, pos, 0, 3, allowed);
    float *want = NULL;
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        hf_copy(dir, accepted[i]);
        Model m;
        cr_assert_eq(tempo_model_load(&m, dir, err), 0, "%s: %s", accepted[i], err);
        float *logits;
        full_forward(&m, 3, tokens, pos, allowed, 1, &logits, NULL, NULL);
        if (!want) want = logits;
        cr_expect(memcmp(logits, want, 3 * (size_t)m.config.vocab_size * sizeof(float)) == 0, "%s changes the logits", accepted[i]);
        if (logits != want) free(logits);
        tempo_model_free(&m);
    }
    free(want);
}

/* A config.json whose num_hidden_layers leaves out layers the safetensors hold (5 in the file, 4 in
 * the config) is refused with one line naming a tensor of layer 4 and the count. */
Test(hf, a_layer_beyond_num_hidden_layers_is_refused) {
    char dir[4096], args[4200], needle[4400];
    scratch_path("hf-layers", dir, sizeof dir);
    snprintf(args, sizeof args, "check %s", dir);
    hf_copy(dir, CONFIG("\"num_hidden_layers\":4,"));
    snprintf(needle, sizeof needle, "model %s: tensor model.layers.4.", dir);
    expect_error(args, 1, needle, NULL);
    expect_error(args, 1, "is of a layer beyond the count: config.json gives num_hidden_layers = 4 (layers 0-3)", NULL);
    hf_copy(dir, CONFIG(""));
    char err[TEMPO_ERR_SIZE];
    Model m;
    cr_assert_eq(tempo_model_load(&m, dir, err), 0, "the 5 layers the file holds load: %s", err);
    tempo_model_free(&m);
}

/* A second safetensors file beside the model holding one f32 vector of 64 values named `name`. */
static void write_extra_tensor(const char *dir, const char *name) {
    char path[4200], header[256];
    snprintf(path, sizeof path, "%s/extra.safetensors", dir);
    int n = snprintf(header, sizeof header, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256]}}", name);
    uint64_t len = (uint64_t)n;
    float values[64] = {0};
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(&len, 8, 1, f) == 1 && fwrite(header, 1, len, f) == len && fwrite(values, 4, 64, f) == 64 && fclose(f) == 0,
              "cannot write %s", path);
}

/* A layer tensor the binder would not run (an attention bias the config does not declare) is refused
 * with one line naming it; RoPE's inverse frequencies, which older checkpoints saved in each layer,
 * are derived from the config and load. */
Test(hf, a_layer_tensor_tempo_would_not_run_is_refused) {
    char dir[4096], args[4200];
    scratch_path("hf-bias", dir, sizeof dir);
    snprintf(args, sizeof args, "check %s", dir);
    hf_copy(dir, CONFIG(""));
    write_extra_tensor(dir, "model.layers.2.self_attn.q_proj.bias");
    expect_error(args, 1, "tensor model.layers.2.self_attn.q_proj.bias is not one of a Llama layer's nine weights", NULL);
    write_extra_tensor(dir, "model.layers.2.self_attn.rotary_emb.inv_freq");
    char err[TEMPO_ERR_SIZE];
    Model m;
    cr_expect_eq(tempo_model_load(&m, dir, err), 0, "a layer's rotary_emb.inv_freq is refused: %s", err);
    tempo_model_free(&m);
}
