/* flags.c - parsing a command's flags from its tables (flags.h). */
#include "flags.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

const FlagSpec *find_flag(const char *name, const FlagTables tables) {
    for (int k = 0; k < 3; k++)
        for (const FlagSpec *const *t = tables[k]; t && *t; t++)
            if (strcmp(name, (*t)->name) == 0 || ((*t)->alias && strcmp(name, (*t)->alias) == 0)) return *t;
    return NULL;
}

/* A number's syntax and its one range, as the table says (settings parse in settings.c). */
static int parse_number(const FlagSpec *f, FlagValue *v, char *err) {
    int ranged = f->lo < f->hi, i;
    if (f->type == FLAG_NUMBER)
        return tempo_parse_number(v->text, v->typed, ranged ? f->lo : -HUGE_VAL, ranged ? f->hi : HUGE_VAL, &v->number, err);
    if (tempo_parse_int(v->text, v->typed, ranged ? (int)f->lo : INT_MIN, ranged ? (int)f->hi : INT_MAX, &i, err) != 0)
        return -1;
    v->number = i;
    return 0;
}

/* The flag already given with the same spec (a name or its alias), or NULL. */
static const FlagValue *given_before(const Args *a, const FlagSpec *f) {
    for (int i = 0; i < a->n; i++)
        if (a->v[i].spec == f) return &a->v[i];
    return NULL;
}

/* One flag at argv[*i] into a->v (its value from the next argument). */
static int parse_flag(int argc, char **argv, int *i, const char *command, const FlagTables tables, Args *a, char *err) {
    const char *arg = argv[*i];
    const FlagSpec *f = find_flag(arg, tables);
    if (!f) return tempo_error(err, "unknown flag %s for tempo %s (see tempo %s --help)", arg, command, command);
    const FlagValue *before = given_before(a, f);
    if (before) return tempo_error(err, "flag %s given twice (%s, then %s): give it once", f->name, before->typed, arg);
    if (a->n == MAX_FLAGS) return tempo_error(err, "too many flags");
    FlagValue *v = &a->v[a->n++];
    *v = (FlagValue){f, arg, "", 0.0};
    if (f->type == FLAG_SWITCH) return 0;
    if (*i + 1 >= argc) return tempo_error(err, "flag %s of tempo %s needs a value", arg, command);
    v->text = argv[++*i];
    if (find_flag(v->text, tables)) /* "--trace --quiet": a file named --quiet is ./--quiet */
        return tempo_error(err, "flag %s of tempo %s needs a value, got the flag %s", arg, command, v->text);
    if (f->type == FLAG_OUTPUT && strcmp(v->text, "-") == 0) /* a habit of other tools: here it would be a file named - */
        return tempo_error(err, "%s - would write a file named '-': give a path, or /dev/stdout for standard output", arg);
    if ((f->type == FLAG_INT || f->type == FLAG_NUMBER) && !f->field && parse_number(f, v, err) != 0) return -1;
    return 0;
}

/* Whether two paths name one existing file. */
static int same_file(const char *x, const char *y) {
    struct stat sx, sy;
    return stat(x, &sx) == 0 && stat(y, &sy) == 0 && sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
}

/* The directory a path's last name is in (tempo_parent_dir), stat'ed. */
static int stat_parent(const char *path, struct stat *st) {
    char dir[4096];
    return tempo_parent_dir(path, dir) == 0 ? stat(dir, st) : -1;
}

/* Whether two outputs are one file: one dev/ino when either exists, else one
 * directory (by dev/ino: "d/./x", a symlinked d) and one last name. */
static int same_output(const char *x, const char *y) {
    struct stat sx, sy;
    int x_there = stat(x, &sx) == 0, y_there = stat(y, &sy) == 0;
    if (x_there || y_there) return x_there && y_there && sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
    const char *nx = strrchr(x, '/'), *ny = strrchr(y, '/');
    nx = nx ? nx + 1 : x, ny = ny ? ny + 1 : y;
    if (!*nx || strcmp(nx, ny) != 0) return strcmp(x, y) == 0;
    if (stat_parent(x, &sx) != 0 || stat_parent(y, &sy) != 0) return strcmp(x, y) == 0;
    return sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
}

/* Whether an input flag reads the existing file `path`: its value, or the FILE of an @FILE list (--tokens @ids.txt). */
static int reads_file(const char *value, const char *path) {
    return same_file(path, value) || (value[0] == '@' && same_file(path, value + 1));
}

/* Whether `path` lies in the directory `dir` (a Hugging Face model given to -m): its parent is dir by dev/ino. */
static int inside_directory(const char *path, const char *dir) {
    struct stat sd, sp;
    return stat(dir, &sd) == 0 && S_ISDIR(sd.st_mode) && stat_parent(path, &sp) == 0 && sp.st_dev == sd.st_dev &&
           sp.st_ino == sd.st_ino;
}

/* Where a path already is a file that is not regular (/dev/null, a pipe): written in place, so never replaced. */
static int written_in_place(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/* An output naming another output's file, a file another argument reads
 * (an @FILE too), or a path inside the model directory of -m. */
static int refuse_overwritten_inputs(const Args *a, char *err) {
    for (int i = 0; i < a->n; i++) {
        const FlagValue *out = &a->v[i];
        if (out->spec->type != FLAG_OUTPUT || written_in_place(out->text)) continue;
        for (int j = 0; j < a->n; j++) {
            const FlagValue *other = &a->v[j];
            FlagType type = other->spec->type;
            if (j == i) continue;
            if (type == FLAG_OUTPUT ? same_output(out->text, other->text) : type == FLAG_TEXT && reads_file(other->text, out->text))
                return tempo_error(err, "%s %s names the same file as %s: give another path", out->typed, out->text, other->typed);
            if (strcmp(other->spec->name, "-m") == 0 && inside_directory(out->text, other->text))
                return tempo_error(err, "%s %s is inside the model directory %s: tempo does not write where it reads the model",
                                   out->typed, out->text, other->text);
        }
        for (int p = 0; p < a->n_positional; p++)
            if (same_file(out->text, a->positional[p]))
                return tempo_error(err, "%s %s names the same file as the input %s: give another path", out->typed, out->text,
                                   a->positional[p]);
    }
    return 0;
}

int parse_args(int argc, char **argv, const char *command, const FlagTables tables, Args *a, char *err) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (a->n_positional == MAX_POSITIONAL) return tempo_error(err, "too many arguments");
            a->positional[a->n_positional++] = arg;
        } else if (parse_flag(argc, argv, &i, command, tables, a, err) != 0)
            return -1;
    }
    return refuse_overwritten_inputs(a, err);
}

const FlagValue *flag_value(const Args *a, const char *name) {
    for (int i = a->n - 1; i >= 0; i--)
        if (strcmp(a->v[i].spec->name, name) == 0) return &a->v[i];
    return NULL;
}

const char *flag(const Args *a, const char *name) {
    const FlagValue *v = flag_value(a, name);
    return v ? v->text : NULL;
}

double flag_number(const Args *a, const char *name, double fallback) {
    const FlagValue *v = flag_value(a, name);
    return v ? v->number : fallback;
}

void print_flag_help(FILE *out, const FlagSpec *f, const char *deflt) {
    char head[64], extra[200] = "";
    snprintf(head, sizeof head, "%s%s%s", f->name, f->value ? " " : "", f->value ? f->value : "");
    int w = 0;
    if (deflt) w += snprintf(extra + w, sizeof extra - (size_t)w, "default %s", deflt);
    if (f->range) w += snprintf(extra + w, sizeof extra - (size_t)w, "%s%s", w ? "; " : "", f->range);
    else if (f->lo < f->hi) w += snprintf(extra + w, sizeof extra - (size_t)w, "%s[%.10g, %.10g]", w ? "; " : "", f->lo, f->hi);
    fprintf(out, "  %-26s %s%s%s%s\n", head, f->help, w ? " (" : "", extra, w ? ")" : "");
    if (!f->alias) return;
    snprintf(head, sizeof head, "%s%s%s", f->alias, f->value ? " " : "", f->value ? f->value : "");
    fprintf(out, "  %-26s same as %s\n", head, f->name);
}
