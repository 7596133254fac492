/*
 * fileio.c - mapping, reading and atomically writing files (see fileio.h).
 *
 * What: the only place that talks to the OS about files. Every failure names
 *       the path and the OS reason (strerror), e.g.
 *       "model.safetensors: cannot open: No such file or directory".
 * Why:  weights are mmapped read-only so a 7B model costs no heap; outputs go
 *       through a temporary file so that a crash, a full disk or a Ctrl-C in
 *       the middle of writing never leaves a truncated model under the real
 *       name (a later run would otherwise load it and fail confusingly).
 * Design: lp_mmap uses MAP_PRIVATE + PROT_READ; the descriptor is closed
 *       right after mapping (the mapping keeps the file alive). An empty file
 *       maps to {NULL, 0} because mmap of length 0 is an error.
 *       lp_atomic_*: write "<path>.tmp.<pid>", then fflush + fsync + fclose +
 *       rename, then fsync the directory so the rename itself is durable.
 *       lp_path_join returns `name` alone when it is absolute (like Python's
 *       os.path.join), so shard names may be absolute or relative.
 */
#include "core/fileio.h"

#include "core/status_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- mapping ---- */

lp_status lp_mmap(const char *path, lp_map *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lp_fail(LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: not a regular file, cannot be mapped", path);
    }
    if (st.st_size == 0) { /* mmap(len = 0) fails; an empty file is a valid empty map */
        close(fd);
        return LP_OK;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: file of %lld bytes does not fit in memory", path,
                       (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return lp_fail(LP_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));
    out->data = p;
    out->size = size;
    return LP_OK;
}

void lp_munmap(lp_map *m) {
    if (!m) return;
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

/* ---- whole-file read ---- */

lp_status lp_read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    if (size) *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lp_fail(LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lp_fail(LP_ERR_IO, "%s: is a directory, expected a file", path);
    }
    /* st_size is only a hint (pipes report 0, files may grow); the loop reads
     * until EOF and grows the buffer as needed. */
    size_t cap = (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 2)
                     ? (size_t)st.st_size + 1
                     : 4096;
    size_t n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return lp_fail(LP_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    for (;;) {
        if (n + 1 >= cap) { /* keep room for the terminating NUL */
            if (cap > SIZE_MAX / 2) {
                free(buf);
                close(fd);
                return lp_fail(LP_ERR_NOMEM, "%s: file too large to read into memory", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return lp_fail(LP_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path,
                               cap * 2);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return lp_fail(LP_ERR_IO, "%s: read failed after %zu bytes: %s", path, n, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (size) *size = n;
    return LP_OK;
}

/* ---- atomic write ---- */

lp_status lp_atomic_open(const char *path, lp_atomic_file *af) {
    memset(af, 0, sizeof *af);
    size_t plen = strlen(path);
    char *final = malloc(plen + 1);
    char *tmp = malloc(plen + 32);
    if (!final || !tmp) {
        free(final);
        free(tmp);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory opening for writing", path);
    }
    memcpy(final, path, plen + 1);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    /* A leftover temporary of a crashed run that had our pid is overwritten;
     * O_NOFOLLOW refuses to write through a symlink planted under that name. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        lp_status st = lp_fail(LP_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                               strerror(e));
        free(final);
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        lp_status st = lp_fail(LP_ERR_IO, "%s: cannot open stream on %s: %s", path, tmp, strerror(e));
        free(final);
        free(tmp);
        return st;
    }
    af->f = f;
    af->path = final;
    af->tmp_path = tmp;
    return LP_OK;
}

lp_status lp_atomic_write(lp_atomic_file *af, const void *data, size_t n) {
    if (!af->f) return lp_fail(LP_ERR_ARG, "atomic write on a file that is not open");
    if (n == 0) return LP_OK;
    if (fwrite(data, 1, n, af->f) != n)
        return lp_fail(LP_ERR_IO, "%s: write of %zu bytes to %s failed: %s", af->path, n,
                       af->tmp_path, strerror(errno));
    return LP_OK;
}

/* Make the rename durable: fsync the directory holding path. Failure here is
 * not fatal (some file systems refuse fsync on directories). */
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else if (slash == path) {
        dir = strdup("/");
    } else {
        dir = strndup(path, (size_t)(slash - path));
    }
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

lp_status lp_atomic_commit(lp_atomic_file *af) {
    if (!af->f) return lp_fail(LP_ERR_ARG, "atomic commit on a file that is not open");
    lp_status st = LP_OK;
    if (fflush(af->f) != 0)
        st = lp_fail(LP_ERR_IO, "%s: flushing %s failed: %s", af->path, af->tmp_path, strerror(errno));
    else if (fsync(fileno(af->f)) != 0)
        st = lp_fail(LP_ERR_IO, "%s: fsync of %s failed: %s", af->path, af->tmp_path, strerror(errno));
    int rc = fclose(af->f);
    af->f = NULL;
    if (st == LP_OK && rc != 0)
        st = lp_fail(LP_ERR_IO, "%s: closing %s failed: %s", af->path, af->tmp_path, strerror(errno));
    if (st == LP_OK && rename(af->tmp_path, af->path) != 0)
        st = lp_fail(LP_ERR_IO, "%s: renaming %s onto it failed: %s", af->path, af->tmp_path,
                     strerror(errno));
    if (st != LP_OK) {
        lp_atomic_abort(af);
        return st;
    }
    fsync_parent_dir(af->path);
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return LP_OK;
}

void lp_atomic_abort(lp_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
    af->path = af->tmp_path = NULL;
}

/* ---- paths ---- */

char *lp_path_join(const char *dir, const char *name) {
    if (!dir || !*dir || name[0] == '/') return strdup(name);
    size_t dl = strlen(dir), nl = strlen(name);
    int slash = dir[dl - 1] != '/';
    char *p = malloc(dl + (size_t)slash + nl + 1);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    if (slash) p[dl] = '/';
    memcpy(p + dl + (size_t)slash, name, nl + 1);
    return p;
}

int lp_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int lp_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
