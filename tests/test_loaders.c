/* test_loaders.c - the layers of loading: the dispatcher, the one config
 * check every format goes through, and the model's files kept by formats/. */
#include "helpers.h"
#include "../formats/gguf.h"
#include "../tools/memory.h"

#include <sys/stat.h>

/* The file's bytes; the caller frees them. */
static unsigned char *read_bytes(const char *path, size_t *len) {
    return (unsigned char *)read_text_file(path, len);
}

/* The u32 value of metadata `key` in a GGUF file's bytes (found by its length-prefixed name and type). */
static unsigned char *u32_value(unsigned char *buf, size_t len, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i + 8 + n + 8 <= len; i++) {
        uint64_t klen;
        uint32_t type;
        memcpy(&klen, buf + i, 8);
        memcpy(&type, buf + i + 8 + n, 4);
        if (klen == n && memcmp(buf + i + 8, key, n) == 0 && type == GGUF_UINT32) return buf + i + 12 + n;
    }
    cr_assert_fail("no uint32 %s in the file", key);
    return NULL;
}

/* GGUF dimensions meet the same check as a llama2.c header: heads that do not split dim are named. */
Test(loaders, gguf_heads_meet_the_one_config_check) {
    char path[4096], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("synth-gguf-f32.gguf", path, sizeof path), &len);
    uint32_t five = 5;
    memcpy(u32_value(buf, len, "llama.attention.head_count"), &five, 4);
    Model m;
    cr_assert_neq(tempo_model_from_buffer(&m, buf, len, "heads.gguf", err), 0, "a dim of 256 split into 5 heads loaded");
    cr_expect(strstr(err, "bad GGUF heads.gguf: dim 256 is not divisible by n_heads 5"), "error: %s", err);
    free(buf);
}

/* The dispatcher tells the three formats apart, and the model's files carry its path. */
Test(loaders, dispatcher_and_model_files) {
    struct { const char *path; int gguf; const char *name; } cases[] = {
        {WEIGHTS_DIR "/stories260K.bin", 0, "stories260K.bin"},
        {WEIGHTS_DIR "/stories260K-hf", 0, "stories260K-hf"},
        {BUILD_DIR "/stories260K-q8_0.gguf", 1, "stories260K-q8_0.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Model m;
        load_model(&m, cases[i].path);
        cr_expect_str_eq(tempo_model_path(&m), cases[i].path);
        cr_expect_str_eq(tempo_model_name(&m), cases[i].name);
        cr_expect_eq(tempo_model_is_gguf(&m), cases[i].gguf, "%s: GGUF %d", cases[i].path, tempo_model_is_gguf(&m));
        cr_expect(m.config.dim == 64 && m.config.n_layers == 5 && m.config.vocab_size == 512, "%s: not stories260K", cases[i].path);
        tempo_model_free(&m);
        cr_expect_null(m.files, "the files are freed with the model");
    }
}

/* A model read from bytes in memory has no file of its own: its tokenizer must be given. */
Test(loaders, buffer_model_has_no_files) {
    char path[4096], err[TEMPO_ERR_SIZE];
    size_t len;
    unsigned char *buf = read_bytes(synth_path("stories260K-f32.gguf", path, sizeof path), &len);
    Model m;
    Tokenizer t;
    cr_assert_eq(tempo_model_from_buffer(&m, buf, len, "mem.gguf", err), 0, "%s", err);
    cr_expect_str_eq(tempo_model_name(&m), "mem.gguf");
    cr_expect_eq(tempo_model_is_gguf(&m), 0);
    cr_expect_neq(tempo_gguf_model_tokenizer(&m, &t, err), 0);
    cr_expect(strstr(err, "give its tokenizer with -z"), "error: %s", err);
    tempo_model_free(&m);
    free(buf);
}

/* Every weight type the kernels read is bound as weights, whatever its number: Q4_0's
 * tensors relabelled IQ4_NL (the same 18 bytes per 32 values, other values) load, bind as
 * IQ4_NL and compute. (Types numbered after Q6_K were once read as the traces' integer types.) */
Test(loaders, every_weight_type_binds_as_weights) {
    char path[4096], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("synth-gguf-q4_0.gguf", path, sizeof path), &len);
    GgufFile g;
    cr_assert_eq(tempo_gguf_parse(&g, buf, len, "q4_0.gguf", err), 0, "%s", err);
    int relabelled = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *x = &g.tensors[i];
        if (x->ggml_type != tempo_gguf_ggml_type(WEIGHT_Q4_0)) continue;
        uint32_t iq4_nl = tempo_gguf_ggml_type(WEIGHT_IQ4_NL);
        unsigned char *type_at = (unsigned char *)x->name.ptr + x->name.len + 4 + 8 * (size_t)x->n_dims;
        memcpy(type_at, &iq4_nl, 4);
        relabelled++;
    }
    tempo_gguf_free(&g);
    cr_assert_gt(relabelled, 0, "the file holds no Q4_0 tensor");
    Model m;
    cr_assert_eq(tempo_model_from_buffer(&m, buf, len, "iq4_nl.gguf", err), 0, "%s", err);
    cr_expect_eq(m.weights.layers[0].wq.type, WEIGHT_IQ4_NL, "wq bound as %s", tempo_weight_type_name(m.weights.layers[0].wq.type));
    for (int d = 0; d < WEIGHT_N_TYPES; d++) cr_expect(tempo_dtype_is_weight((DType)d), "type %d is not a weight", d);
    cr_expect(!tempo_dtype_is_weight(DT_I32) && !tempo_dtype_is_weight(DT_U8), "trace integers count as weights");
    int tokens[2] = {1, 2}, pos[2] = {0, 1};
    Mask causal = tempo_mask_rule(MASK_CAUSAL, pos);
    float *logits = malloc(2 * (size_t)m.config.vocab_size * sizeof(float));
    cr_expect_eq(tempo_forward_full(&m, 2, tokens, pos, &causal, (Outputs){.logits = logits}, err), 0, "%s", err);
    free(logits);
    tempo_model_free(&m);
    free(buf);
}

/* A checkpoint copied onto 2 MB pages holds exactly the file's bytes (a size that is no multiple of
 * 4 KB too), starts on a 2 MB boundary, and frees like a map; an empty file copies to nothing, and
 * a missing file or a directory is named, whichever way it was to be held. */
Test(loaders, copied_file_holds_the_files_bytes) {
    char err[TEMPO_ERR_SIZE] = "";
    const char *paths[] = {WEIGHTS_DIR "/stories260K.bin", BUILD_DIR "/stories260K-q8_0.gguf"};
    for (int i = 0; i < 2; i++) {
        size_t len, size;
        unsigned char *want = read_bytes(paths[i], &len);
        void *copy;
        int copied;
        cr_assert_eq(tempo_hold_file(paths[i], "checkpoint", HOLD_COPY, &copy, &size, &copied, err), 0, "%s", err);
        cr_expect_eq(copied, 1, "%s: HOLD_COPY mapped it", paths[i]);
        cr_expect(size == len && memcmp(copy, want, len) == 0, "%s: the copy differs from the file", paths[i]);
        cr_expect_eq((uintptr_t)copy % ((uintptr_t)2 << 20), 0, "%s: the copy starts at %p", paths[i], copy);
        tempo_unmap_file(copy, size);
        free(want);
    }
    char empty[4096], missing[4096], needle[4200];
    scratch_path("empty-copy.bin", empty, sizeof empty);
    scratch_path("no-such-file.bin", missing, sizeof missing);
    snprintf(needle, sizeof needle, "cannot open checkpoint %s", missing);
    FILE *f = fopen(empty, "wb");
    cr_assert(f != NULL);
    fclose(f);
    for (FileHold how = HOLD_MAP; how <= HOLD_BY_RULE; how++) {
        void *copy = &err;
        size_t size = 1;
        int copied = 1;
        cr_expect(tempo_hold_file(empty, "checkpoint", how, &copy, &size, &copied, err) == 0 &&
                      !copy && !size,
                  "hold %d: an empty file gave %p, %zu bytes", how, copy, size);
        cr_expect(copied == (how == HOLD_COPY), "hold %d: an empty file copied %d", how, copied);
        cr_expect_neq(tempo_hold_file(missing, "checkpoint", how, &copy, &size, &copied, err), 0);
        cr_expect(strstr(err, needle), "error: %s", err);
        cr_expect_neq(tempo_hold_file("/tmp", "checkpoint", how, &copy, &size, &copied, err), 0);
        cr_expect(strstr(err, "checkpoint /tmp is not a regular file"), "error: %s", err);
    }
    unlink(empty);
}

/* The copy is made only when the kernel offers 2 MB pages and it fits twice in what is available. */
Test(loaders, copy_pays_by_the_rule) {
    cr_expect_eq(tempo_copy_pays(100, 200, 1), 1, "half of what is available is copied");
    cr_expect_eq(tempo_copy_pays(101, 200, 1), 0, "more than half is mapped");
    cr_expect_eq(tempo_copy_pays(100, 200, 0), 0, "no 2 MB pages: mapped");
    cr_expect_eq(tempo_copy_pays(0, 200, 1), 0, "an empty file: nothing to copy");
}

/* tempo_model_load copies a checkpoint exactly when the rule says so, and the memory estimate
 * counts a mapped file (page cache, inside MemAvailable) but not a copied one (outside it). */
Test(loaders, load_follows_the_rule_and_the_estimate_counts_maps) {
    char err[TEMPO_ERR_SIZE] = "";
    const char *path = BUILD_DIR "/stories260K-q8_0.gguf";
    size_t available, size;
    struct stat st;
    cr_assert(stat(path, &st) == 0 && tempo_memory_available(&available, err) == 0, "%s", err);
    Model m;
    load_model(&m, path);
    int want = tempo_copy_pays((size_t)st.st_size, available, tempo_huge_pages_offered());
    cr_expect_eq(m.files->copied[0], want, "copied %d, the rule says %d", m.files->copied[0], want);
    tempo_model_free(&m);
    for (FileHold how = HOLD_MAP; how <= HOLD_COPY; how++) {
        void *data;
        int copied;
        cr_assert_eq(tempo_hold_file(path, "checkpoint", how, &data, &size, &copied, err), 0, "%s", err);
        cr_expect_eq(copied, how == HOLD_COPY, "hold %d: copied %d", how, copied);
        cr_assert_eq(tempo_model_from_buffer(&m, data, size, path, err), 0, "%s", err);
        cr_assert_eq(tempo_model_keep_map(&m, data, size, copied, err), 0, "%s", err);
        size_t resident = tempo_model_resident_bytes(&m) - m.converted_bytes;
        cr_expect_eq(resident, copied ? 0 : size, "copied %d: %zu resident bytes of a %zu-byte file", copied, resident, size);
        tempo_model_free(&m);
    }
}
