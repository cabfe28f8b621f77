/* settings.h - the generation settings: one table (name, type, default,
 * range, help) and the one codec over it. From the table come the flags
 * and their help, the JSON "settings", the trace metadata tempo writes and
 * the audit's reading of an engine's settings. Defaults come from
 * tempo_gen_defaults; the ranges tempo_gen_validate states are checked
 * there, once, and the model-dependent ones (layers) by the codec. */
#ifndef TEMPO_SETTINGS_H
#define TEMPO_SETTINGS_H

#include <cjson/cJSON.h>

#include "flags.h"

enum {
    SET_THRESHOLD, SET_MAX_WIDTH, SET_MAX_TOKENS, SET_MODE, SET_ISOLATE_LAYERS, SET_NEXT_FROM, SET_SCHEDULE,
    SET_FINAL_THRESHOLD, SET_BEZIER, SET_PRUNE, SET_PRUNE_WINDOW, SET_PRUNE_LAYERS, SET_PRUNE_THRESHOLD, SET_EMULATE,
    SET_STOP_ON_EMPTY, SET_NUMERICS, SET_KV_TYPE, SET_FLASH_ATTN, SET_REPACK, SET_POSITION_GAP, SET_GREEDY, SET_DYNAMIC, N_SETTINGS
};
/* The table. SET_GREEDY and SET_DYNAMIC are flags that set others (no key). */
extern const FlagSpec SETTINGS[N_SETTINGS];
#define SETTING_BIT(i) (1u << (i))

/* The name of a choice setting's value ("isolated" for SET_MODE, MASK_ISOLATED). */
const char *setting_choice(int setting, int value);
/* The default of a setting in words, from tempo_gen_defaults (or the table's words when it depends on the model). */
const char *setting_default(const FlagSpec *s, char buf[64]);
/* Every setting flag given, read into g in order (later wins); *given gets a bit per setting. */
int settings_read_flags(const Args *a, const Config *c, GenConfig *g, unsigned *given, char *err);
/* The generation's settings from the flags: defaults, the flags, checks
 * of combinations that would drop one, then tempo_gen_validate. */
int settings_from_flags(const Args *a, const Config *c, GenConfig *g, char *err);
/* Every setting as trace metadata, and back (keys absent keep g's value; *present: a bit per setting found). */
int settings_to_trace(Trace *t, const GenConfig *g, char *err);
int settings_from_trace(const Trace *t, const Config *c, GenConfig *g, unsigned *present, char *err);
/* Every setting into a JSON object. */
void settings_to_json(cJSON *obj, const GenConfig *g);

#endif
