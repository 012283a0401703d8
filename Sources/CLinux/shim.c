#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <grp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

#include <sys/socket.h>
int cl_accept_cloexec_nonblock(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}
