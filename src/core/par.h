/*
 * par.h - when a product is worth sharing between threads.
 *
 * What: lp_par_worth(macs) says whether a product of `macs` multiply-adds
 *   (rows x cols x tokens) should open an OpenMP region; lp_par_spans cuts
 *   a product's row tiles into the contiguous spans its threads take;
 *   lp_par_rows runs a row-range function over those spans (or once, on
 *   the calling thread, when sharing is not worth it): the one driver loop
 *   of every packed product (qgroup, qgroup q8, ggml q8, rowgemm).
 * Why: opening and closing a region costs about 3 us with 2 threads on the
 *   VM we measure on (an empty `parallel` region, OMP_WAIT_POLICY=ACTIVE),
 *   about 1 us even with one thread or a false if(); a packed gemv runs
 *   ~50 G multiply-adds/s per core, so one under ~0.5 M multiply-adds
 *   (~10 us) gains less from a second thread than the region costs. A decode
 *   step of a small model is dozens of such products.
 * Design: a constant (chosen with `llmpress bench` decode on llama-25m,
 *   whose linears are 49 K - 393 K weights and whose head is 12 M: with it
 *   the linears run on the calling thread and the head is shared) and the
 *   thread count; callers run their tile loop directly when it says no.
 */
#ifndef LP_PAR_H
#define LP_PAR_H

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>

#define LP_PAR_MIN_MACS (1 << 19)

static inline bool lp_par_worth(int64_t macs) { return macs > LP_PAR_MIN_MACS && omp_get_max_threads() > 1; }

/* Spans of a product's row tiles for `schedule(dynamic, 1)`: about
 * LP_PAR_SPANS_PER_THREAD contiguous spans per thread (*per tiles each, the
 * last may be shorter); returns the number of spans. Why not tiles one by
 * one (or four at a time): a decode product streams its rows from DRAM, and
 * a kernel prefetches the next rows of its own range, so each span start is
 * a cold start and each hand-out jumps the stream; with spans, 4096 x 11008
 * q8 products ran 10-15% faster at 2 threads (docs/benchmarks.md). A few
 * spans per thread rather than one, so a core taken by another process
 * does not stall the call. The tiling never changes a row's result. */
#define LP_PAR_SPANS_PER_THREAD 4

static inline int64_t lp_par_spans(int64_t ntiles, int64_t *per) {
    int64_t n = (int64_t)omp_get_max_threads() * LP_PAR_SPANS_PER_THREAD;
    if (n > ntiles) n = ntiles;
    if (n < 1) n = 1;
    *per = (ntiles + n - 1) / n;
    return (ntiles + *per - 1) / *per;
}

/* fn(ctx, r0, r1) over rows [0, rows), cut in tiles of `tile` rows: when
 * the product (`macs` multiply-adds) is worth sharing and has more than one
 * tile, one `parallel for schedule(dynamic, 1)` over lp_par_spans' spans
 * (each [r0, r1) starts on a tile boundary; the last ends at rows), else
 * one call fn(ctx, 0, rows) on the calling thread with no OpenMP region
 * (one costs ~1 us even when its if() is false). fn must give every row the
 * same result whatever range it comes in. */
typedef void (*lp_par_rows_fn)(void *ctx, int64_t r0, int64_t r1);
void lp_par_rows(int64_t rows, int64_t tile, int64_t macs, lp_par_rows_fn fn, void *ctx);

#endif
