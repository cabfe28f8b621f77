/* audit.h - judging an engine's TEMPO run from its trace (tempo audit):
 * the arithmetic as verify does it, the rows fed against the engine's own
 * selections, the masks against the specification, the selections against
 * tempo's rule, and a replay by tempo_generate. NOTES.md, "The audit". */
#ifndef TEMPO_AUDIT_H
#define TEMPO_AUDIT_H

#include <stdio.h>

#include "../formats/formats.h"

/* Settings a run was made with: from flags, else from the trace's metadata.
 * Unknown: mode/next_from -1, threshold <= 0, max_width/n_prompt < 0. */
typedef struct {
    int mode;              /* MASK_ISOLATED or MASK_VISIBLE */
    float threshold;
    int max_width, n_prompt;
    int next_from;         /* NEXT_LAST_ROW or NEXT_MEAN */
    float atol;            /* arithmetic tolerance (1e-4, as verify) */
    GenConfig gen;         /* schedule, isolated layers, pruning (metadata), for selection and replay */
} AuditSettings;

/* The bytes of one audited set's text (SetText, printing.h). */
#define AUDIT_SET_TEXT 120

/* One departure; row/key/step/token are -1 when absent (null in JSON). */
typedef struct {
    const char *kind;
    int row, key, step, token;
    char detail[2 * AUDIT_SET_TEXT + 16]; /* holds "engine SET, tempo SET" whole */
} AuditFinding;

enum { CHECK_ARITHMETIC, CHECK_ROWS, CHECK_MASK, CHECK_SELECTION, CHECK_REPLAY, AUDIT_CHECKS };

typedef struct {
    int n_findings;
    size_t cap_findings;
    AuditFinding *findings;
    char checks[AUDIT_CHECKS][2 * AUDIT_SET_TEXT + 160]; /* "ok", "N findings", "skipped: why", the replay's two sets */
    int first_divergent_step;        /* -1: none */
} AuditReport;

void audit_settings_init(AuditSettings *s, const Config *c);
/* The known settings, completed with defaults, by tempo_gen_validate; an
 * error is prefixed with `source` ("trace metadata") when it is not "". */
int audit_settings_check(const AuditSettings *s, const Config *c, const char *source, char *err);
/* Fills every setting still unknown from the trace's metadata (a bad value is an error). */
int audit_settings_from_trace(AuditSettings *s, const Trace *t, const Config *c, char *err);
/* Writes a generation's settings as trace metadata (every setting of the
 * table in settings.c) and engine "tempo" (tempo_generation_trace writes n_prompt). */
int audit_put_settings(Trace *t, const GenConfig *g, const Config *c, char *err);

/* Runs every check whose settings are known. -1 only for unreadable input. */
int tempo_audit(const Model *m, const Trace *t, const AuditSettings *s, AuditReport *r, char *err);
void audit_report_free(AuditReport *r);
/* One line per finding, runs of one kind grouped; then the checks and the replay. */
/* How many checks were skipped (their line starts "skipped"): all of them is no audit, and not clean. */
int audit_checks_skipped(const AuditReport *r);
void audit_report_print(const AuditReport *r, FILE *out);
int audit_report_json(const AuditReport *r, const char *path, char *err);

/* The trace's prompt length when trace_recompute follows the engine's
 * calls (the prompt as one, then each set): kernels whose order depends on
 * a call's rows (Kernels.by_call) and n_prompt in the trace; else 0 (one
 * forward pass over every row). */
int trace_recompute_prompt(const Model *m, const Trace *t, int n);
/* verify's recomputation: every row of the trace through the full forward
 * pass (in the engine's calls where trace_recompute_prompt says so).
 * logits [n][vocab] and the attention the trace holds (*keep: which; NULL
 * when it holds none) are allocated here. */
int trace_recompute(const Model *m, const Trace *t, int *n, float **logits, float **attention, AttentionKeep *keep,
                    char *err);

#endif
