/* trace_diff.h - comparing two traces tensor by tensor, within a tolerance. */
#ifndef TEMPO_TRACE_DIFF_H
#define TEMPO_TRACE_DIFF_H

#include "../formats/formats.h"

typedef struct {
    double atol, rtol;
    int failed;
} Tolerance;

/* |p - q|, with a NaN or an infinity against any other value an infinite gap, equal values
 * (NaN in both too) 0: diff's, verify's and the audit's one measure of a difference. */
double value_gap(double p, double q);
/* Compares one tensor of A with B; prints a line; returns 1 if outside tolerance. */
int compare_tensor(const Tensor *x, const Tensor *y, Tolerance *tol);
/* The same with row_ids (may be NULL) naming the rows of dimension 0 in what it prints. */
int compare_tensor_rows(const Tensor *x, const Tensor *y, const int *row_ids, Tolerance *tol);
/* verify's logits: the trace's rows that have them (tempo_trace_logits) against
 * tempo's recomputed [n,vocab]; prints the comparison and, unless every row has
 * logits, "logits compared on M of N rows". 1: outside tolerance; -1: out of memory (err). */
int compare_logit_rows(const TraceLogits *l, const Tensor *recomputed, Tolerance *tol, char *err);
/* Diffs every tensor of A that B also has; a tensor only in one is named, and a difference. 1: some differ. */
int diff_traces(const Trace *A, const Trace *B, Tolerance *tol);
/* The model the trace's metadata names against -m (an error when a dimension differs). */
int check_trace_model(const Trace *tr, const Model *m, const char *path, char *err);

#endif
