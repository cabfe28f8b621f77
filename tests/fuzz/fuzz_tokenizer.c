/* libFuzzer: a tokenizer (tokenizer.bin, or tokenizer.json when the bytes
 * start with '{') and a prompt from arbitrary bytes. Layout: u16 vocab
 * size, u16 prompt length, prompt bytes, tokenizer bytes. When the
 * tokenizer loads: encode the prompt, decode every id, pre-tokenize. */
#include <stdlib.h>
#include <string.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 4) return 0;
    int vocab = 1 + (data[0] | data[1] << 8) % 1024;
    size_t ends[512];
    size_t prompt_len = (size_t)(data[2] | data[3] << 8) % 512;
    if (4 + prompt_len > size) return 0;
    char *prompt = malloc(prompt_len + 1);
    if (!prompt) return 0;
    memcpy(prompt, data + 4, prompt_len);
    prompt[prompt_len] = '\0';
    Tokenizer t;
    char err[TEMPO_ERR_SIZE];
    if (tempo_tokenizer_from_buffer(&t, data + 4 + prompt_len, size - 4 - prompt_len, vocab, err) == 0) {
        int ids[1100], n;
        if (tempo_encode(&t, prompt, ids, 1100, &n, err) == 0)
            for (int i = 1; i < n; i++) {
                char buf[2];
                const char *piece = tempo_decode(&t, ids[i - 1], ids[i], buf);
                (void)strlen(piece);
            }
        size_t n_ends;
        if (t.kind == TOKENIZER_BYTE_LEVEL && tempo_pre_tokenize(&t, prompt, strlen(prompt), ends, &n_ends, err) == 0)
            for (size_t i = 1; i < n_ends; i++)
                if (ends[i] <= ends[i - 1]) __builtin_trap(); /* pre-tokens are never empty */
        for (int id = -1; id <= vocab; id++) {
            char buf[2];
            (void)strlen(tempo_decode(&t, TEMPO_BOS, id, buf));
        }
        tempo_tokenizer_free(&t);
    }
    free(prompt);
    return 0;
}
