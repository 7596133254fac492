/*
 * test_fileio.c - mapping, whole-file reads, atomic writes and path helpers
 * (core/fileio.h): contents come back exactly, errors name the path and the
 * OS reason, an aborted or failed atomic write leaves nothing behind, a
 * committed one replaces the old file in one step. Output directories: a
 * FIFO is refused without blocking, OUT is replaced as a whole (no file of
 * the old one stays), an aborted write leaves the old one, a second writer
 * (another process) is refused naming OUT, leftovers of killed runs are
 * removed by the next writer, bad outputs are refused before any work
 * (parent missing or unwritable, not a model directory, no free space), and
 * every temporary is listed and removed by lp_temp_remove_all.
 */
#include "core/fileio.h"
#include "core/status_impl.h"
#include "test.h"

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[64];

static int count_entries(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_paths(void) {
    char *p;
    CHECK((p = lp_path_join("a/b", "c.json")) && strcmp(p, "a/b/c.json") == 0);
    free(p);
    CHECK((p = lp_path_join("a/b/", "c.json")) && strcmp(p, "a/b/c.json") == 0);
    free(p);
    CHECK((p = lp_path_join("", "c.json")) && strcmp(p, "c.json") == 0);
    free(p);
    CHECK((p = lp_path_join("a", "/abs/c.json")) && strcmp(p, "/abs/c.json") == 0);
    free(p);
    CHECK(lp_is_dir(g_dir) && lp_file_exists(g_dir));
    CHECK(!lp_is_dir("/definitely/not/here") && !lp_file_exists("/definitely/not/here"));
}

static void test_read_and_map(void) {
    char *path = lp_path_join(g_dir, "data.bin");
    const char content[] = "line one\nline two\0with a NUL";
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(content, 1, sizeof content, f) == sizeof content);
    if (f) fclose(f);
    CHECK(lp_file_exists(path) && !lp_is_dir(path));

    char *data = NULL;
    size_t n = 0;
    CHECK_OK(lp_read_file(path, &data, &n));
    CHECK(data && n == sizeof content && memcmp(data, content, n) == 0 && data[n] == '\0');
    free(data);

    lp_map m;
    CHECK_OK(lp_mmap(path, &m));
    CHECK(m.data && m.size == sizeof content && memcmp(m.data, content, m.size) == 0);
    lp_munmap(&m);
    CHECK(m.data == NULL && m.size == 0);
    lp_munmap(&m); /* safe on a zeroed map */

    /* Empty file: a valid empty map and an empty string. */
    char *empty = lp_path_join(g_dir, "empty");
    f = fopen(empty, "wb");
    if (f) fclose(f);
    CHECK_OK(lp_mmap(empty, &m));
    CHECK(m.data == NULL && m.size == 0);
    CHECK_OK(lp_read_file(empty, &data, &n));
    CHECK(data && n == 0 && data[0] == '\0');
    free(data);

    /* Errors name the path and the reason. */
    char *missing = lp_path_join(g_dir, "missing");
    CHECK(lp_read_file(missing, &data, &n) == LP_ERR_IO && data == NULL);
    CHECKF(strstr(lp_last_error(), missing) && strstr(lp_last_error(), "No such file"), "%s", lp_last_error());
    CHECK(lp_mmap(missing, &m) == LP_ERR_IO && m.data == NULL);
    CHECKF(strstr(lp_last_error(), missing), "%s", lp_last_error());
    CHECK(lp_mmap(g_dir, &m) == LP_ERR_IO && strstr(lp_last_error(), "directory"));
    CHECK(lp_read_file(g_dir, &data, &n) == LP_ERR_IO && strstr(lp_last_error(), g_dir));

    /* A pipe-like file (size unknown in advance) is read whole. */
    CHECK_OK(lp_read_file("/proc/self/status", &data, &n));
    CHECK(data && n > 10 && strstr(data, "Name:"));
    free(data);

    unlink(path);
    unlink(empty);
    free(path);
    free(empty);
    free(missing);
}

static void test_atomic(void) {
    char *path = lp_path_join(g_dir, "out.bin");
    lp_atomic_file af;

    /* Abort: nothing is left, not even the temporary. */
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK_OK(lp_atomic_write(&af, "partial", 7));
    CHECK(count_entries() == 1); /* the temporary exists while writing */
    CHECK(!lp_file_exists(path));
    lp_atomic_abort(&af);
    lp_atomic_abort(&af); /* twice is fine */
    CHECK(count_entries() == 0);

    /* Commit: the file appears with exactly what was written. */
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK_OK(lp_atomic_write(&af, "hello ", 6));
    CHECK_OK(lp_atomic_write(&af, "", 0));
    CHECK_OK(lp_atomic_write(&af, "world", 5));
    CHECK_OK(lp_atomic_commit(&af));
    char *data = NULL;
    size_t n = 0;
    CHECK_OK(lp_read_file(path, &data, &n));
    CHECK(data && n == 11 && memcmp(data, "hello world", 11) == 0);
    free(data);
    CHECK(count_entries() == 1);

    /* A second commit replaces the file; an aborted one leaves the old one. */
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK_OK(lp_atomic_write(&af, "v2", 2));
    CHECK_OK(lp_atomic_commit(&af));
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK_OK(lp_atomic_write(&af, "v3 never lands", 14));
    lp_atomic_abort(&af);
    CHECK_OK(lp_read_file(path, &data, &n));
    CHECK(data && n == 2 && memcmp(data, "v2", 2) == 0);
    free(data);
    CHECK(count_entries() == 1);

    /* Writing on a closed handle is an argument error, not a crash. */
    CHECK(lp_atomic_write(&af, "x", 1) == LP_ERR_ARG);
    CHECK(lp_atomic_commit(&af) == LP_ERR_ARG);

    /* Rename failure (the target is a directory): temporary removed. */
    char *sub = lp_path_join(g_dir, "subdir");
    char *inner = lp_path_join(sub, "f");
    CHECK(mkdir(sub, 0755) == 0);
    FILE *f = fopen(inner, "wb"); /* a non-empty directory cannot be replaced */
    if (f) fclose(f);
    CHECK_OK(lp_atomic_open(sub, &af));
    CHECK_OK(lp_atomic_write(&af, "x", 1));
    CHECK(lp_atomic_commit(&af) == LP_ERR_IO);
    CHECKF(strstr(lp_last_error(), sub), "%s", lp_last_error());
    CHECK(count_entries() == 2); /* out.bin and subdir, no temporary */
    unlink(inner);
    rmdir(sub);

    /* Opening in a missing directory fails and names the path. */
    char *bad = lp_path_join(g_dir, "no/such/dir/file");
    CHECK(lp_atomic_open(bad, &af) == LP_ERR_IO);
    CHECKF(strstr(lp_last_error(), bad), "%s", lp_last_error());
    CHECK(af.f == NULL && af.tmp_path == NULL);

    unlink(path);
    free(path);
    free(sub);
    free(inner);
    free(bad);
}

/* ---- output directories ---- */

static char *in_dir(const char *name) { return lp_path_join(g_dir, name); }

static void put_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs(text, f) >= 0);
    if (f) fclose(f);
}

static bool has_text(const char *path, const char *text) {
    char *data = NULL;
    size_t n = 0;
    bool ok = lp_read_file(path, &data, &n) == LP_OK && n == strlen(text) && !memcmp(data, text, n);
    free(data);
    return ok;
}

/* Remove a directory of files (no deeper) and the directory. */
static void rm_flat(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = lp_path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* A pid that is no longer running: a child that has exited. */
static long dead_pid(void) {
    pid_t c = fork();
    if (c == 0) _exit(0);
    waitpid(c, NULL, 0);
    return (long)c;
}

static bool listed(const char *path) {
    const char *p[64];
    int n = lp_temp_list(p, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (!strcmp(p[i], path)) return true;
    return false;
}

/* A FIFO is refused at once (the open must not wait for a writer). */
static void test_fifo(void) {
    char *fifo = in_dir("model.safetensors");
    CHECK(mkfifo(fifo, 0644) == 0);
    alarm(20); /* a hang fails the test instead of blocking ctest */
    lp_map m;
    CHECK(lp_mmap(fifo, &m) == LP_ERR_IO && m.data == NULL);
    alarm(0);
    CHECKF(strstr(lp_last_error(), fifo) && strstr(lp_last_error(), "not a regular file"), "%s", lp_last_error());
    unlink(fifo);
    free(fifo);
}

/* The temporary of an atomic write is listed while it exists and removed by
 * lp_temp_remove_all (what a SIGINT handler calls); dead runs' temporaries
 * of the same file are removed by the next open, live ones are left. */
static void test_temporaries(void) {
    char *path = in_dir("state.bin");
    lp_atomic_file af;
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK(listed(af.tmp_path) && lp_file_exists(af.tmp_path));
    lp_temp_remove_all();
    CHECK(!lp_file_exists(af.tmp_path));
    lp_atomic_abort(&af);
    CHECK(lp_temp_list(NULL, 0) == 0);
    CHECK(count_entries() == 0);

    char dead[300], live[300];
    snprintf(dead, sizeof dead, "%s.tmp.%ld", path, dead_pid());
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    put_file(dead, "killed run");
    put_file(live, "running writer");
    CHECK_OK(lp_atomic_open(path, &af));
    CHECK(!lp_file_exists(dead) && lp_file_exists(live));
    CHECK_OK(lp_atomic_write(&af, "x", 1));
    CHECK_OK(lp_atomic_commit(&af));
    CHECK(!listed(path) && lp_temp_list(NULL, 0) == 0);
    unlink(live);
    unlink(path);
    free(path);
}

/* Write OUT with the given files (name, text pairs) through lp_outdir. */
static lp_status write_out(const char *out, const char *const *files, int n) {
    lp_outdir *o;
    LP_TRY(lp_outdir_begin(out, 1000, &o));
    for (int i = 0; i < n; i++) {
        char *p;
        lp_atomic_file af;
        lp_status st = lp_outdir_file(o, files[2 * i], &p);
        if (st == LP_OK) st = lp_atomic_open(p, &af);
        free(p);
        if (st == LP_OK) st = lp_atomic_write(&af, files[2 * i + 1], strlen(files[2 * i + 1]));
        if (st == LP_OK) st = lp_atomic_commit(&af);
        if (st != LP_OK) {
            lp_outdir_abort(o);
            return st;
        }
    }
    return lp_outdir_commit(o);
}

/* Replaced as a whole: the old OUT's files do not survive; an aborted
 * write leaves the old OUT; nothing but OUT is left beside it. */
static void test_outdir_whole(void) {
    char *out = in_dir("out"), *cfg = lp_path_join(out, "config.json"), *tok = lp_path_join(out, "tokenizer.json");
    static const char *const a[] = {"config.json", "A", "tokenizer.json", "A's tokenizer"};
    static const char *const b[] = {"config.json", "B", "model.safetensors", "B's weights"};
    CHECK_OK(write_out(out, a, 2)); /* OUT absent: renamed into place */
    CHECK(has_text(cfg, "A") && has_text(tok, "A's tokenizer"));
    CHECK(count_entries() == 1);
    CHECK_OK(write_out(out, b, 2)); /* OUT present: exchanged, old removed */
    CHECK(has_text(cfg, "B") && !lp_file_exists(tok));
    CHECK(count_entries() == 1 && lp_temp_list(NULL, 0) == 0);

    /* While written: the lock and the temporary directory are listed. */
    lp_outdir *o;
    CHECK_OK(lp_outdir_begin(out, 1000, &o));
    char *p = NULL;
    CHECK_OK(lp_outdir_file(o, "config.json", &p));
    put_file(p, "never lands");
    CHECK(lp_temp_list(NULL, 0) == 3 && listed(p)); /* lock, directory, file */
    CHECK(count_entries() == 3);                     /* out, .out.lock, .out.tmp.<pid> */
    lp_outdir_abort(o);
    CHECK(has_text(cfg, "B") && count_entries() == 1 && lp_temp_list(NULL, 0) == 0);

    /* What a SIGINT handler does mid-write: every temporary goes. */
    CHECK_OK(lp_outdir_begin(out, 1000, &o));
    free(p);
    CHECK_OK(lp_outdir_file(o, "model.safetensors", &p));
    put_file(p, "half");
    lp_temp_remove_all();
    CHECK(count_entries() == 1 && has_text(cfg, "B"));
    lp_outdir_abort(o);
    CHECK(count_entries() == 1);

    rm_flat(out);
    free(p);
    free(out);
    free(cfg);
    free(tok);
}

/* A second writer of OUT (another process) is refused naming OUT while the
 * first holds it; once released, it may write. Leftovers of killed runs are
 * removed by the next writer, names of other outputs are left alone. */
static void test_outdir_lock(void) {
    char *out = in_dir("out");
    CHECK_OK(lp_outdir_prepare(out, 1000));
    CHECK_OK(lp_outdir_prepare(out, 1000)); /* this process holds it already */
    for (int round = 0; round < 2; round++) {
        /* another process (a forked copy would share the lock's descriptor) */
        fflush(NULL);
        pid_t c = fork();
        if (c == 0) {
            execl("/proc/self/exe", "test_fileio", "--prepare", out, (char *)NULL);
            _exit(3);
        }
        int ws = 0;
        waitpid(c, &ws, 0);
        CHECKF(WIFEXITED(ws) && WEXITSTATUS(ws) == (round == 0 ? 1 : 0), "round %d: child status %d", round, ws);
        lp_outdir_release(out); /* round 0: ours; round 1: nothing held */
    }
    CHECK(count_entries() == 0 || (count_entries() == 1 && lp_file_exists(out)));

    char d1[300], d2[300], other[300], notpid[300];
    const long dp = dead_pid();
    snprintf(d1, sizeof d1, "%s/.out.tmp.%ld", g_dir, dp);
    snprintf(d2, sizeof d2, "%s/.out.tmp.%ld.old", g_dir, dp);
    snprintf(other, sizeof other, "%s/.outx.tmp.%ld", g_dir, dp);
    snprintf(notpid, sizeof notpid, "%s/.out.tmp.abc", g_dir);
    CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0 && mkdir(other, 0755) == 0);
    char *inner = lp_path_join(d1, "model.safetensors.tmp.1");
    put_file(inner, "half");
    put_file(notpid, "not ours");
    char *lock = in_dir(".out.lock");
    put_file(lock, ""); /* left by a killed holder: not locked */
    CHECK_OK(lp_outdir_prepare(out, 1000));
    CHECK(!lp_file_exists(d1) && !lp_file_exists(d2));
    CHECK(lp_file_exists(other) && lp_file_exists(notpid));
    lp_outdir_release(out);
    CHECK(!lp_file_exists(lock));

    /* Our lock file removed (lp_temp_remove_all) and another writer's put
     * in its place: releasing ours must not remove theirs. */
    CHECK_OK(lp_outdir_prepare(out, 1000));
    lp_temp_remove_all();
    put_file(lock, "");
    lp_outdir_release(out);
    CHECK(lp_file_exists(lock) && lp_temp_list(NULL, 0) == 0);
    unlink(lock);
    rmdir(other);
    unlink(notpid);
    free(inner);
    free(lock);
    free(out);
}

/* Refused before any work, with the path and the reason. */
static void test_outdir_checks(void) {
    char *missing = in_dir("no/such/out");
    CHECK(lp_outdir_prepare(missing, 0) == LP_ERR_IO);
    CHECKF(strstr(lp_last_error(), missing) && strstr(lp_last_error(), "does not exist"), "%s", lp_last_error());

    CHECK(lp_outdir_prepare("/proc/lp_test_fileio_out", 0) == LP_ERR_IO); /* unwritable, even for root */
    CHECKF(strstr(lp_last_error(), "/proc/lp_test_fileio_out"), "%s", lp_last_error());
    if (geteuid() != 0) {
        char *ro = in_dir("ro"), *rout = lp_path_join(ro, "out");
        CHECK(mkdir(ro, 0555) == 0);
        CHECK(lp_outdir_prepare(rout, 0) == LP_ERR_IO);
        CHECKF(strstr(lp_last_error(), rout) && strstr(lp_last_error(), "not writable"), "%s", lp_last_error());
        rmdir(ro);
        free(ro);
        free(rout);
    }

    char *out = in_dir("out"), *sub = lp_path_join(out, "keep"), *notes = lp_path_join(out, "notes.txt");
    CHECK(lp_outdir_prepare(".", 0) == LP_ERR_ARG);
    CHECK(lp_outdir_prepare("/", 0) == LP_ERR_ARG);

    put_file(out, "a file");
    CHECK(lp_outdir_prepare(out, 0) == LP_ERR_IO && strstr(lp_last_error(), "not a directory"));
    unlink(out);
    CHECK(symlink(g_dir, out) == 0);
    CHECK(lp_outdir_prepare(out, 0) == LP_ERR_IO && strstr(lp_last_error(), "symbolic link"));
    unlink(out);

    CHECK(mkdir(out, 0755) == 0 && mkdir(sub, 0755) == 0);
    CHECK(lp_outdir_prepare(out, 0) == LP_ERR_IO);
    CHECKF(strstr(lp_last_error(), sub), "%s", lp_last_error());
    rmdir(sub);
    put_file(notes, "mine");
    CHECK(lp_outdir_prepare(out, 0) == LP_ERR_IO && strstr(lp_last_error(), "does not look like a model"));
    CHECK(has_text(notes, "mine"));
    unlink(notes);

    CHECK(lp_outdir_prepare(out, UINT64_MAX / 4) == LP_ERR_IO); /* more than any disk */
    CHECKF(strstr(lp_last_error(), out) && strstr(lp_last_error(), "free space"), "%s", lp_last_error());
    CHECK(lp_temp_list(NULL, 0) == 0); /* a refused prepare holds no lock */
    CHECK_OK(lp_outdir_prepare(out, 1000)); /* an empty directory may be replaced */
    lp_outdir_release(out);
    rmdir(out);
    CHECK(count_entries() == 0);
    free(missing);
    free(out);
    free(sub);
    free(notes);
}

/* The other process of test_outdir_lock: exit 0 when it could prepare
 * OUT, 1 when refused as a second writer naming OUT, 2 otherwise. */
static int prepare_child(const char *out) {
    lp_status st = lp_outdir_prepare(out, 1000);
    bool named = strstr(lp_last_error(), out) && strstr(lp_last_error(), "another llmpress");
    lp_outdir_release(out);
    return st == LP_OK ? 0 : st == LP_ERR_IO && named ? 1 : 2;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--prepare")) return prepare_child(argv[2]);
    snprintf(g_dir, sizeof g_dir, "/tmp/lp_test_fileio_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_paths();
    test_read_and_map();
    test_atomic();
    test_fifo();
    test_temporaries();
    test_outdir_whole();
    test_outdir_lock();
    test_outdir_checks();
    rmdir(g_dir);
    TEST_DONE();
}
