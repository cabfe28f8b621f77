/* tokenizer.c - the one dispatcher of tokenizer formats: a tokenizer.json
 * (tokenizer_json.c) or a llama2.c tokenizer.bin (sentencepiece.c), told
 * apart by content; encoding and decoding go to the format's own. */
#include "formats.h"

#include <stdlib.h>
#include <string.h>

/* A tokenizer.json is a JSON object; a tokenizer.bin starts with an int32. */
static int is_json(const void *data, size_t size) {
    const unsigned char *p = data;
    while (size > 0 && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, size--;
    return size > 0 && *p == '{';
}

/* Either format from bytes in memory; `name` is for messages. */
static int tokenizer_parse(Tokenizer *t, const void *data, size_t size, int vocab_size, const char *name, char *err) {
    memset(t, 0, sizeof *t);
    if (is_json(data, size)) return tempo_tokenizer_json_parse(t, data, size, vocab_size, name, err);
    return tempo_sentencepiece_parse(t, data, size, vocab_size, name, err);
}

int tempo_tokenizer_load(Tokenizer *t, const char *path, int vocab_size, char *err) {
    memset(t, 0, sizeof *t);
    unsigned char *data;
    size_t size;
    if (tempo_read_file(path, "tokenizer", &data, &size, err) != 0) return -1;
    int rc = tokenizer_parse(t, data, size, vocab_size, path, err);
    free(data);
    return rc;
}

int tempo_tokenizer_from_buffer(Tokenizer *t, const void *data, size_t size, int vocab_size, char *err) {
    return tokenizer_parse(t, data, size, vocab_size, "(buffer)", err);
}

int tempo_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err) {
    if (t->kind == TOKENIZER_BYTE_LEVEL) return tempo_bpe_encode(t, text, ids, cap, n, err);
    return tempo_sentencepiece_encode(t, text, ids, cap, n, err);
}

const char *tempo_decode(const Tokenizer *t, int prev, int token, char byte_buf[2]) {
    if (token < 0 || token >= t->vocab_size) return "";
    if (t->kind == TOKENIZER_BYTE_LEVEL) return t->pieces[token];
    return tempo_sentencepiece_decode(t, prev, token, byte_buf);
}
