/* tempo synth and tempo convert: they touch only the paths named, refuse
 * inputs they would convert into another model, refuse vocabularies
 * llama.cpp cannot load, and refuse files larger than the free space. */
#include "helpers.h"

#include <sys/resource.h>

static void write_file(const char *path, const void *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
}

static void run_ok(const char *args) {
    char cmd[8192], text[8192];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc = run_command(cmd, text, sizeof text);
    cr_assert_eq(rc, 0, "`%s` exited %d: %s", cmd, rc, text);
}

Test(synth_convert, synth_gguf_leaves_a_file_beside_its_output_alone) {
    char out[4096], beside[4096], args[8400];
    scratch_path("mine.gguf", out, sizeof out);
    scratch_path("mine.gguf.tokenizer.json", beside, sizeof beside);
    write_file(beside, "data\n", 5);
    snprintf(args, sizeof args, "synth --out '%s' --format gguf", out);
    run_ok(args);
    char *text = read_text_file(beside, NULL);
    cr_assert_str_eq(text, "data\n", "synth --format gguf changed %s", beside);
    free(text);
}

Test(synth_convert, synth_gguf_leaves_a_symlink_target_beside_its_output_alone) {
    char out[4096], link[4096], target[4096], args[8400];
    scratch_path("linked.gguf", out, sizeof out);
    scratch_path("linked.gguf.tokenizer.json", link, sizeof link);
    scratch_path("precious.txt", target, sizeof target);
    write_file(target, "keep\n", 5);
    cr_assert(symlink(target, link) == 0);
    snprintf(args, sizeof args, "synth --out '%s' --format gguf --tokenizer llama3", out);
    run_ok(args);
    struct stat st;
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the symlink %s is gone", link);
    char *text = read_text_file(target, NULL);
    cr_assert_str_eq(text, "keep\n", "synth --format gguf overwrote %s through %s", target, link);
    free(text);
}

Test(synth_convert, convert_refuses_a_hugging_face_directory) {
    char hf[4096], tok[4096], out[4096], args[13000];
    weights_path("stories260K-hf", hf, sizeof hf);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("x.gguf", out, sizeof out);
    snprintf(args, sizeof args, "convert '%s' '%s' --out '%s'", hf, tok, out);
    expect_error(args, 1, "is a Hugging Face directory", out);
}

Test(synth_convert, convert_refuses_a_gguf) {
    char in[4096], tok[4096], out[4096], args[13000];
    scratch_path("in.gguf", in, sizeof in);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("x.gguf", out, sizeof out);
    snprintf(args, sizeof args, "synth --out '%s' --format gguf", in);
    run_ok(args);
    snprintf(args, sizeof args, "convert '%s' '%s' --out '%s'", in, tok, out);
    expect_error(args, 1, "is a GGUF file", out);
}

/* tok512.bin with piece `later` overwritten by the bytes of an earlier piece of the same length; *a, *b the two ids. */
static void duplicate_piece_tokenizer(const char *path, int *a, int *b) {
    char tok[4096];
    size_t len;
    unsigned char *buf = (unsigned char *)read_text_file(weights_path("tok512.bin", tok, sizeof tok), &len);
    size_t at[512], off = 4;
    int32_t plen[512];
    for (int i = 0; i < 512; i++) {
        memcpy(&plen[i], buf + off + 4, 4);
        at[i] = off + 8;
        off = at[i] + (size_t)plen[i];
        cr_assert(off <= len, "tok512.bin is shorter than 512 pieces");
    }
    *a = 300, *b = 301;
    while (*b < 512 && (plen[*b] != plen[*a] || memcmp(buf + at[*b], buf + at[*a], (size_t)plen[*a]) == 0)) (*b)++;
    cr_assert(*b < 512, "no piece after 300 has its length");
    memcpy(buf + at[*b], buf + at[*a], (size_t)plen[*a]);
    write_file(path, buf, len);
    free(buf);
}

Test(synth_convert, convert_refuses_duplicate_pieces) {
    char model[4096], tok[4096], out[4096], args[13000], needle[64];
    int a, b;
    scratch_path("dup.bin", tok, sizeof tok);
    duplicate_piece_tokenizer(tok, &a, &b);
    weights_path("stories260K.bin", model, sizeof model);
    scratch_path("x.gguf", out, sizeof out);
    snprintf(args, sizeof args, "convert '%s' '%s' --out '%s'", model, tok, out);
    snprintf(needle, sizeof needle, "pieces %d and %d", a, b);
    expect_error(args, 1, needle, out);
}

Test(synth_convert, convert_still_converts_stories260K) {
    char model[4096], tok[4096], out[4096], args[13000];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("ok.gguf", out, sizeof out);
    snprintf(args, sizeof args, "convert '%s' '%s' --out '%s' --dtype q8_0", model, tok, out);
    run_ok(args);
    cr_assert(access(out, R_OK) == 0);
}

#define HUGE_SHAPE "--dim 65536 --hidden 262144 --layers 1024 --heads 1024 --kv-heads 1024 --vocab 4194304"

Test(synth_convert, synth_refuses_a_file_beyond_the_free_space, .timeout = 60) {
    static const char *const formats[] = {"llama2c", "gguf", "hf"};
    struct rlimit cap = {64 << 20, 64 << 20}; /* should the check regress, a write past 64 MB is killed, not the disk filled */
    cr_assert(setrlimit(RLIMIT_FSIZE, &cap) == 0, "cannot cap file sizes");
    for (int i = 0; i < 3; i++) {
        char out[4096], args[8400], name[32];
        snprintf(name, sizeof name, "huge-%s", formats[i]);
        scratch_path(name, out, sizeof out);
        snprintf(args, sizeof args, "synth --out '%s' --format %s " HUGE_SHAPE, out, formats[i]);
        expect_error(args, 1, "but its file system has", out);
    }
}
