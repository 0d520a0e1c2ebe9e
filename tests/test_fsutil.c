/* tests/test_fsutil.c — mkdir -p and atomic file replacement. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/alloc.h"
#include "sim/fsutil.h"

static char g_dir[512];

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("fsutil", g_dir, sizeof g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_test_rmrf(g_dir);
    return 0;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void mkdir_p_creates_and_is_idempotent(void **state)
{
    (void)state;
    char p[700];
    snprintf(p, sizeof p, "%s/a/b/c", g_dir);
    assert_int_equal(fdl_mkdir_p(p, 0700), 0);
    assert_int_equal(fdl_mkdir_p(p, 0700), 0);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* A file in the way is reported, not overwritten. */
    char f[720];
    snprintf(f, sizeof f, "%s/file", g_dir);
    assert_int_equal(fdl_write_file_atomic(f, "x", 1, 0600), 0);
    assert_int_equal(fdl_mkdir_p(f, 0700), -ENOTDIR);
    assert_int_equal(fdl_mkdir_p("", 0700), -EINVAL);
}

static void atomic_write_replaces_whole_file(void **state)
{
    (void)state;
    char p[700], buf[64];
    snprintf(p, sizeof p, "%s/w/state.json", g_dir);
    char d[700];
    snprintf(d, sizeof d, "%s/w", g_dir);
    assert_int_equal(fdl_mkdir_p(d, 0700), 0);
    assert_int_equal(fdl_write_file_atomic(p, "first version", 13, 0644), 0);
    struct iovec iov[3] = {{(void *)"sec", 3}, {(void *)"ond", 3}, {(void *)"\n", 1}};
    assert_int_equal(fdl_write_file_atomicv(p, iov, 3, 0600), 0);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "second\n", 7);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* No temporary file is left next to the target. */
    assert_int_equal(count_entries(d), 1);
}

static void failed_write_leaves_old_file_and_no_temp(void **state)
{
    (void)state;
    char d[700], p[720];
    snprintf(d, sizeof d, "%s/ro", g_dir);
    assert_int_equal(fdl_mkdir_p(d, 0700), 0);
    snprintf(p, sizeof p, "%s/missing-dir/x", d);
    assert_true(fdl_write_file_atomic(p, "x", 1, 0600) < 0);
    assert_int_equal(count_entries(d), 0);
    /* Renaming onto a directory fails after the temp file was written: it is removed. */
    snprintf(p, sizeof p, "%s/adir", d);
    assert_int_equal(fdl_mkdir_p(p, 0700), 0);
    assert_true(fdl_write_file_atomic(p, "x", 1, 0600) < 0);
    assert_int_equal(count_entries(d), 1);
    assert_int_equal(fdl_write_file_atomic(NULL, "x", 1, 0600), -EINVAL);
}

static void concat_joins_in_order_or_writes_nothing(void **state)
{
    (void)state;
    char d[700], a[720], b[720], out[720], buf[64];
    snprintf(d, sizeof d, "%s/cat", g_dir);
    assert_int_equal(fdl_mkdir_p(d, 0700), 0);
    snprintf(a, sizeof a, "%s/a.pem", d);
    snprintf(b, sizeof b, "%s/b.pem", d);
    snprintf(out, sizeof out, "%s/out.pem", d);
    assert_int_equal(fdl_write_file_atomic(a, "AAA\n", 4, 0644), 0);
    assert_int_equal(fdl_write_file_atomic(b, "BB\n", 3, 0644), 0);
    const char *const both[2] = {a, b};
    assert_int_equal(fdl_concat_files_atomic(out, both, 2, 0644), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "AAA\nBB\n", 7);
    /* A missing or non-regular source: the old output stays as it was. */
    char missing[740];
    snprintf(missing, sizeof missing, "%s/nope.pem", d);
    const char *const bad[2] = {a, missing};
    assert_int_equal(fdl_concat_files_atomic(out, bad, 2, 0644), -ENOENT);
    const char *const dir[1] = {d};
    assert_int_equal(fdl_concat_files_atomic(out, dir, 1, 0644), -EINVAL);
    f = fopen(out, "r");
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, 7);
    assert_int_equal(count_entries(d), 3);
}

static void read_file_bounds_and_secrets(void **state)
{
    (void)state;
    char p[600], why[700];
    unsigned char *buf = NULL;
    size_t len = 1;
    snprintf(p, sizeof p, "%s/nothing", g_dir);
    assert_int_equal(fdl_read_file(p, 100, 0, &buf, &len, why, sizeof why), FDL_READ_NOT_FOUND);
    assert_null(buf);
    assert_non_null(strstr(why, "missing"));
    snprintf(p, sizeof p, "%s/r.txt", g_dir);
    assert_int_equal(fdl_write_file_atomic(p, "hello", 5, 0644), 0);
    assert_int_equal(fdl_read_file(p, 5, 0, &buf, &len, why, sizeof why), FDL_READ_OK);
    assert_int_equal(len, 5);
    assert_string_equal((char *)buf, "hello");   /* NUL-terminated */
    fdl_free(buf);
    assert_int_equal(fdl_read_file(p, 4, 0, &buf, &len, why, sizeof why), FDL_READ_SIZE);
    assert_null(buf);
    assert_int_equal(fdl_read_file(p, 100, 1, &buf, &len, why, sizeof why), FDL_READ_PERM);
    assert_non_null(strstr(why, "must not be readable"));
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(fdl_read_file(p, 100, 1, &buf, &len, why, sizeof why), FDL_READ_OK);
    fdl_wipe(buf, len);
    fdl_free(buf);
    assert_int_equal(fdl_read_file(g_dir, 1u << 20, 0, &buf, &len, why, sizeof why), FDL_READ_SIZE); /* a directory */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mkdir_p_creates_and_is_idempotent),
        cmocka_unit_test(atomic_write_replaces_whole_file),
        cmocka_unit_test(failed_write_leaves_old_file_and_no_temp),
        cmocka_unit_test(concat_joins_in_order_or_writes_nothing),
        cmocka_unit_test(read_file_bounds_and_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
