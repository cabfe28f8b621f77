/* load.c - the one dispatcher of checkpoint formats: a directory is a
 * Hugging Face model, a file starting with the GGUF magic is GGUF, a file
 * starting with a plausible llama2.c dim a llama2.c checkpoint, anything
 * else neither (one line naming both). It calls into the formats; none calls back. */
#include "formats.h"
#include "gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The first four bytes as text: printable ones as they are, others (and quotes, backslashes) as \xNN. */
static void first_bytes(const unsigned char *data, char out[20]) {
    for (int i = 0, n = 0; i < 4; i++) {
        int plain = data[i] >= 32 && data[i] < 127 && data[i] != '"' && data[i] != '\\';
        n += snprintf(out + n, (size_t)(20 - n), plain ? "%c" : "\\x%02x", data[i]);
    }
}

/* Bytes that start with neither the GGUF magic nor a llama2.c dim (an int32 in [1, TEMPO_MAX_DIM]) are
 * neither format (a damaged magic, "GGUX", is no llama2.c header): one line names both. */
static int neither_format(const unsigned char *data, const char *name, char *err) {
    char start[20];
    int32_t dim;
    first_bytes(data, start);
    memcpy(&dim, data, 4);
    return tempo_error(err, "checkpoint %s is neither GGUF nor llama2.c: it starts with \"%s\", not the magic \"GGUF\", and "
                            "as a llama2.c header its dim = %d is outside [1, %d]", name, start, (int)dim, TEMPO_MAX_DIM);
}

/* 1 if the bytes can start a llama2.c checkpoint: a dim in [1, TEMPO_MAX_DIM] (fewer than 4 bytes: its reader says truncated). */
static int llama2c_dim_plausible(const void *data, size_t size) {
    int32_t dim;
    if (size < 4) return 1;
    memcpy(&dim, data, 4);
    return dim >= 1 && dim <= TEMPO_MAX_DIM;
}

/* Every loaded model computes with the fast kernels (kernels/), tested equal to tempo.c's plain ones. */
int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err) {
    int rc;
    memset(m, 0, sizeof *m);
    if (tempo_is_gguf(data, size)) rc = tempo_gguf_model(m, data, size, name, err);
    else if (llama2c_dim_plausible(data, size)) rc = tempo_llama2c_model(m, data, size, name, err);
    else rc = neither_format(data, name, err);
    if (rc == 0) m->kernels = &tempo_fast_kernels;
    return rc;
}

/* A checkpoint file, copied onto 2 MB pages when that pays (tempo_copy_pays), else mapped; the model keeps it. */
static int load_file(Model *m, const char *path, char *err) {
    void *map;
    size_t size;
    int copied;
    if (tempo_hold_file(path, "checkpoint", HOLD_BY_RULE, &map, &size, &copied, err) != 0) return -1;
    if (size < 4) { /* longer ones are told apart (GGUF magic) and checked by their format */
        tempo_unmap_file(map, size);
        return tempo_error(err, "truncated checkpoint %s: %zu bytes, the header alone needs 28", path, size);
    }
    if (tempo_model_from_buffer(m, map, size, path, err) != 0) {
        tempo_unmap_file(map, size);
        return -1;
    }
    if (tempo_model_keep_map(m, map, size, copied, err) != 0) {
        tempo_model_free(m);
        return -1;
    }
    return 0;
}

int tempo_model_load(Model *m, const char *path, char *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    int rc = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? tempo_load_hf(m, path, err) : load_file(m, path, err);
    if (rc == 0) m->kernels = &tempo_fast_kernels;
    return rc;
}
