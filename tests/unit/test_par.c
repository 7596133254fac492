/*
 * test_par.c - lp_par_spans (core/par.h): for every tile count from 1 to
 * 2000 and every thread count from 1 to 9, the spans cover the tiles
 * exactly once, in order, each nonempty, their number close to
 * LP_PAR_SPANS_PER_THREAD per thread (never more spans than tiles), and
 * the spans the drivers build from it (qgroup_q8.c, qgroup_gemm.c,
 * rowgemm.c) cover the rows [0, rows) of a product exactly once.
 */
#include "core/par.h"
#include "test.h"

#include <omp.h>
#include <stdlib.h>

int main(void) {
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
            /* rows of 16-row tiles, the last tile short: every row once */
            const int64_t rows = ntiles * 16 - (ntiles % 7), span = per * 16;
            for (int64_t r = 0; r < rows; r++) seen[r] = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = i * span; r < (i * span + span < rows ? i * span + span : rows); r++) seen[r]++;
            for (int64_t r = 0; r < rows; r++)
                CHECKF(seen[r] == 1, "%lld rows, %d threads: row %lld taken %d times", (long long)rows, nth,
                       (long long)r, seen[r]);
            cases++;
        }
    }
    free(seen);
    printf("lp_par_spans partitions the tiles and rows in %d cases\n", cases);
    TEST_DONE();
}
