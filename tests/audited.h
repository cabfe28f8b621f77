/* audited.h - the audit tests' fixture (test_audit.c, test_rules.c): a
 * TEMPO run on fortune.bin, its trace as generate --trace writes it, and
 * the audit of that trace. */
#ifndef TEMPO_TEST_AUDITED_H
#define TEMPO_TEST_AUDITED_H

#include "helpers.h"

#include "../tools/audit.h"

typedef struct {
    Model m;
    Generation gen;
    Trace trace;
    AuditReport report;
} Audited;

/* Generates on fortune.bin from "The cat sat on the" (threshold 0.05, 24
 * steps, then `adjust`) and builds the trace as generate --trace does. */
static inline void generate_and_trace(Audited *a, void (*adjust)(GenConfig *)) {
    char model[4096], tok[4096], err[TEMPO_ERR_SIZE];
    memset(a, 0, sizeof *a);
    fortune_paths(model, tok);
    load_model(&a->m, model);
    Tokenizer t;
    load_tokenizer(&t, "fortune-tok512.bin", a->m.config.vocab_size);
    GenConfig g;
    tempo_gen_defaults(&g, &a->m.config);
    g.threshold = 0.05f;
    g.max_steps = 24;
    g.capture_attention = 1;
    if (adjust) adjust(&g);
    int ids[64], n;
    cr_assert(tempo_encode(&t, "The cat sat on the", ids, 64, &n, err) == 0, "%s", err);
    cr_assert(tempo_generate(&a->m, ids, n, &g, &a->gen, err) == 0, "%s", err);
    cr_assert(tempo_generation_trace(&a->gen, &a->m, TRACE_MASK_BITS, &a->trace, err) == 0, "%s", err);
    cr_assert(tempo_trace_dense_mask(&a->trace, 1 << 12, err) == 0, "%s", err); /* the tests edit it */
    cr_assert(audit_put_settings(&a->trace, &g, &a->m.config, err) == 0, "%s", err);
    tempo_tokenizer_free(&t);
}

static inline void audit_with(Audited *a, void (*flags)(AuditSettings *)) {
    char err[TEMPO_ERR_SIZE];
    AuditSettings s;
    audit_settings_init(&s, &a->m.config);
    if (flags) flags(&s);
    cr_assert(audit_settings_from_trace(&s, &a->trace, &a->m.config, err) == 0, "%s", err);
    cr_assert(tempo_audit(&a->m, &a->trace, &s, &a->report, err) == 0, "%s", err);
}

static inline void audited_free(Audited *a) {
    audit_report_free(&a->report);
    tempo_trace_free(&a->trace);
    tempo_generation_free(&a->gen);
    tempo_model_free(&a->m);
}

#endif
