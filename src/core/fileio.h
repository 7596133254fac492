/*
 * fileio.h - reading, mapping and atomically writing files and directories.
 *
 * lp_mmap maps a file read-only (weights are never copied into the heap);
 * lp_read_file reads small text files whole; lp_atomic_* write to
 * "<path>.tmp.<pid>" and rename onto <path> only when everything was written
 * and flushed, so a failure never leaves a half-written output behind.
 * lp_outdir_* do the same for a whole output directory (one rule for every
 * output: written under a temporary name beside it, put in place in one step,
 * one writer at a time); lp_temp_* list and remove the temporaries of this
 * process (for a SIGINT/SIGTERM handler in the program).
 */
#ifndef LP_FILEIO_H
#define LP_FILEIO_H

#include "llmpress/status.h"

#include <stddef.h>
#include <stdint.h>
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
    int temp;       /* its entry in the temporaries table, plus one (0: none) */
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

/* ---- temporaries: what an interrupted run would leave ----
 * Every temporary the library creates (a file being written, a temporary
 * output directory and the files in it, an output's lock file) is listed in
 * a process-wide table from just before it is created until it is renamed
 * into place or removed. */

/* Up to max listed paths into paths[] (valid until that temporary is
 * finished); returns how many there are now (may exceed max). Never prints. */
int lp_temp_list(const char **paths, int max);
/* Remove every listed temporary: files, then directories, then lock files.
 * Async-signal-safe (only unlink and rmdir of paths stored beforehand): a
 * program calls it from its SIGINT/SIGTERM handler and at exit. */
void lp_temp_remove_all(void);

/* ---- output directories: whole or absent ----
 * OUT is written completely under "<parent>/.<name>.tmp.<pid>" and put in
 * place in one step: rename when OUT does not exist, else
 * renameat2(RENAME_EXCHANGE) with the old OUT, whose tree is then removed.
 * So OUT is always the old whole or the new whole. A lock (flock on
 * "<parent>/.<name>.lock") refuses a second writer of OUT, in this or any
 * other process; leftovers of a killed run (".<name>.tmp.<digits>") are
 * removed by the next writer that holds the lock. */
typedef struct lp_outdir lp_outdir;

/* Everything that can be checked before long work, with `bytes` the
 * estimated size of the output: OUT is named (not "." or "/"), its parent is
 * an existing writable directory, OUT is absent or a directory that looks
 * like a model (only files, with config.json or model.safetensors*; never a
 * symbolic link), and the file system has `bytes` free. Then takes OUT's
 * lock, kept until lp_outdir_commit / lp_outdir_abort / lp_outdir_release
 * (or the end of the process), and removes leftovers of killed runs.
 * Calling it again while holding the lock only repeats the checks. */
lp_status lp_outdir_prepare(const char *path, uint64_t bytes);
/* Release the lock of a prepared OUT that will not be written. */
void lp_outdir_release(const char *path);

/* Prepare (see above), then create the temporary directory. */
lp_status lp_outdir_begin(const char *path, uint64_t bytes, lp_outdir **out);
/* The temporary directory's path for file `name` (malloc'd), listed as a
 * temporary; write it there (e.g. with lp_atomic_*). */
lp_status lp_outdir_file(lp_outdir *o, const char *name, char **path);
/* Sync, put the directory in place, remove the old one, release the lock;
 * frees o. On failure everything temporary is removed and OUT is as it was. */
lp_status lp_outdir_commit(lp_outdir *o);
/* Remove the temporary directory, release the lock, free o. NULL is a no-op. */
void lp_outdir_abort(lp_outdir *o);

#endif
