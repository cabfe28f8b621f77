/* tokenizer.json (byte-level BPE): ids equal those of the independent
 * reference in oracle/reference.py, text round-trips, the config's special
 * ids are used, and malformed files give named errors. */
#include "helpers.h"

/* The tokenizer.json of a synthetic Hugging Face directory, with the model's vocabulary size. */
static void load_synth_tokenizer(const char *dir, Tokenizer *t, Model *m) {
    char path[4096], tok[4200], err[TEMPO_ERR_SIZE];
    load_model(m, synth_path(dir, path, sizeof path));
    snprintf(tok, sizeof tok, "%s/tokenizer.json", path);
    if (tempo_tokenizer_load(t, tok, m->config.vocab_size, err) != 0) cr_assert_fail("cannot load %s: %s", tok, err);
    cr_assert_eq(t->kind, TOKENIZER_BYTE_LEVEL);
}

static int *encode(const Tokenizer *t, const char *text, int *n) {
    int cap = (int)strlen(text) + TEMPO_ENCODE_EXTRA, *ids = malloc((size_t)cap * sizeof(int));
    char err[TEMPO_ERR_SIZE];
    if (tempo_encode(t, text, ids, cap, n, err) != 0) cr_assert_fail("cannot encode \"%s\": %s", text, err);
    return ids;
}

/* The text of ids, without the template's prefix and suffix. */
static char *decode(const Tokenizer *t, const int *ids, int n) {
    size_t len = 0;
    for (int i = t->n_prefix; i < n - t->n_suffix; i++) len += (size_t)t->piece_len[ids[i]];
    char *text = malloc(len + 1), buf[2];
    len = 0;
    for (int i = t->n_prefix; i < n - t->n_suffix; i++) {
        const char *piece = tempo_decode(t, i ? ids[i - 1] : -1, ids[i], buf);
        memcpy(text + len, piece, (size_t)t->piece_len[ids[i]]);
        len += (size_t)t->piece_len[ids[i]];
    }
    text[len] = '\0';
    return text;
}

static void check_golden_ids(const char *dir) {
    char path[4096], tok[4200], sha[65] = "";
    snprintf(path, sizeof path, "%s/tokenizer-%s.json", GOLDEN_DIR, dir);
    cJSON *golden = read_json_file(path);
    snprintf(tok, sizeof tok, "%s/%s/tokenizer.json", BUILD_DIR, dir);
    file_sha256(tok, sha);
    cr_assert_str_eq(sha, cJSON_GetObjectItem(golden, "tokenizer_sha256")->valuestring,
                     "%s changed since golden %s was made (make golden)", tok, path);
    Model m;
    Tokenizer t;
    load_synth_tokenizer(dir, &t, &m);
    int n_cases = 0, n_merged = 0;
    for (const cJSON *c = cJSON_GetObjectItem(golden, "cases")->child; c; c = c->next, n_cases++) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int n, *ids = encode(&t, text, &n);
        cr_expect_eq(n, cJSON_GetArraySize(want), "%s: \"%s\" gives %d ids, the reference %d", dir, text, n,
                     cJSON_GetArraySize(want));
        int i = 0;
        for (const cJSON *w = want->child; w && i < n; w = w->next, i++) {
            if (ids[i] == w->valueint) continue;
            cr_expect_fail("%s: \"%s\": id %d is %d, the reference says %d", dir, text, i, ids[i], w->valueint);
            break;
        }
        n_merged += n < (int)strlen(text);
        free(ids);
        /* the pre-token boundaries themselves */
        const cJSON *pieces = cJSON_GetObjectItem(c, "pre_tokens");
        size_t len = strlen(text), *ends = malloc((len + 1) * sizeof(size_t)), n_ends, end = 0, k = 0;
        char err[TEMPO_ERR_SIZE];
        cr_assert_eq(tempo_pre_tokenize(&t, text, len, ends, &n_ends, err), 0, "%s", err);
        cr_expect_eq(n_ends, (size_t)cJSON_GetArraySize(pieces), "%s: \"%s\" has %zu pre-tokens, the reference %d", dir, text,
                     n_ends, cJSON_GetArraySize(pieces));
        for (const cJSON *piece = pieces->child; piece && k < n_ends; piece = piece->next, k++) {
            end += strlen(piece->valuestring);
            if (ends[k] == end) continue;
            cr_expect_fail("%s: \"%s\": pre-token %zu ends at byte %zu, the reference's \"%s\" at %zu", dir, text, k, ends[k],
                           piece->valuestring, end);
            break;
        }
        free(ends);
    }
    cr_assert(n_cases >= 30 && n_merged >= 15, "the golden covers %d texts, %d of them merged", n_cases, n_merged);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    cJSON_Delete(golden);
}

Test(tokenizer_json, llama3_style_ids_match_reference) { check_golden_ids("synth-hf-f32"); }
Test(tokenizer_json, gpt2_style_ids_match_reference) { check_golden_ids("synth-hf-bf16"); }

static void check_round_trip(const Tokenizer *t, const char *text) {
    int n, *ids = encode(t, text, &n);
    char *back = decode(t, ids, n);
    cr_expect_str_eq(back, text, "decode(encode(\"%s\")) = \"%s\"", text, back);
    free(back);
    free(ids);
}

Test(tokenizer_json, utf8_corpus_round_trips) {
    char *corpus = read_text_file("tests/data/utf8-corpus.txt", NULL);
    const char *dirs[2] = {"synth-hf-f32", "synth-hf-bf16"};
    for (int d = 0; d < 2; d++) {
        Model m;
        Tokenizer t;
        load_synth_tokenizer(dirs[d], &t, &m);
        check_round_trip(&t, corpus);
        char *copy = strdup(corpus), *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) check_round_trip(&t, line);
        free(copy);
        tempo_tokenizer_free(&t);
        tempo_model_free(&m);
    }
    free(corpus);
}

/* Random text over letters, digits, spaces, newlines, apostrophes, marks,
 * CJK, emoji and special-token fragments: decoding gives the text back. */
Test(tokenizer_json, random_text_round_trips) {
    static const char *const alphabet[] = {"a", "Z", "é", "ß", "ж", "λ", "東", "한", "7", "٣", "½", " ", "  ", "\t", "\n",
                                           "\r\n", "\r", "'", "'s", "'LL", "ſ", ".", "...", "\u0301", "\u00a0", "\u3000",
                                           "🙂", "👩\u200d👧", "<|", "|>", "<|eot_id|>", "<|endoftext|>", "\x01", "~"};
    size_t n_alpha = sizeof alphabet / sizeof alphabet[0];
    uint64_t state = 12345;
    const char *dirs[2] = {"synth-hf-f32", "synth-hf-bf16"};
    for (int d = 0; d < 2; d++) {
        Model m;
        Tokenizer t;
        load_synth_tokenizer(dirs[d], &t, &m);
        for (int k = 0; k < 300; k++) {
            char text[1024] = "";
            size_t len = 0;
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            int parts = (int)(state >> 59) + 1;
            for (int p = 0; p < parts; p++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                const char *s = alphabet[(state >> 33) % n_alpha];
                memcpy(text + len, s, strlen(s) + 1);
                len += strlen(s);
            }
            check_round_trip(&t, text);
        }
        tempo_tokenizer_free(&t);
        tempo_model_free(&m);
    }
}

Test(tokenizer_json, special_tokens_and_template) {
    Model m;
    Tokenizer t;
    load_synth_tokenizer("synth-hf-f32", &t, &m);
    const Config *c = &m.config;
    int bos = c->vocab_size - 3;
    cr_assert_eq(c->bos_token_id, bos, "config.json's bos_token_id");
    cr_assert(c->n_eos == 2 && tempo_is_eos(c, bos + 1) && tempo_is_eos(c, bos + 2) && !tempo_is_eos(c, 2),
              "eos_token_id [%d, %d] is a list", bos + 1, bos + 2);
    cr_assert(t.n_prefix == 1 && t.prefix_ids[0] == bos && t.n_suffix == 0, "the template adds <|begin_of_text|>");
    int n, *ids = encode(&t, "<|eot_id|><|eot_id|>", &n);
    cr_expect(n == 3 && ids[0] == bos && ids[1] == bos + 2 && ids[2] == bos + 2, "special tokens in the text are split out");
    free(ids);
    ids = encode(&t, "", &n);
    cr_expect(n == 1 && ids[0] == bos, "an empty text is the template alone");
    free(ids);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
    load_synth_tokenizer("synth-hf-bf16", &t, &m);
    cr_expect(t.n_prefix == 0 && m.config.bos_token_id == m.config.vocab_size - 1 && tempo_is_eos(&m.config, m.config.vocab_size - 1),
              "GPT-2 style: <|endoftext|> is BOS and EOS, nothing is added");
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

/* A Hugging Face directory brings its tokenizer.json: no -z needed. */
Test(tokenizer_json, cli_uses_the_directory_tokenizer) {
    char cmd[4200], out[4096] = "";
    snprintf(cmd, sizeof cmd, TEMPO_BIN " encode -m %s/synth-hf-f32 -p 'the cat' 2>&1", BUILD_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert(p && fgets(out, sizeof out, p));
    cr_assert_eq(pclose(p), 0, "tempo encode failed: %s", out);
    Model m;
    Tokenizer t;
    load_synth_tokenizer("synth-hf-f32", &t, &m);
    int n, *ids = encode(&t, "the cat", &n);
    char want[256] = "";
    for (int i = 0; i < n; i++) snprintf(want + strlen(want), sizeof want - strlen(want), i ? ",%d" : "%d", ids[i]);
    strcat(want, "\n");
    cr_expect_str_eq(out, want);
    free(ids);
    tempo_tokenizer_free(&t);
    tempo_model_free(&m);
}

/* The smallest valid tokenizer.json: the 256 byte tokens and one merge. */
static cJSON *minimal_tokenizer(void) {
    cJSON *root = cJSON_Parse("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[\"a b\"]},\"added_tokens\":"
                              "[{\"id\":257,\"content\":\"<s>\",\"special\":true},{\"id\":259,\"content\":\"<s>>\"}],"
                              "\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                              "\"add_prefix_space\":false,\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"}}");
    cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab");
    for (int b = 0; b < 256; b++) { /* GPT-2's byte characters */
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        int cp = printable ? b : b <= 32 ? 256 + b : b <= 160 ? b + 162 : 0x143;
        char s[4] = {0};
        if (cp < 0x80) s[0] = (char)cp;
        else s[0] = (char)(0xC0 | cp >> 6), s[1] = (char)(0x80 | (cp & 0x3F));
        cJSON_AddNumberToObject(vocab, s, b);
    }
    cJSON_AddNumberToObject(vocab, "ab", 256);
    cJSON_AddNumberToObject(vocab, "abc", 258); /* no merge makes it */
    return root;
}

static void expect_tokenizer_error(cJSON *root, const char *needle) {
    char *json = cJSON_PrintUnformatted(root), err[TEMPO_ERR_SIZE] = "";
    Tokenizer t;
    int rc = tempo_tokenizer_json_parse(&t, json, strlen(json), 300, "test.json", err);
    if (rc == 0) tempo_tokenizer_free(&t);
    cr_expect(rc != 0 && strstr(err, needle), "expected an error naming \"%s\", got rc %d: %s", needle, rc, err);
    free(json);
    cJSON_Delete(root);
}

/* Merges, added tokens (leftmost, then longest) and ignore_merges on a file small enough to check by hand. */
Test(tokenizer_json, minimal_file_loads) {
    for (int ignore_merges = 0; ignore_merges < 2; ignore_merges++) {
        cJSON *root = minimal_tokenizer();
        cJSON_AddBoolToObject(cJSON_GetObjectItem(root, "model"), "ignore_merges", ignore_merges);
        char *json = cJSON_PrintUnformatted(root), err[TEMPO_ERR_SIZE];
        Tokenizer t;
        cr_assert_eq(tempo_tokenizer_json_parse(&t, json, strlen(json), 300, "test.json", err), 0, "%s", err);
        int n, *ids = encode(&t, "abc<s>>ab<s>ba", &n);
        int want_plain[] = {256, 'c', 259, 256, 257, 'b', 'a'}, want_whole[] = {258, 259, 256, 257, 'b', 'a'};
        const int *want = ignore_merges ? want_whole : want_plain;
        int n_want = ignore_merges ? 6 : 7;
        cr_expect_eq(n, n_want, "ignore_merges %d: %d ids", ignore_merges, n);
        for (int i = 0; i < n && i < n_want; i++) cr_expect_eq(ids[i], want[i], "ignore_merges %d: id %d is %d, not %d", ignore_merges, i, ids[i], want[i]);
        free(ids);
        tempo_tokenizer_free(&t);
        free(json);
        cJSON_Delete(root);
    }
}

/* The object at a dotted path below root ("" is root, a number indexes a list). */
static cJSON *at_path(cJSON *root, const char *path) {
    char copy[64], *save = NULL;
    snprintf(copy, sizeof copy, "%s", path);
    for (char *part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save))
        root = *part >= '0' && *part <= '9' ? cJSON_GetArrayItem(root, atoi(part)) : cJSON_GetObjectItem(root, part);
    return root;
}

Test(tokenizer_json, malformed_files_give_named_errors) {
    expect_tokenizer_error(cJSON_Parse("[1, 2]"), "bad tokenizer.json test.json: not a JSON object");
    /* one change to the minimal file: at `where`, set `key` to the JSON `value` (NULL: delete the key; no key: append) */
    struct { const char *where, *key, *value, *needle; } cases[] = {
        {"model", "type", "\"WordPiece\"", "model type WordPiece is not supported"},
        {"model", "vocab", NULL, "model.vocab is missing"},
        {"model.vocab", "xyz", "300", "vocab token \"xyz\" has id outside the model's vocabulary of 300"},
        {"model.vocab", "\xe2\x82\xac", "290", "is not byte-level text"},
        {"model.vocab", "ba", "256", "token id 256 appears twice in the vocab"},
        {"model.vocab", "Ġ", NULL, "byte 0x20 has no token"},
        {"model.merges", NULL, "\"b a\"", "merge 1 joins tokens that are not in the vocab"},
        {"model.merges", NULL, "\"a b c\"", "merge 1 is not a pair of tokens"},
        {"model", "byte_fallback", "true", "model.byte_fallback is not supported"},
        {"added_tokens.0", "lstrip", "true", "added token 257 uses single_word/lstrip/rstrip"},
        {"added_tokens.0", "content", "\"\"", "added token 257 has no content"},
        {"added_tokens", NULL, "{\"id\":257,\"content\":\"<t>\"}", "added token 257 appears twice"},
        {"added_tokens", NULL, "{\"id\":256,\"content\":\"<t>\"}", "added token 256 differs from vocab token 256"},
        {"", "normalizer", "{\"type\":\"NFC\"}", "normalizer NFC is not supported"},
        {"", "pre_tokenizer", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                              "\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}",
         "the Split regex is not one tempo implements"},
        {"", "pre_tokenizer", "{\"type\":\"Metaspace\"}", "pre_tokenizer Metaspace is not supported"},
        {"", "post_processor", "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<x>\"}},"
                               "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}",
         "post_processor template names a special token without ids"},
        {"", "decoder", "{\"type\":\"WordPiece\"}", "decoder WordPiece is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *root = minimal_tokenizer(), *target = at_path(root, cases[i].where);
        cr_assert(target, "case %zu: no %s in the minimal file", i, cases[i].where);
        if (!cases[i].key) {
            cJSON_AddItemToArray(target, cJSON_Parse(cases[i].value));
        } else {
            cJSON_DeleteItemFromObject(target, cases[i].key);
            if (cases[i].value) cJSON_AddItemToObject(target, cases[i].key, cJSON_Parse(cases[i].value));
        }
        expect_tokenizer_error(root, cases[i].needle);
    }
}

/* tokenizer.json ids beyond the model's vocabulary, through the CLI. */
Test(tokenizer_json, tokenizer_larger_than_the_model) {
    char tok[4200], args[8600];
    snprintf(tok, sizeof tok, "%s/synth-hf-f32/tokenizer.json", BUILD_DIR);
    snprintf(args, sizeof args, "encode -m %s/synth-tied.bin -z %s -p hi", BUILD_DIR, tok); /* vocab 256 */
    expect_error(args, 1, "has id outside the model's vocabulary of 256", NULL);
}

/* A byte-level token may be part of a UTF-8 character; the JSON and SVG
 * outputs still must be valid UTF-8 (checked with iconv). */
Test(tokenizer_json, outputs_stay_valid_utf8) {
    char files[3][256], cmd[1024];
    scratch_path("utf8.json", files[0], sizeof files[0]);
    scratch_path("utf8.svg", files[1], sizeof files[1]);
    scratch_path("utf8-att.json", files[2], sizeof files[2]);
    snprintf(cmd, sizeof cmd, TEMPO_BIN " generate -m %s/synth-hf-f32 -p '東京は日本' -n 8 --threshold 0.05 --quiet "
             "--json %s 2>/dev/null && " TEMPO_BIN " attention -m %s/synth-hf-f32 -p '東京は日本' -n 4 "
             "--threshold 0.05 --heatmap 0:0 --svg %s --json %s >/dev/null 2>&1",
             BUILD_DIR, files[0], BUILD_DIR, files[1], files[2]);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    size_t len;
    char *json = read_text_file(files[0], &len);
    cr_assert(strstr(json, "\xEF\xBF\xBD"), "this run decodes a partial character (shown as U+FFFD)");
    free(json);
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "iconv -f UTF-8 -t UTF-8 %s >/dev/null 2>&1", files[i]);
        cr_expect_eq(system(cmd), 0, "%s is not valid UTF-8", files[i]);
        unlink(files[i]);
    }
}
