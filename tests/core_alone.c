/* core_alone.c - tempo.c on its own: built with only libm, OpenBLAS and
 * OpenMP (make test-core-alone), it runs the plain kernels on a small
 * random f32 model held in memory. It checks that the KV cache gives the
 * full recomputation's logits, that the isolated mask hides a set's
 * members from each other, and that TEMPO generation runs.
 * Exits 0 when all hold; otherwise prints what failed and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tempo.h"

enum { DIM = 32, HIDDEN = 48, LAYERS = 2, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 8, VOCAB = 40, SEQ = 24 };

static int failures;

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "core_alone: %s\n", what);
        failures++;
    }
}

/* Uniform values in [-scale, scale) from a fixed linear congruential sequence. */
static float *random_values(size_t n, float scale, unsigned *seed) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; v && i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        v[i] = scale * ((float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f);
    }
    return v;
}

/* A model whose every tensor is one block of owned memory, in `store`. */
static int build_model(Model *m, float **store) {
    memset(m, 0, sizeof *m);
    Config *c = &m->config;
    *c = (Config){.dim = DIM, .hidden_dim = HIDDEN, .n_layers = LAYERS, .n_heads = HEADS, .n_kv_heads = KV_HEADS,
                  .vocab_size = VOCAB, .seq_len = SEQ, .head_dim = HEAD_DIM, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                  .rope_interleaved = 1, .shared_classifier = 1, .bos_token_id = 1, .n_eos = 1, .eos_token_ids = {2}};
    size_t per_layer = 2 * DIM + (size_t)2 * DIM * HEADS * HEAD_DIM + (size_t)2 * DIM * KV_HEADS * HEAD_DIM +
                       (size_t)3 * DIM * HIDDEN;
    size_t total = (size_t)VOCAB * DIM + LAYERS * per_layer + DIM;
    unsigned seed = 12345;
    float *p = *store = random_values(total, 0.3f, &seed);
    m->weights.layers = calloc(LAYERS, sizeof(LayerWeights));
    m->rope_inv_freq = malloc(HEAD_DIM / 2 * sizeof(double));
    if (!p || !m->weights.layers || !m->rope_inv_freq) return -1;
    m->weights.token_embedding = (Matrix){p, WEIGHT_F32};
    p += (size_t)VOCAB * DIM;
    for (int l = 0; l < LAYERS; l++) {
        LayerWeights *lw = &m->weights.layers[l];
        for (int i = 0; i < DIM; i++) p[i] = p[DIM + i] = 1.0f; /* the two norm weights */
        lw->rms_att = p; lw->rms_ffn = p + DIM; p += 2 * DIM;
        lw->wq = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * HEADS * HEAD_DIM;
        lw->wo = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * HEADS * HEAD_DIM;
        lw->wk = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * KV_HEADS * HEAD_DIM;
        lw->wv = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * KV_HEADS * HEAD_DIM;
        lw->w1 = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * HIDDEN;
        lw->w2 = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * HIDDEN;
        lw->w3 = (Matrix){p, WEIGHT_F32}; p += (size_t)DIM * HIDDEN;
    }
    for (int i = 0; i < DIM; i++) p[i] = 1.0f;
    m->weights.rms_final = p;
    m->weights.wcls = m->weights.token_embedding;
    for (int i = 0; i < HEAD_DIM / 2; i++) m->rope_inv_freq[i] = pow(c->rope_theta, -2.0 * i / HEAD_DIM); /* theta^(-2i/d) */
    return 0;
}

/* Rows fed one by one through the cache give the full pass's logits. */
static void check_cache(const Model *m) {
    enum { N = 7 };
    const int tokens[N] = {1, 5, 9, 11, 12, 30, 31}, pos[N] = {0, 1, 2, 3, 4, 5, 5};
    uint8_t allowed[N * N];
    tempo_mask_rows(MASK_ISOLATED, pos, 0, N, allowed);
    float full[N * VOCAB], step[N * VOCAB];
    char err[TEMPO_ERR_SIZE];
    Mask mask = tempo_mask_dense(allowed, 1, 0, N, N);
    expect(tempo_forward_full(m, N, tokens, pos, &mask, (Outputs){.logits = full}, err) == 0, err);
    State s;
    expect(tempo_state_init(&s, &m->config, N, err) == 0, err);
    for (int i = 0; i < N; i++)
        expect(tempo_forward(m, &s, 1, tokens + i, pos + i, &mask,
                             (Outputs){.logits = step + (size_t)i * VOCAB}, err) == 0, err);
    tempo_state_free(&s);
    double worst = 0.0;
    int finite = 1;
    for (int i = 0; i < N * VOCAB; i++) {
        worst = fmax(worst, fabs((double)full[i] - step[i]));
        finite = finite && isfinite(full[i]);
    }
    expect(finite, "logits are not finite");
    expect(worst <= 1e-5, "cached logits differ from the full pass by more than 1e-5");
    /* rows 5 and 6 share position 5 in one isolated set: neither sees the other, so each is the
     * row it would be alone, and swapping their order leaves both unchanged */
    const int swapped[N] = {1, 5, 9, 11, 12, 31, 30};
    float other[N * VOCAB];
    expect(tempo_forward_full(m, N, swapped, pos, &mask, (Outputs){.logits = other}, err) == 0, err);
    double d = 0.0;
    for (int v = 0; v < VOCAB; v++)
        d = fmax(d, fmax(fabs(full[5 * VOCAB + v] - other[6 * VOCAB + v]), fabs(full[6 * VOCAB + v] - other[5 * VOCAB + v])));
    expect(d <= 1e-5, "isolated members of one set see each other");
}

static void check_generation(const Model *m) {
    GenConfig g;
    tempo_gen_defaults(&g, &m->config);
    g.threshold = 0.05f;
    g.max_steps = 6;
    const int prompt[] = {1, 7, 8};
    Generation gen;
    char err[TEMPO_ERR_SIZE];
    int rc = tempo_generate(m, prompt, 3, &g, &gen, err);
    expect(rc == 0, err);
    if (rc != 0) return;
    expect(gen.n_steps >= 1 && gen.n_rows > 3, "generation added no rows");
    for (int s = 0; s < gen.n_steps; s++)
        for (int i = 0; i < gen.steps[s].n_members; i++) {
            const Member *mem = &gen.members[gen.steps[s].first_member + i];
            expect(mem->row < 0 || gen.positions[mem->row] == gen.steps[s].logical_pos, "a member left its set's position");
        }
    tempo_generation_free(&gen);
}

int main(void) {
    Model m;
    float *store = NULL;
    if (build_model(&m, &store) != 0) {
        fprintf(stderr, "core_alone: out of memory\n");
        return 1;
    }
    expect(m.kernels == NULL, "a hand-built model has no kernels: the plain ones run");
    check_cache(&m);
    check_generation(&m);
    free(store);
    free(m.weights.layers);
    free(m.rope_inv_freq);
    if (failures == 0) printf("core_alone: tempo.c alone (plain kernels) passes\n");
    return failures ? 1 : 0;
}
