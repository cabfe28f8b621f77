/* numbers.c - the one parser of numbers in text (numbers.h). */
#include "formats.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int tempo_int_in_range(double v, const char *text, const char *what, long long lo, long long hi, int *out, char *err) {
    if (v >= (double)lo && v <= (double)hi && v == floor(v)) {
        *out = (int)v;
        return 0;
    }
    if (lo <= INT_MIN && hi >= INT_MAX) return tempo_error(err, "%s must be an integer, got '%s'", what, text);
    return tempo_error(err, "%s must be an integer in [%lld, %lld], got '%s'", what, lo, hi, text);
}

/* One integer at *p (leading spaces skipped); *p moves past it. NAN: none or out of long's range. */
static double read_integer(const char **p) {
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (end == *p || errno) return NAN;
    *p = end;
    return (double)v;
}

int tempo_parse_int(const char *s, const char *what, int lo, int hi, int *out, char *err) {
    const char *p = s;
    double v = read_integer(&p);
    return tempo_int_in_range(*p == '\0' ? v : NAN, s, what, lo, hi, out, err);
}

int tempo_parse_float(const char *s, const char *what, float *out, char *err) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s || *end != '\0' || isnan(v)) return tempo_error(err, "%s must be a number, got '%s'", what, s);
    if (errno == ERANGE || isinf(v)) /* past FLT_MAX, or not 0 yet below the least normal float */
        return tempo_error(err, "%s %s is outside a float's range (magnitudes 1.2e-38 to 3.4e38, or 0)", what, s);
    *out = v;
    return 0;
}

int tempo_parse_number(const char *s, const char *what, double lo, double hi, double *out, char *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return tempo_error(err, "%s must be a number in [%.10g, %.10g], got '%s'", what, lo, hi, s);
    *out = v;
    return 0;
}

void tempo_format_float(char buf[32], float v) {
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtof(buf, NULL) == v) return;
    }
}

int tempo_parse_range(const char *s, const char *what, int lo, int hi, int *first, int *last, char *err) {
    const char *p = s;
    double a = read_integer(&p), b = a;
    if (*p == '-' && !isnan(a)) {
        p++;
        b = read_integer(&p);
    }
    if (*p != '\0' || isnan(a) || isnan(b) || a < lo || b < a || b > hi)
        return tempo_error(err, "%s must be A-B with %d <= A <= B < %d, got '%s'", what, lo, hi + 1, s);
    *first = (int)a;
    *last = (int)b;
    return 0;
}

int tempo_parse_int_pair(const char *s, char sep, const char *what, const char *form, int lo, int *a, int *b, char *err) {
    const char *p = s;
    double x = read_integer(&p), y = NAN;
    if (*p == sep) {
        p++;
        y = read_integer(&p);
    }
    if (*p != '\0' || !(x >= lo && x <= INT_MAX && y >= lo && y <= INT_MAX))
        return tempo_error(err, "%s must be %s, got '%s'", what, form, s);
    *a = (int)x;
    *b = (int)y;
    return 0;
}

int tempo_parse_float_pair(const char *s, char sep, const char *what, const char *form, float *a, float *b, char *err) {
    char *end, *end2 = NULL;
    errno = 0;
    float x = strtof(s, &end), y = NAN;
    if (end != s && *end == sep) y = strtof(end + 1, &end2);
    if (errno || !end2 || end2 == end + 1 || *end2 != '\0' || !isfinite(x) || !isfinite(y))
        return tempo_error(err, "%s must be %s, got '%s'", what, form, s);
    *a = x;
    *b = y;
    return 0;
}

/* The comma-separated integers of `text` into v (room for every comma + 1). */
static int read_list(const char *text, const char *what, int *v, int *n, char *err) {
    const char *p = text;
    *n = 0;
    for (;;) {
        double x = read_integer(&p);
        while (isspace((unsigned char)*p)) p++;
        if (isnan(x) || x < INT_MIN || x > INT_MAX || (*p != ',' && *p != '\0')) {
            int shown = (int)strcspn(text, "\r\n"); /* one line of message */
            return tempo_error(err, "%s must be a comma-separated list of integers, got '%.*s%s'", what,
                               shown < 60 ? shown : 60, text, text[shown < 60 ? shown : 60] ? "..." : "");
        }
        v[(*n)++] = (int)x;
        if (*p++ == '\0') return 0;
    }
}

int tempo_parse_int_list(const char *s, const char *what, int **out, int *n, char *err) {
    unsigned char *file = NULL;
    size_t len = 0;
    char where[4200];
    if (s[0] == '@') {
        snprintf(where, sizeof where, "%s file", what);
        if (tempo_read_file(s + 1, where, &file, &len, err) != 0) return -1;
        if (memchr(file, '\0', len)) {
            free(file);
            return tempo_error(err, "%s %s holds a NUL byte: it must hold a comma-separated list of integers", where, s + 1);
        }
        file[len] = '\0'; /* tempo_read_file leaves room: it reads in 64 KiB blocks */
        snprintf(where, sizeof where, "%s file %s", what, s + 1);
    }
    const char *text = file ? (const char *)file : s;
    size_t cap = 1;
    for (const char *p = text; *p; p++) cap += *p == ',';
    *out = malloc(cap * sizeof(int));
    int rc = *out ? read_list(text, file ? where : what, *out, n, err) : tempo_error(err, "out of memory");
    free(file);
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Items "A" or "A-B" separated by commas, each within [0, bound), into a
 * sorted list without repeats (a mark per index, then the marked ones). */
int tempo_parse_index_set(const char *s, const char *what, int bound, int **out, int *n, char *err) {
    uint8_t *marked = calloc((size_t)(bound > 0 ? bound : 1), 1);
    char item[64];
    *out = NULL, *n = 0;
    if (!marked) return tempo_error(err, "out of memory");
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        int first, last;
        snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), p);
        if (len >= sizeof item || tempo_parse_range(item, what, 0, bound - 1, &first, &last, err) != 0) {
            free(marked);
            return len >= sizeof item ? tempo_error(err, "%s: an item of '%.40s' is too long", what, s) : -1;
        }
        for (int i = first; i <= last; i++) marked[i] = 1;
        p += len;
        if (*p == '\0') break;
    }
    *out = malloc((size_t)(bound > 0 ? bound : 1) * sizeof(int));
    for (int i = 0; *out && i < bound; i++)
        if (marked[i]) (*out)[(*n)++] = i;
    free(marked);
    return *out ? 0 : tempo_error(err, "out of memory");
}
