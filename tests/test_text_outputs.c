/* Text that tempo writes for other programs to parse: JSON is UTF-8 and SVG
 * is well-formed XML whatever bytes a prompt, a token or a file name holds
 * (a strict parser, Python's, is the judge); and a failed write to standard
 * output is an error, not a silent loss. */
#include "helpers.h"

/* `python3 -c CHECK path` exits 0: the file parses as strict UTF-8 JSON, XML, or a trace's header. */
static const char json_check[] = "import json,sys; json.load(open(sys.argv[1], encoding='utf-8'))";
static const char xml_check[] = "import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])";
static const char header_check[] = "import json,struct,sys; b=open(sys.argv[1],'rb').read(); "
                                   "n=struct.unpack('<Q',b[:8])[0]; json.loads(b[8:8+n].decode('utf-8'))";

/* made_by names the command in words, not by its bytes (see NOTES §20). */
static void expect_parses(const char *check, const char *path, const char *made_by) {
    char cmd[9000], text[4096];
    snprintf(cmd, sizeof cmd, "python3 -c \"%s\" '%s'", check, path);
    int rc = run_command(cmd, text, sizeof text);
    cr_expect_eq(rc, 0, "%s wrote %s, which a strict parser refuses: %s", made_by, path, text);
}

/* Runs `tempo ARGS` and expects exit 0. */
static void run_tempo(const char *args) {
    char cmd[9000], text[8192];
    snprintf(cmd, sizeof cmd, "%s %s", TEMPO_BIN, args);
    int rc = run_command(cmd, text, sizeof text);
    cr_assert_eq(rc, 0, "tempo exited %d: %s", rc, text); /* not the command: its bytes need not be UTF-8 */
}

/* A prompt of bytes that are not UTF-8 (0xFF, 0xFE, a lead byte without its continuation), quotes,
 * a backslash and a control byte: generate's and compare's JSON stay strict UTF-8 JSON. */
Test(text_outputs, a_prompt_that_is_not_utf8_gives_utf8_json) {
    char model[4096], tok[4096], out[4096], args[9000];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    const char *prompt = "'a\x01" "b\"c\\d\xff\xfe\xc3('"; /* raw bytes, quoted for /bin/sh */
    const char *forms[] = {"generate -m %s -z %s -p %s -n 4 --quiet --json %s", "compare -m %s -z %s -p %s -n 4 --json %s",
                           "compare -m %s -z %s -p %s -n 3 --vs-numerics ggml --json %s"};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "prompt-%d.json", i);
        scratch_path(name, out, sizeof out);
        snprintf(args, sizeof args, forms[i], model, tok, prompt, out);
        run_tempo(args);
        expect_parses(json_check, out, i == 0 ? "generate --json" : i == 1 ? "compare --json" : "compare --vs-numerics --json");
    }
}

/* A model file whose name holds 0xFF, a quote, a backslash and a control byte: the SVG pictures
 * that show the name are well-formed XML, and the trace's JSON header is UTF-8. */
Test(text_outputs, a_file_name_that_is_not_utf8_gives_valid_svg_and_trace) {
    char src[4096], dir[4096], cmd[9000], text[4096], args[9000], tok[4096];
    weights_path("stories260K.bin", src, sizeof src);
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("odd-name", dir, sizeof dir);
    const char *name = "we\"i\\rd\x01\xff.bin"; /* raw bytes, quoted for /bin/sh */
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s '%s/%s'", dir, src, dir, name);
    cr_assert_eq(run_command(cmd, text, sizeof text), 0, "cannot copy the model to an odd name: %s", text);
    snprintf(args, sizeof args, "generate -m '%s/%s' -z %s -p Once -n 4 --quiet --trace %s/w.st --svg-tree %s/tree.svg "
             "--svg-series %s/series.svg", dir, name, tok, dir, dir, dir);
    run_tempo(args);
    const char *svgs[] = {"tree.svg", "series.svg"};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, svgs[i]);
        expect_parses(xml_check, path, svgs[i]);
    }
    char trace[4200], heat[4200];
    snprintf(trace, sizeof trace, "%s/w.st", dir);
    snprintf(heat, sizeof heat, "%s/heat.svg", dir);
    expect_parses(header_check, trace, "generate --trace");
    snprintf(args, sizeof args, "attention %s --svg %s", trace, heat);
    run_tempo(args);
    expect_parses(xml_check, heat, "attention --svg");
}

/* A random model in a GGUF with tok512's pieces: its byte tokens (<0xC6>) decode to single bytes
 * that are not UTF-8, and wide sets (threshold 0.003) select them; the numerics comparison's JSON
 * stays UTF-8. */
Test(text_outputs, byte_tokens_give_utf8_json) {
    char dir[4096], tok[4096], args[9000], out[4200];
    weights_path("tok512.bin", tok, sizeof tok);
    scratch_path("byte-tokens", dir, sizeof dir);
    mkdir(dir, 0755);
    snprintf(args, sizeof args, "synth --out %s/r.bin --vocab 512 --seed 3", dir);
    run_tempo(args);
    snprintf(args, sizeof args, "convert %s/r.bin %s --out %s/r.gguf", dir, tok, dir);
    run_tempo(args);
    snprintf(out, sizeof out, "%s/numerics.json", dir);
    snprintf(args, sizeof args, "compare -m %s/r.gguf -p Once --threshold 0.003 --max-width 64 -n 4 --vs-numerics ggml --json %s",
             dir, out);
    run_tempo(args);
    size_t len;
    char *json = read_text_file(out, &len);
    cr_assert(json && strstr(json, "\"text\""), "no token text in %s", out);
    free(json);
    expect_parses(json_check, out, "compare --vs-numerics --json");
}

/* Standard output that cannot be written (/dev/full) is an error line and exit 1, for each
 * command that prints its result there. */
Test(text_outputs, a_failed_write_to_stdout_is_an_error) {
    char model[4096], tok[4096], args[9000], cmd[9200], text[8192];
    weights_path("stories260K.bin", model, sizeof model);
    weights_path("tok512.bin", tok, sizeof tok);
    char forms[4][9000];
    snprintf(forms[0], sizeof forms[0], "generate -m %s -z %s -p Once -n 4", model, tok);
    snprintf(forms[1], sizeof forms[1], "forward -m %s -z %s -p Once", model, tok);
    snprintf(forms[2], sizeof forms[2], "encode -m %s -z %s -p Once", model, tok);
    snprintf(forms[3], sizeof forms[3], "check %s", model);
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "%s", forms[i]);
        snprintf(cmd, sizeof cmd, "%s %s >/dev/full", TEMPO_BIN, args);
        char errfile[4096], full[9400];
        scratch_path("stdout-full", errfile, sizeof errfile);
        snprintf(full, sizeof full, "%s 2>%s", cmd, errfile);
        int status = system(full), rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        size_t len;
        char *said = read_text_file(errfile, &len);
        snprintf(text, sizeof text, "%s", said ? said : "");
        free(said);
        cr_expect_eq(rc, 1, "`%s` exited %d: %s", cmd, rc, text);
        cr_expect(strstr(text, "error: cannot write standard output"), "`%s` said: %s", cmd, text);
    }
}

/* A run from --tokens has ids and no text: its JSON prompt is null, not "" (the text of an empty prompt). */
Test(text_outputs, a_run_from_ids_has_a_null_prompt) {
    char model[4096], out[4096], args[9000];
    weights_path("stories260K.bin", model, sizeof model);
    scratch_path("ids.json", out, sizeof out);
    snprintf(args, sizeof args, "generate -m %s --tokens 1,403,407 -n 2 --quiet --json %s", model, out);
    run_tempo(args);
    cJSON *json = read_json_file(out);
    cr_assert(json, "%s is not JSON", out);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(json, "prompt")), "the prompt of a run from ids is not null");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(json, "prompt_tokens")), 3);
    cJSON_Delete(json);
}
