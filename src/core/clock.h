/*
 * clock.h - monotonic wall-clock seconds, for the timings that methods,
 * evaluations and speed measurements report.
 */
#ifndef LP_CLOCK_H
#define LP_CLOCK_H

#include <time.h>

static inline double lp_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
