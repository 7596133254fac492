/*
 * qgroup_kernels.c - the qgroup kernel table for each instruction set
 * (qgroup_kernels.h), following the process-wide level of core/cpu.h.
 */
#include "format/qgroup_kernels.h"

#include "core/cpu.h"
#include "core/status_impl.h"

static const lp_qkernels *const BY_ISA[LP_ISA_N] = {&lp_qkernels_ref, &lp_qkernels_avx2, &lp_qkernels_avx512};

lp_status lp_qkernels_select(const char *name, const lp_qkernels **out) {
    *out = NULL;
    lp_isa isa;
    lp_status st = lp_isa_from_name(name, &isa);
    if (st != LP_OK) return lp_fail_ctx(st, "qgroup");
    *out = BY_ISA[isa];
    return LP_OK;
}

const lp_qkernels *lp_qkernels_for(int isa) { return BY_ISA[isa]; }

const lp_qkernels *lp_qkernels_default(void) { return BY_ISA[lp_cpu_isa()]; }
