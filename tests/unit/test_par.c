/*
 * test_par.c - lp_par_spans (core/par.h): for every tile count from 1 to
 * 2000 and every thread count from 1 to 9, the spans cover the tiles
 * exactly once, in order, each nonempty, their number close to
 * LP_PAR_SPANS_PER_THREAD per thread (never more spans than tiles), and
 * lp_par_rows, the drivers' loop (qgroup, qgroup q8, ggml q8, rowgemm),
 * calls its function on ranges that cover the rows [0, rows) exactly once,
 * each starting on a tile boundary, shared between threads only when the
 * product is worth it.
 */
#include "core/par.h"
#include "test.h"

#include <omp.h>
#include <stdlib.h>

typedef struct {
    unsigned char *seen;
    int calls, misaligned, off_main; /* updated under `critical` */
} rows_log;

static void note_rows(void *ctx, int64_t r0, int64_t r1) {
    rows_log *l = ctx;
    const int off = omp_in_parallel() && omp_get_thread_num() != 0; /* a worker, not the caller */
#pragma omp critical(test_par)
    {
        for (int64_t r = r0; r < r1; r++) l->seen[r]++;
        l->calls++;
        l->misaligned += r0 % 16 != 0;
        l->off_main += off;
    }
}

int main(void) {
    const int64_t big = (int64_t)LP_PAR_MIN_MACS * 4; /* a product worth sharing */
    int cases = 0;
    unsigned char *seen = malloc(2000 * 16);
    for (int nth = 1; nth <= 9; nth++) {
        omp_set_num_threads(nth);
        for (int64_t ntiles = 1; ntiles <= 2000; ntiles++) {
            int64_t per = -1;
            const int64_t n = lp_par_spans(ntiles, &per);
            CHECKF(per >= 1 && n >= 1 && n <= ntiles, "%lld tiles, %d threads: %lld spans of %lld", (long long)ntiles,
                   nth, (long long)n, (long long)per);
            const int64_t want = (int64_t)nth * LP_PAR_SPANS_PER_THREAD;
            CHECKF(n <= want && (ntiles < want || 2 * n > want), "%lld tiles, %d threads: %lld spans",
                   (long long)ntiles, nth, (long long)n);
            /* span i: tiles [i * per, min((i + 1) * per, ntiles)), as the drivers cut them */
            for (int64_t t = 0; t < ntiles; t++) seen[t] = 0;
            for (int64_t i = 0; i < n; i++) {
                const int64_t t0 = i * per, t1 = (i + 1) * per < ntiles ? (i + 1) * per : ntiles;
                CHECKF(t0 < t1, "%lld tiles, %d threads: span %lld empty", (long long)ntiles, nth, (long long)i);
                for (int64_t t = t0; t < t1; t++) seen[t]++;
            }
            for (int64_t t = 0; t < ntiles; t++)
                CHECKF(seen[t] == 1, "%lld tiles, %d threads: tile %lld taken %d times", (long long)ntiles, nth,
                       (long long)t, seen[t]);
            /* lp_par_rows over 16-row tiles, the last tile short: every row once */
            const int64_t rows = ntiles * 16 - (ntiles % 7);
            for (int64_t r = 0; r < rows; r++) seen[r] = 0;
            rows_log log = {seen, 0, 0, 0};
            lp_par_rows(rows, 16, big, note_rows, &log);
            for (int64_t r = 0; r < rows; r++)
                CHECKF(seen[r] == 1, "%lld rows, %d threads: row %lld taken %d times", (long long)rows, nth,
                       (long long)r, seen[r]);
            CHECKF(!log.misaligned, "%lld rows, %d threads: a range starts off a tile boundary", (long long)rows,
                   nth);
            CHECKF(log.calls == (nth > 1 && ntiles > 1 ? n : 1), "%lld rows, %d threads: %d calls, %lld spans",
                   (long long)rows, nth, log.calls, (long long)n);
            /* a small product runs once on the calling thread */
            for (int64_t r = 0; r < rows; r++) seen[r] = 0;
            rows_log one = {seen, 0, 0, 0};
            lp_par_rows(rows, 16, LP_PAR_MIN_MACS, note_rows, &one);
            CHECKF(one.calls == 1 && one.off_main == 0 && seen[0] == 1 && seen[rows - 1] == 1,
                   "%lld rows, %d threads: a small product made %d calls, %d off the calling thread", (long long)rows,
                   nth, one.calls, one.off_main);
            cases++;
        }
    }
    free(seen);
    printf("lp_par_spans / lp_par_rows partition the tiles and rows in %d cases\n", cases);
    TEST_DONE();
}
