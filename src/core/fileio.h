/*
 * fileio.h - reading, mapping and atomically writing files.
 *
 * lp_mmap maps a file read-only (weights are never copied into the heap);
 * lp_read_file reads small text files whole; lp_atomic_* write to
 * "<path>.tmp.<pid>" and rename onto <path> only when everything was written
 * and flushed, so a failure never leaves a half-written output behind.
 */
#ifndef LP_FILEIO_H
#define LP_FILEIO_H

#include "llmpress/status.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const void *data; /* NULL for an empty file */
    size_t size;
} lp_map;

lp_status lp_mmap(const char *path, lp_map *out);
void lp_munmap(lp_map *m); /* zeroes *m; safe on a zeroed lp_map */

/* Read a whole file into malloc'd memory, NUL-terminated (size excludes it). */
lp_status lp_read_file(const char *path, char **data, size_t *size);

typedef struct {
    FILE *f;
    char *path;     /* final name */
    char *tmp_path; /* name written to */
} lp_atomic_file;

lp_status lp_atomic_open(const char *path, lp_atomic_file *af);
lp_status lp_atomic_write(lp_atomic_file *af, const void *data, size_t n);
/* Flush, fsync, close and rename. On failure the temporary file is removed. */
lp_status lp_atomic_commit(lp_atomic_file *af);
/* Close and remove the temporary file (after an error). Safe to call twice. */
void lp_atomic_abort(lp_atomic_file *af);

/* Join a directory and a file name into malloc'd memory. */
char *lp_path_join(const char *dir, const char *name);
int lp_file_exists(const char *path);
int lp_is_dir(const char *path);

#endif
