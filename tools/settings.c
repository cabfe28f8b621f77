/* settings.c - the generation settings' table and codec (settings.h). */
#include "settings.h"

#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(MaskKind) == sizeof(int) && sizeof(NextFrom) == sizeof(int) && sizeof(Schedule) == sizeof(int) &&
                   sizeof(Emulation) == sizeof(int), "choices are stored as int");

#define FIELD(f) ((int)offsetof(GenConfig, f) + 1) /* 0 means none */

static const Choice MODES[] = {{"isolated", MASK_ISOLATED}, {"visible", MASK_VISIBLE}, {NULL, 0}};
static const Choice NEXT[] = {{"last", NEXT_LAST_ROW}, {"mean", NEXT_MEAN}, {NULL, 0}};
static const Choice SCHEDULES[] = {{"constant", SCHEDULE_CONSTANT}, {"bezier", SCHEDULE_BEZIER}, {"linear", SCHEDULE_LINEAR},
                                   {NULL, 0}};
static const Choice PRUNES[] = {{"none", 0}, {"attention", 1}, {NULL, 0}};
static const Choice PROFILES[] = {{"exact", NUMERICS_EXACT}, {"ggml", NUMERICS_GGML}, {"torch", NUMERICS_TORCH}, {NULL, 0}};
static const Choice KV_TYPES[] = {{"f32", 0}, {"f16", 1}, {NULL, 0}};
static const Choice ON_OFF[] = {{"off", 0}, {"on", 1}, {NULL, 0}};
static const Choice REPACKS[] = {{"on", 0}, {"off", 1}, {NULL, 0}}; /* stored as repack_off: 0 is llama.cpp's default */
static const Choice EMULATIONS[] = {{"none", EMULATE_NONE}, {"last-member-only", EMULATE_LAST_MEMBER_ONLY}, {NULL, 0}};

const FlagSpec SETTINGS[N_SETTINGS] = {
    [SET_THRESHOLD] = {"--threshold", NULL, FLAG_NUMBER, "T", NULL, 0, 0, "(0, 1]",
        "select every token with p >= T at a step (the argmax when none clears it)", "threshold", NULL, FIELD(threshold)},
    [SET_MAX_WIDTH] = {"--max-width", NULL, FLAG_INT, "W", NULL, 0, 0, ">= 1; <= 64 with --prune",
        "most tokens in one parallel set", "max_width", NULL, FIELD(max_width)},
    [SET_MAX_TOKENS] = {"-n", "--max-tokens", FLAG_INT, "N", NULL, 0, 0, ">= 1", "logical steps to generate", "max_tokens",
        NULL, FIELD(max_steps)},
    [SET_MODE] = {"--mode", NULL, FLAG_CHOICE, "MODE", NULL, 0, 0, "isolated or visible",
        "isolated: members of a set do not see each other; visible: they do, in order", "mode", NULL, FIELD(mode),
        .choices = MODES},
    [SET_ISOLATE_LAYERS] = {"--isolate-layers", NULL, FLAG_LAYERS, "A-B", "every layer", 0, 0, "0 <= A <= B < layers",
        "layers that isolate in isolated mode (the others see siblings)", "isolate_layers", NULL, FIELD(isolate_first),
        FIELD(isolate_last)},
    [SET_NEXT_FROM] = {"--next-from", NULL, FLAG_CHOICE, "FROM", NULL, 0, 0, "last or mean",
        "next distribution: the set's last row, or the mean over its live members", "next_from", NULL, FIELD(next_from),
        .choices = NEXT},
    [SET_SCHEDULE] = {"--threshold-schedule", NULL, FLAG_CHOICE, "S", NULL, 0, 0, "constant, bezier or linear",
        "how the threshold moves from --threshold to --final-threshold", "threshold_schedule", NULL, FIELD(schedule),
        .choices = SCHEDULES},
    [SET_FINAL_THRESHOLD] = {"--final-threshold", NULL, FLAG_NUMBER, "T", NULL, 0, 0, "(0, 1]",
        "threshold at the last step of a schedule", "final_threshold", NULL, FIELD(final_threshold)},
    [SET_BEZIER] = {"--bezier", NULL, FLAG_PAIR, "P1,P2", NULL, 0, 0, "each in [0, 1]",
        "control points of the bezier schedule", "bezier_p1", "bezier_p2", FIELD(bezier_p1), FIELD(bezier_p2)},
    [SET_PRUNE] = {"--prune", NULL, FLAG_CHOICE, "HOW", NULL, 0, 0, "none or attention",
        "retroactive pruning of members that later rows ignore", "prune", NULL, FIELD(prune), .choices = PRUNES},
    [SET_PRUNE_WINDOW] = {"--prune-window", NULL, FLAG_INT, "N", NULL, 1, 1000000, NULL,
        "sets within this many steps are pruning candidates", "prune_window", NULL, FIELD(prune_window)},
    [SET_PRUNE_LAYERS] = {"--prune-layers", NULL, FLAG_INT, "N", "half the layers", 1, 0, "1 to layers",
        "the last N layers' attention decides pruning", "prune_layers", NULL, FIELD(prune_layers), .layers_hi = 1},
    [SET_PRUNE_THRESHOLD] = {"--prune-threshold", NULL, FLAG_NUMBER, "X", NULL, 0, 0, "(0, 1]",
        "prune a member whose share of attention < X / live members", "prune_threshold", NULL, FIELD(prune_threshold)},
    [SET_EMULATE] = {"--emulate", NULL, FLAG_CHOICE, "WHAT", NULL, 0, 0, "none or last-member-only",
        "feed only each set's last member, as the Python engine did", "emulate", NULL, FIELD(emulate),
        .choices = EMULATIONS},
    [SET_STOP_ON_EMPTY] = {"--stop-on-empty", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
        "end when no token clears the threshold (instead of taking the argmax)", "stop_on_empty", NULL,
        FIELD(stop_on_empty)},
    [SET_NUMERICS] = {"--numerics", NULL, FLAG_CHOICE, "P", NULL, 0, 0, "exact, ggml or torch",
        "the arithmetic: tempo's exact one, llama.cpp's CPU (ggml) or transformers' (torch); a trace's is the default",
        "numerics", NULL, FIELD(numerics.profile), .choices = PROFILES},
    [SET_KV_TYPE] = {"--kv-type", NULL, FLAG_CHOICE, "T", NULL, 0, 0, "f32 or f16",
        "the K/V cache's type under --numerics ggml", "kv_type", NULL, FIELD(numerics.kv_f16), .choices = KV_TYPES},
    [SET_FLASH_ATTN] = {"--flash-attn", NULL, FLAG_CHOICE, "on|off", NULL, 0, 0, "on or off",
        "llama.cpp's flash attention under --numerics ggml", "flash_attn", NULL, FIELD(numerics.flash_attn),
        .choices = ON_OFF},
    [SET_REPACK] = {"--repack", NULL, FLAG_CHOICE, "on|off", NULL, 0, 0, "on or off",
        "Q4_0 and Q4_K weights repacked as llama.cpp's x86 CPU does (its default) under --numerics ggml", "repack", NULL,
        FIELD(numerics.repack_off), .choices = REPACKS},
    [SET_POSITION_GAP] = {"--position-gap", NULL, FLAG_INT, "G", NULL, 0, 1 << 30, "0 <= G < seq_len",
        "skip G positions after the prompt: step s sits at logical position prompt + G + s", "position_gap", NULL,
        FIELD(position_gap)},
    [SET_GREEDY] = {"--greedy", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL,
        "one token per step (threshold 1); not with --threshold or --stop-on-empty"},
    [SET_DYNAMIC] = {"--dynamic-threshold", NULL, FLAG_SWITCH, NULL, NULL, 0, 0, NULL, "same as --threshold-schedule bezier"},
};

static int *int_at(GenConfig *g, int field) { return (int *)((char *)g + field - 1); }
static float *float_at(GenConfig *g, int field) { return (float *)((char *)g + field - 1); }
static int int_of(const GenConfig *g, int field) { return *(const int *)((const char *)g + field - 1); }
static float float_of(const GenConfig *g, int field) { return *(const float *)((const char *)g + field - 1); }

static const char *choice_name(const FlagSpec *s, int value) {
    for (const Choice *ch = s->choices; ch->name; ch++)
        if (ch->value == value) return ch->name;
    return "?";
}

const char *setting_choice(int setting, int value) { return choice_name(&SETTINGS[setting], value); }

/* The value in `choices`, else one line listing them. */
static int read_choice(const FlagSpec *s, const char *text, const char *what, int *out, char *err) {
    char list[256] = "";
    int w = 0;
    for (const Choice *ch = s->choices; ch->name; ch++) {
        if (strcmp(text, ch->name) == 0) return *out = ch->value, 0;
        w += snprintf(list + w, sizeof list - (size_t)w, "%s%s", ch == s->choices ? "" : ch[1].name ? ", " : " or ", ch->name);
    }
    return tempo_error(err, "%s must be %s, got '%s'", what, list, text);
}

/* One setting from text: a flag's value (a pair as "P1,P2", a switch as
 * "") or one metadata key's (part 1: key2 of a pair; a switch as 0 or 1). */
static int setting_read(const FlagSpec *s, int part, const char *text, const char *what, const Config *c, GenConfig *g,
                        char *err) {
    int field = part == 1 ? s->field2 : s->field, lo = INT_MIN, hi = INT_MAX;
    if (s->lo < s->hi || s->layers_hi) lo = (int)s->lo, hi = s->layers_hi ? c->n_layers : (int)s->hi;
    switch (s->type) {
    case FLAG_INT: return tempo_parse_int(text, what, lo, hi, int_at(g, field), err);
    case FLAG_NUMBER: return tempo_parse_float(text, what, float_at(g, field), err);
    case FLAG_CHOICE: return read_choice(s, text, what, int_at(g, field), err);
    case FLAG_LAYERS:
        return tempo_parse_range(text, what, 0, c->n_layers - 1, int_at(g, s->field), int_at(g, s->field2), err);
    case FLAG_PAIR:
        if (part >= 0) return tempo_parse_float(text, what, float_at(g, field), err);
        return tempo_parse_float_pair(text, ',', what, s->value, float_at(g, s->field), float_at(g, s->field2), err);
    case FLAG_SWITCH:
        if (part < 0) return *int_at(g, field) = 1, 0;
        return tempo_parse_int(text, what, 0, 1, int_at(g, field), err);
    default: return tempo_error(err, "setting %s has no reader", s->name);
    }
}

/* One metadata key's text (part 1: key2 of a pair). */
static void setting_text(const FlagSpec *s, int part, const GenConfig *g, char buf[64]) {
    int field = part == 1 ? s->field2 : s->field;
    switch (s->type) {
    case FLAG_NUMBER: case FLAG_PAIR: tempo_format_float(buf, float_of(g, field)); break;
    case FLAG_CHOICE: snprintf(buf, 64, "%s", choice_name(s, int_of(g, field))); break;
    case FLAG_LAYERS: snprintf(buf, 64, "%d-%d", int_of(g, s->field), int_of(g, s->field2)); break;
    default: snprintf(buf, 64, "%d", int_of(g, field)); break;
    }
}

const char *setting_default(const FlagSpec *s, char buf[64]) {
    if (s->deflt || !s->field || s->type == FLAG_SWITCH) return s->deflt;
    Config c = {.n_layers = 1};
    GenConfig g;
    tempo_gen_defaults(&g, &c);
    setting_text(s, 0, &g, buf);
    if (s->type == FLAG_PAIR) {
        size_t w = strlen(buf);
        buf[w++] = ',';
        tempo_format_float(buf + w, float_of(&g, s->field2)); /* 64 - w >= 32: a float takes at most 15 */
    }
    return buf;
}

static int setting_index(const FlagSpec *s) { return s >= SETTINGS && s < SETTINGS + N_SETTINGS ? (int)(s - SETTINGS) : -1; }

int settings_read_flags(const Args *a, const Config *c, GenConfig *g, unsigned *given, char *err) {
    *given = 0;
    for (int i = 0; i < a->n; i++) {
        const FlagValue *v = &a->v[i];
        int k = setting_index(v->spec);
        if (k < 0) continue;
        *given |= SETTING_BIT(k);
        if (v->spec->field && setting_read(v->spec, -1, v->text, v->typed, c, g, err) != 0) return -1;
    }
    return 0;
}

/* A flag given that has no effect unless `applies`: "--prune-window applies only to --prune attention". */
static int refuse_unless(unsigned given, int setting, int applies, const char *why, char *err) {
    if (!(given & SETTING_BIT(setting)) || applies) return 0;
    return tempo_error(err, "%s %s", SETTINGS[setting].name, why);
}

/* --greedy (one token per step) with a setting that would then change nothing. */
static int refuse_with_greedy(unsigned given, char *err) {
    static const int ignored[] = {SET_THRESHOLD, SET_SCHEDULE, SET_FINAL_THRESHOLD, SET_BEZIER, SET_DYNAMIC, SET_MAX_WIDTH,
                                  SET_PRUNE, SET_NEXT_FROM};
    if (!(given & SETTING_BIT(SET_GREEDY))) return 0;
    if (given & SETTING_BIT(SET_STOP_ON_EMPTY))
        return tempo_error(err, "--greedy always has a token: it cannot be combined with --stop-on-empty");
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (given & SETTING_BIT(ignored[i]))
            return tempo_error(err, "--greedy takes one token per step: it cannot be combined with %s", SETTINGS[ignored[i]].name);
    return 0;
}

/* Combinations of flags where one would be silently ignored. */
static int refuse_ignored_flags(unsigned given, const GenConfig *g, char *err) {
    const char *pruning = "applies only to --prune attention";
    if (refuse_with_greedy(given, err) != 0) return -1;
    if ((given & SETTING_BIT(SET_DYNAMIC)) && (given & SETTING_BIT(SET_SCHEDULE)))
        return tempo_error(err, "--dynamic-threshold is --threshold-schedule bezier: give one of them");
    if (refuse_unless(given, SET_ISOLATE_LAYERS, g->mode == MASK_ISOLATED,
                      "chooses the layers that isolate: it needs --mode isolated, not visible", err) != 0 ||
        refuse_unless(given, SET_PRUNE_WINDOW, g->prune, pruning, err) != 0 ||
        refuse_unless(given, SET_PRUNE_LAYERS, g->prune, pruning, err) != 0 ||
        refuse_unless(given, SET_PRUNE_THRESHOLD, g->prune, pruning, err) != 0 ||
        refuse_unless(given, SET_FINAL_THRESHOLD, g->schedule != SCHEDULE_CONSTANT,
                      "is where a threshold schedule ends: it needs --threshold-schedule bezier or linear", err) != 0 ||
        refuse_unless(given, SET_BEZIER, g->schedule == SCHEDULE_BEZIER,
                      "shapes the bezier schedule: it needs --threshold-schedule bezier", err) != 0)
        return -1;
    return 0;
}

int settings_from_flags(const Args *a, const Config *c, GenConfig *g, char *err) {
    unsigned given;
    tempo_gen_defaults(g, c);
    if (flag(a, "--dynamic-threshold")) g->schedule = SCHEDULE_BEZIER;
    if (settings_read_flags(a, c, g, &given, err) != 0) return -1;
    if (given & SETTING_BIT(SET_GREEDY)) g->threshold = 1.0f;
    if (tempo_gen_validate(g, c, err) != 0) return -1; /* a bad value first, then what it combines with */
    return refuse_ignored_flags(given, g, err);
}

int settings_to_trace(Trace *t, const GenConfig *g, char *err) {
    for (int k = 0; k < N_SETTINGS; k++) {
        const FlagSpec *s = &SETTINGS[k];
        char text[64];
        for (int part = 0; s->key && part < (s->key2 ? 2 : 1); part++) {
            setting_text(s, part, g, text);
            if (tempo_trace_meta(t, part ? s->key2 : s->key, text, err) != 0) return -1;
        }
    }
    return 0;
}

int settings_from_trace(const Trace *t, const Config *c, GenConfig *g, unsigned *present, char *err) {
    *present = 0;
    for (int k = 0; k < N_SETTINGS; k++) {
        const FlagSpec *s = &SETTINGS[k];
        for (int part = 0; s->key && part < (s->key2 ? 2 : 1); part++) {
            const char *key = part ? s->key2 : s->key, *text = tempo_trace_meta_get(t, key);
            char what[96];
            snprintf(what, sizeof what, "trace metadata %s", key);
            if (text && setting_read(s, part, text, what, c, g, err) != 0) return -1;
            if (text) *present |= SETTING_BIT(k);
        }
    }
    return 0;
}

void settings_to_json(cJSON *obj, const GenConfig *g) {
    for (int k = 0; k < N_SETTINGS; k++) {
        const FlagSpec *s = &SETTINGS[k];
        char text[64];
        for (int part = 0; s->key && part < (s->key2 ? 2 : 1); part++) {
            const char *key = part ? s->key2 : s->key;
            setting_text(s, part, g, text);
            if (s->type == FLAG_NUMBER || s->type == FLAG_PAIR || s->type == FLAG_INT) cJSON_AddRawToObject(obj, key, text);
            else if (s->type == FLAG_SWITCH) cJSON_AddBoolToObject(obj, key, int_of(g, s->field));
            else cJSON_AddStringToObject(obj, key, text);
        }
    }
}
