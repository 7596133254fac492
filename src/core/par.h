/*
 * par.h - when a product is worth sharing between threads.
 *
 * What: lp_par_worth(macs) says whether a product of `macs` multiply-adds
 *   (rows x cols x tokens) should open an OpenMP region.
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

#endif
