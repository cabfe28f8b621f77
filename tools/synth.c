/* synth.c - seeded synthetic models for tests and benchmarks: llama2.c
 * checkpoints, Hugging Face directories (f32/bf16) and the byte-level BPE
 * tokenizer.json trained for them on a built-in text. */
#define _GNU_SOURCE
#include "synth.h"
#include "../formats/quant.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ===================================================================== */
/* 1. Synthetic models                                                   */
/* ===================================================================== */
/* A seeded random checkpoint in llama2.c format. Weights are scaled so the
 * residual stream stays O(1) and the classifier gives logits with a
 * standard deviation near 3: peaked distributions with several tokens above
 * 0.05, so parallel sets actually form. */

void tempo_synth_defaults(SynthConfig *s) {
    s->dim = 64;
    s->hidden_dim = 172;
    s->n_layers = 2;
    s->n_heads = 4;
    s->n_kv_heads = 2;
    s->vocab_size = 256;
    s->seq_len = 256;
    s->shared_classifier = 1;
    s->seed = 42;
    s->pre_tokenizer = PRETOKENIZE_LLAMA3;
}

uint64_t tempo_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A standard normal sample (Box-Muller). */
double tempo_normal(uint64_t *state) {
    double u1 = ((tempo_splitmix64(state) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (tempo_splitmix64(state) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static int write_normal(FILE *f, size_t n, double mean, double std, uint64_t *rng) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)(mean + std * tempo_normal(rng));
        if (fwrite(&v, sizeof v, 1, f) != 1) return -1;
    }
    return 0;
}

/* Tensor values: norms near 1, matrices N(0, 1/cols) so that the residual
 * stream stays O(1). */
static void tensor_scale(const LayerTensor *lt, const Config *c, double *mean, double *std) {
    *mean = lt->cols == UNIT_NONE ? 1.0 : 0.0;
    *std = lt->cols == UNIT_NONE ? 0.1 : 1.0 / sqrt((double)tempo_unit(c, lt->cols));
}

static size_t tensor_floats(const LayerTensor *lt, const Config *c) {
    return tempo_unit(c, lt->rows) * (lt->cols == UNIT_NONE ? 1 : tempo_unit(c, lt->cols));
}

/* The legacy freq_cis tables of the llama2.c format (unused when read). */
static int write_freq_cis(FILE *f, const Config *c) {
    for (int table = 0; table < 2; table++) /* real, imaginary */
        for (int p = 0; p < c->seq_len; p++)
            for (int i = 0; i < c->head_dim / 2; i++) {
                double angle = p * pow(10000.0, -2.0 * i / c->head_dim);
                float v = (float)(table == 0 ? cos(angle) : sin(angle));
                if (fwrite(&v, sizeof v, 1, f) != 1) return -1;
            }
    return 0;
}

int tempo_check_free_space(const char *out, uint64_t bytes, char *err) {
    struct stat st;
    struct statvfs fs;
    char dir[4096];
    int there = stat(out, &st) == 0; /* its file system seen from out itself, else from its directory */
    if (there && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return 0; /* a pipe, a device: no file system to fill */
    if ((!there && tempo_parent_dir(out, dir) != 0) || statvfs(there ? out : dir, &fs) != 0)
        return 0; /* the writer reports what is wrong with the path */
    uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    if (bytes <= avail) return 0;
    return tempo_error(err, "cannot write %s: it needs %llu bytes (%.1f GiB) but its file system has %llu bytes (%.1f GiB) free", out,
                       (unsigned long long)bytes, bytes / 1073741824.0, (unsigned long long)avail, avail / 1073741824.0);
}

/* The size of the llama2.c checkpoint tempo_synth_write writes: header, tensors, freq_cis tables. */
static uint64_t llama2c_bytes(const Config *c, int shared_classifier) {
    uint64_t floats = (uint64_t)c->vocab_size * c->dim * (shared_classifier ? 1 : 2) + (uint64_t)c->dim + (uint64_t)c->seq_len * c->head_dim;
    for (int i = 0; i < N_LAYER_TENSORS; i++) floats += (uint64_t)c->n_layers * tensor_floats(&tempo_layer_tensors[i], c);
    return 7 * sizeof(int) + floats * sizeof(float);
}

int tempo_synth_write(const SynthConfig *sc, const char *path, char *err) {
    int header[7] = {sc->dim, sc->hidden_dim, sc->n_layers, sc->n_heads, sc->n_kv_heads,
                     sc->shared_classifier ? sc->vocab_size : -sc->vocab_size, sc->seq_len};
    Config c;
    if (tempo_llama2c_config(header, &c, err) != 0) return -1;
    if (tempo_check_free_space(path, llama2c_bytes(&c, sc->shared_classifier), err) != 0) return -1;
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    uint64_t rng = sc->seed;
    size_t L = c.n_layers, dim = c.dim, V = c.vocab_size;
    double emb_std = sc->shared_classifier ? 3.0 / sqrt((double)dim) : 1.0;
    int bad = fwrite(header, sizeof header, 1, a.f) != 1;
    bad = bad || write_normal(a.f, V * dim, 0.0, emb_std, &rng); /* token embedding */
    for (int i = 0; i < N_LAYER_TENSORS; i++) {                   /* each layer tensor, all layers at once */
        double mean, std;
        tensor_scale(&tempo_layer_tensors[i], &c, &mean, &std);
        bad = bad || write_normal(a.f, L * tensor_floats(&tempo_layer_tensors[i], &c), mean, std, &rng);
    }
    bad = bad || write_normal(a.f, dim, 1.0, 0.0, &rng); /* rms_final */
    bad = bad || write_freq_cis(a.f, &c);
    if (!sc->shared_classifier) bad = bad || write_normal(a.f, V * dim, 0.0, 3.0 / sqrt((double)dim), &rng);
    return tempo_atomic_close(&a, !bad, err);
}

/* The same kind of model in Hugging Face layout: dir/config.json,
 * dir/model.safetensors (f32 or bf16) and dir/tokenizer.json; GQA, tied
 * embeddings, and llama3 RoPE scaling (factor 8, low 1, high 4, original
 * 64) so that scaled, blended and kept frequencies all occur. */
/* The tensors of a synthetic Hugging Face checkpoint, in file order, with
 * the mean and standard deviation of their values. The layer tensors go
 * gate, up, down, as transformers lists them. */
typedef struct {
    Tensor *t;
    double *mean, *std;
    int n;
} HfPlan;

static void plan_add(HfPlan *p, const char *name, size_t rows, size_t cols, double mean, double std, DType dtype) {
    Tensor *x = &p->t[p->n];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->dtype = dtype;
    x->ndim = cols ? 2 : 1;
    x->shape[0] = (int64_t)rows;
    x->shape[1] = (int64_t)cols;
    p->mean[p->n] = mean;
    p->std[p->n++] = std;
}

static int plan_hf(HfPlan *p, const Config *c, DType dtype) {
    static const int hf_order[N_LAYER_TENSORS] = {0, 1, 2, 3, 4, 5, 6, 8, 7};
    int n = 2 + N_LAYER_TENSORS * c->n_layers;
    p->n = 0;
    p->t = calloc((size_t)n, sizeof *p->t);
    p->mean = calloc((size_t)n, sizeof(double));
    p->std = calloc((size_t)n, sizeof(double));
    if (!p->t || !p->mean || !p->std) return -1;
    plan_add(p, "model.embed_tokens.weight", (size_t)c->vocab_size, (size_t)c->dim, 0.0, 3.0 / sqrt((double)c->dim), dtype);
    for (int l = 0; l < c->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[hf_order[i]];
            char name[160];
            double mean, std;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lt->hf_name);
            tensor_scale(lt, c, &mean, &std);
            plan_add(p, name, tempo_unit(c, lt->rows), tempo_unit(c, lt->cols), mean, std, dtype);
        }
    plan_add(p, "model.norm.weight", (size_t)c->dim, 0, 1.0, 0.0, dtype);
    return 0;
}

static void plan_free(HfPlan *p) {
    free(p->t);
    free(p->mean);
    free(p->std);
}

/* dir/model.safetensors: every value drawn in file order from one seeded stream. */
static int write_hf_weights(const HfPlan *p, const char *path, uint64_t seed, char *err) {
    AtomicFile a;
    if (tempo_atomic_open(&a, path, "", err) != 0) return -1;
    int ok = tempo_safetensors_write_header(a.f, p->t, p->n, NULL);
    uint64_t rng = seed;
    for (int i = 0; i < p->n && ok; i++) {
        int bf16 = p->t[i].dtype == DT_BF16;
        for (size_t j = 0, count = tempo_tensor_count(&p->t[i]); j < count && ok; j++) {
            float v = (float)(p->mean[i] + p->std[i] * tempo_normal(&rng));
            uint16_t h = tempo_f32_to_bf16(v);
            ok = bf16 ? fwrite(&h, 2, 1, a.f) == 1 : fwrite(&v, 4, 1, a.f) == 1;
        }
    }
    return tempo_atomic_close(&a, ok, err);
}

/* dir/config.json: the dimensions, llama3 RoPE scaling, tied, special ids. */
static int write_hf_config(const Config *c, const char *path, int bos, const int *eos, int n_eos, int bf16, char *err) {
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "model_type", "llama");
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings"};
    const int values[] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size,
                          c->seq_len};
    for (int i = 0; i < 8; i++) cJSON_AddNumberToObject(cfg, keys[i], values[i]);
    cJSON_AddNumberToObject(cfg, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(cfg, "rope_theta", 10000.0);
    cJSON *rs = cJSON_AddObjectToObject(cfg, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    cJSON_AddNumberToObject(rs, "factor", 8.0);
    cJSON_AddNumberToObject(rs, "low_freq_factor", 1.0);
    cJSON_AddNumberToObject(rs, "high_freq_factor", 4.0);
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 64);
    cJSON_AddTrueToObject(cfg, "tie_word_embeddings");
    cJSON_AddNumberToObject(cfg, "bos_token_id", bos);
    cJSON_AddItemToObject(cfg, "eos_token_id", n_eos == 1 ? cJSON_CreateNumber(eos[0]) : cJSON_CreateIntArray(eos, n_eos));
    cJSON_AddStringToObject(cfg, "torch_dtype", bf16 ? "bfloat16" : "float32");
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    int rc = text ? tempo_write_text_file(path, text, err) : tempo_error(err, "out of memory writing %s", path);
    free(text);
    return rc;
}

/* The bytes of the plan's tensors (model.safetensors less its JSON header). */
static uint64_t plan_bytes(const HfPlan *p) {
    uint64_t bytes = 0;
    for (int i = 0; i < p->n; i++) bytes += (uint64_t)tempo_tensor_count(&p->t[i]) * tempo_dtype_size(p->t[i].dtype);
    return bytes;
}

int tempo_synth_write_hf(const SynthConfig *sc, const char *dir, int bf16, char *err) {
    int header[7] = {sc->dim, sc->hidden_dim, sc->n_layers, sc->n_heads, sc->n_kv_heads, sc->vocab_size, sc->seq_len};
    Config c;
    if (tempo_llama2c_config(header, &c, err) != 0) return -1;
    HfPlan plan;
    if (plan_hf(&plan, &c, bf16 ? DT_BF16 : DT_F32) != 0) return plan_free(&plan), tempo_error(err, "out of memory");
    int rc = tempo_check_free_space(dir, plan_bytes(&plan), err);
    if (rc == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST) rc = tempo_error(err, "cannot create %s: %s", dir, strerror(errno));
    char path[4400];
    int bos, eos[2], n_eos;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (rc == 0) rc = tempo_synth_tokenizer_json(sc, path, &bos, eos, &n_eos, err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rc == 0) rc = write_hf_weights(&plan, path, sc->seed, err);
    plan_free(&plan);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rc == 0) rc = write_hf_config(&c, path, bos, eos, n_eos, bf16, err);
    return rc;
}

/* ===================================================================== */
/* 2. A synthetic tokenizer.json                                         */
/* ===================================================================== */
/* BPE trained on a short multilingual text: ids 0-255 are the bytes, then
 * merges (the most frequent adjacent pair within pre-tokens, smallest ids on
 * ties) until the vocabulary is full or no pair occurs twice, then the
 * special tokens in the last ids. Llama 3 style: <|begin_of_text|> (BOS,
 * added by the template), <|end_of_text|> and <|eot_id|> (both EOS), merges
 * written as pairs; GPT-2 style: <|endoftext|> (BOS = EOS, nothing added),
 * merges written as "a b". */

static const char *const training_text =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.\n"
    "The cat sat on the mat; it's the cat's mat, and they'll say THEY'RE fine -- we'd know.\n"
    "In 2024 there were 1234567 tokens, 3.14159 and 42% of them were numbers: 0, 7, 99, 1000.\n"
    "  Indented    text\twith\ttabs\r\nand Windows line ends.\n\n\n"
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Ça va très bien, merci.\n"
    "Η γρήγορη καφέ αλεπού πηδάει. Съешь же ещё этих мягких французских булок.\n"
    "東京は日本の首都です。我爱自然语言处理。 한국어 텍스트도 있습니다.\n"
    "Emoji 🙂🙂 and symbols → ← ∑ ≤ ≥ … «quotes» “smart” ½ ٣ Ⅻ\n"
    "def f(x):\n    return x ** 2 + 1  # code, too\n"
    "12345678 12345678 3456 3456 the dog'ſtone, the dog'ſtone, THE DOG'STONE, THE DOG'STONE\n";

/* Raw bytes of trained tokens: the first 256 are the bytes themselves. */
typedef struct {
    int n;
    char **bytes;
    int *len;
} TrainVocab;

static int train_find(const TrainVocab *v, const char *s, int len) {
    for (int i = 0; i < v->n; i++)
        if (v->len[i] == len && memcmp(v->bytes[i], s, (size_t)len) == 0) return i;
    return -1;
}

static int by_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Trains merges into v and merges until v holds max_tokens tokens or no
 * pair occurs twice; returns how many merges. Pairs are counted across the
 * whole text, not within pre-tokens, so that the merges reach across
 * pre-token boundaries: a wrong boundary then changes the ids. */
static int train_bpe(int max_tokens, TrainVocab *v, Merge *merges, char *err) {
    size_t n = strlen(training_text);
    int *sym = malloc(n * sizeof(int)), n_merges = 0;
    uint64_t *pairs = malloc(n * sizeof(uint64_t));
    if (!sym || !pairs) n_merges = tempo_error(err, "out of memory training the synthetic tokenizer");
    for (size_t i = 0; i < n && sym; i++) sym[i] = (unsigned char)training_text[i];
    while (n_merges >= 0 && v->n < max_tokens) {
        size_t n_pairs = 0;
        for (size_t i = 0; i + 1 < n; i++) pairs[n_pairs++] = (uint64_t)sym[i] << 32 | (uint32_t)sym[i + 1];
        qsort(pairs, n_pairs, sizeof *pairs, by_u64);
        uint64_t best = 0;
        size_t best_count = 1;
        for (size_t i = 0, j; i < n_pairs; i = j) {
            for (j = i; j < n_pairs && pairs[j] == pairs[i]; j++) {}
            if (j - i > best_count) best_count = j - i, best = pairs[i];
        }
        if (best_count < 2) break;
        int left = (int)(best >> 32), right = (int)(best & 0xffffffffu), len = v->len[left] + v->len[right];
        char *joined = malloc((size_t)len);
        if (!joined) {
            n_merges = tempo_error(err, "out of memory training the synthetic tokenizer");
            break;
        }
        memcpy(joined, v->bytes[left], (size_t)v->len[left]);
        memcpy(joined + v->len[left], v->bytes[right], (size_t)v->len[right]);
        int merged = train_find(v, joined, len);
        if (merged < 0) {
            merged = v->n;
            v->bytes[v->n] = joined, v->len[v->n++] = len;
        } else {
            free(joined);
        }
        merges[n_merges] = (Merge){left, right, merged, n_merges};
        n_merges++;
        size_t w = 0; /* replace the pair, left to right */
        for (size_t i = 0; i < n; i++, w++) {
            int pair = i + 1 < n && sym[i] == left && sym[i + 1] == right;
            sym[w] = pair ? merged : sym[i];
            i += pair;
        }
        n = w;
    }
    free(sym);
    free(pairs);
    return n_merges;
}

static void add_special(cJSON *list, int id, const char *content, int normalized) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "id", id);
    cJSON_AddStringToObject(e, "content", content);
    cJSON_AddFalseToObject(e, "single_word");
    cJSON_AddFalseToObject(e, "lstrip");
    cJSON_AddFalseToObject(e, "rstrip");
    cJSON_AddBoolToObject(e, "normalized", normalized);
    cJSON_AddTrueToObject(e, "special");
    cJSON_AddItemToArray(list, e);
}

static cJSON *byte_level_step(int add_prefix_space, int use_regex) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", add_prefix_space);
    cJSON_AddTrueToObject(b, "trim_offsets");
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

/* Llama 3: Split(regex) then ByteLevel without regex; template BOS $A. */
static void llama3_processing(cJSON *root, int bos) {
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer"), *split = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *steps = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", tempo_pre_tokenizer_regex(PRETOKENIZE_LLAMA3));
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(steps, split);
    cJSON_AddItemToArray(steps, byte_level_step(0, 0));
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor"), *template = cJSON_CreateObject();
    cJSON_AddStringToObject(post, "type", "Sequence");
    cJSON *procs = cJSON_AddArrayToObject(post, "processors");
    cJSON_AddItemToArray(procs, byte_level_step(1, 1));
    cJSON_AddStringToObject(template, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(template, "single"), *special = cJSON_CreateObject(), *seq = cJSON_CreateObject();
    cJSON *bos_ref = cJSON_AddObjectToObject(special, "SpecialToken");
    cJSON_AddStringToObject(bos_ref, "id", "<|begin_of_text|>");
    cJSON_AddNumberToObject(bos_ref, "type_id", 0);
    cJSON *a = cJSON_AddObjectToObject(seq, "Sequence");
    cJSON_AddStringToObject(a, "id", "A");
    cJSON_AddNumberToObject(a, "type_id", 0);
    cJSON_AddItemToArray(single, special);
    cJSON_AddItemToArray(single, seq);
    cJSON *entry = cJSON_AddObjectToObject(cJSON_AddObjectToObject(template, "special_tokens"), "<|begin_of_text|>");
    cJSON_AddStringToObject(entry, "id", "<|begin_of_text|>");
    cJSON_AddItemToObject(entry, "ids", cJSON_CreateIntArray(&bos, 1));
    cJSON *tokens = cJSON_AddArrayToObject(entry, "tokens");
    cJSON_AddItemToArray(tokens, cJSON_CreateString("<|begin_of_text|>"));
    cJSON_AddItemToArray(procs, template);
}

/* The special tokens in the last ids, the pre-tokenizer and the template. */
static void add_specials(cJSON *root, int llama3, int first_special, int *bos, int eos[2], int *n_eos) {
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddStringToObject(root, "version", "1.0");
    *bos = first_special, eos[0] = llama3 ? first_special + 1 : first_special, eos[1] = first_special + 2;
    *n_eos = llama3 ? 2 : 1;
    if (llama3) {
        add_special(added, first_special, "<|begin_of_text|>", 0);
        add_special(added, first_special + 1, "<|end_of_text|>", 0);
        add_special(added, first_special + 2, "<|eot_id|>", 0);
        llama3_processing(root, *bos);
    } else {
        add_special(added, first_special, "<|endoftext|>", 1);
        cJSON_AddItemToObject(root, "pre_tokenizer", byte_level_step(0, 1));
        cJSON_AddItemToObject(root, "post_processor", byte_level_step(1, 1));
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "decoder", byte_level_step(1, 1));
}

/* model: BPE with the trained vocabulary and merges, as byte-level text. 0: out of memory. */
static int add_bpe_model(cJSON *root, int llama3, const TrainVocab *v, const Merge *merges, int n_merges) {
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddFalseToObject(model, "byte_fallback");
    cJSON_AddBoolToObject(model, "ignore_merges", llama3);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *list = cJSON_AddArrayToObject(model, "merges");
    size_t longest = 2 * strlen(training_text) + 1; /* a token's byte-level text: at most 2 UTF-8 bytes a byte */
    char *text = malloc(2 * longest + 2), *left = malloc(longest), *right = malloc(longest);
    int ok = text && left && right;
    for (int i = 0; i < v->n && ok; i++) {
        tempo_to_byte_level(v->bytes[i], v->len[i], text);
        cJSON_AddNumberToObject(vocab, text, i);
    }
    for (int i = 0; i < n_merges && ok; i++) {
        tempo_to_byte_level(v->bytes[merges[i].left], v->len[merges[i].left], left);
        tempo_to_byte_level(v->bytes[merges[i].right], v->len[merges[i].right], right);
        if (llama3) {
            const char *pair[2] = {left, right};
            cJSON_AddItemToArray(list, cJSON_CreateStringArray(pair, 2));
        } else {
            snprintf(text, strlen(left) + strlen(right) + 2, "%s %s", left, right);
            cJSON_AddItemToArray(list, cJSON_CreateString(text));
        }
    }
    free(text);
    free(left);
    free(right);
    return ok;
}

/* The 256 single bytes, the first tokens of a trained vocabulary. */
static int byte_tokens(TrainVocab *v) {
    for (; v->n < 256; v->n++) {
        if (!(v->bytes[v->n] = malloc(1))) return -1;
        v->bytes[v->n][0] = (char)v->n, v->len[v->n] = 1;
    }
    return 0;
}

int tempo_synth_tokenizer_text(const SynthConfig *s, char **json, int *bos, int eos[2], int *n_eos, char *err) {
    int llama3 = s->pre_tokenizer == PRETOKENIZE_LLAMA3, n_special = llama3 ? 3 : 1, V = s->vocab_size;
    *json = NULL;
    if (V < 256 + n_special + 1)
        return tempo_error(err, "a synthetic tokenizer.json needs --vocab >= %d (256 bytes, merges, %d special tokens)",
                           256 + n_special + 1, n_special);
    TrainVocab v = {0, calloc((size_t)V, sizeof(char *)), calloc((size_t)V, sizeof(int))};
    Merge *merges = calloc((size_t)V, sizeof *merges);
    int n_merges = -1;
    if (!v.bytes || !v.len || !merges || byte_tokens(&v) != 0) tempo_error(err, "out of memory building a tokenizer.json");
    else n_merges = train_bpe(V - n_special, &v, merges, err);
    if (n_merges >= 0) {
        cJSON *root = cJSON_CreateObject();
        add_specials(root, llama3, V - n_special, bos, eos, n_eos);
        if (add_bpe_model(root, llama3, &v, merges, n_merges)) *json = cJSON_Print(root);
        cJSON_Delete(root);
        if (!*json) tempo_error(err, "out of memory building a tokenizer.json");
    }
    for (int i = 0; i < v.n; i++) free(v.bytes[i]);
    free(v.bytes);
    free(v.len);
    free(merges);
    return *json ? 0 : -1;
}

int tempo_synth_tokenizer_json(const SynthConfig *s, const char *path, int *bos, int eos[2], int *n_eos, char *err) {
    char *json;
    if (tempo_synth_tokenizer_text(s, &json, bos, eos, n_eos, err) != 0) return -1;
    int rc = tempo_write_text_file(path, json, err);
    free(json);
    return rc;
}

/* Converts one matrix of `rows` x `cols` values into *next (f32) and points m at it. */
static void copy_matrix(Matrix *m, size_t rows, size_t cols, float **next) {
    tempo_dequantize(m->type, m->data, rows * cols, *next);
    *m = (Matrix){*next, WEIGHT_F32};
    *next += rows * cols;
}

static void copy_vector(const float **v, size_t n, float **next) {
    memcpy(*next, *v, n * sizeof(float));
    *v = *next;
    *next += n;
}

int tempo_model_f32_copy(const Model *src, Model *dst, char *err) {
    const Config *c = &src->config;
    size_t D = c->dim, V = c->vocab_size, L = c->n_layers, total = V * D * (c->shared_classifier ? 1 : 2) + D;
    for (int i = 0; i < N_LAYER_TENSORS; i++)
        total += L * tempo_unit(c, tempo_layer_tensors[i].rows) *
                 (tempo_layer_tensors[i].cols == UNIT_NONE ? 1 : tempo_unit(c, tempo_layer_tensors[i].cols));
    memset(dst, 0, sizeof *dst);
    dst->config = *c;
    dst->kernels = src->kernels; /* the same kernels as the original */
    dst->converted_bytes = total * sizeof(float);
    dst->converted = aligned_alloc(64, (dst->converted_bytes + 63) / 64 * 64); /* matrices on cache lines */
    dst->weights.layers = malloc(L * sizeof(LayerWeights));
    dst->rope_inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(double));
    char path[4200];
    snprintf(path, sizeof path, "%s (f32 copy)", tempo_model_path(src));
    if (!dst->converted || !dst->weights.layers || !dst->rope_inv_freq || tempo_model_set_path(dst, path, err) != 0) {
        tempo_model_free(dst);
        return tempo_error(err, "out of memory for an f32 copy of %s (%.1f GB)", tempo_model_path(src), total * 4 / 1e9);
    }
    memcpy(dst->rope_inv_freq, src->rope_inv_freq, (size_t)(c->head_dim / 2) * sizeof(double));
    Weights *w = &dst->weights;
    LayerWeights *layers = w->layers;
    *w = src->weights;
    w->layers = layers;
    memcpy(w->layers, src->weights.layers, L * sizeof(LayerWeights));
    float *next = dst->converted;
    copy_matrix(&w->token_embedding, V, D, &next);
    w->wcls = c->shared_classifier ? w->token_embedding : w->wcls;
    if (!c->shared_classifier) copy_matrix(&w->wcls, V, D, &next);
    copy_vector(&w->rms_final, D, &next);
    for (size_t l = 0; l < L; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) {
            const LayerTensor *lt = &tempo_layer_tensors[i];
            if (lt->cols == UNIT_NONE) copy_vector(tempo_layer_vector(w, (int)l, i), tempo_unit(c, lt->rows), &next);
            else copy_matrix(tempo_layer_matrix(w, (int)l, i), tempo_unit(c, lt->rows), tempo_unit(c, lt->cols), &next);
        }
    return 0;
}

/* The safetensors header of a bf16 Llama checkpoint of shape s: every
 * tensor, back to back; *data_bytes receives the bytes after the header. */
static char *sparse_header(const SynthConfig *s, size_t *data_bytes) {
    int D = s->dim, KV = s->n_kv_heads * (s->dim / s->n_heads), HID = s->hidden_dim, L = s->n_layers;
    struct { const char *name; int rows, cols; } parts[9] = {
        {"input_layernorm", D, 0}, {"self_attn.q_proj", D, D}, {"self_attn.k_proj", KV, D}, {"self_attn.v_proj", KV, D},
        {"self_attn.o_proj", D, D}, {"post_attention_layernorm", D, 0}, {"mlp.gate_proj", HID, D},
        {"mlp.up_proj", HID, D}, {"mlp.down_proj", D, HID}};
    cJSON *header = cJSON_CreateObject();
    size_t offset = 0;
    for (int t = -2; t <= L * 9; t++) {
        char name[96];
        int rows = t < 0 ? s->vocab_size : t == L * 9 ? D : parts[t % 9].rows;
        int cols = t < 0 ? D : t == L * 9 ? 0 : parts[t % 9].cols;
        if (t < 0) snprintf(name, sizeof name, t == -2 ? "model.embed_tokens.weight" : "lm_head.weight");
        else if (t == L * 9) snprintf(name, sizeof name, "model.norm.weight");
        else snprintf(name, sizeof name, "model.layers.%d.%s.weight", t / 9, parts[t % 9].name);
        size_t bytes = (size_t)rows * (cols ? cols : 1) * 2;
        cJSON *e = cJSON_AddObjectToObject(header, name);
        cJSON_AddStringToObject(e, "dtype", "BF16");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *offsets = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(rows));
        if (cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(cols));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    *data_bytes = offset;
    return json;
}

int tempo_synth_write_sparse_hf(const SynthConfig *s, const char *dir, char *err) {
    char path[4200], config[512];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return tempo_error(err, "cannot create %s: %s", dir, strerror(errno));
    snprintf(config, sizeof config, "{\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,\"max_position_embeddings\":%d,"
             "\"tie_word_embeddings\":false}", s->dim, s->hidden_dim, s->n_layers, s->n_heads, s->n_kv_heads,
             s->vocab_size, s->seq_len);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (tempo_write_text_file(path, config, err) != 0) return -1;
    size_t data_bytes;
    char *json = sparse_header(s, &data_bytes);
    if (!json) return tempo_error(err, "out of memory writing %s", dir);
    uint64_t json_len = strlen(json);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(&json_len, 8, 1, f) == 1 && fwrite(json, 1, json_len, f) == json_len &&
             ftruncate(fileno(f), (off_t)(8 + json_len + data_bytes)) == 0;
    if (f && fclose(f) != 0) ok = 0;
    free(json);
    return ok ? 0 : tempo_error(err, "cannot write the sparse file %s", path);
}
