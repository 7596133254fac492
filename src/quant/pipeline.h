/*
 * pipeline.h - the block-wise calibration pipeline behind calibrated methods.
 */
#ifndef LP_PIPELINE_H
#define LP_PIPELINE_H

#include "llmpress/quant.h"


/* Quantize m's decoder linears with a calibrated method (p->calib set). */
lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p);

/* The memory a calibrated run with p (p->calib's nsamples x seqlen; its
 * tokens are not read) holds at its peak, in bytes, by part. */
typedef struct {
    double windows;     /* the calibration windows (nsamples x seqlen ids), held by the caller */
    double activations; /* the pipeline's X, Y, Z and T */
    double hessian;     /* H, cols x cols of the widest linear input */
    double awq;         /* AWQ's block statistics and search scratch (AWQ, or --awq-prescale) */
    double context;     /* the forward context: K/V cache of seqlen tokens, one window's rows */
    double weights;     /* the linear being compressed in f32 (AWQ: its block), a method's copy, cols^2 scratch */
    double total;
} lp_pipe_memory;
void lp_pipeline_memory(const lp_model *m, const lp_quant_params *p, lp_pipe_memory *e);

#endif
