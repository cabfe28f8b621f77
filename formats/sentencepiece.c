/* sentencepiece.c - the llama2.c tokenizer.bin (sentencepiece-style BPE):
 * reading it, encoding and decoding. tokenizer.c picks the format. */
#define _GNU_SOURCE
#include "formats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* File: int32 max_token_length, then vocab_size x (float score, int32 len,
 * len bytes). Encoding follows llama2.c: BOS, a dummy space prefix, one
 * piece per UTF-8 code point (bytes as <0xNN> = id byte+3 when the code
 * point is not a piece), then repeatedly merge the adjacent pair whose
 * concatenation is the piece with the highest score. */

/* Reads the pieces from f and closes it. */
static int sentencepiece_read(Tokenizer *t, FILE *f, const char *path, int vocab_size, char *err) {
    int max_len;
    if (fread(&max_len, sizeof max_len, 1, f) != 1 || max_len <= 0 || max_len > 4096) {
        fclose(f);
        return tempo_error(err, "bad tokenizer %s: max_token_length missing or out of range", path);
    }
    t->kind = TOKENIZER_SENTENCEPIECE;
    t->vocab_size = vocab_size;
    t->n_sorted = vocab_size;
    t->max_piece_len = max_len;
    t->pieces = calloc((size_t)vocab_size, sizeof *t->pieces);
    t->piece_len = calloc((size_t)vocab_size, sizeof *t->piece_len);
    t->scores = calloc((size_t)vocab_size, sizeof *t->scores);
    t->sorted_ids = calloc((size_t)vocab_size, sizeof *t->sorted_ids);
    if (!t->pieces || !t->piece_len || !t->scores || !t->sorted_ids) {
        fclose(f);
        tempo_tokenizer_free(t);
        return tempo_error(err, "out of memory loading tokenizer %s", path);
    }
    for (int i = 0; i < vocab_size; i++) {
        int len;
        if (fread(&t->scores[i], sizeof(float), 1, f) != 1 || fread(&len, sizeof len, 1, f) != 1) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "tokenizer %s does not match the model: it has %d pieces, the model's vocabulary is %d",
                        path, i, vocab_size);
        }
        if (len < 0 || len > max_len) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "bad tokenizer %s: piece %d has length %d (max_token_length %d)", path, i, len, max_len);
        }
        t->pieces[i] = malloc((size_t)len + 1);
        if (!t->pieces[i] || fread(t->pieces[i], 1, (size_t)len, f) != (size_t)len) {
            fclose(f);
            tempo_tokenizer_free(t);
            return tempo_error(err, "truncated tokenizer %s: piece %d is cut short", path, i);
        }
        t->pieces[i][len] = '\0';
        t->piece_len[i] = len;
        t->sorted_ids[i] = i;
    }
    int extra = fgetc(f);
    fclose(f);
    if (extra != EOF) {
        tempo_tokenizer_free(t);
        return tempo_error(err, "tokenizer %s does not match the model: it has more than %d pieces", path, vocab_size);
    }
    tempo_sort_pieces(t);
    return 0;
}

/* BOS, the dummy space prefix, then one piece per UTF-8 code point (its
 * bytes as <0xNN> = id byte+3 when it is not a piece). Returns the count. */
static int code_point_pieces(const Tokenizer *t, const char *text, size_t text_len, int *work) {
    int count = 0;
    work[count++] = TEMPO_BOS;
    if (text_len > 0) {
        int space = tempo_lookup(t, " ", 1);
        if (space >= 0) work[count++] = space;
    }
    for (size_t i = 0; i < text_len;) {
        size_t len = 1; /* one UTF-8 code point: a lead byte and its continuation bytes */
        while (len < 4 && i + len < text_len && ((unsigned char)text[i + len] & 0xC0) == 0x80) len++;
        int id = tempo_lookup(t, text + i, (int)len);
        if (id >= 0) {
            work[count++] = id;
        } else {
            for (size_t b = 0; b < len; b++) { /* byte fallback <0xNN> = id byte+3, or <unk> = 0 if the vocabulary lacks it */
                int byte_id = (unsigned char)text[i + b] + 3;
                work[count++] = byte_id < t->vocab_size ? byte_id : 0;
            }
        }
        i += len;
    }
    return count;
}

/* Merges the best-scoring adjacent pair until no pair is a piece; `pair`
 * holds 2 * max_piece_len bytes. Returns the new count. */
static int merge_pairs(const Tokenizer *t, int *work, int count, char *pair) {
    for (;;) {
        float best_score = -1e30f;
        int best_id = -1, best_at = -1;
        for (int i = 1; i + 1 < count; i++) { /* position 0 is BOS: never merged */
            int a = work[i], b = work[i + 1];
            int la = t->piece_len[a], lb = t->piece_len[b];
            if (la + lb > 2 * t->max_piece_len) continue;
            memcpy(pair, t->pieces[a], (size_t)la);
            memcpy(pair + la, t->pieces[b], (size_t)lb);
            int id = tempo_lookup(t, pair, la + lb);
            if (id >= 0 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_at = i;
            }
        }
        if (best_at < 0) return count;
        work[best_at] = best_id;
        memmove(work + best_at + 1, work + best_at + 2, (size_t)(count - best_at - 2) * sizeof(int));
        count--;
    }
}

int tempo_sentencepiece_parse(Tokenizer *t, const void *data, size_t size, int vocab_size, const char *name, char *err) {
    memset(t, 0, sizeof *t);
    if (size == 0) return tempo_error(err, "bad tokenizer %s: max_token_length missing or out of range", name);
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) return tempo_error(err, "cannot read tokenizer %s: %s", name, strerror(errno));
    return sentencepiece_read(t, f, name, vocab_size, err);
}

int tempo_sentencepiece_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err) {
    size_t text_len = strlen(text);
    /* every byte may become one id, plus BOS and the dummy prefix */
    int *work = malloc((text_len + 2) * sizeof(int));
    char *pair = malloc((size_t)2 * t->max_piece_len + 1);
    int rc = 0;
    if (!work || !pair) rc = tempo_error(err, "out of memory encoding a %zu-byte prompt", text_len);
    int count = rc == 0 ? merge_pairs(t, work, code_point_pieces(t, text, text_len, work), pair) : 0;
    if (rc == 0 && count > cap) rc = tempo_error(err, "prompt is %d tokens, more than the %d that fit", count, cap);
    if (rc == 0) {
        memcpy(ids, work, (size_t)count * sizeof(int));
        *n = count;
    }
    free(work);
    free(pair);
    return rc;
}

const char *tempo_sentencepiece_decode(const Tokenizer *t, int prev, int token, char byte_buf[2]) {
    const char *piece = t->pieces[token];
    if (prev == TEMPO_BOS && piece[0] == ' ') piece++;
    unsigned int byte;
    if (t->piece_len[token] == 6 && sscanf(piece, "<0x%02X>", &byte) == 1) {
        byte_buf[0] = (char)byte;
        byte_buf[1] = '\0';
        return byte_buf;
    }
    return piece;
}
