/* Bad input through the command line: every class gets a one-line error
 * naming the problem and the offending value, exit status 1, no output file. */
#include "helpers.h"

#include <sys/stat.h>

/* Writes a copy of a synthetic checkpoint with `header` and `bytes` of payload. */
static void write_checkpoint(const char *path, const int header[7], size_t bytes) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite(header, sizeof(int), 7, f);
    for (size_t i = 0; i < bytes; i++) fputc(0, f);
    fclose(f);
}

static size_t file_size(const char *path) {
    struct stat st;
    cr_assert(stat(path, &st) == 0, "cannot stat %s", path);
    return (size_t)st.st_size;
}

#define SYNTH BUILD_DIR "/synth-tied.bin"
static const int synth_header[7] = {64, 172, 2, 4, 2, 256, 256};

Test(bad_input, truncated_checkpoint) {
    char trunc[4096], out[4096], args[9000], needle[4200];
    scratch_path("trunc.bin", trunc, sizeof trunc);
    scratch_path("x.st", out, sizeof out);
    size_t size = file_size(SYNTH);
    write_checkpoint(trunc, synth_header, size - 28 - 100);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2 --out %s", trunc, out);
    snprintf(needle, sizeof needle, "truncated checkpoint %s", trunc);
    expect_error(args, 1, needle, out);
    write_checkpoint(trunc, synth_header, 0);
    snprintf(args, sizeof args, "forward -m %s --tokens 1", trunc);
    expect_error(args, 1, "truncated checkpoint", NULL);
    FILE *f = fopen(trunc, "wb");
    fputs("abc", f);
    fclose(f);
    expect_error(args, 1, "the header alone needs 28", NULL);
}

Test(bad_input, oversized_checkpoint) {
    char over[4096], args[9000], needle[4200];
    scratch_path("over.bin", over, sizeof over);
    size_t size = file_size(SYNTH);
    write_checkpoint(over, synth_header, size - 28 + 4);
    snprintf(args, sizeof args, "forward -m %s --tokens 1,2", over);
    snprintf(needle, sizeof needle, "oversized checkpoint %s", over);
    expect_error(args, 1, needle, NULL);
}

Test(bad_input, header_zero_negative_or_inconsistent) {
    char hdr[4096], args[9000];
    scratch_path("hdr.bin", hdr, sizeof hdr);
    snprintf(args, sizeof args, "forward -m %s --tokens 1", hdr);
    int h[7];
    memcpy(h, synth_header, sizeof h);
    h[2] = 0;
    write_checkpoint(hdr, h, 64);
    expect_error(args, 1, "n_layers = 0", NULL);
    memcpy(h, synth_header, sizeof h);
    h[0] = -5;
    write_checkpoint(hdr, h, 64);
    expect_error(args, 1, "dim = -5", NULL);
    memcpy(h, synth_header, sizeof h);
    h[3] = 5;
    write_checkpoint(hdr, h, 64);
    expect_error(args, 1, "dim 64 is not divisible by n_heads 5", NULL);
    memcpy(h, synth_header, sizeof h);
    h[4] = 3;
    write_checkpoint(hdr, h, 64);
    expect_error(args, 1, "n_heads 4 is not a multiple of n_kv_heads 3", NULL);
    memcpy(h, synth_header, sizeof h);
    h[6] = 1 << 30;
    write_checkpoint(hdr, h, 64);
    expect_error(args, 1, "seq_len = 1073741824 exceeds the limit", NULL);
}

Test(bad_input, tokenizer_does_not_match_the_vocabulary) {
    char model[4096], tok[4096], short_tok[4096], args[9000], needle[4200];
    weights_path("fortune-tok512.bin", tok, sizeof tok);
    snprintf(args, sizeof args, "forward -m %s -z %s --prompt hi", SYNTH, tok); /* vocab 256 vs 512 pieces */
    expect_error(args, 1, "does not match the model: it has more than 256 pieces", NULL);
    weights_path("fortune.bin", model, sizeof model);
    scratch_path("tok-short.bin", short_tok, sizeof short_tok);
    FILE *in = fopen(tok, "rb"), *out = fopen(short_tok, "wb");
    char buf[3000];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got, out);
    fclose(in);
    fclose(out);
    snprintf(args, sizeof args, "forward -m %s -z %s --prompt hi", model, short_tok);
    snprintf(needle, sizeof needle, "tokenizer %s", short_tok);
    expect_error(args, 1, needle, NULL);
}

Test(bad_input, token_id_out_of_range) {
    char out[4096], args[9000];
    scratch_path("x.st", out, sizeof out);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,256,3 --out %s", out);
    expect_error(args, 1, "token id 256 at row 1 is out of range", out);
    expect_error("forward -m " SYNTH " --tokens 1,-4", 1, "token id -4", NULL);
    expect_error("forward -m " SYNTH " --tokens 1,x", 1, "--tokens must be a comma-separated list of integers", NULL);
}

Test(bad_input, positions_negative_or_past_seq_len) {
    expect_error("forward -m " SYNTH " --tokens 1,2 --positions 0,-1", 1, "logical position -1 at row 1", NULL);
    expect_error("forward -m " SYNTH " --tokens 1,2 --positions 0,256", 1, "logical position 256 at row 1 is out of range [0, 256)", NULL);
    expect_error("forward -m " SYNTH " --tokens 1,2 --positions 0", 1, "--positions has 1 entries for 2 tokens", NULL);
}

Test(bad_input, mask_wrong_size_or_empty_row) {
    char mask[4096], out[4096], args[9000], needle[4200];
    scratch_path("mask.txt", mask, sizeof mask);
    scratch_path("x.st", out, sizeof out);
    FILE *f = fopen(mask, "w");
    fputs("10\n11\n", f);
    fclose(f);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,2,3 --mask %s", mask);
    snprintf(needle, sizeof needle, "mask file %s has 4 entries; 3 rows need 3 x 3 = 9", mask);
    expect_error(args, 1, needle, NULL);
    f = fopen(mask, "w");
    fputs("100\n000\n111\n", f);
    fclose(f);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,2,3 --mask %s --out %s", mask, out);
    expect_error(args, 1, "mask row 1 (layer 0) allows no key", out);
    f = fopen(mask, "w");
    fputs("1x0\n", f);
    fclose(f);
    snprintf(args, sizeof args, "forward -m " SYNTH " --tokens 1,2,3 --mask %s", mask);
    expect_error(args, 1, "holds 'x'", NULL);
}

Test(bad_input, unknown_flags_and_commands) {
    expect_error("forward -m " SYNTH " --tokens 1 --bogus", 1, "unknown flag --bogus for tempo forward", NULL);
    expect_error("generate -m " SYNTH " --tokens 1 --thresh 0.1", 1, "unknown flag --thresh for tempo generate", NULL);
    expect_error("frobnicate", 1, "unknown command 'frobnicate'", NULL);
    expect_error("forward -m " SYNTH " --tokens", 1, "flag --tokens of tempo forward needs a value", NULL);
    expect_error("forward --tokens 1", 1, "missing -m MODEL", NULL);
}

Test(bad_input, prompt_longer_than_the_context) {
    char model[4096], tok[4096], args[9000];
    fortune_paths(model, tok);
    char prompt[4000];
    for (int i = 0; i < 3000; i++) prompt[i] = "abcdefghij "[i % 11];
    prompt[3000] = '\0';
    snprintf(args, sizeof args, "generate -m %s -z %s -p '%s'", model, tok, prompt);
    expect_error(args, 1, "longer than the context (seq_len 256)", NULL);
}

Test(bad_input, bad_generation_settings) {
    const char *base = "generate -m " SYNTH " --tokens 1,5 ";
    struct { const char *flags, *needle; } cases[] = {
        {"--threshold 0", "threshold 0 is outside (0, 1]"},
        {"--threshold 1.5", "threshold 1.5 is outside (0, 1]"},
        {"--max-width 0", "max-width 0 must be at least 1"},
        {"--isolate-layers 1-0", "--isolate-layers must be A-B"},
        {"--isolate-layers 0-2", "--isolate-layers must be A-B with 0 <= A <= B < 2, got '0-2'"},
        {"--bezier 1.5,0.2", "bezier points 1.5,0.2 must lie in [0, 1]"},
        {"--dynamic-threshold --final-threshold 0", "final threshold 0 is outside (0, 1]"},
        {"--mode sideways", "--mode must be isolated or visible, got 'sideways'"},
        {"--prune attention --prune-threshold 2", "prune-threshold 2 is outside (0, 1]"},
        {"-n abc", "-n must be an integer"},
        {"--next-from middle", "--next-from must be last or mean, got 'middle'"},
        {"--prune sometimes", "--prune must be none or attention, got 'sometimes'"},
        {"--emulate python", "--emulate must be none or last-member-only, got 'python'"},
        {"--threshold-schedule cubic", "--threshold-schedule must be constant, bezier or linear, got 'cubic'"},
        {"--threads 0", "--threads must be an integer in [1, 1024], got '0'"},
        {"--threads -1", "--threads must be an integer in [1, 1024], got '-1'"},
        {"--threads abc", "--threads must be an integer in [1, 1024], got 'abc'"},
        {"--mode visible --isolate-layers 0-1", "--isolate-layers chooses the layers that isolate: it needs --mode isolated"},
        {"--greedy --threshold 0.05", "--greedy takes one token per step: it cannot be combined with --threshold"},
        {"--greedy --stop-on-empty", "--greedy always has a token: it cannot be combined with --stop-on-empty"},
        {"--prune attention --max-width 65", "max-width 65 is more than pruning weighs (64 members a set)"},
        {"--prune attention --emulate last-member-only", "pruning cannot be combined with --emulate"},
        {"-n 0", "max-tokens 0 must be at least 1"},
        {"--bezier 0.5", "--bezier must be P1,P2, got '0.5'"},
        {"--threshold abc", "--threshold must be a number, got 'abc'"},
        {"--threshold 1e-40", "--threshold 1e-40 is outside a float's range"}, /* a number: not "must be a number" */
        {"--threshold 1e40", "--threshold 1e40 is outside a float's range"},
        {"--prune-layers 9", "--prune-layers must be an integer in [1, 2], got '9'"},
    };
    char json[4096];
    scratch_path("x.json", json, sizeof json);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[5200];
        snprintf(args, sizeof args, "%s%s --json %s", base, cases[i].flags, json);
        expect_error(args, 1, cases[i].needle, json);
    }
}
