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

/* A copy of stories260K-hf in /tmp with its config.json replaced. */
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
    struct { const char *config, *needle; } cases[] = {
        {"{not json", "bad config.json in /tmp/tempo-hf: not a JSON object"},
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
        hf_copy("/tmp/tempo-hf", cases[i].config);
        expect_error("forward -m /tmp/tempo-hf --tokens 1,2", 1, cases[i].needle, NULL);
    }
    /* a damaged safetensors header */
    hf_copy("/tmp/tempo-hf", CONFIG(""));
    FILE *f = fopen("/tmp/tempo-hf/model.safetensors", "r+b");
    uint64_t huge = 1ull << 40;
    fwrite(&huge, 8, 1, f);
    fclose(f);
    expect_error("forward -m /tmp/tempo-hf --tokens 1,2", 1, "header length 1099511627776 exceeds the file", NULL);
    hf_copy("/tmp/tempo-hf", CONFIG(""));
    f = fopen("/tmp/tempo-hf/model.safetensors", "r+b");
    fseek(f, 8, SEEK_SET);
    fputs("[[", f);
    fclose(f);
    expect_error("forward -m /tmp/tempo-hf --tokens 1,2", 1, "the header is not a JSON object", NULL);
    hf_copy("/tmp/tempo-hf", CONFIG(""));
    unlink("/tmp/tempo-hf/model.safetensors");
    expect_error("forward -m /tmp/tempo-hf --tokens 1,2", 1, "holds no .safetensors file", NULL);
}

/* A bf16 checkpoint as large as the machine's memory (a sparse file: big on
 * paper, nothing on disk); its f32 copy would need twice that. tempo must
 * refuse before allocating it. */
Test(hf, conversion_checks_memory_first) {
    const char *dir = "/tmp/tempo-hf-huge";
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double memory = (double)pages * page, per_layer = 2.0 * 855654400; /* bf16 bytes of one layer below */
    int D = 8192, HID = 28672, L = (int)(memory / per_layer) + 1, V = 128256, KV = 1024;
    char cmd[256], path[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    cr_assert(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    char config[512];
    snprintf(config, sizeof config, "{\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":64,\"num_key_value_heads\":8,\"vocab_size\":%d,\"max_position_embeddings\":4096,"
             "\"tie_word_embeddings\":true}", D, HID, L, V);
    write_text(path, config, strlen(config));
    cJSON *header = cJSON_CreateObject();
    size_t offset = 0;
    struct { const char *name; int rows, cols; } parts[9] = {
        {"input_layernorm", D, 0}, {"self_attn.q_proj", D, D}, {"self_attn.k_proj", KV, D}, {"self_attn.v_proj", KV, D},
        {"self_attn.o_proj", D, D}, {"post_attention_layernorm", D, 0}, {"mlp.gate_proj", HID, D},
        {"mlp.up_proj", HID, D}, {"mlp.down_proj", D, HID}};
    for (int t = -1; t <= L * 9; t++) {
        char name[96];
        int rows = t < 0 ? V : t == L * 9 ? D : parts[t % 9].rows, cols = t < 0 ? D : t == L * 9 ? 0 : parts[t % 9].cols;
        if (t < 0) snprintf(name, sizeof name, "model.embed_tokens.weight");
        else if (t == L * 9) snprintf(name, sizeof name, "model.norm.weight");
        else snprintf(name, sizeof name, "model.layers.%d.%s.weight", t / 9, parts[t % 9].name);
        size_t bytes = (size_t)rows * (cols ? cols : 1) * 2;
        cJSON *e = cJSON_AddObjectToObject(header, name);
        cJSON_AddStringToObject(e, "dtype", "BF16");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *offsets = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(rows));
        if (cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(cols));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = cJSON_PrintUnformatted(header);
    uint64_t json_len = strlen(json);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(&json_len, 8, 1, f) == 1 && fwrite(json, 1, json_len, f) == json_len);
    cr_assert(ftruncate(fileno(f), (off_t)(8 + json_len + offset)) == 0, "cannot make a sparse file in /tmp");
    fclose(f);
    free(json);
    cJSON_Delete(header);
    cr_assert(offset > memory, "the checkpoint holds %.1f GB of bf16, the machine %.1f GB", offset / 1e9, memory / 1e9);
    expect_error("check /tmp/tempo-hf-huge", 1, "GB of memory is free", NULL);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert(system(cmd) == 0);
}
