/* vocab.c - the vocabulary part both tokenizer formats share: pieces
 * sorted by their bytes, lookup of a piece's id, freeing. */
#define _GNU_SOURCE
#include "formats.h"

#include <stdlib.h>
#include <string.h>

static int compare_pieces(const void *a, const void *b, void *tok) {
    const Tokenizer *t = tok;
    int x = *(const int *)a, y = *(const int *)b;
    int lx = t->piece_len[x], ly = t->piece_len[y];
    int c = memcmp(t->pieces[x], t->pieces[y], (size_t)(lx < ly ? lx : ly));
    if (c != 0) return c;
    return lx != ly ? (lx < ly ? -1 : 1) : (x < y ? -1 : 1);
}

void tempo_sort_pieces(Tokenizer *t) {
    qsort_r(t->sorted_ids, (size_t)t->n_sorted, sizeof(int), compare_pieces, t);
}

/* Binary search over the pieces sorted by bytes. */
int tempo_lookup(const Tokenizer *t, const char *s, int len) {
    int lo = 0, hi = t->n_sorted - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, id = t->sorted_ids[mid];
        int lp = t->piece_len[id];
        int c = memcmp(t->pieces[id], s, (size_t)(lp < len ? lp : len));
        if (c == 0) c = lp - len;
        if (c == 0) return id;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

void tempo_tokenizer_free(Tokenizer *t) {
    if (t->pieces)
        for (int i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->sorted_ids);
    free(t->merges);
    free(t->added_ids);
    free(t->added_normalized);
    memset(t, 0, sizeof *t);
}
