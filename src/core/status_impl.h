/*
 * status_impl.h - internal helpers for setting errors and asserting invariants.
 *
 * lp_fail(st, fmt, ...) records a message for lp_last_error() and returns st,
 * so error paths read `return lp_fail(LP_ERR_FORMAT, "%s: ...", path);`.
 * LP_ASSERT is for broken invariants (programmer errors) only, never for bad
 * input: it prints file:line and the expression and aborts, in every build.
 */
#ifndef LP_STATUS_IMPL_H
#define LP_STATUS_IMPL_H

#include "llmpress/status.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define LP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LP_PRINTF(a, b)
#endif

lp_status lp_fail(lp_status st, const char *fmt, ...) LP_PRINTF(2, 3);

/* Prepend context to the current message: "loading X: <old message>". */
lp_status lp_fail_ctx(lp_status st, const char *fmt, ...) LP_PRINTF(2, 3);

/* Clear the last error (used by tests). */
void lp_clear_error(void);

#define LP_ASSERT(x)                                                            \
    do {                                                                        \
        if (!(x)) {                                                             \
            fprintf(stderr, "LP_ASSERT failed at %s:%d: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Propagate a non-OK status. */
#define LP_TRY(expr)                       \
    do {                                   \
        lp_status lp_try_st_ = (expr);     \
        if (lp_try_st_ != LP_OK) return lp_try_st_; \
    } while (0)

#endif
