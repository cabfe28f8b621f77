/* load.c - the one dispatcher of checkpoint formats: a directory is a
 * Hugging Face model, a file starting with the GGUF magic is GGUF, any other
 * file a llama2.c checkpoint. It calls into the formats; none calls back. */
#include "formats.h"
#include "gguf.h"

#include <string.h>
#include <sys/stat.h>

/* Every loaded model computes with the fast kernels (kernels/), tested equal to tempo.c's plain ones. */
int tempo_model_from_buffer(Model *m, const void *data, size_t size, const char *name, char *err) {
    int rc = tempo_is_gguf(data, size) ? tempo_gguf_model(m, data, size, name, err)
                                       : tempo_llama2c_model(m, data, size, name, err);
    if (rc == 0) m->kernels = &tempo_fast_kernels;
    return rc;
}

/* A checkpoint file, copied onto 2 MB pages when that pays (tempo_copy_pays), else mapped; the model keeps it. */
static int load_file(Model *m, const char *path, char *err) {
    void *map;
    size_t size;
    int copied;
    memset(m, 0, sizeof *m);
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
