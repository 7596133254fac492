/*
 * resume.h - the on-disk state of a resumable calibrated run.
 *
 * A state directory holds, after block b of the pipeline has finished:
 *   block-<i>.safetensors  for i <= b: block i's packed linears and rescaled
 *                          norms (lp_ckpt_add_layer_state), metadata
 *                          "llmpress.resume.key" = the run's key;
 *   state.safetensors      "x": F32 [N L D], the calibration hidden states
 *                          entering block b + 1; metadata the key and
 *                          "llmpress.resume.blocks" = b + 1.
 * Each file is written under a temporary name and renamed; state.safetensors
 * is written last, so it is the commit point: a run killed at any moment
 * leaves either the old or the new state, both consistent.
 */
#ifndef LP_RESUME_H
#define LP_RESUME_H

#include "llmpress/quant.h"

#include <stdint.h>

/* *key (malloc'd): what decides a run's result, as "name=value" words - the
 * model (its real path and shape), every method setting, and the calibration
 * windows (count, length and a hash of their tokens). */
lp_status lp_resume_key(const lp_model *m, const lp_quant_params *p, char **key);

/* If dir holds a state: check its key against key (LP_ERR_ARG naming the
 * first differing setting), install its finished blocks into m (their packed
 * linears then point into the state files, which m keeps open), copy its
 * hidden states into X (n floats) and set *done to the number of blocks
 * restored. Without a state, *done = 0 and dir is created if missing. */
lp_status lp_resume_load(const char *dir, const char *key, lp_model *m, float *X, int64_t n, int64_t *done);

/* Record that block b has finished: its state file, then X (n floats, the
 * next block's inputs) as the new commit point. */
lp_status lp_resume_save(const char *dir, const char *key, lp_model *m, int64_t b, const float *X, int64_t n);

#endif
