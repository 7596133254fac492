/*
 * checkpoint.h - saving a (compressed) model as an llmpress checkpoint
 * directory; loading is part of lp_model_load. Format: see checkpoint.c.
 */
#ifndef LP_CHECKPOINT_H
#define LP_CHECKPOINT_H

#include "llmpress/model.h"

/* Write m into out_dir (created if needed): config.json and tokenizer files
 * copied from the source, model.safetensors with packed linears. */
lp_status lp_model_save(lp_model *m, const char *out_dir);

#endif
