/* libFuzzer: command lines from arbitrary bytes (one argument per line):
 * flags, numbers, prompts and mask specs through the real CLI, on a tiny
 * synthetic model with the real 512-piece tokenizer. Commands that write
 * files, and arguments naming paths, are skipped; cwd is an empty folder. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"
#include "scratch_dir.h"

int tempo_cli_main(int argc, char **argv);

static char model_path[PATH_MAX], tokenizer_path[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *tok = getenv("TEMPO_FUZZ_TOKENIZER");
    if (!realpath(tok ? tok : "../shared/weights/tok512.bin", tokenizer_path)) {
        fprintf(stderr, "fuzz_cli: set TEMPO_FUZZ_TOKENIZER to tok512.bin\n");
        abort();
    }
    char err[TEMPO_ERR_SIZE];
    const char *dir = scratch_make();
    if (chdir(dir) != 0) abort();
    snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
    SynthConfig s;
    tempo_synth_defaults(&s);
    s.dim = 16, s.hidden_dim = 32, s.n_layers = 2, s.n_heads = 2, s.n_kv_heads = 1, s.vocab_size = 512, s.seq_len = 24;
    if (tempo_synth_write(&s, model_path, err) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static const char *const commands[] = {"forward", "generate", "encode", "compare", "attention", "check", "verify", "diff"};
    static const char *const writers[] = {"--out", "--json", "--trace", "--svg", "--svg-grid", "--prompts"};
    if (size < 1 || size > 4096 || memchr(data, '/', size) || memchr(data, '\0', size)) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[40];
    int argc = 0;
    argv[argc++] = "tempo";
    argv[argc++] = (char *)commands[(unsigned char)text[0] % 8];
    for (char *line = strtok(text + 1, "\n"); line && argc < 34; line = strtok(NULL, "\n")) {
        for (size_t w = 0; w < sizeof writers / sizeof writers[0]; w++)
            if (strcmp(line, writers[w]) == 0) goto skip;
        argv[argc++] = line;
    }
    argv[argc++] = "-m";
    argv[argc++] = model_path;
    argv[argc++] = "-z";
    argv[argc++] = tokenizer_path;
    argv[argc] = NULL;
    tempo_cli_main(argc, argv);
skip:
    free(text);
    return 0;
}
