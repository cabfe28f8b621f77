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

/* `tempo ARGS` under `timeout 20`: its exit status (124: it hung) and its stderr into text. */
static int tempo_within_20s(const char *args, char *text, size_t len) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "timeout 20 %s %s", TEMPO_BIN, args);
    return run_command(cmd, text, len);
}

/* A FIFO given as the model is refused with one line at once: its open never waits for a writer
 * (open_regular opens with O_NONBLOCK, then fstat), for check and for generate. */
Test(loaders, a_fifo_as_the_model_is_refused_at_once) {
    char fifo[4096], tok[4096], args[9000], text[4096], needle[4200];
    scratch_path("model.fifo", fifo, sizeof fifo);
    weights_path("tok512.bin", tok, sizeof tok);
    cr_assert(mkfifo(fifo, 0600) == 0, "cannot make the FIFO %s: %s", fifo, strerror(errno));
    snprintf(needle, sizeof needle, "checkpoint %s is not a regular file", fifo);
    const char *forms[] = {"check %s", "generate -m %s -z %s -p hi -n 1"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, forms[i], fifo, tok);
        int rc = tempo_within_20s(args, text, sizeof text);
        cr_assert_neq(rc, 124, "`tempo %s` waited 20 s on the FIFO", args);
        cr_expect_eq(rc, 1, "`tempo %s` exited %d: %s", args, rc, text);
        cr_expect(strstr(text, needle) && strchr(text, '\n') == text + strlen(text) - 1, "`tempo %s` said: %s", args, text);
    }
    unlink(fifo);
}

/* stories260K-f32.gguf (5 layers) loads; with llama.block_count lowered to 4 (blk.4.* still in the
 * file), or with a layer's tensor renamed to blk.9, it is refused with one line naming the tensor
 * and the count, in memory and on the command line. */
Test(loaders, a_layer_beyond_the_count_is_refused) {
    char path[4096], lowered[4096], args[8300], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("stories260K-f32.gguf", path, sizeof path), &len);
    Model m;
    cr_assert_eq(tempo_model_from_buffer(&m, buf, len, "five.gguf", err), 0, "the file as written must load: %s", err);
    tempo_model_free(&m);
    uint32_t four = 4;
    memcpy(u32_value(buf, len, "llama.block_count"), &four, 4);
    cr_assert_neq(tempo_model_from_buffer(&m, buf, len, "four.gguf", err), 0, "4 layers of a 5-layer file loaded");
    cr_expect(strstr(err, "model four.gguf: tensor blk.4.") &&
                  strstr(err, "is of a layer beyond the count: the metadata gives llama.block_count = 4 (layers 0-3)"),
              "error: %s", err);
    scratch_path("four.gguf", lowered, sizeof lowered);
    FILE *f = fopen(lowered, "wb");
    cr_assert(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "cannot write %s", lowered);
    snprintf(args, sizeof args, "check %s", lowered);
    expect_error(args, 1, "is of a layer beyond the count: the metadata gives llama.block_count = 4", NULL);
    uint32_t five = 5;
    memcpy(u32_value(buf, len, "llama.block_count"), &five, 4);
    char *name = memmem(buf, len, "blk.4.ffn_up.weight", 19);
    cr_assert(name, "no tensor blk.4.ffn_up.weight in the file");
    name[4] = '9'; /* layer 4 lacks it now, and a layer 9 that the count leaves out holds it */
    cr_assert_neq(tempo_model_from_buffer(&m, buf, len, "gap.gguf", err), 0, "a tensor of layer 9 in a 5-layer file loaded");
    cr_expect(strstr(err, "tensor blk.9.ffn_up.weight is of a layer beyond the count: the metadata gives llama.block_count = 5"),
              "error: %s", err);
    free(buf);
}

/* A tensor inside a layer that is none of its nine weights (blk.2.ffn_up.weight renamed blk.2.ffn_xx.weight)
 * is refused by name before the missing weight is, in memory and on the command line. */
Test(loaders, a_layer_tensor_tempo_would_not_run_is_refused) {
    char path[4096], renamed[4096], args[8300], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("stories260K-f32.gguf", path, sizeof path), &len);
    char *name = memmem(buf, len, "blk.2.ffn_up.weight", 19);
    cr_assert(name, "no tensor blk.2.ffn_up.weight in the file");
    memcpy(name + 10, "xx", 2);
    Model m;
    cr_assert_neq(tempo_model_from_buffer(&m, buf, len, "renamed.gguf", err), 0, "a file with blk.2.ffn_xx.weight loaded");
    cr_expect(strstr(err, "model renamed.gguf: tensor blk.2.ffn_xx.weight is not one of a Llama layer's nine weights"), "error: %s", err);
    scratch_path("renamed.gguf", renamed, sizeof renamed);
    FILE *f = fopen(renamed, "wb");
    cr_assert(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "cannot write %s", renamed);
    snprintf(args, sizeof args, "check %s", renamed);
    expect_error(args, 1, "tensor blk.2.ffn_xx.weight is not one of a Llama layer's nine weights", NULL);
    free(buf);
}

/* Where metadata `key`'s value lies in a GGUF file's bytes: the reader's own record of it. */
static unsigned char *gguf_value_at(unsigned char *buf, size_t len, const char *key, GgufType type) {
    char err[TEMPO_ERR_SIZE];
    GgufFile g;
    cr_assert_eq(tempo_gguf_parse(&g, buf, len, "file", err), 0, "%s", err);
    const GgufKV *kv = tempo_gguf_find(&g, key);
    cr_assert(kv && kv->type == type, "no %s of type %d in the file", key, type);
    unsigned char *at = buf + (kv->value - (const uint8_t *)buf);
    tempo_gguf_free(&g);
    return at;
}

/* The norm epsilon and the RoPE base of a GGUF file meet the one range check (the one
 * config.json's meet too, hf::keys_that_change_the_model_are_refused): 0 < eps < 1, 1 < theta < 1e12. */
Test(loaders, gguf_epsilon_and_rope_base_meet_the_one_range_check) {
    char path[4096], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("stories260K-f32.gguf", path, sizeof path), &len);
    unsigned char *eps = gguf_value_at(buf, len, "llama.attention.layer_norm_rms_epsilon", GGUF_FLOAT32);
    struct { float eps; const char *needle; } cases[] = {
        {2.0f, "bad GGUF eps.gguf: llama.attention.layer_norm_rms_epsilon 2 is out of range (0, 1)"},
        {0.0f, "bad GGUF eps.gguf: llama.attention.layer_norm_rms_epsilon 0 is out of range (0, 1)"},
        {0.5f, NULL}};
    Model m;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(eps, &cases[i].eps, 4);
        int rc = tempo_model_from_buffer(&m, buf, len, "eps.gguf", err);
        if (rc == 0) tempo_model_free(&m);
        if (!cases[i].needle) {
            cr_expect_eq(rc, 0, "epsilon %g is in range: %s", cases[i].eps, err);
            continue;
        }
        cr_expect_neq(rc, 0, "epsilon %g loaded", cases[i].eps);
        cr_expect(strstr(err, cases[i].needle), "error: %s", err);
    }
    free(buf);
}

/* Bytes that start with neither the GGUF magic nor a llama2.c dim are named as neither, with their
 * first four bytes: a damaged magic ("GGUX") is not read as a llama2.c header of dim 1481983815. A
 * llama2.c header with a plausible dim keeps the llama2.c reader's message. */
Test(loaders, a_file_of_neither_format_names_both) {
    char path[4096], ggux[4096], args[8300], err[TEMPO_ERR_SIZE] = "";
    size_t len;
    unsigned char *buf = read_bytes(synth_path("stories260K-f32.gguf", path, sizeof path), &len);
    buf[3] = 'X';
    Model m;
    cr_assert_neq(tempo_model_from_buffer(&m, buf, len, "ggux.gguf", err), 0, "a GGUX file loaded");
    cr_expect(strstr(err, "checkpoint ggux.gguf is neither GGUF nor llama2.c: it starts with \"GGUX\", not the magic \"GGUF\", "
                          "and as a llama2.c header its dim = 1481983815 is outside [1, 65536]"), "error: %s", err);
    scratch_path("ggux.gguf", ggux, sizeof ggux);
    FILE *f = fopen(ggux, "wb");
    cr_assert(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "cannot write %s", ggux);
    snprintf(args, sizeof args, "check %s", ggux);
    expect_error(args, 1, "is neither GGUF nor llama2.c: it starts with \"GGUX\"", NULL);
    int header[8] = {64, 172, 0, 8, 4, 512, 512, 0}; /* dim 64, n_layers 0 */
    cr_assert_neq(tempo_model_from_buffer(&m, header, sizeof header, "zero.bin", err), 0);
    cr_expect(strstr(err, "bad checkpoint header: n_layers = 0 (must be positive)"), "a llama2.c header: %s", err);
    header[0] = -5;
    cr_assert_neq(tempo_model_from_buffer(&m, header, sizeof header, "neg.bin", err), 0);
    cr_expect(strstr(err, "neg.bin is neither GGUF nor llama2.c: it starts with \"\\xfb\\xff\\xff\\xff\"") && strstr(err, "dim = -5"),
              "error: %s", err);
    free(buf);
}
