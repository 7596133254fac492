/*
 * fileio.c - mapping, reading and atomically writing files and output
 * directories (see fileio.h).
 *
 * What: the only place that talks to the OS about files. Every failure names
 *       the path and the OS reason (strerror), e.g.
 *       "model.safetensors: cannot open: No such file or directory".
 * Why:  weights are mmapped read-only so a 7B model costs no heap; outputs go
 *       through a temporary name so that a crash, a full disk, a Ctrl-C or a
 *       second writer never leaves a truncated or mixed model under the real
 *       name (a later run would otherwise load it and fail confusingly, or
 *       worse, run with another model's tokenizer).
 * Design: lp_mmap opens with O_NONBLOCK (a FIFO must not block the open
 *       before the regular-file check) and uses MAP_PRIVATE + PROT_READ; the
 *       descriptor is closed right after mapping (the mapping keeps the file
 *       alive). An empty file maps to {NULL, 0} because mmap of length 0 is
 *       an error.
 *       lp_atomic_*: write "<path>.tmp.<pid>", then fflush + fsync + fclose +
 *       rename, then fsync the directory so the rename itself is durable.
 *       lp_outdir_*: one rule for an output directory OUT:
 *         1. checks before any work: OUT named, parent an existing writable
 *            directory, OUT absent or a model-like directory (only files, so
 *            replacing it whole never deletes a tree the user keeps there),
 *            free space for the estimated size (statvfs);
 *         2. a lock: flock(LOCK_EX | LOCK_NB) on "<parent>/.<name>.lock"; a
 *            second writer is refused with an error naming OUT. The file is
 *            removed by its holder before it unlocks, so a taker re-checks
 *            that the file it locked is still the one under that name;
 *         3. with the lock held, every ".<name>.tmp.<digits>" is a leftover
 *            of a killed run (no one else may write OUT) and is removed;
 *         4. files go into "<parent>/.<name>.tmp.<pid>", which is synced and
 *            renamed onto OUT when OUT is absent, else exchanged with it
 *            (renameat2 RENAME_EXCHANGE: both names stay valid throughout)
 *            and the old tree, now under the temporary name, removed.
 *       Temporaries table: every temporary is listed before it is created
 *       (a lock file once it is held: listing it earlier could let a signal
 *       remove another writer's lock), in fixed-size slots of a static array
 *       so that lp_temp_remove_all can run in a signal handler: it only
 *       reads atomically published slots and calls unlink/rmdir. This is the
 *       one mutable global of the library: a signal handler reaches nothing
 *       else.
 *       lp_path_join returns `name` alone when it is absolute (like Python's
 *       os.path.join), so shard names may be absolute or relative.
 */
#include "core/fileio.h"

#include "core/status_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- the temporaries table ---- */

enum { TEMP_FREE, TEMP_FILLING, TEMP_LISTED };              /* slot states */
enum { TEMP_FILE, TEMP_DIR, TEMP_LOCK, TEMP_KINDS };       /* removal order */
#define TEMP_SLOTS 64 /* an output needs about a dozen at once */

typedef struct {
    atomic_int state; /* published last: a handler never sees a half-written path */
    int kind;
    int fd;           /* TEMP_LOCK: the descriptor holding the flock */
    dev_t dev;        /* TEMP_LOCK: the lock file's identity */
    ino_t ino;
    char path[PATH_MAX];
} temp_slot;

static temp_slot g_temp[TEMP_SLOTS];

/* List `path` (before creating it); *slot gets its index. */
static lp_status temp_add(int kind, const char *path, int fd, const struct stat *id, int *slot) {
    size_t n = strlen(path);
    if (n >= PATH_MAX)
        return lp_fail(LP_ERR_IO, "%s: path of %zu bytes is too long (at most %d)", path, n, PATH_MAX - 1);
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int expect = TEMP_FREE;
        if (!atomic_compare_exchange_strong(&g_temp[i].state, &expect, TEMP_FILLING)) continue;
        temp_slot *t = &g_temp[i];
        memcpy(t->path, path, n + 1);
        t->kind = kind;
        t->fd = fd;
        t->dev = id ? id->st_dev : 0;
        t->ino = id ? id->st_ino : 0;
        atomic_store(&t->state, TEMP_LISTED);
        *slot = i;
        return LP_OK;
    }
    return lp_fail(LP_ERR_NOMEM, "%s: more than %d temporary files at once", path, TEMP_SLOTS);
}

static void temp_drop(int slot) {
    if (slot >= 0 && slot < TEMP_SLOTS) atomic_store(&g_temp[slot].state, TEMP_FREE);
}

int lp_temp_list(const char **paths, int max) {
    int n = 0;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        if (atomic_load(&g_temp[i].state) != TEMP_LISTED) continue;
        if (paths && n < max) paths[n] = g_temp[i].path;
        n++;
    }
    return n;
}

void lp_temp_remove_all(void) {
    int saved = errno;
    /* Files before their directory, lock files last: while the lock file
     * is there no other writer starts on the half-removed output. */
    for (int kind = 0; kind < TEMP_KINDS; kind++)
        for (int i = TEMP_SLOTS - 1; i >= 0; i--) {
            temp_slot *t = &g_temp[i];
            if (atomic_load(&t->state) != TEMP_LISTED || t->kind != kind) continue;
            if (kind == TEMP_DIR) rmdir(t->path);
            else unlink(t->path);
        }
    errno = saved;
}

/* ---- mapping ---- */

lp_status lp_mmap(const char *path, lp_map *out) {
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever, before fstat could tell it is not a regular file. It
     * changes nothing for regular files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
        return lp_fail(LP_ERR_IO, "%s: not a regular file (a %s), cannot be mapped", path,
                       S_ISFIFO(st.st_mode) ? "FIFO" : S_ISCHR(st.st_mode) ? "character device"
                       : S_ISSOCK(st.st_mode) ? "socket" : "special file");
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

/* The directory part of path (malloc'd): "." when it has no slash. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* "<digits>" (a pid) at s, followed by `tail`; returns the pid or 0. */
static long pid_suffix(const char *s, const char *tail) {
    long pid = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9' && pid < 100000000; p++) pid = pid * 10 + (*p - '0');
    return p > s && !strcmp(p, tail) ? pid : 0;
}

/* Remove "<path>.tmp.<pid>" files left by killed runs (pid no longer
 * running). A live pid may be another writer of the same file: its
 * temporary is left alone (and so is one of a reused pid: harmless). */
static void remove_dead_file_temps(const char *path) {
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t bl = strlen(base);
    DIR *d = dir ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, base, bl) || strncmp(e->d_name + bl, ".tmp.", 5)) continue;
        long pid = pid_suffix(e->d_name + bl + 5, "");
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d) closedir(d);
    free(dir);
}

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
    remove_dead_file_temps(path);
    int slot = -1;
    lp_status st = temp_add(TEMP_FILE, tmp, -1, NULL, &slot);
    if (st != LP_OK) {
        free(final);
        free(tmp);
        return st;
    }
    /* A leftover temporary of a crashed run that had our pid is overwritten;
     * O_NOFOLLOW refuses to write through a symlink planted under that name. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        temp_drop(slot);
        st = lp_fail(LP_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(e));
        free(final);
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        temp_drop(slot);
        st = lp_fail(LP_ERR_IO, "%s: cannot open stream on %s: %s", path, tmp, strerror(e));
        free(final);
        free(tmp);
        return st;
    }
    af->f = f;
    af->path = final;
    af->tmp_path = tmp;
    af->temp = slot + 1;
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
    char *dir = dir_of(path);
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
    temp_drop(af->temp - 1); /* renamed: no longer a temporary */
    af->temp = 0;
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
    if (af->temp > 0) temp_drop(af->temp - 1);
    af->temp = 0;
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

/* ---- output directories ---- */

/* OUT split into its directory and name, and the names beside it. */
typedef struct {
    char *path;   /* as given, trailing slashes removed */
    char *parent; /* "." for a bare name */
    char *base;
} out_names;

static void out_names_free(out_names *n) {
    free(n->path);
    free(n->parent);
    free(n->base);
    memset(n, 0, sizeof *n);
}

static lp_status out_split(const char *path, out_names *n) {
    memset(n, 0, sizeof *n);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    if (!(n->path = strndup(path, len))) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    const char *slash = strrchr(n->path, '/');
    const char *base = slash ? slash + 1 : n->path;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
        out_names_free(n);
        return lp_fail(LP_ERR_ARG, "%s: name the output directory itself (it is replaced as a whole; "
                       "'.', '..' and '/' cannot be)", path);
    }
    n->base = strdup(base);
    n->parent = dir_of(n->path);
    if (!n->base || !n->parent) {
        out_names_free(n);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    }
    return LP_OK;
}

/* "<parent>/.<base><suffix>" (malloc'd), e.g. ".lock" or ".tmp.123". */
static char *out_sibling(const out_names *n, const char *suffix) {
    size_t k = strlen(n->parent) + strlen(n->base) + strlen(suffix) + 3;
    char *p = malloc(k);
    if (p) snprintf(p, k, "%s/.%s%s", n->parent, n->base, suffix);
    return p;
}

/* Remove a tree without following symbolic links (unlinkat/openat with
 * O_NOFOLLOW), a bounded depth down. Returns 0 when it is gone. */
static int rm_tree_at(int dfd, const char *name, int depth) {
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > 16) return -1;
    for (int pass = 0; pass < 4; pass++) { /* readdir while removing may skip entries */
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return errno == ENOENT ? 0 : -1;
        DIR *d = fdopendir(fd);
        if (!d) {
            close(fd);
            return -1;
        }
        for (struct dirent *e; (e = readdir(d));)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) rm_tree_at(fd, e->d_name, depth + 1);
        closedir(d);
        if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
        if (errno != ENOTEMPTY && errno != EEXIST) return -1;
    }
    return -1;
}

static int rm_tree(const char *path) { return rm_tree_at(AT_FDCWD, path, 0); }

/* OUT's parent exists, is a directory and can be written. */
static lp_status out_check_parent(const out_names *n) {
    struct stat st;
    if (stat(n->parent, &st) != 0)
        return lp_fail(LP_ERR_IO, "%s: cannot create the output directory: its parent %s does not exist",
                       n->path, n->parent);
    if (!S_ISDIR(st.st_mode))
        return lp_fail(LP_ERR_IO, "%s: cannot create the output directory: its parent %s is not a directory",
                       n->path, n->parent);
    if (access(n->parent, W_OK | X_OK) != 0)
        return lp_fail(LP_ERR_IO, "%s: cannot write the output: its directory %s is not writable: %s",
                       n->path, n->parent, strerror(errno));
    return LP_OK;
}

/* OUT is absent, or a directory that may be replaced as a whole: no
 * subdirectory (a tree the user keeps there, or the source model itself)
 * and either empty or a model (config.json or model.safetensors*). */
static lp_status out_check_existing(const out_names *n) {
    struct stat st;
    if (lstat(n->path, &st) != 0) {
        if (errno == ENOENT) return LP_OK;
        return lp_fail(LP_ERR_IO, "%s: cannot stat the output directory: %s", n->path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return lp_fail(LP_ERR_IO, "%s: is a symbolic link; give the output directory itself (the link "
                       "would be replaced by a directory)", n->path);
    if (!S_ISDIR(st.st_mode)) return lp_fail(LP_ERR_IO, "%s: exists and is not a directory", n->path);
    DIR *d = opendir(n->path);
    if (!d) return lp_fail(LP_ERR_IO, "%s: cannot read the existing output directory: %s", n->path, strerror(errno));
    bool empty = true, model = false;
    lp_status rc = LP_OK;
    for (struct dirent *e; rc == LP_OK && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        empty = false;
        struct stat es;
        if (fstatat(dirfd(d), e->d_name, &es, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(es.st_mode))
            rc = lp_fail(LP_ERR_IO, "%s/%s: is a directory; the output directory %s is replaced as a whole, "
                         "so it may hold only a model's files (hint: remove it or choose another output "
                         "directory)", n->path, e->d_name, n->path);
        if (!strcmp(e->d_name, "config.json") || !strncmp(e->d_name, "model.safetensors", 17)) model = true;
    }
    closedir(d);
    if (rc == LP_OK && !empty && !model)
        rc = lp_fail(LP_ERR_IO, "%s: exists and does not look like a model directory (no config.json or "
                     "model.safetensors in it); the output is replaced as a whole (hint: remove it or "
                     "choose another output directory)", n->path);
    return rc;
}

static lp_status out_check_space(const out_names *n, uint64_t bytes) {
    struct statvfs v;
    if (statvfs(n->parent, &v) != 0) return LP_OK; /* cannot tell: the write will say */
    const uint64_t avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    if (bytes > avail)
        return lp_fail(LP_ERR_IO, "%s: not enough free space: the output needs about %.1f MB, %s has %.1f MB "
                       "free (hint: free some space or choose another output directory)", n->path,
                       (double)bytes / 1e6, n->parent, (double)avail / 1e6);
    return LP_OK;
}

/* The slot of the lock this process holds on lock file `lp`, or -1: the
 * file under that name must be the one locked (if it was removed, the lock
 * protects nothing any more). */
static int lock_held(const char *lp) {
    struct stat st;
    if (stat(lp, &st) != 0) return -1;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        const temp_slot *t = &g_temp[i];
        if (atomic_load(&g_temp[i].state) == TEMP_LISTED && t->kind == TEMP_LOCK && t->dev == st.st_dev &&
            t->ino == st.st_ino)
            return i;
    }
    return -1;
}

/* Forget locks on `lp` whose file is gone or replaced: close them, and
 * never unlink that name (it may be another writer's lock by now). */
static void lock_forget_stale(const char *lp) {
    const int held = lock_held(lp);
    for (int i = 0; i < TEMP_SLOTS; i++) {
        temp_slot *t = &g_temp[i];
        if (i == held || atomic_load(&t->state) != TEMP_LISTED || t->kind != TEMP_LOCK || strcmp(t->path, lp))
            continue;
        const int fd = t->fd;
        temp_drop(i);
        close(fd);
    }
}

/* Take OUT's lock; *taken says whether this call took it (false: held). */
static lp_status out_lock(const out_names *n, bool *taken) {
    *taken = false;
    char *lp = out_sibling(n, ".lock");
    if (!lp) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", n->path);
    lp_status rc = LP_OK;
    lock_forget_stale(lp);
    if (lock_held(lp) >= 0) goto done;
    for (int attempt = 0;; attempt++) {
        int fd = open(lp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = lp_fail(LP_ERR_IO, "%s: cannot create the lock file %s: %s (hint: the output's directory "
                         "must be writable)", n->path, lp, strerror(errno));
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            rc = e == EWOULDBLOCK
                     ? lp_fail(LP_ERR_IO, "%s: another llmpress is writing this output (it holds the lock "
                               "%s); wait for it to finish or choose another output directory", n->path, lp)
                     : lp_fail(LP_ERR_IO, "%s: cannot lock %s: %s", n->path, lp, strerror(e));
            break;
        }
        /* The holder before us removes the file before unlocking: if it did
         * after we opened it, we locked a file that no longer has the name. */
        struct stat mine, now;
        if (fstat(fd, &mine) == 0 && stat(lp, &now) == 0 && mine.st_dev == now.st_dev &&
            mine.st_ino == now.st_ino) {
            int slot;
            rc = temp_add(TEMP_LOCK, lp, fd, &mine, &slot);
            if (rc != LP_OK) close(fd);
            else *taken = true;
            break;
        }
        close(fd);
        if (attempt == 16) {
            rc = lp_fail(LP_ERR_IO, "%s: cannot take the lock %s: it keeps being replaced", n->path, lp);
            break;
        }
    }
done:
    free(lp);
    return rc;
}

static void out_unlock(const out_names *n) {
    char *lp = out_sibling(n, ".lock");
    int i = lp ? lock_held(lp) : -1;
    if (i >= 0) {
        unlink(g_temp[i].path); /* while still holding it: see out_lock */
        int fd = g_temp[i].fd;
        temp_drop(i);
        close(fd);
    }
    if (lp) lock_forget_stale(lp);
    free(lp);
}

/* With the lock held nobody else writes OUT: every ".<base>.tmp.<pid>"
 * (and ".<base>.tmp.<pid>.old") not listed by this process is a leftover of
 * a killed run. */
static void out_remove_leftovers(const out_names *n) {
    char *prefix = out_sibling(n, ".tmp.");
    DIR *d = opendir(n->parent);
    if (!prefix || !d) goto done;
    const char *pre = strrchr(prefix, '/') + 1;
    const size_t pl = strlen(pre);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, pre, pl)) continue;
        const char *rest = e->d_name + pl;
        if (!pid_suffix(rest, "") && !pid_suffix(rest, ".old")) continue;
        char *full = lp_path_join(n->parent, e->d_name);
        bool ours = false;
        for (int i = 0; full && i < TEMP_SLOTS && !ours; i++)
            ours = atomic_load(&g_temp[i].state) == TEMP_LISTED && !strcmp(g_temp[i].path, full);
        if (full && !ours) rm_tree(full);
        free(full);
    }
done:
    if (d) closedir(d);
    free(prefix);
}

lp_status lp_outdir_prepare(const char *path, uint64_t bytes) {
    out_names n;
    LP_TRY(out_split(path, &n));
    bool taken = false;
    lp_status rc = out_check_parent(&n);
    if (rc == LP_OK) rc = out_check_existing(&n);
    if (rc == LP_OK) rc = out_lock(&n, &taken);
    if (rc == LP_OK) {
        out_remove_leftovers(&n); /* before measuring the free space they took */
        rc = out_check_space(&n, bytes);
        if (rc != LP_OK && taken) out_unlock(&n);
    }
    out_names_free(&n);
    return rc;
}

void lp_outdir_release(const char *path) {
    out_names n;
    if (out_split(path, &n) != LP_OK) return;
    out_unlock(&n);
    out_names_free(&n);
}

#define OUTDIR_FILES 32

struct lp_outdir {
    out_names n;
    char *tmp;                 /* the new directory while it is written */
    int tmp_slot;
    int files[OUTDIR_FILES];   /* slots of the files listed in it */
    int nfiles;
};

/* Forget o's temporaries (after they were renamed away or removed). */
static void outdir_free(lp_outdir *o) {
    for (int i = 0; i < o->nfiles; i++) temp_drop(o->files[i]);
    temp_drop(o->tmp_slot);
    out_unlock(&o->n);
    out_names_free(&o->n);
    free(o->tmp);
    free(o);
}

lp_status lp_outdir_begin(const char *path, uint64_t bytes, lp_outdir **out) {
    *out = NULL;
    lp_status st = lp_outdir_prepare(path, bytes);
    if (st != LP_OK) {
        lp_outdir_release(path); /* the save is over, even if a check took the lock before */
        return st;
    }
    lp_outdir *o = calloc(1, sizeof *o);
    lp_status rc = o ? out_split(path, &o->n) : lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    if (rc != LP_OK) {
        free(o);
        lp_outdir_release(path);
        return rc;
    }
    o->tmp_slot = -1;
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    o->tmp = out_sibling(&o->n, suffix);
    if (!o->tmp) rc = lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    if (rc == LP_OK) rc = temp_add(TEMP_DIR, o->tmp, -1, NULL, &o->tmp_slot);
    if (rc == LP_OK && mkdir(o->tmp, 0755) != 0)
        rc = lp_fail(LP_ERR_IO, "%s: cannot create the temporary directory %s: %s", o->n.path, o->tmp,
                     strerror(errno));
    if (rc != LP_OK) {
        outdir_free(o);
        return rc;
    }
    *out = o;
    return LP_OK;
}

lp_status lp_outdir_file(lp_outdir *o, const char *name, char **path) {
    *path = NULL;
    if (o->nfiles == OUTDIR_FILES)
        return lp_fail(LP_ERR_ARG, "%s: more than %d files in one output directory", o->n.path, OUTDIR_FILES);
    char *p = lp_path_join(o->tmp, name);
    if (!p) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", o->n.path);
    lp_status rc = temp_add(TEMP_FILE, p, -1, NULL, &o->files[o->nfiles]);
    if (rc != LP_OK) {
        free(p);
        return rc;
    }
    o->nfiles++;
    *path = p;
    return LP_OK;
}

void lp_outdir_abort(lp_outdir *o) {
    if (!o) return;
    rm_tree(o->tmp);
    outdir_free(o);
}

/* Put o->tmp in place of OUT; *old says the old OUT is now under o->tmp. */
static lp_status outdir_swap(lp_outdir *o, bool *old) {
    *old = false;
    const char *out = o->n.path;
    struct stat st;
    if (lstat(out, &st) != 0 && errno == ENOENT) {
        if (rename(o->tmp, out) == 0) return LP_OK;
        if (errno != EEXIST && errno != ENOTEMPTY)
            return lp_fail(LP_ERR_IO, "%s: renaming %s onto it failed: %s", out, o->tmp, strerror(errno));
        LP_TRY(out_check_existing(&o->n)); /* it appeared meanwhile: replace it like any other */
    }
    if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
        *old = true;
        return LP_OK;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return lp_fail(LP_ERR_IO, "%s: exchanging it with %s failed: %s", out, o->tmp, strerror(errno));
    /* A file system without RENAME_EXCHANGE: two renames, OUT absent for an
     * instant in between (the old one under a name the next writer cleans). */
    char suffix[40];
    snprintf(suffix, sizeof suffix, ".tmp.%ld.old", (long)getpid());
    char *aside = out_sibling(&o->n, suffix);
    int slot = -1;
    lp_status rc = aside ? temp_add(TEMP_DIR, aside, -1, NULL, &slot) : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (rc == LP_OK && rename(out, aside) != 0)
        rc = lp_fail(LP_ERR_IO, "%s: moving it aside to %s failed: %s", out, aside, strerror(errno));
    else if (rc == LP_OK && rename(o->tmp, out) != 0) {
        rc = lp_fail(LP_ERR_IO, "%s: renaming %s onto it failed: %s", out, o->tmp, strerror(errno));
        rename(aside, out); /* the old one back */
    } else if (rc == LP_OK) {
        rm_tree(aside);
    }
    temp_drop(slot);
    free(aside);
    return rc;
}

lp_status lp_outdir_commit(lp_outdir *o) {
    if (!o) return lp_fail(LP_ERR_ARG, "commit of an output directory that is not open");
    /* The files were synced when written (lp_atomic_commit); the directory
     * entries too, before they get the final name. */
    int fd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    lp_status rc = out_check_existing(&o->n); /* nothing put there since it was prepared */
    bool old = false;
    if (rc == LP_OK) rc = outdir_swap(o, &old);
    if (rc != LP_OK) {
        lp_outdir_abort(o);
        return rc;
    }
    if (old) rm_tree(o->tmp); /* a failure leaves a leftover the next writer removes */
    fsync_parent_dir(o->n.path);
    outdir_free(o);
    return LP_OK;
}
