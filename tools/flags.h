/* flags.h - the command line's flags. Each flag is defined once, as a
 * FlagSpec in a table; the parser accepts exactly a command's tables,
 * parses each value once (numbers into FlagValue.number, with the one
 * range the table gives), and `tempo CMD --help` is printed from the same
 * tables. The generation settings are flags of their own table
 * (settings.h), which adds where each lives in GenConfig and its name in
 * JSON and trace metadata. */
#ifndef TEMPO_FLAGS_H
#define TEMPO_FLAGS_H

#include <stddef.h>
#include <stdio.h>

#include "../formats/formats.h"

typedef enum {
    FLAG_SWITCH,  /* no value */
    FLAG_INT,     /* an integer, in [lo, hi] when lo < hi */
    FLAG_NUMBER,  /* a finite number, in [lo, hi] when lo < hi */
    FLAG_TEXT,    /* text the command reads (a path, a list of ids) */
    FLAG_OUTPUT,  /* a path the command writes */
    FLAG_CHOICE,  /* one of `choices` (settings) */
    FLAG_LAYERS,  /* "A-B" within the model's layers (settings) */
    FLAG_PAIR     /* two numbers "P1,P2" (settings) */
} FlagType;

typedef struct {
    const char *name;
    int value;
} Choice;

typedef struct {
    const char *name;     /* "--prompt" */
    const char *alias;    /* "-p", or NULL: the same flag */
    FlagType type;
    const char *value;    /* what the value is, for the help ("T", "FILE"); NULL for switches */
    const char *deflt;    /* default in words; NULL: none, or (a setting) printed from tempo_gen_defaults */
    double lo, hi;        /* the range, checked once, when lo < hi */
    const char *range;    /* the range in words, when tempo_gen_validate or the model decides it */
    const char *help;
    /* generation settings only (settings.c): */
    const char *key, *key2;   /* names in JSON and trace metadata (key2: the second of a pair) */
    int field, field2;        /* offsetof in GenConfig, +1 (0: none) */
    int layers_hi;            /* FLAG_INT: the range ends at the model's layer count */
    const Choice *choices;    /* FLAG_CHOICE: {NULL, 0}-terminated */
} FlagSpec;

/* One flag as given: its spec, the name as typed (an alias too), its text,
 * and a number already parsed and in range (FLAG_INT, FLAG_NUMBER). */
typedef struct {
    const FlagSpec *spec;
    const char *typed, *text;
    double number;
} FlagValue;

enum { MAX_FLAGS = 64, MAX_POSITIONAL = 8 };

typedef struct {
    int n;
    FlagValue v[MAX_FLAGS];
    int n_positional;
    const char *positional[MAX_POSITIONAL];
} Args;

/* A command's flags: up to three NULL-terminated tables (NULL: none). */
typedef const FlagSpec *const *FlagTables[3];

const FlagSpec *find_flag(const char *name, const FlagTables tables);
/* Splits argv into flags of the tables (values parsed once) and positionals.
 * Refused: a flag given twice, a value that is one of the command's flags
 * (a forgotten value), an output naming another output's file or an
 * existing input's, an @FILE's too (the first would be overwritten), and an
 * output inside the model directory of -m. */
int parse_args(int argc, char **argv, const char *command, const FlagTables tables, Args *a, char *err);
/* The last value given for the flag `name` (by its name or alias), "" for a switch, NULL when absent. */
const char *flag(const Args *a, const char *name);
const FlagValue *flag_value(const Args *a, const char *name);
/* A FLAG_INT/FLAG_NUMBER flag's parsed number, or `fallback` when absent. */
double flag_number(const Args *a, const char *name, double fallback);
/* One help line: name, value, what it does, default and range. */
void print_flag_help(FILE *out, const FlagSpec *f, const char *deflt);

#endif
