/* fast.c - the tuned kernels as one table: what the loaders in formats/
 * give a Model (Model.kernels), in place of tempo.c's plain definitions. */
#include "kernels.h"

const Kernels tempo_fast_kernels = {
    .name = "fast",
    .weight_types = 1u << WEIGHT_F32 | 1u << WEIGHT_F16 | 1u << WEIGHT_BF16 | 1u << WEIGHT_Q8_0 |
                    1u << WEIGHT_Q4_0 | 1u << WEIGHT_Q4_K | 1u << WEIGHT_Q5_K | 1u << WEIGHT_Q6_K,
    .matmul = tempo_matmul_fast,
    .matmul_scratch = tempo_matmul_fast_scratch,
    .matrix_row = tempo_matrix_row_fast,
    .attention = tempo_attention_fast,
    .attention_scratch = tempo_attention_fast_scratch,
};
