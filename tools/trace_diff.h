/* trace_diff.h - comparing two traces tensor by tensor, within a tolerance. */
#ifndef TEMPO_TRACE_DIFF_H
#define TEMPO_TRACE_DIFF_H

#include "../formats/formats.h"

typedef struct {
    double atol, rtol;
    int failed;
} Tolerance;

/* Compares one tensor of A with B; prints a line; returns 1 if outside tolerance. */
int compare_tensor(const Tensor *x, const Tensor *y, Tolerance *tol);
/* Diffs every tensor of A that B also has; tensors only in one are named. 1: some differ. */
int diff_traces(const Trace *A, const Trace *B, Tolerance *tol);
/* The model the trace's metadata names against -m (an error when a dimension differs). */
int check_trace_model(const Trace *tr, const Model *m, const char *path, char *err);

#endif
