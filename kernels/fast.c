/* fast.c - the tuned kernels as one table: what the loaders in formats/
 * give a Model (Model.kernels), in place of tempo.c's plain definitions. */
#include "kernels.h"

const Kernels tempo_fast_kernels = {
    .name = "fast",
    .weight_types = (1u << WEIGHT_N_TYPES) - 1, /* every WeightType (kernels/dequant.c) */
    .matmul = tempo_matmul_fast,
    .matmul_scratch = tempo_matmul_fast_scratch,
    .products = tempo_products_fast,
    .matrix_row = tempo_matrix_row_fast,
    .attention = tempo_attention_fast,
    .attention_scratch = tempo_attention_fast_scratch,
};
