/*
 * pipeline.h - the block-wise calibration pipeline behind calibrated methods.
 */
#ifndef LP_PIPELINE_H
#define LP_PIPELINE_H

#include "llmpress/quant.h"


/* Quantize m's decoder linears with a calibrated method (p->calib set). */
lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p);

#endif
