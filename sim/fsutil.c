/* sim/fsutil.c — mkdir -p and atomic, durable file replacement (see fsutil.h). */
#include "sim/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/alloc.h"

int fdl_mkdir_p(const char *path, mode_t mode)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof p)
        return -ENAMETOOLONG;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return -errno;
        p[i] = c;
    }
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -errno;
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

/* fsync of the directory that holds path: makes the rename itself durable. */
static int sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int fdl_write_file_atomicv(const char *path, const struct iovec *iov, int iovcnt, mode_t mode)
{
    char tmp[PATH_MAX];
    int rc = -EINVAL, fd = -1;
    if (!path || !*path)
        return -EINVAL;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    /* Next to the target so rename(2) stays within one file system. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, mode) != 0) {
        rc = -errno;
        goto cleanup;
    }
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = w < 0 ? -errno : -EIO;
                goto cleanup;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto cleanup;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = -errno;
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto cleanup;
    }
    tmp[0] = '\0';   /* renamed: nothing to remove */
    rc = sync_dir_of(path);
cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    return rc;
}

int fdl_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return fdl_write_file_atomicv(path, &iov, 1, mode);
}

/* Reads a whole regular file of at most FDL_CONCAT_FILE_MAX bytes. 0 or -errno. */
static int read_whole(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > FDL_CONCAT_FILE_MAX) {
        rc = S_ISREG(sb.st_mode) ? -EFBIG : -EINVAL;
        goto cleanup;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto cleanup;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;   /* shrank under us */
            goto cleanup;
        }
        got += (size_t)r;
    }
    *out = buf;
    *len = got;
    buf = NULL;
cleanup:
    free(buf);
    close(fd);
    return rc;
}

int fdl_concat_files_atomic(const char *path, const char *const *srcs, size_t n, mode_t mode)
{
    struct iovec iov[8] = {{0}};
    size_t have = 0;
    int rc = 0;
    if (!path || (n && !srcs) || n > sizeof iov / sizeof iov[0])
        return -EINVAL;
    for (; have < n; have++) {
        char *buf = NULL;
        size_t len = 0;
        rc = srcs[have] ? read_whole(srcs[have], &buf, &len) : -EINVAL;
        if (rc != 0)
            goto cleanup;
        iov[have] = (struct iovec){.iov_base = buf, .iov_len = len};
    }
    rc = fdl_write_file_atomicv(path, iov, (int)n, mode);
cleanup:
    for (size_t i = 0; i < have; i++)
        free(iov[i].iov_base);
    return rc;
}

fdl_read_status fdl_read_file(const char *path, size_t max, int secret, unsigned char **out, size_t *len,
                              char *why, size_t whycap)
{
    fdl_read_status st = FDL_READ_IO;
    unsigned char *buf = NULL;
    struct stat sb;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    *len = 0;
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(why, whycap, "%s: missing", path);
            return FDL_READ_NOT_FOUND;
        }
        snprintf(why, whycap, "open %s: %s", path, strerror(errno));
        return FDL_READ_IO;
    }
    if (fstat(fd, &sb) != 0) {
        snprintf(why, whycap, "stat %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (secret && (sb.st_mode & 077)) {
        snprintf(why, whycap, "%s: mode %03o, must not be readable by group or others", path,
                 (unsigned)(sb.st_mode & 0777));
        st = FDL_READ_PERM;
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < 0 || (uint64_t)sb.st_size > max) {
        snprintf(why, whycap, "%s: not a regular file of at most %zu bytes", path, max);
        st = FDL_READ_SIZE;
        goto cleanup;
    }
    if (!(buf = fdl_malloc((size_t)sb.st_size + 1))) {
        snprintf(why, whycap, "reading %s: out of memory", path);
        st = FDL_READ_NOMEM;
        goto cleanup;
    }
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(why, whycap, "read %s: %s", path, r < 0 ? strerror(errno) : "short file");
            goto cleanup;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
    st = FDL_READ_OK;
cleanup:
    if (buf) {
        fdl_wipe(buf, (size_t)sb.st_size + 1);
        fdl_free(buf);
    }
    close(fd);
    return st;
}
