/*
 * par.c - lp_par_rows, the span loop every packed product shares (par.h).
 */
#include "core/par.h"

void lp_par_rows(int64_t rows, int64_t tile, int64_t macs, lp_par_rows_fn fn, void *ctx) {
    const int64_t ntiles = (rows + tile - 1) / tile;
    if (ntiles <= 1 || !lp_par_worth(macs)) {
        if (rows > 0) fn(ctx, 0, rows);
        return;
    }
    int64_t per;
    const int64_t nspans = lp_par_spans(ntiles, &per), span = per * tile;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < nspans; i++) {
        const int64_t r0 = i * span, r1 = r0 + span < rows ? r0 + span : rows;
        fn(ctx, r0, r1);
    }
}
