/*
 * finite.h - the first NaN or Inf in a stored float array, found fast.
 *
 * What: lp_finite_find(type, p, n) returns the index of the first of n values
 *   stored at p (f32, bf16 or f16, any alignment) that is NaN or +-Inf, or -1
 *   when all are finite. The model loader runs it once over every float tensor
 *   it uses (the model guard, model/model.c).
 * Why: a NaN weight otherwise travels silently: generation prints <unk>,
 *   perplexity blames the text, a method writes it back out. Scanning at load
 *   names the tensor and its file before any of that happens, and must cost
 *   little next to mapping the file.
 * Design: in IEEE 754 binary32 and binary16, and in bfloat16, a value is
 *   non-finite exactly when its exponent bits are all ones, so the scan tests
 *   the raw words, (w & E) == E with E = 0x7f800000 (f32), 0x7f80 (bf16) or
 *   0x7c00 (f16), and never converts. The `_ref` kernels are the
 *   specification; the AVX2 / AVX-512 ones (finite_avx2.c, finite_avx512.c)
 *   test 128 / 256 bytes per step and, on a hit, let `_ref` find the exact
 *   index within the step, so every level returns the same index. The level
 *   is chosen once (core/cpu.h). Large arrays are split into fixed chunks
 *   scanned by OpenMP threads; the lowest bad chunk wins, so the answer does
 *   not depend on the thread count.
 */
#ifndef LP_FINITE_H
#define LP_FINITE_H

#include "core/cpu.h"

#include <stdint.h>

/* How the values are stored. */
typedef enum {
    LP_FP_F32 = 0,  /* IEEE binary32: exponent mask 0x7f800000 */
    LP_FP_BF16 = 1, /* bfloat16 (the top half of a binary32): 0x7f80 */
    LP_FP_F16 = 2,  /* IEEE binary16: 0x7c00 */
} lp_fp_type;

/* Index of the first non-finite of the n values at p, or -1 (also for n <= 0).
 * p needs no alignment. Uses the level lp_cpu_isa() chose. */
int64_t lp_finite_find(lp_fp_type type, const void *p, int64_t n);

/* The same with a given level (tests compare the levels); a level this CPU
 * lacks falls back to the reference. */
int64_t lp_finite_find_isa(lp_isa isa, lp_fp_type type, const void *p, int64_t n);

/* ---- kernels: one serial scan of n values, exponent mask `e` ----
 * 32-bit words (f32) and 16-bit words (bf16, f16); -1 when none matches. */
int64_t lp_finite_find32_ref(const void *p, int64_t n);
int64_t lp_finite_find16_ref(const void *p, int64_t n, uint16_t e);
int64_t lp_finite_find32_avx2(const void *p, int64_t n);
int64_t lp_finite_find16_avx2(const void *p, int64_t n, uint16_t e);
int64_t lp_finite_find32_avx512(const void *p, int64_t n);
int64_t lp_finite_find16_avx512(const void *p, int64_t n, uint16_t e);

#endif
