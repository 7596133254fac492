/*
 * argmax.h - the index of the largest of n floats, the first on ties.
 *
 * What: lp_argmax(z, n) = the smallest i with z[i] == max(z), NaN entries
 *   skipped (the result of `if (z[i] > z[best]) best = i` from best = 0,
 *   which torch.argmax and numpy.argmax agree with on finite input).
 * Why: greedy decoding, the benches and the KL report take an argmax over the
 *   whole vocabulary per token; the scalar compare-and-reload loop cost ~9%
 *   of a decode step on a 32000-token vocabulary.
 * Design: two passes the compiler vectorizes: the maximum (a select that is
 *   exactly maxps), then the first index holding it.
 */
#ifndef LP_ARGMAX_H
#define LP_ARGMAX_H

#include <stdint.h>

int64_t lp_argmax(const float *z, int64_t n);

#endif
