/* compare_suite.h - tempo compare over one prompt or a suite of them. */
#ifndef TEMPO_COMPARE_SUITE_H
#define TEMPO_COMPARE_SUITE_H

#include <cjson/cJSON.h>

#include "compare.h"
#include "flags.h"

/* The prompts to compare: the --prompts file, or the one -p prompt. */
int compare_prompts(const Args *a, char ***categories, char ***prompts, int *n, char *err);
void free_prompts(char **categories, char **prompts, int n);
/* Compares every prompt (each into an object of `runs`); the suite table when there are several. */
int compare_all(const Model *m, const Tokenizer *t, const GenConfig *g, char **categories, char **prompts, int n,
                cJSON *runs, char *err);

#endif
