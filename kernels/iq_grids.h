/* iq_grids.h - the lookup grids of ggml's IQ1_S/M, IQ2_XXS/XS/S and
 * IQ3_XXS/S types: which 8 (IQ3: 4) small values an index stands for.
 * They are data chosen by a search, not a formula, and are llama.cpp's:
 * never committed here. tools/make_iq_grids.c writes them at build time
 * into build/iq_grids.c from ggml-common.h of the npm package node-llama-cpp
 * 3.22.1 (Makefile; NOTES §16). Entry i, byte j is value j of grid point i
 * (ggml reads each 64- or 32-bit entry as little-endian bytes). */
#ifndef TEMPO_IQ_GRIDS_H
#define TEMPO_IQ_GRIDS_H

#include <stdint.h>

extern const uint8_t tempo_iq2xxs_grid[256][8]; /* values 8, 25, 43 */
extern const uint8_t tempo_iq2xs_grid[512][8];
extern const uint8_t tempo_iq2s_grid[1024][8];
extern const uint8_t tempo_iq3xxs_grid[256][4]; /* values 4 .. 62 */
extern const uint8_t tempo_iq3s_grid[512][4];   /* odd values 1 .. 15 */
extern const int8_t tempo_iq1s_grid[2048][8];   /* values -1, 0, 1 (IQ1_S and IQ1_M) */

#endif
