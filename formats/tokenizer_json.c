/* tokenizer_json.c - Hugging Face tokenizer.json: byte-level BPE as GPT-2
 * and Llama 3 use it. Sections:
 *
 *   1. Bytes as characters (GPT-2's byte-to-unicode table)
 *   2. Unicode classes and the two pre-tokenizer regexes, matched by hand
 *   3. Loading tokenizer.json
 *   4. Encoding: added tokens, pre-tokens, merges by rank
 *
 * tokenizer.c picks this format or tokenizer.bin (sentencepiece.c) and calls tempo_bpe_encode
 * for this one; tools/synth.c trains synthetic ones; NOTES.md ("Tokenizers") explains what is and is not supported. */
#define _GNU_SOURCE
#include "formats.h"
#include "unicode_tables.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================== */
/* 1. Bytes as characters                                                */
/* ===================================================================== */
/* Byte-level BPE writes every byte as one printable character: bytes
 * 33-126, 161-172 and 174-255 stand for themselves, the other 68 (controls,
 * space, ...) become U+0100, U+0101, ... in byte order. So " the" is
 * stored as "Ġthe" (U+0120 = 256 + 32). */

static uint32_t byte_char(int byte) {
    if (byte <= 32) return 256u + (uint32_t)byte;                 /* controls and space: U+0100-U+0120 */
    if (byte >= 127 && byte <= 160) return (uint32_t)byte + 162u; /* DEL, C1 controls, NBSP: U+0121-U+0142 */
    if (byte == 173) return 0x143;                                /* soft hyphen */
    return (uint32_t)byte;
}

/* The byte a byte-level character stands for, or -1. */
static int char_byte(uint32_t cp) {
    if (cp >= 256 && cp <= 288) return (int)cp - 256;
    if (cp >= 289 && cp <= 322) return (int)cp - 162;
    if (cp == 0x143) return 173;
    if (cp < 256 && byte_char((int)cp) == cp) return (int)cp;
    return -1;
}

/* One UTF-8 character at s[i..n): its length, and the code point in *cp, or
 * TEMPO_NOT_UTF8 for a byte that does not start a well-formed character. */
#define TEMPO_NOT_UTF8 0xFFFFFFFFu
static size_t utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    *cp = TEMPO_NOT_UTF8;
    if (len == 0 || i + len > n) return 1;
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 1;
        v = v << 6 | (s[i + k] & 0x3F);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms */
    if (v < least[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 1;
    *cp = v;
    return len;
}

char *tempo_valid_utf8(const char *text, size_t len) {
    char *out = malloc(3 * len + 1); /* a replaced byte becomes 3 bytes */
    size_t k = 0;
    for (size_t i = 0; out && i < len;) {
        uint32_t cp;
        size_t n = utf8_next((const unsigned char *)text, len, i, &cp);
        if (cp == TEMPO_NOT_UTF8) memcpy(out + k, "\xEF\xBF\xBD", 3), k += 3; /* U+FFFD */
        else memcpy(out + k, text + i, n), k += n;
        i += n;
    }
    if (out) out[k] = '\0';
    return out;
}

cJSON *tempo_json_add_text(cJSON *o, const char *key, const char *text) {
    char *valid = tempo_valid_utf8(text, strlen(text));
    cJSON *item = cJSON_AddStringToObject(o, key, valid ? valid : "(out of memory)");
    free(valid);
    return item;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
    out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3F)), out[2] = (char)(0x80 | (cp & 0x3F));
    return 3; /* byte characters are below U+0800; nothing else is written here */
}

/* Byte-level text (a vocabulary key) to raw bytes; -1 if a character is not a byte character. */
static int from_byte_level(const char *text, char *out, int *out_len) {
    size_t n = strlen(text);
    int len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_next((const unsigned char *)text, n, i, &cp);
        int byte = cp == TEMPO_NOT_UTF8 ? -1 : char_byte(cp);
        if (byte < 0) return -1;
        out[len++] = (char)byte;
    }
    *out_len = len;
    return 0;
}

/* Raw bytes to byte-level text (for writing tokenizer.json). */
void tempo_to_byte_level(const char *bytes, int len, char *out) {
    size_t k = 0;
    for (int i = 0; i < len; i++) k += utf8_put(byte_char((unsigned char)bytes[i]), out + k);
    out[k] = '\0';
}

/* ===================================================================== */
/* 2. Unicode classes and the pre-tokenizer regexes                      */
/* ===================================================================== */
/* A pre-tokenizer cuts the text into words that BPE never merges across.
 * Both regexes tempo knows start a match at every character (letters,
 * numbers, white space and everything else each have an alternative), so
 * a text is the concatenation of its matches. They are matched here by
 * hand, alternative by alternative, exactly as a backtracking regex engine
 * takes the first alternative that matches:
 *
 * GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+              */

static const char *const gpt2_regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const llama3_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char *tempo_pre_tokenizer_regex(PreTokenizer p) { return p == PRETOKENIZE_LLAMA3 ? llama3_regex : gpt2_regex; }

enum { CHAR_OTHER, CHAR_LETTER, CHAR_NUMBER, CHAR_SPACE };

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* \s is Unicode White_Space, \p{L} and \p{N} the general categories; bytes
 * that are not UTF-8 count as "other". */
static int char_class(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
        (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return CHAR_SPACE;
    if (in_ranges(unicode_letters, sizeof unicode_letters / sizeof unicode_letters[0], cp)) return CHAR_LETTER;
    if (in_ranges(unicode_numbers, sizeof unicode_numbers / sizeof unicode_numbers[0], cp)) return CHAR_NUMBER;
    return CHAR_OTHER;
}

static int is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* The text as code points with their classes; off[i] is the byte offset of code point i. */
typedef struct {
    size_t n;
    uint32_t *cp;
    uint8_t *cls;
    size_t *off;
} Chars;

static int chars_alloc(Chars *c, size_t len) {
    c->n = 0;
    c->cp = malloc((len + 1) * sizeof *c->cp);
    c->cls = malloc(len + 1);
    c->off = malloc((len + 1) * sizeof *c->off);
    return c->cp && c->cls && c->off ? 0 : -1;
}

static void chars_free(Chars *c) {
    free(c->cp);
    free(c->cls);
    free(c->off);
}

/* Decodes and classifies text[0..len) into c (allocated for at least len). */
static void chars_read(Chars *c, const char *text, size_t len) {
    c->n = 0;
    for (size_t i = 0; i < len; c->n++) {
        c->off[c->n] = i;
        i += utf8_next((const unsigned char *)text, len, i, &c->cp[c->n]);
        c->cls[c->n] = (uint8_t)char_class(c->cp[c->n]);
    }
    c->off[c->n] = len;
}

/* End of the run of class `cls` that starts at i. */
static size_t run_end(const Chars *c, size_t i, int cls) {
    while (i < c->n && c->cls[i] == cls) i++;
    return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d at i: the match length or 0. `fold`: case-insensitive
 * (as Unicode case folding: S and U+017F long s match s). */
static size_t contraction(const Chars *c, size_t i, int fold) {
    static const char *const endings[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    if (c->cp[i] != '\'') return 0;
    for (int e = 0; e < 7; e++) {
        size_t k = strlen(endings[e]), j = 0;
        for (; j < k && i + 1 + j < c->n; j++) {
            uint32_t x = c->cp[i + 1 + j];
            if (fold && x >= 'A' && x <= 'Z') x += 'a' - 'A';
            if (fold && x == 0x17F) x = 's';
            if (x != (uint32_t)endings[e][j]) break;
        }
        if (j == k) return 1 + k;
    }
    return 0;
}

/* \s+(?!\S) | \s+ (and, for Llama 3 first, \s*[\r\n]+) at a white-space character i. */
static size_t match_space(const Chars *c, size_t i, int newline_rule) {
    size_t end = run_end(c, i, CHAR_SPACE);
    if (newline_rule) /* \s*[\r\n]+: up to the last newline of the run */
        for (size_t k = end; k > i; k--)
            if (is_newline(c->cp[k - 1])) return k;
    if (end == c->n || end - i == 1) return end; /* at the end of the text, or one character: \s+ */
    return end - 1;                              /* leave the last space to the word after it */
}

/* End of the pre-token that starts at code point i. */
static size_t pre_token_end(PreTokenizer p, const Chars *c, size_t i) {
    int cls = c->cls[i], next = i + 1 < c->n ? c->cls[i + 1] : -1;
    size_t k = contraction(c, i, p == PRETOKENIZE_LLAMA3);
    if (k) return i + k;
    if (p == PRETOKENIZE_GPT2) {
        /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ */
        size_t start = c->cp[i] == ' ' && next != CHAR_SPACE && next != -1 ? i + 1 : i;
        if (c->cls[start] != CHAR_SPACE) return run_end(c, start, c->cls[start]);
        return match_space(c, i, 0);
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (cls == CHAR_LETTER) return run_end(c, i, CHAR_LETTER);
    if (cls != CHAR_NUMBER && !is_newline(c->cp[i]) && next == CHAR_LETTER) return run_end(c, i + 1, CHAR_LETTER);
    /* \p{N}{1,3} */
    if (cls == CHAR_NUMBER) {
        size_t end = i;
        while (end < c->n && end - i < 3 && c->cls[end] == CHAR_NUMBER) end++;
        return end;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t start = c->cp[i] == ' ' && next == CHAR_OTHER ? i + 1 : i;
    if (c->cls[start] == CHAR_OTHER) {
        size_t end = run_end(c, start, CHAR_OTHER);
        while (end < c->n && is_newline(c->cp[end])) end++;
        return end;
    }
    return match_space(c, i, 1);
}

/* ===================================================================== */
/* 3. Loading tokenizer.json                                             */
/* ===================================================================== */

static int is_json_false(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return !v || cJSON_IsNull(v) || cJSON_IsFalse(v);
}

/* A boolean field; missing takes transformers' default. */
static int json_bool(const cJSON *o, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static const char *json_type(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(v) ? v->valuestring : "(no type)";
}

static int json_id(const cJSON *v, int vocab_size, int *id) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < vocab_size) || v->valuedouble != floor(v->valuedouble))
        return -1;
    *id = (int)v->valuedouble;
    return 0;
}

/* Stores the raw bytes of token `id`. */
static int set_piece(Tokenizer *t, int id, const char *bytes, int len) {
    char *p = malloc((size_t)len + 1);
    if (!p) return -1;
    memcpy(p, bytes, (size_t)len);
    p[len] = '\0';
    free(t->pieces[id]);
    t->pieces[id] = p;
    t->piece_len[id] = len;
    if (len > t->max_piece_len) t->max_piece_len = len;
    return 0;
}

static int by_pair(const void *a, const void *b) {
    const Merge *x = a, *y = b;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    if (x->right != y->right) return x->right < y->right ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* model: {"type": "BPE", "vocab": {text: id}, "merges": ["a b" | ["a", "b"]], ...} */
/* model: type BPE, no dropout, none of the options byte-level BPE does not use. */
static int check_bpe_options(Tokenizer *t, const cJSON *model, const char *name, char *err) {
    if (!cJSON_IsObject(model) || strcmp(json_type(model), "BPE") != 0)
        return tempo_error(err, "bad tokenizer.json %s: model type %s is not supported (BPE only)", name,
                           cJSON_IsObject(model) ? json_type(model) : "(missing)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return tempo_error(err, "bad tokenizer.json %s: BPE dropout is not supported (it makes encoding random)", name);
    const char *unsupported[] = {"byte_fallback", "continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, unsupported[i]);
        int empty = !v || cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && v->valuestring[0] == '\0');
        if (!empty) return tempo_error(err, "bad tokenizer.json %s: model.%s is not supported in byte-level BPE", name, unsupported[i]);
    }
    t->ignore_merges = !is_json_false(model, "ignore_merges");
    return 0;
}

/* One vocab entry "byte-level text": id. */
static int add_vocab_entry(Tokenizer *t, const cJSON *e, char *bytes, const char *name, char *err) {
    int id, len;
    if (json_id(e, t->vocab_size, &id) != 0)
        return tempo_error(err, "bad tokenizer.json %s: vocab token \"%.40s\" has id outside the model's vocabulary of %d",
                           name, e->string, t->vocab_size);
    if (from_byte_level(e->string, bytes, &len) != 0 || len == 0)
        return tempo_error(err, "bad tokenizer.json %s: vocab token \"%.40s\" is not byte-level text", name, e->string);
    if (t->piece_len[id] > 0) return tempo_error(err, "bad tokenizer.json %s: token id %d appears twice in the vocab", name, id);
    if (set_piece(t, id, bytes, len) != 0) return tempo_error(err, "out of memory loading %s", name);
    t->sorted_ids[t->n_sorted++] = id;
    return 0;
}

/* model.vocab: every token's bytes, no text twice, a token for every byte. */
static int load_vocab(Tokenizer *t, const cJSON *vocab, const char *name, char *err) {
    size_t longest = 0;
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (strlen(e->string) > longest) longest = strlen(e->string);
    char *bytes = malloc(longest + 1); /* a key's bytes are at most its UTF-8 length */
    if (!bytes) return tempo_error(err, "out of memory loading %s", name);
    int rc = 0;
    for (const cJSON *e = vocab->child; e && rc == 0; e = e->next) rc = add_vocab_entry(t, e, bytes, name, err);
    free(bytes);
    if (rc != 0) return -1;
    tempo_sort_pieces(t);
    for (int i = 1; i < t->n_sorted; i++) {
        int a = t->sorted_ids[i - 1], b = t->sorted_ids[i];
        if (t->piece_len[a] == t->piece_len[b] && memcmp(t->pieces[a], t->pieces[b], (size_t)t->piece_len[a]) == 0)
            return tempo_error(err, "bad tokenizer.json %s: tokens %d and %d have the same text", name, a, b);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_ids[b] = tempo_lookup(t, &c, 1);
        if (t->byte_ids[b] < 0)
            return tempo_error(err, "bad tokenizer.json %s: byte 0x%02X has no token (not a byte-level vocabulary)", name, b);
    }
    return 0;
}

/* One merge, "a b" or ["a", "b"]: both tokens and their join must be in the
 * vocab. `part` and `joined` hold 2 * max_piece_len + 1 bytes. */
static int parse_merge(Tokenizer *t, const cJSON *e, int rank, char *part, char *joined, const char *name, char *err) {
    const char *parts[2] = {NULL, NULL};
    char *copy = NULL;
    if (cJSON_IsString(e)) { /* "a b": the space separates, since byte-level text has none */
        copy = strdup(e->valuestring);
        char *space = copy ? strchr(copy, ' ') : NULL;
        if (space && !strchr(space + 1, ' ')) *space = '\0', parts[0] = copy, parts[1] = space + 1;
    } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
        parts[0] = e->child->valuestring, parts[1] = e->child->next->valuestring;
    }
    int ids[2] = {-1, -1}, lens[2] = {0, 0};
    for (int k = 0; k < 2 && parts[0]; k++) /* a token's text is at most 2 UTF-8 bytes per byte */
        if (strlen(parts[k]) <= (size_t)2 * t->max_piece_len && from_byte_level(parts[k], part, &lens[k]) == 0)
            ids[k] = tempo_lookup(t, part, lens[k]);
    free(copy);
    if (!parts[0]) return tempo_error(err, "bad tokenizer.json %s: merge %d is not a pair of tokens", name, rank);
    int merged = -1;
    if (ids[0] >= 0 && ids[1] >= 0) {
        memcpy(joined, t->pieces[ids[0]], (size_t)lens[0]);
        memcpy(joined + lens[0], t->pieces[ids[1]], (size_t)lens[1]);
        merged = tempo_lookup(t, joined, lens[0] + lens[1]);
    }
    if (merged < 0) return tempo_error(err, "bad tokenizer.json %s: merge %d joins tokens that are not in the vocab", name, rank);
    t->merges[t->n_merges++] = (Merge){ids[0], ids[1], merged, rank};
    return 0;
}

/* model.merges, sorted by pair; of a pair listed twice the later rank
 * counts, as in transformers. */
static int load_merges(Tokenizer *t, const cJSON *merges, const char *name, char *err) {
    int n = cJSON_GetArraySize(merges);
    t->merges = calloc((size_t)n + 1, sizeof *t->merges);
    char *joined = malloc((size_t)2 * t->max_piece_len + 1), *part = malloc((size_t)2 * t->max_piece_len + 1);
    int rc = t->merges && joined && part ? 0 : tempo_error(err, "out of memory loading %s", name), rank = 0;
    for (const cJSON *e = merges ? merges->child : NULL; e && rc == 0; e = e->next, rank++)
        rc = parse_merge(t, e, rank, part, joined, name, err);
    free(joined);
    free(part);
    if (rc != 0) return -1;
    qsort(t->merges, (size_t)t->n_merges, sizeof *t->merges, by_pair);
    int kept = 0;
    for (int i = 0; i < t->n_merges; i++) {
        if (kept && t->merges[kept - 1].left == t->merges[i].left && t->merges[kept - 1].right == t->merges[i].right) kept--;
        t->merges[kept++] = t->merges[i];
    }
    t->n_merges = kept;
    return 0;
}

static int load_bpe_model(Tokenizer *t, const cJSON *model, const char *name, char *err) {
    if (check_bpe_options(t, model, name, err) != 0) return -1;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return tempo_error(err, "bad tokenizer.json %s: model.vocab is missing", name);
    if (merges && !cJSON_IsArray(merges)) return tempo_error(err, "bad tokenizer.json %s: model.merges must be a list", name);
    if (load_vocab(t, vocab, name, err) != 0) return -1;
    return load_merges(t, merges, name, err);
}

/* added_tokens: [{"id", "content", "special", "normalized", ...}] */
static int load_added_tokens(Tokenizer *t, const cJSON *added, const char *name, char *err) {
    if (!added || cJSON_IsNull(added)) return 0;
    if (!cJSON_IsArray(added)) return tempo_error(err, "bad tokenizer.json %s: added_tokens must be a list", name);
    int n = cJSON_GetArraySize(added);
    t->added_ids = calloc((size_t)n + 1, sizeof *t->added_ids);
    t->added_normalized = calloc((size_t)n + 1, 1);
    if (!t->added_ids || !t->added_normalized) return tempo_error(err, "out of memory loading %s", name);
    for (const cJSON *e = added->child; e; e = e->next) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        int id;
        if (json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), t->vocab_size, &id) != 0)
            return tempo_error(err, "bad tokenizer.json %s: added token %d has no id inside the model's vocabulary of %d", name,
                               t->n_added, t->vocab_size);
        if (!cJSON_IsString(content) || content->valuestring[0] == '\0')
            return tempo_error(err, "bad tokenizer.json %s: added token %d has no content", name, id);
        if (!is_json_false(e, "single_word") || !is_json_false(e, "lstrip") || !is_json_false(e, "rstrip"))
            return tempo_error(err, "bad tokenizer.json %s: added token %d uses single_word/lstrip/rstrip, which tempo does not implement",
                               name, id);
        for (int a = 0; a < t->n_added; a++)
            if (t->added_ids[a] == id) return tempo_error(err, "bad tokenizer.json %s: added token %d appears twice", name, id);
        int len = (int)strlen(content->valuestring);
        if (t->piece_len[id] > 0 && (t->piece_len[id] != len || memcmp(t->pieces[id], content->valuestring, (size_t)len) != 0))
            return tempo_error(err, "bad tokenizer.json %s: added token %d differs from vocab token %d", name, id, id);
        if (set_piece(t, id, content->valuestring, len) != 0) return tempo_error(err, "out of memory loading %s", name);
        t->added_normalized[t->n_added] = !is_json_false(e, "normalized");
        t->added_ids[t->n_added++] = id;
    }
    return 0;
}

/* pre_tokenizer: ByteLevel with the GPT-2 regex, or Sequence[Split(Llama 3 regex), ByteLevel]. */
static int load_pre_tokenizer(Tokenizer *t, const cJSON *p, const char *name, char *err) {
    const char *type = json_type(p);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (strcmp(type, "ByteLevel") == 0 && json_bool(p, "use_regex", 1) && !json_bool(p, "add_prefix_space", 1)) {
        t->pre_tokenizer = PRETOKENIZE_GPT2;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0 && cJSON_GetArraySize(steps) == 2) {
        const cJSON *split = steps->child, *bytes = split->next;
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
        const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(split, "behavior");
        if (strcmp(json_type(split), "Split") == 0 && cJSON_IsString(pattern) && cJSON_IsString(behavior) &&
            strcmp(behavior->valuestring, "Isolated") == 0 && is_json_false(split, "invert") &&
            strcmp(json_type(bytes), "ByteLevel") == 0 && !json_bool(bytes, "use_regex", 1) &&
            !json_bool(bytes, "add_prefix_space", 1)) {
            int llama3 = strcmp(pattern->valuestring, llama3_regex) == 0;
            if (llama3 || strcmp(pattern->valuestring, gpt2_regex) == 0) {
                t->pre_tokenizer = llama3 ? PRETOKENIZE_LLAMA3 : PRETOKENIZE_GPT2;
                return 0;
            }
            return tempo_error(err, "bad tokenizer.json %s: the Split regex is not one tempo implements (GPT-2, Llama 3)", name);
        }
    }
    return tempo_error(err, "bad tokenizer.json %s: pre_tokenizer %s is not supported (ByteLevel with its regex, or Split with the "
                       "GPT-2 or Llama 3 regex then ByteLevel; no add_prefix_space)", name, type);
}

/* post_processor: the special tokens TemplateProcessing puts around a single text. */
static int load_post_processor(Tokenizer *t, const cJSON *p, const char *name, char *err) {
    if (!p || cJSON_IsNull(p) || strcmp(json_type(p), "ByteLevel") == 0) return 0;
    if (strcmp(json_type(p), "Sequence") == 0) {
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(p, "processors");
        for (const cJSON *e = cJSON_IsArray(steps) ? steps->child : NULL; e; e = e->next)
            if (load_post_processor(t, e, name, err) != 0) return -1;
        return 0;
    }
    if (strcmp(json_type(p), "TemplateProcessing") != 0)
        return tempo_error(err, "bad tokenizer.json %s: post_processor %s is not supported", name, json_type(p));
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    int seen_text = 0;
    for (const cJSON *e = cJSON_IsArray(single) ? single->child : NULL; e; e = e->next) {
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            seen_text = 1;
            continue;
        }
        const cJSON *token = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), "id");
        const cJSON *entry = cJSON_IsString(token) ? cJSON_GetObjectItemCaseSensitive(specials, token->valuestring) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
        if (!cJSON_IsArray(ids))
            return tempo_error(err, "bad tokenizer.json %s: post_processor template names a special token without ids", name);
        for (const cJSON *i = ids->child; i; i = i->next) {
            int *n = seen_text ? &t->n_suffix : &t->n_prefix, *list = seen_text ? t->suffix_ids : t->prefix_ids, id;
            if (*n == 4) return tempo_error(err, "bad tokenizer.json %s: post_processor template adds more than 4 tokens at one end", name);
            if (json_id(i, t->vocab_size, &id) != 0)
                return tempo_error(err, "bad tokenizer.json %s: post_processor template id outside the vocabulary", name);
            list[(*n)++] = id;
        }
    }
    if (!seen_text) return tempo_error(err, "bad tokenizer.json %s: post_processor template has no $A sequence", name);
    return 0;
}

int tempo_tokenizer_json_parse(Tokenizer *t, const char *json, size_t len, int vocab_size, const char *name, char *err) {
    memset(t, 0, sizeof *t);
    t->kind = TOKENIZER_BYTE_LEVEL;
    if (vocab_size <= 0) return tempo_error(err, "bad tokenizer.json %s: the model's vocabulary is empty", name);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tempo_error(err, "bad tokenizer.json %s: not a JSON object", name);
    }
    t->vocab_size = vocab_size;
    t->pieces = calloc((size_t)vocab_size, sizeof *t->pieces);
    t->piece_len = calloc((size_t)vocab_size, sizeof *t->piece_len);
    t->sorted_ids = calloc((size_t)vocab_size, sizeof *t->sorted_ids);
    int rc = t->pieces && t->piece_len && t->sorted_ids ? 0 : tempo_error(err, "out of memory loading %s", name);
    for (int i = 0; i < vocab_size && rc == 0; i++)
        if (!(t->pieces[i] = calloc(1, 1))) rc = tempo_error(err, "out of memory loading %s", name);
    const cJSON *normalizer = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (rc == 0 && normalizer && !cJSON_IsNull(normalizer))
        rc = tempo_error(err, "bad tokenizer.json %s: normalizer %s is not supported (byte-level BPE has none)", name, json_type(normalizer));
    if (rc == 0 && decoder && !cJSON_IsNull(decoder) && strcmp(json_type(decoder), "ByteLevel") != 0)
        rc = tempo_error(err, "bad tokenizer.json %s: decoder %s is not supported (ByteLevel)", name, json_type(decoder));
    if (rc == 0) rc = load_bpe_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), name, err);
    if (rc == 0) rc = load_added_tokens(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), name, err);
    if (rc == 0) rc = load_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), name, err);
    if (rc == 0) rc = load_post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), name, err);
    cJSON_Delete(root);
    if (rc != 0) tempo_tokenizer_free(t);
    return rc;
}

/* ===================================================================== */
/* 4. Encoding                                                           */
/* ===================================================================== */

/* The merge of (left, right), or NULL. */
static const Merge *find_merge(const Tokenizer *t, int left, int right) {
    int lo = 0, hi = t->n_merges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const Merge *m = &t->merges[mid];
        int c = m->left != left ? (m->left < left ? -1 : 1) : m->right != right ? (m->right < right ? -1 : 1) : 0;
        if (c == 0) return m;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* BPE on one pre-token: start from its bytes and apply the lowest-ranked
 * merge among adjacent pairs (leftmost on ties) until none applies. */
static int encode_word(const Tokenizer *t, const char *word, int len, int *out) {
    int whole = t->ignore_merges ? tempo_lookup(t, word, len) : -1;
    if (whole >= 0) return out[0] = whole, 1;
    for (int i = 0; i < len; i++) out[i] = t->byte_ids[(unsigned char)word[i]];
    int n = len;
    for (;;) {
        const Merge *best = NULL;
        int at = -1;
        for (int i = 0; i + 1 < n; i++) {
            const Merge *m = find_merge(t, out[i], out[i + 1]);
            if (m && (!best || m->rank < best->rank)) best = m, at = i;
        }
        if (!best) return n;
        out[at] = best->merged;
        memmove(out + at + 1, out + at + 2, (size_t)(n - at - 2) * sizeof(int));
        n--;
    }
}

/* Pre-tokenizes text[0..len) and encodes each pre-token; returns the id count. */
static int encode_plain(const Tokenizer *t, const char *text, size_t len, Chars *c, int *out) {
    chars_read(c, text, len);
    int count = 0;
    for (size_t i = 0; i < c->n;) {
        size_t end = pre_token_end(t->pre_tokenizer, c, i);
        count += encode_word(t, text + c->off[i], (int)(c->off[end] - c->off[i]), out + count);
        i = end;
    }
    return count;
}

/* The leftmost, then longest, occurrence at or after `from` of an added token
 * whose normalized flag is `normalized`; returns its index or -1. */
static int find_added(const Tokenizer *t, const char *text, size_t len, size_t from, int normalized, size_t *at) {
    for (size_t p = from; p < len; p++) {
        int best = -1;
        for (int a = 0; a < t->n_added; a++) {
            int id = t->added_ids[a], n = t->piece_len[id];
            if (t->added_normalized[a] != normalized || (size_t)n > len - p || t->pieces[id][0] != text[p]) continue;
            if (memcmp(t->pieces[id], text + p, (size_t)n) == 0 && (best < 0 || n > t->piece_len[t->added_ids[best]])) best = a;
        }
        if (best >= 0) return *at = p, best;
    }
    return -1;
}

/* Splits out added tokens as transformers does: first those matched on the
 * raw text (normalized false), then, between them, the others; the rest is
 * pre-tokenized. */
static int encode_text(const Tokenizer *t, const char *text, size_t len, int normalized, Chars *c, int *out) {
    int count = 0;
    for (size_t pos = 0; pos < len;) {
        size_t at = len;
        int a = find_added(t, text, len, pos, normalized, &at);
        count += normalized ? encode_plain(t, text + pos, at - pos, c, out + count)
                            : encode_text(t, text + pos, at - pos, 1, c, out + count);
        if (a < 0) break;
        out[count++] = t->added_ids[a];
        pos = at + (size_t)t->piece_len[t->added_ids[a]];
    }
    return count;
}

int tempo_bpe_encode(const Tokenizer *t, const char *text, int *ids, int cap, int *n, char *err) {
    size_t len = strlen(text);
    int *work = malloc((len + TEMPO_ENCODE_EXTRA) * sizeof(int));
    Chars c;
    int rc = 0, count = 0;
    if (chars_alloc(&c, len) != 0 || !work) {
        rc = tempo_error(err, "out of memory encoding a %zu-byte prompt", len);
    } else {
        memcpy(work, t->prefix_ids, (size_t)t->n_prefix * sizeof(int));
        count = t->n_prefix;
        count += encode_text(t, text, len, 0, &c, work + count);
        memcpy(work + count, t->suffix_ids, (size_t)t->n_suffix * sizeof(int));
        count += t->n_suffix;
        if (count > cap) rc = tempo_error(err, "prompt is %d tokens, more than the %d that fit", count, cap);
        else memcpy(ids, work, (size_t)count * sizeof(int)), *n = count;
    }
    free(work);
    chars_free(&c);
    return rc;
}

int tempo_pre_tokenize(const Tokenizer *t, const char *text, size_t len, size_t *ends, size_t *n, char *err) {
    if (t->kind != TOKENIZER_BYTE_LEVEL) return tempo_error(err, "only a tokenizer.json has a pre-tokenizer");
    Chars c;
    if (chars_alloc(&c, len) != 0) {
        chars_free(&c);
        return tempo_error(err, "out of memory pre-tokenizing a %zu-byte text", len);
    }
    chars_read(&c, text, len);
    *n = 0;
    for (size_t i = 0; i < c.n;) {
        size_t end = pre_token_end(t->pre_tokenizer, &c, i);
        ends[(*n)++] = c.off[end];
        i = end;
    }
    chars_free(&c);
    return 0;
}
