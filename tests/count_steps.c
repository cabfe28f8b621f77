/* count_steps.c - `make count`: the instructions of one decode step, a
 * figure that stays the same on a busy machine (timings do not).
 *
 *   build/count-steps MODEL K
 *
 * Loads MODEL, runs a 4-row prompt, then one step of K rows (one parallel
 * set, isolated) inside measured_step(). `make count` runs this under
 * callgrind with collection on in measured_step only, so the total is the
 * step's instruction count. (valgrind does not run AVX-512: the counted
 * build is AVX2, a proxy for the real one.) */
#include <stdio.h>
#include <stdlib.h>

#include "../formats/formats.h"

static int fail(const char *what, const char *err) {
    fprintf(stderr, "count-steps: %s: %s\n", what, err);
    return 1;
}

/* The measured region: one forward step of k rows after the prompt. */
__attribute__((noinline)) int measured_step(const Model *m, State *s, int k, const int *tokens, const int *pos,
                                            const Mask *mask, Outputs out, char *err) {
    return tempo_forward(m, s, k, tokens, pos, mask, out, err);
}

int main(int argc, char **argv) {
    char err[TEMPO_ERR_SIZE];
    int k = argc == 3 ? atoi(argv[2]) : 0;
    if (k < 1 || k > 8) {
        fprintf(stderr, "usage: count-steps MODEL K (1 <= K <= 8)\n");
        return 1;
    }
    tempo_set_threads(1);
    Model m;
    if (tempo_model_load(&m, argv[1], err) != 0) return fail(argv[1], err);
    int n = 4 + k, tokens[12], pos[12], rc = 1;
    for (int i = 0; i < n; i++) tokens[i] = (i * 131 + 3) % m.config.vocab_size, pos[i] = i < 4 ? i : 4;
    float *logits = malloc((size_t)k * m.config.vocab_size * sizeof(float));
    State s;
    if (!logits || tempo_state_init(&s, &m.config, n, err) != 0) {
        free(logits);
        tempo_model_free(&m);
        return fail("state", logits ? err : "out of memory");
    }
    Mask mask = tempo_mask_rule(MASK_ISOLATED, pos); /* sets: each prompt row its own, the step's rows one */
    Outputs out = {.logits = logits, .last_logits = 1};
    if (tempo_forward(&m, &s, 4, tokens, pos, &mask, out, err) != 0) fail("prompt", err);
    else {
        out.last_logits = k;
        if (measured_step(&m, &s, k, tokens + 4, pos + 4, &mask, out, err) != 0) fail("step", err);
        else rc = 0;
    }
    tempo_state_free(&s);
    free(logits);
    tempo_model_free(&m);
    return rc;
}
