/*
 * suite_proc.h - the child processes of `llmpress suite`, and stopping them.
 *
 * What: run one command (our own binary: quantize, info, eval) with its
 *       stdout and stderr going to given files, wait for it, and report its
 *       exit, wall time and peak resident memory (wait4's rusage).
 * Why:  each cell runs in its own process, so a crash or an out-of-memory
 *       kill in one cell is that cell's failure, not the suite's, and every
 *       cell's memory is measured from a fresh process.
 * Design: SIGINT/SIGTERM are caught once (suite_proc_signals): the first is
 *       forwarded to the running child as SIGTERM (it stops cleanly: quantize
 *       keeps its finished blocks, every command removes its temporaries) and
 *       the suite stops after it; a second one kills the child (SIGKILL).
 *       Signals are blocked around fork so that a signal never falls between
 *       starting a child and knowing its pid.
 */
#ifndef LP_SUITE_PROC_H
#define LP_SUITE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int exit_code;          /* the child's exit status, or 128 + the signal that ended it */
    int signal;             /* the signal that ended it, 0 when it exited */
    double seconds;         /* wall time */
    int64_t peak_rss_bytes; /* its peak resident set (ru_maxrss) */
} suite_proc_result;

/* Catch SIGINT and SIGTERM (unless they were ignored when we started). */
void suite_proc_signals(void);
/* Whether a stop was asked for (a SIGINT or SIGTERM arrived), and which. */
int suite_proc_stop_signal(void);

/* Run argv (argv[0] a path, or a name looked up in PATH; NULL-terminated) with stdin from /dev/null and
 * stdout/stderr on out_fd/err_fd; wait for it. Returns 0 with *r filled
 * (whatever the child's exit), -1 when it could not be started (errno). */
int suite_proc_run(char *const argv[], int out_fd, int err_fd, suite_proc_result *r);

/* Run argv and keep the first n-1 bytes of its stdout in buf (stderr is
 * dropped); true when it exited 0. For small outputs (git's commit id). */
bool suite_proc_capture(char *const argv[], char *buf, size_t n);

/* This program's own executable (/proc/self/exe), malloc'd; NULL if unknown. */
char *suite_proc_self(void);

#endif
