/* numbers.h - the one parser of numbers in text: flags, trace metadata,
 * list files and the integers of model configs. Each function reads the
 * whole text or fails with one line: "WHAT must be FORM, got 'TEXT'". */
#ifndef TEMPO_NUMBERS_H
#define TEMPO_NUMBERS_H

#include <limits.h>

/* The one range check of an integer: lo <= v <= hi and whole, into *out;
 * `text` is how v was written (for the message). INT_MIN..INT_MAX is
 * "an integer", anything narrower "an integer in [lo, hi]". */
int tempo_int_in_range(double v, const char *text, const char *what, long long lo, long long hi, int *out, char *err);
int tempo_parse_int(const char *s, const char *what, int lo, int hi, int *out, char *err);
/* A finite float (its range is the caller's rule, e.g. tempo_gen_validate). */
int tempo_parse_float(const char *s, const char *what, float *out, char *err);
/* A finite number in [lo, hi]: "WHAT must be a number in [lo, hi], got 'TEXT'". */
int tempo_parse_number(const char *s, const char *what, double lo, double hi, double *out, char *err);
/* The shortest decimal that reads back to the same float (0.1, not 0.100000001). */
void tempo_format_float(char buf[32], float v);
/* "A-B" (or "A") with lo <= A <= B <= hi. */
int tempo_parse_range(const char *s, const char *what, int lo, int hi, int *first, int *last, char *err);
/* Two integers "A<sep>B", each >= lo; `form` names the syntax in the message ("LAYER:HEAD"). */
int tempo_parse_int_pair(const char *s, char sep, const char *what, const char *form, int lo, int *a, int *b, char *err);
/* Two floats "A<sep>B". */
int tempo_parse_float_pair(const char *s, char sep, const char *what, const char *form, float *a, float *b, char *err);
/* "1,2,3" (spaces and newlines allowed around the commas), or "@FILE": a
 * file holding such a list (a long list does not fit in one argument).
 * *out is allocated ([*n] entries); the caller frees it. */
int tempo_parse_int_list(const char *s, const char *what, int **out, int *n, char *err);

#endif
