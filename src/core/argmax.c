/*
 * argmax.c - lp_argmax (argmax.h).
 */
#include "core/argmax.h"

int64_t lp_argmax(const float *z, int64_t n) {
    if (n <= 0) return 0;
    float m = z[0];
    for (int64_t i = 1; i < n; i++) m = z[i] > m ? z[i] : m; /* a NaN z[0] stays the maximum */
    if (m != m) return 0; /* z[0] is NaN: the scalar loop never leaves index 0 */
    for (int64_t i = 0; i < n; i++)
        if (z[i] == m) return i;
    return 0;
}
