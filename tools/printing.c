/* printing.c - how tokens, generations and forward passes are shown:
 * the text with its parallel sets, the per-step lines of --verbose, the
 * rows of tempo forward, and a generation as JSON. */
#include "printing.h"
#include "analysis.h"
#include "settings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Text of a token, or " #id" when no tokenizer was given. */
const char *token_text(const Tokenizer *t, int prev, int token, char buf[16]) {
    if (t->pieces) return tempo_decode(t, prev, token, buf);
    snprintf(buf, 16, " #%d", token);
    return buf;
}

/* How a token shows in the text: BOS and EOS as markers (<bos>, <end>: a
 * branch that ends); inside a set, control characters as escapes (\n, \t,
 * \xNN) and a whitespace-only piece as one ␣ per space, so [a/b] stays on
 * one line; outside a set, newlines and tabs as they are. */
void show_token(FILE *out, const Tokenizer *t, const Config *c, int prev, int token, int in_set) {
    if (token == c->bos_token_id) { fputs("<bos>", out); return; }
    if (tempo_is_eos(c, token)) { fputs("<end>", out); return; }
    char buf[16];
    const char *text = token_text(t, prev, token, buf);
    int blank = in_set && text[0] && text[strspn(text, " ")] == '\0';
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (blank) fputs("\u2423", out);
        else if ((*p == '\n' || *p == '\t') && !in_set) fputc(*p, out);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
}

/* One line per row: its token, position, set and the most probable next
 * token with its probability, as text too when a tokenizer was given. */
void print_forward_rows(const Tokenizer *t, const Config *c, int n, const int *tokens, const int *positions,
                               const int *sets, const float *logits) {
    int V = c->vocab_size;
    float *probs = malloc((size_t)V * sizeof(float));
    if (!probs) {
        fprintf(stderr, "tempo forward: out of memory for %d probabilities\n", V);
        return;
    }
    printf("row  token  pos  set  top-token  p(top)%s\n", t->pieces ? "  text -> top" : "");
    for (int i = 0; i < n; i++) {
        tempo_probs(probs, logits + (size_t)i * V, V);
        int best = tempo_argmax(probs, V);
        printf("%3d  %5d  %3d  %3d  %9d  %.4f", i, tokens[i], positions[i], sets[i], best, probs[best]);
        if (t->pieces) {
            printf("  ");
            show_token(stdout, t, c, i ? tokens[i - 1] : -1, tokens[i], 1);
            printf(" -> ");
            show_token(stdout, t, c, tokens[i], best, 1);
        }
        printf("\n");
    }
    free(probs);
}

/* Writes a JSON document to path. */
int write_json(const cJSON *root, const char *path, char *err) {
    char *text = cJSON_Print(root);
    if (!text) return tempo_error(err, "out of memory writing JSON");
    int rc = tempo_write_text_file(path, text, err);
    free(text);
    return rc;
}

/* The token before step s (for decoding): the previous step's first member, or the prompt's last token. */
int token_before(const Generation *gen, int s) {
    return s == 0 ? gen->tokens[gen->n_prompt - 1] : gen->members[gen->steps[s - 1].first_member].token;
}

/* One step: a single token, or the parallel set as [a/b/c], pruned members as ~b~. */
void print_step(FILE *out, const Generation *gen, int s, const Tokenizer *t, const Config *c, int prev,
                       int color, int hide_pruned) {
    const Step *st = &gen->steps[s];
    const Member *mem = gen->members + st->first_member;
    if (st->n_members == 1) {
        show_token(out, t, c, prev, mem[0].token, 0);
        return;
    }
    fputs(color ? "\033[36m[" : "[", out);
    int shown = 0;
    for (int i = 0; i < st->n_members; i++) {
        int pruned = mem[i].pruned_at >= 0;
        if (pruned && hide_pruned) continue;
        if (shown++) fputc('/', out);
        if (pruned) fputs(color ? "\033[2m~" : "~", out);
        show_token(out, t, c, prev, mem[i].token, 1);
        if (pruned) fputs(color ? "~\033[22;36m" : "~", out);
    }
    fputs(color ? "]\033[0m" : "]", out);
}

/* Prints the prompt (without its BOS) and every step, then a newline. */
void print_generation(const Generation *gen, const Tokenizer *t, const Config *c, int color, int hide_pruned) {
    int prev = gen->tokens[0];
    for (int i = gen->tokens[0] == c->bos_token_id; i < gen->n_prompt; i++) {
        show_token(stdout, t, c, prev, gen->tokens[i], 0);
        prev = gen->tokens[i];
    }
    for (int s = 0; s < gen->n_steps; s++) {
        print_step(stdout, gen, s, t, c, prev, color, hide_pruned);
        prev = gen->members[gen->steps[s].first_member].token;
    }
    fputc('\n', stdout);
}

/* A float as the shortest decimal that reads back to the same float; JSON
 * has no inf or nan: null. */
static void add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    tempo_format_float(buf, v);
    cJSON_AddRawToObject(o, key, buf);
}

/* One selected token: id, text (valid UTF-8), probability, row, pruning. */
static cJSON *member_json(const Member *mem, const Tokenizer *t, int prev) {
    char byte_buf[16];
    cJSON *jt = cJSON_CreateObject();
    cJSON_AddNumberToObject(jt, "id", mem->token);
    const char *text = token_text(t, prev, mem->token, byte_buf);
    tempo_json_add_text(jt, "text", text);
    add_float(jt, "probability", mem->prob);
    if (mem->row >= 0) cJSON_AddNumberToObject(jt, "physical_index", mem->row);
    else cJSON_AddNullToObject(jt, "physical_index");
    if (mem->pruned_at >= 0) cJSON_AddNumberToObject(jt, "pruned_at", mem->pruned_at);
    else cJSON_AddNullToObject(jt, "pruned_at");
    return jt;
}

static cJSON *steps_json(const Generation *gen, const Tokenizer *t, const GenConfig *g) {
    cJSON *steps = cJSON_CreateArray();
    int prev = gen->tokens[gen->n_prompt - 1];
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        cJSON *js = cJSON_CreateObject();
        cJSON_AddNumberToObject(js, "step", s);
        cJSON_AddNumberToObject(js, "logical_position", st->logical_pos);
        add_float(js, "threshold", st->threshold);
        cJSON_AddStringToObject(js, "next_from", setting_choice(SET_NEXT_FROM, g->next_from));
        cJSON_AddNumberToObject(js, "seconds", st->seconds);
        cJSON *tokens = cJSON_AddArrayToObject(js, "tokens");
        for (int i = 0; i < st->n_members; i++)
            cJSON_AddItemToArray(tokens, member_json(&gen->members[st->first_member + i], t, prev));
        cJSON_AddItemToArray(steps, js);
        prev = gen->members[st->first_member].token;
    }
    return steps;
}

/* Each pruning decision: who was weighed, by which step's rows, the share and the bar. */
static cJSON *pruning_json(const Generation *gen, const Tokenizer *t, const GenConfig *g) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < gen->n_decisions; i++) {
        const PruneDecision *d = &gen->decisions[i];
        const Member *mem = &gen->members[d->member];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", d->step);
        cJSON_AddNumberToObject(o, "set_step", d->set_step);
        cJSON *window = cJSON_AddArrayToObject(o, "window");
        cJSON_AddItemToArray(window, cJSON_CreateNumber(d->step - g->prune_window > 0 ? d->step - g->prune_window : 0));
        cJSON_AddItemToArray(window, cJSON_CreateNumber(d->step - 1));
        cJSON_AddItemToObject(o, "member", member_json(mem, t, token_before(gen, d->set_step)));
        cJSON_AddNumberToObject(o, "live", d->live);
        cJSON_AddNumberToObject(o, "share", d->share);
        cJSON_AddNumberToObject(o, "bar", d->bar);
        cJSON_AddBoolToObject(o, "strongest", d->strongest);
        cJSON_AddBoolToObject(o, "pruned", d->pruned);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void add_generation_summary_json(cJSON *root, const Generation *gen) {
    int parallel = 0, max_width = 0;
    for (int s = 0; s < gen->n_steps; s++) {
        parallel += gen->steps[s].n_members > 1;
        if (gen->steps[s].n_members > max_width) max_width = gen->steps[s].n_members;
    }
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(sum, "steps", gen->n_steps);
    cJSON_AddNumberToObject(sum, "parallel_steps", parallel);
    cJSON_AddNumberToObject(sum, "max_width", max_width);
    cJSON_AddNumberToObject(sum, "tokens_per_step", gen->n_steps ? (double)gen->n_members / gen->n_steps : 0.0);
    cJSON_AddNumberToObject(sum, "rows", gen->n_rows);
    cJSON_AddStringToObject(sum, "stop_reason", gen->stop_reason);
    cJSON_AddNumberToObject(sum, "prefill_seconds", gen->prefill_seconds);
    cJSON_AddNumberToObject(sum, "total_seconds", gen->total_seconds);
}

int write_generation_json(const Generation *gen, const Tokenizer *t, const GenConfig *g, const char *prompt,
                                 const char *path, char *err) {
    cJSON *root = cJSON_CreateObject();
    if (prompt) tempo_json_add_text(root, "prompt", prompt);
    else cJSON_AddNullToObject(root, "prompt"); /* --tokens: ids, no text */
    cJSON *ptoks = cJSON_AddArrayToObject(root, "prompt_tokens");
    for (int i = 0; i < gen->n_prompt; i++) cJSON_AddItemToArray(ptoks, cJSON_CreateNumber(gen->tokens[i]));
    settings_to_json(cJSON_AddObjectToObject(root, "settings"), g);
    cJSON_AddItemToObject(root, "steps", steps_json(gen, t, g));
    cJSON_AddItemToObject(root, "pruning", pruning_json(gen, t, g));
    cJSON *series = series_json(gen);
    if (!series) return cJSON_Delete(root), tempo_error(err, "out of memory for the series of %d steps", gen->n_steps);
    cJSON_AddItemToObject(root, "series", series);
    add_generation_summary_json(root, gen);
    int rc = write_json(root, path, err);
    cJSON_Delete(root);
    return rc;
}

/* --verbose: per step its position, threshold, time, and every member with
 * its probability (pruned members marked, unfed ones as not fed). */
void print_steps_verbose(FILE *out, const Generation *gen, const Tokenizer *t, const Config *c) {
    for (int s = 0; s < gen->n_steps; s++) {
        const Step *st = &gen->steps[s];
        fprintf(out, "step %d  pos %d  threshold %.4f  %.3f ms  members %d:", s, st->logical_pos, st->threshold,
                st->seconds * 1e3, st->n_members);
        for (int i = 0; i < st->n_members; i++) {
            const Member *mem = &gen->members[st->first_member + i];
            fputs(i ? ", '" : " '", out);
            show_token(out, t, c, token_before(gen, s), mem->token, 1);
            fprintf(out, "' %.4f%s%s", mem->prob, mem->pruned_at >= 0 ? " (pruned)" : "", mem->row < 0 ? " (not fed)" : "");
        }
        fputc('\n', out);
    }
}

void print_pruning_verbose(FILE *out, const Generation *gen, const Tokenizer *t, const Config *c, const GenConfig *g) {
    if (!g->prune) return;
    fprintf(out, "pruning: after each step, the sets of the %d steps before it (the window) with 2+ live members are\n"
                 "weighed; share = the member's part of the attention its set received from the step's rows (last %d\n"
                 "layers, all heads); pruned when share < bar = %g / live members, except the strongest\n",
            g->prune_window, g->prune_layers, g->prune_threshold);
    for (int i = 0; i < gen->n_decisions; i++) {
        const PruneDecision *d = &gen->decisions[i];
        int lo = d->step - g->prune_window > 0 ? d->step - g->prune_window : 0;
        fprintf(out, "prune after step %d (window steps %d-%d): step %d '", d->step, lo, d->step - 1, d->set_step);
        show_token(out, t, c, token_before(gen, d->set_step), gen->members[d->member].token, 1);
        fprintf(out, "' share %.4f %s bar %.4f (%d live): %s\n", d->share, d->share < d->bar ? "<" : ">=", d->bar, d->live,
                d->pruned ? "pruned" : d->strongest ? "kept (strongest)" : "kept");
    }
    if (gen->n_decisions == 0) fprintf(out, "pruning: no set was weighed (none had 2 live members in a window)\n");
}

void print_generation_summary(FILE *out, const Generation *gen) {
    int fed = 0, generated = gen->n_rows - gen->n_prompt;
    for (int i = 0; i < gen->n_members; i++) fed += gen->members[i].row >= 0;
    double seconds = gen->total_seconds - gen->prefill_seconds;
    fprintf(out, "%d steps selected %d tokens, %d fed as rows", gen->n_steps, gen->n_members, fed);
    if (fed < gen->n_members) fprintf(out, " (%d not fed: EOS ends a branch, --emulate feeds one a step)", gen->n_members - fed);
    fprintf(out, "; %d rows computed = %d prompt + %d generated (stop: %s); %.1f tokens/s, %.1f steps/s\n", gen->n_rows,
            gen->n_prompt, generated, gen->stop_reason, seconds > 0 ? gen->n_members / seconds : 0.0,
            seconds > 0 ? gen->n_steps / seconds : 0.0);
}

void print_wrote(const char *path, const char *what) { fprintf(stderr, "wrote %s: %s\n", path, what); }

/* ---- a set as text, cut at a member ---- */

/* The room a set's text keeps to close when cut: ", … 2147483647 more]" and its NUL. */
enum { SET_TEXT_TAIL = 32 };

void set_text_open(SetText *st, char *buf, size_t size, int n, const char *sep) {
    *st = (SetText){.text = buf, .size = size, .used = 1, .n = n, .sep = sep};
    snprintf(buf, size, "[");
}

/* A member goes in when it fits with room left for "]" (the last) or for the tail of a cut set. */
void set_text_add(SetText *st, const char *member) {
    const char *sep = st->shown ? st->sep : "";
    size_t need = member ? strlen(sep) + strlen(member) : 0, keep = st->shown + st->cut + 1 == st->n ? 2 : SET_TEXT_TAIL;
    if (!member || st->cut || st->used + need + keep > st->size) {
        st->cut++;
        return;
    }
    snprintf(st->text + st->used, st->size - st->used, "%s%s", sep, member);
    st->used += need;
    st->shown++;
}

void set_text_close(SetText *st) {
    if (st->cut) snprintf(st->text + st->used, st->size - st->used, "%s… %d more]", st->shown ? st->sep : "", st->cut);
    else snprintf(st->text + st->used, st->size - st->used, "]");
}
