/*
 * status.h - error reporting for every libllmpress call.
 *
 * What: each fallible function returns an lp_status; on failure a precise,
 * human-readable message (naming the file, the bad value, what was expected
 * and a hint) is kept per thread and read with lp_last_error().
 * Why:  the library never prints and never exits (only the CLI does); callers
 * decide what to show. This is stb's failure_reason with ggml's status codes.
 */
#ifndef LLMPRESS_STATUS_H
#define LLMPRESS_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_OK = 0,
    LP_ERR_IO,          /* a file could not be opened, read, mapped or written */
    LP_ERR_FORMAT,      /* a file is malformed, truncated or inconsistent */
    LP_ERR_UNSUPPORTED, /* well-formed, but an architecture/option we do not handle */
    LP_ERR_ARG,         /* the caller passed a bad argument or flag value */
    LP_ERR_NOMEM,       /* an allocation failed */
    LP_ERR_NUMERIC,     /* NaN/Inf or a numerically impossible situation */
    LP_ERR_INTERRUPTED, /* the caller asked a long run to stop (lp_quant_params.interrupt) */
} lp_status;

/* The message of the last failure on this thread ("" if none). */
const char *lp_last_error(void);

/* Short name of a status code ("io", "format", ...). */
const char *lp_status_name(lp_status st);

#ifdef __cplusplus
}
#endif
#endif
