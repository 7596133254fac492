/*
 * pipeline.h - the block-wise calibration pipeline behind calibrated methods.
 */
#ifndef LP_PIPELINE_H
#define LP_PIPELINE_H

#include "llmpress/quant.h"

#include "format/linear.h"

/* A per-linear compressor of the pipeline: l is dense (f32, possibly a view
 * into the mapped checkpoint: never write through l->w); H = 2 X^T X / n is
 * its calibration inputs' Hessian (cols x cols, full symmetric, read-only).
 * On success l holds its compressed form (l's previous weight is released
 * as lp_linear_set_qgroup does), *rel_err = ||W - W_hat||_F / ||W||_F, and
 * the method's time is added to st (st may be NULL). On error l is unchanged. */
typedef lp_status (*lp_compress_linear_fn)(lp_linear *l, const float *H, const lp_quant_params *p,
                                           lp_quant_stats *st, double *rel_err);

/* Quantize m's decoder linears with a calibrated method (p->calib set). */
lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p);

#endif
