/*
 * test_fileio.c - mapping, whole-file reads, atomic writes and path helpers
 * (core/fileio.h): contents come back exactly, errors name the path and the
 * OS reason, an aborted or failed atomic write leaves nothing behind, a
 * committed one replaces the old file in one step.
 */
#include "core/fileio.h"
#include "core/status_impl.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
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

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lp_test_fileio_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_paths();
    test_read_and_map();
    test_atomic();
    rmdir(g_dir);
    TEST_DONE();
}
