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

// Identity and capability calls for gear processes (variadic or _GNU_SOURCE-only in C).
int cl_setresuid(unsigned int uid);
int cl_setresgid(unsigned int gid);
int cl_setgroups(int count, const unsigned int *groups);
/// prctl(PR_CAPBSET_DROP, cap): removes a capability from the bounding set.
int cl_capbset_drop(int cap);
/// prctl(PR_CAPBSET_READ, cap): 1 if in the bounding set, 0 if not, -1 on error.
int cl_capbset_read(int cap);
/// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
int cl_cap_ambient_clear_all(void);
/// setrlimit by resource name (NOFILE, NPROC, AS, CPU, FSIZE, CORE, STACK, MEMLOCK, DATA, RSS,
/// NICE, RTPRIO, SIGPENDING, MSGQUEUE, LOCKS); -2 if the name is unknown.
int cl_setrlimit_named(const char *name, unsigned long long soft, unsigned long long hard);

/// pipe2(fds, O_CLOEXEC).
int cl_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addchdir_np, when glibc has it (2.29+); -1 otherwise.
int cl_spawn_add_chdir(void *actions, const char *path);
/// POSIX_SPAWN_SETSID (a GNU extension).
int cl_spawn_setsid_flag(void);
/// posix_spawn_file_actions_addclosefrom_np(actions, from): the child closes every descriptor >= from.
int cl_spawn_add_closefrom(void *actions, int from);

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING).
int cl_memfd(const char *name);
/// Seals a memfd against any further change (F_SEAL_SEAL | SHRINK | GROW | WRITE).
int cl_memfd_seal(int fd);

/// openat2(dirfd, path, flags | O_CLOEXEC, mode) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS: `path` must stay beneath `dirfd` and no component may be a symbolic
/// link. Where the kernel has no openat2 (before 5.6) the same rule is applied component by
/// component with O_NOFOLLOW. `..` components are refused (EXDEV) either way.
int cl_open_beneath(int dirfd, const char *path, int flags, unsigned int mode);

/// fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW).
int cl_fchownat_nofollow(int dirfd, const char *name, unsigned int uid, unsigned int gid);
/// The errno value EXDEV, ELOOP etc. are plain macros; these are not.
int cl_at_removedir(void);
int cl_at_symlink_nofollow(void);
int cl_o_path(void);
/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): the accepted socket is close-on-exec
/// from its first instant (accept4 is a GNU extension Glibc's Swift module does not export).
int cl_accept_cloexec_nonblock(int fd);
/// prctl(PR_SET_NAME, name): names the calling thread (the kernel keeps 15 bytes), as ps -L and
/// /proc/<pid>/task/<tid>/comm show it.
int cl_set_thread_name(const char *name);
