/*
 * status.c - the per-thread last-error message behind lp_last_error().
 *
 * Design: one fixed thread-local buffer; lp_fail overwrites it, lp_fail_ctx
 * prepends context to it. No allocation, so it works when memory has run out.
 */
#include "core/status_impl.h"

#include <stdarg.h>
#include <string.h>

#define LP_ERRMSG_MAX 1024

static _Thread_local char g_errmsg[LP_ERRMSG_MAX];

const char *lp_last_error(void) { return g_errmsg; }

void lp_clear_error(void) { g_errmsg[0] = '\0'; }

const char *lp_status_name(lp_status st) {
    switch (st) {
    case LP_OK: return "ok";
    case LP_ERR_IO: return "io";
    case LP_ERR_FORMAT: return "format";
    case LP_ERR_UNSUPPORTED: return "unsupported";
    case LP_ERR_ARG: return "argument";
    case LP_ERR_NOMEM: return "out of memory";
    case LP_ERR_NUMERIC: return "numeric";
    case LP_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

lp_status lp_fail(lp_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

lp_status lp_fail_ctx(lp_status st, const char *fmt, ...) {
    char old[LP_ERRMSG_MAX];
    memcpy(old, g_errmsg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof g_errmsg && old[0]) {
        const size_t room = sizeof g_errmsg - (size_t)n; /* the old message is cut to what fits */
        snprintf(g_errmsg + n, room, ": %.*s", (int)(room > 3 ? room - 3 : 0), old);
    }
    return st;
}
