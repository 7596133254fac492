/*
 * argmax.c - lp_argmax (argmax.h).
 *
 * Both passes work in rows of LANES independent lanes, loops the compiler
 * vectorizes at -O2 (a single running maximum or an early-exit search is
 * not vectorized, and its dependency chain costs ~3 cycles a value).
 */
#include "core/argmax.h"

#include <math.h>

enum { LANES = 16 };

int64_t lp_argmax(const float *z, int64_t n) {
    if (n <= 0 || z[0] != z[0]) return 0; /* a NaN z[0] stays the best of the scalar loop */
    float acc[LANES];
    for (int l = 0; l < LANES; l++) acc[l] = -INFINITY;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) /* lane-wise maximum; NaNs never win a > */
        for (int l = 0; l < LANES; l++) acc[l] = z[i + l] > acc[l] ? z[i + l] : acc[l];
    float m = z[0];
    for (int l = 0; l < LANES; l++) m = acc[l] > m ? acc[l] : m;
    for (; i < n; i++) m = z[i] > m ? z[i] : m;
    for (i = 0; i + LANES <= n; i += LANES) { /* the first row holding m, then its first lane */
        int hit = 0;
        for (int l = 0; l < LANES; l++) hit |= z[i + l] == m;
        if (hit) break;
    }
    for (; i < n; i++)
        if (z[i] == m) return i;
    return 0;
}
