/*
 * prune.h - what the pruning methods (prune.c) share with the sparsity
 * allocation (allocate.c): their settings, their masks without updates, and
 * the block planner behind --allocate.
 */
#ifndef LP_PRUNE_H
#define LP_PRUNE_H

#include "quant/method.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    double sparsity; /* fraction removed (unstructured) */
    int nm;          /* --nm's choice index: 0 = off */
    bool allocate;   /* spread the sparsity over each block's linears */
    int bits;        /* sparsegpt: 16, or 2..8 (joint quantization) */
    int group;       /* sparsegpt --bits < 16: columns per grid, -1 = per row */
    double damp;     /* sparsegpt */
    int gptq_block;  /* sparsegpt */
    bool clip;       /* sparsegpt --bits < 16: searched grid shrink factors (clip.h) */
    int clip_grid;
    double clip_max_shrink;
} lp_prune_settings;

/* n and m of --nm (0, 0 when off). */
int lp_prune_nm_n(const lp_prune_settings *s);
int lp_prune_nm_m(const lp_prune_settings *s);

/* 0 magnitude, 1 wanda, 2 sparsegpt. */
int lp_prune_kind(const lp_method *m);

/* The comparison metric of a kind without updates: |w| (magnitude), or
 * |w| sqrt(H_jj) (wanda; sparsegpt's allocation uses it too). */
void lp_prune_metric(int kind, const float *W, int64_t R, int64_t C, const float *H, float *metric);

/* order (R x C): each row's columns by ascending metric (ties: lower column
 * first). LP_ERR_NOMEM. */
lp_status lp_prune_rank_rows(const float *metric, int64_t R, int64_t C, int64_t *order);

/* keep (R x C): 0 for the floor(C s) first columns of each row's order. */
void lp_prune_keep_rows(const int64_t *order, int64_t R, int64_t C, double sparsity, uint8_t *keep);

/* --allocate (allocate.c): the method's plan_block. */
lp_status lp_prune_allocate(const lp_block_plan_in *in, const void *s, double plan[LP_NLIN], lp_quant_stats *st);

#endif
