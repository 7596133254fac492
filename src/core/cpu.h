/*
 * cpu.h - the instruction set the packed kernels run with, chosen once.
 *
 * What: every format's product has a scalar reference (`_ref`, its
 * specification) and optionally AVX2 and AVX-512 versions. lp_cpu_isa()
 * says which level this process uses: the highest this CPU supports, or the
 * one the LP_KERNEL environment variable names (ref, avx2, avx512) when the
 * CPU supports it, so tests and benches can compare them.
 * Design: decided on first use under pthread_once and never changed (stb's
 * stbi__setup_jpeg, ggml's type_traits_cpu); a format's linear picks its
 * product from its traits row with it when the linear is made, not per call.
 */
#ifndef LP_CPU_H
#define LP_CPU_H

#include "llmpress/status.h"

#include <stdbool.h>

typedef enum {
    LP_ISA_REF = 0,    /* portable C: the specification */
    LP_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    LP_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ */
    LP_ISA_N
} lp_isa;

/* What this CPU supports (ignores LP_KERNEL). */
bool lp_cpu_supports(lp_isa isa);

/* The level in use: LP_KERNEL when set to a supported name, else the best. */
lp_isa lp_cpu_isa(void);

/* True when the AVX-512 level is in use (lp_cpu_isa) and this CPU also has
 * AVX-512 VNNI (vpdpbusd), which the q8 products (format/qgroup_q8.h) need. */
bool lp_cpu_has_avx512vnni(void);

/* True when this CPU has GFNI (GF2P8AFFINEQB), which the qgroup q8 kernel
 * file also needs (its b = 3 unpacking; format/qgroup.h). */
bool lp_cpu_has_gfni(void);

/* "ref", "avx2", "avx512". */
const char *lp_isa_name(lp_isa isa);

/* By name; LP_ERR_ARG for an unknown name, LP_ERR_UNSUPPORTED when this CPU
 * lacks it. */
lp_status lp_isa_from_name(const char *name, lp_isa *out);

#endif
