#ifndef OPENSHIFT_NODE_CLINUX_H
#define OPENSHIFT_NODE_CLINUX_H

// Linux calls that Glibc's Swift module does not export without _GNU_SOURCE.
// Each wrapper returns -1 with errno set on failure, like the call it wraps.

#include <sys/types.h>

ssize_t cl_copy_file_range(int fd_in, int fd_out, size_t length);
int cl_syncfs(int fd);
/// renameat2(RENAME_EXCHANGE): atomically swaps two paths.
int cl_rename_exchange(const char *a, const char *b);

#endif
