/*
 * sim/fsutil.h — the file-system primitives every module shares, so state on
 * disk is written one way: atomically and durably.
 */
#ifndef FDL_FSUTIL_H
#define FDL_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* mkdir -p: creates every missing directory of path with mode. 0 or -errno
 * (-ENOTDIR if path exists and is not a directory). */
int fdl_mkdir_p(const char *path, mode_t mode);

/*
 * Replaces path with the concatenation of iov[0..iovcnt) so that readers see
 * either the old file or the whole new one, and the new one survives a crash:
 * a temporary file next to path (O_EXCL, mode applied), write, fsync, rename,
 * fsync of the directory. The temporary file never outlives a failure.
 * 0 or -errno.
 */
int fdl_write_file_atomicv(const char *path, const struct iovec *iov, int iovcnt, mode_t mode);

/* fdl_write_file_atomicv with one buffer. */
int fdl_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Largest source file fdl_concat_files_atomic reads, in bytes: PEM bundles and
 * CRLs (a million revoked serials is about 40 MiB), never unbounded. */
#define FDL_CONCAT_FILE_MAX (64u * 1024u * 1024u)

/*
 * Replaces path (atomically, as fdl_write_file_atomicv) with srcs[0..n) joined
 * in order; n <= 8. Every source must exist and be a regular file of at most
 * FDL_CONCAT_FILE_MAX bytes, else nothing is written. 0 or -errno.
 */
int fdl_concat_files_atomic(const char *path, const char *const *srcs, size_t n, mode_t mode);

/* What fdl_read_file found. */
typedef enum fdl_read_status {
    FDL_READ_OK = 0,
    FDL_READ_NOT_FOUND,   /* no such file */
    FDL_READ_IO,          /* open, stat or read failed */
    FDL_READ_PERM,        /* secret, but group or others may read it */
    FDL_READ_SIZE,        /* not a regular file, or larger than max */
    FDL_READ_NOMEM,
} fdl_read_status;

/*
 * Reads the whole regular file path of at most max bytes into a new buffer with
 * a NUL after the last byte: *out is the caller's (fdl_free; fdl_wipe first if
 * secret), *len the file's length. secret: refuse a file that group or others
 * may read (keys, PINs). On failure *out is NULL and why holds one line naming
 * the path ("<path>: missing", "read <path>: ...").
 */
fdl_read_status fdl_read_file(const char *path, size_t max, int secret, unsigned char **out, size_t *len,
                              char *why, size_t whycap);

#endif
