/* libFuzzer: a mask file from arbitrary bytes (first byte: the row count). */
#include <stdlib.h>

#include "../../formats/formats.h"
#include "../../tools/synth.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    int n = 1 + data[0] % 64;
    uint8_t *allowed = malloc((size_t)n * n);
    char err[TEMPO_ERR_SIZE];
    if (allowed) tempo_mask_parse((const char *)data + 1, size - 1, n, allowed, "fuzz", err);
    free(allowed);
    return 0;
}
