/* numerics.c - the numerics profiles (NOTES "Numerics of real engines"):
 * which kernels and which RoPE angles a forward pass uses. exact is tempo's
 * own arithmetic; ggml and torch compute as those engines do, so that a
 * difference they explain is told apart from a TEMPO fault. */
#include <stdio.h>
#include <string.h>

#include "kernels.h"

static const char *const profile_names[] = {"exact", "ggml", "torch"};

const char *tempo_numerics_name(NumericsProfile p) {
    return p >= NUMERICS_EXACT && p <= NUMERICS_TORCH ? profile_names[p] : "?";
}

int tempo_numerics_parse(const char *name, NumericsProfile *p, char *err) {
    for (int i = NUMERICS_EXACT; i <= NUMERICS_TORCH; i++)
        if (strcmp(name, profile_names[i]) == 0) {
            *p = (NumericsProfile)i;
            return 0;
        }
    return tempo_error(err, "unknown numerics profile '%s' (exact, ggml or torch)", name);
}

void tempo_numerics_describe(const Numerics *n, char *buf, size_t size) {
    if (n->profile == NUMERICS_GGML)
        snprintf(buf, size, "ggml (K/V %s, flash attention %s, repack %s)", n->kv_f16 ? "f16" : "f32",
                 n->flash_attn ? "on" : "off", n->repack_off ? "off" : "on");
    else
        snprintf(buf, size, "%s", tempo_numerics_name(n->profile));
}

int tempo_model_set_numerics(Model *m, const Numerics *n, char *err) {
    if (n->profile != NUMERICS_GGML && (n->kv_f16 || n->flash_attn || n->repack_off))
        return tempo_error(err, "a K/V cache type of f16, flash attention and repack off are settings of --numerics ggml, not %s",
                           tempo_numerics_name(n->profile));
    if (n->profile == NUMERICS_GGML && m->config.head_dim > TEMPO_GGML_MAX_HEAD_DIM)
        return tempo_error(err, "the ggml numerics take heads up to %d wide; this model's are %d",
                           TEMPO_GGML_MAX_HEAD_DIM, m->config.head_dim);
    m->kernels = n->profile == NUMERICS_GGML ? tempo_ggml_kernels(n->kv_f16, n->flash_attn, !n->repack_off) : &tempo_fast_kernels;
    m->rope_angles = n->profile == NUMERICS_GGML ? ROPE_ANGLES_GGML
                     : n->profile == NUMERICS_TORCH ? ROPE_ANGLES_TORCH : ROPE_ANGLES_EXACT;
    return 0;
}
