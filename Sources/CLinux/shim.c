#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <grp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include "CLinux.h"

ssize_t cl_copy_file_range(int fd_in, int fd_out, size_t length) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, length, 0);
}

int cl_syncfs(int fd) {
    return syncfs(fd);
}

int cl_rename_exchange(const char *a, const char *b) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */);
}

int cl_setresuid(unsigned int uid) {
    return setresuid(uid, uid, uid);
}

int cl_setresgid(unsigned int gid) {
    return setresgid(gid, gid, gid);
}

int cl_setgroups(int count, const unsigned int *groups) {
    return setgroups((size_t)count, (const gid_t *)groups);
}

int cl_capbset_drop(int cap) {
    return prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

int cl_capbset_read(int cap) {
    return prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
}

int cl_cap_ambient_clear_all(void) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

int cl_setrlimit_named(const char *name, unsigned long long soft, unsigned long long hard) {
    static const struct { const char *name; int resource; } table[] = {
        {"NOFILE", RLIMIT_NOFILE}, {"NPROC", RLIMIT_NPROC}, {"AS", RLIMIT_AS}, {"CPU", RLIMIT_CPU},
        {"FSIZE", RLIMIT_FSIZE}, {"CORE", RLIMIT_CORE}, {"STACK", RLIMIT_STACK}, {"MEMLOCK", RLIMIT_MEMLOCK},
        {"DATA", RLIMIT_DATA}, {"RSS", RLIMIT_RSS}, {"NICE", RLIMIT_NICE}, {"RTPRIO", RLIMIT_RTPRIO},
        {"SIGPENDING", RLIMIT_SIGPENDING}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"LOCKS", RLIMIT_LOCKS},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].name, name) == 0) {
            struct rlimit limit = { (rlim_t)soft, (rlim_t)hard };
            return setrlimit(table[i].resource, &limit);
        }
    }
    return -2;
}

int cl_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

#include <spawn.h>
int cl_spawn_add_chdir(void *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np((posix_spawn_file_actions_t *)actions, path);
}

int cl_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}

int cl_spawn_add_closefrom(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

int cl_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int cl_memfd_seal(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
}

/* Component-by-component fallback: every intermediate component is opened as a directory with
   O_NOFOLLOW (a link fails with ELOOP or ENOTDIR), the last one with the caller's flags plus
   O_NOFOLLOW. Never follows a link, never leaves dirfd. */
static int open_beneath_walk(int dirfd, const char *path, int flags, unsigned int mode) {
    size_t length = strlen(path);
    char *copy = malloc(length + 1);
    if (!copy) { errno = ENOMEM; return -1; }
    memcpy(copy, path, length + 1);
    int current = dirfd;
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    int result = -1;
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(part, "..") == 0) { errno = EXDEV; break; }
        if (next == NULL) {
            result = openat(current, part, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            break;
        }
        int fd = openat(current, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) break;
        if (current != dirfd) close(current);
        current = fd;
        part = next;
    }
    int saved = errno;
    if (current != dirfd) close(current);
    free(copy);
    errno = saved;
    return result;
}

int cl_open_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
    if (path[0] == '/' || path[0] == 0) { errno = EXDEV; return -1; }
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (;;) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0) return (int)fd;
        if (errno == EAGAIN || errno == EINTR) continue;
        if (errno == ENOSYS) return open_beneath_walk(dirfd, path, flags, mode);
        return -1;
    }
}

int cl_fchownat_nofollow(int dirfd, const char *name, unsigned int uid, unsigned int gid) {
    return fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
}

int cl_at_removedir(void) { return AT_REMOVEDIR; }
int cl_at_symlink_nofollow(void) { return AT_SYMLINK_NOFOLLOW; }
int cl_o_path(void) { return O_PATH; }
#include <sys/socket.h>
int cl_accept_cloexec_nonblock(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int cl_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
