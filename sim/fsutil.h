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

#endif
