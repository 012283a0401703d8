/*
 * oo-gear-exec: become a gear, then exec its command.
 *
 * The only code that runs as root on a gear's behalf between fork and the gear's program. It is
 * small, single-threaded, written in C and linked statically on purpose:
 *
 *   - statically linked: no dynamic loader runs, so no loader variable (LD_PRELOAD, LD_AUDIT,
 *     LD_LIBRARY_PATH, GCONV_PATH ...) can load code into this root process, whatever reaches it;
 *   - its own environment is ignored: the node starts it with a fixed one, and the gear's
 *     environment arrives as NUL-separated KEY=VALUE entries on a descriptor (--env-fd, a sealed
 *     memfd) and is applied only by the final execve, after every identity change;
 *   - every descriptor but 0, 1 and 2 is closed before anything else happens;
 *   - the order of the steps is the one where each still has the privilege it needs: cgroups
 *     and rlimits, groups and gid, the bounding and ambient capability sets, the SELinux exec
 *     context, the uid (which clears permitted and effective), the remaining sets, then
 *     no_new_privs. It then checks, from /proc/self/status, that no capability is left.
 *
 * usage: oo-gear-exec --uid UID --gid GID [--groups G1,G2] [--context CONTEXT] [--cgroup FILE]...
 *                     [--rlimit NAME=SOFT:HARD]... [--chdir DIR] [--env-fd N] -- PROGRAM [ARGUMENT...]
 * Exit status: 126 when becoming the gear failed (nothing of the program ran), 127 when the
 * program could not be executed; otherwise the program's own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_GROUPS 64
#define MAX_CGROUPS 16
#define MAX_RLIMITS 32
#define MAX_ENV_BYTES (4 << 20)
#define MAX_ENV_ENTRIES 8192

static const char usage[] =
    "usage: oo-gear-exec --uid UID --gid GID [--groups G1,G2] [--context CONTEXT] [--cgroup FILE]...\n"
    "                    [--rlimit NAME=SOFT:HARD]... [--chdir DIR] [--env-fd N] -- PROGRAM [ARGUMENT...]\n"
    "Runs PROGRAM as the gear: in its cgroups, with its limits, groups, uid and SELinux context, with\n"
    "no capability at all and no_new_privs set. The environment of PROGRAM is exactly the\n"
    "NUL-separated KEY=VALUE entries read from descriptor N (empty without --env-fd); the\n"
    "environment oo-gear-exec itself was started with is ignored.\n";

static void fail(int code, const char *step, const char *target, int err) {
    char line[1024];
    int n = snprintf(line, sizeof line, "oo-gear-exec: %s %s failed: %s\n", step, target ? target : "",
                     err ? strerror(err) : "invalid");
    if (n > 0) (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(code);
}

static void refuse(const char *option, const char *value, const char *reason) {
    char line[1024];
    int n = snprintf(line, sizeof line, "oo-gear-exec: invalid %s '%.200s': %s\n", option, value ? value : "", reason);
    if (n > 0) (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    _exit(126);
}

/* A decimal id above 0 and below 2^32 - 1: a gear never runs as root. */
static unsigned int parse_id(const char *option, const char *text) {
    if (!text || !*text) refuse(option, text, "needs a value");
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || text[0] == '-' || value == 0 || value >= 4294967295ULL)
        refuse(option, text, "must be a number above 0: a gear never runs as root");
    return (unsigned int)value;
}

static const struct { const char *name; int resource; } limit_names[] = {
    {"NOFILE", RLIMIT_NOFILE}, {"NPROC", RLIMIT_NPROC}, {"AS", RLIMIT_AS}, {"CPU", RLIMIT_CPU},
    {"FSIZE", RLIMIT_FSIZE}, {"CORE", RLIMIT_CORE}, {"STACK", RLIMIT_STACK}, {"MEMLOCK", RLIMIT_MEMLOCK},
    {"DATA", RLIMIT_DATA}, {"RSS", RLIMIT_RSS}, {"NICE", RLIMIT_NICE}, {"RTPRIO", RLIMIT_RTPRIO},
    {"SIGPENDING", RLIMIT_SIGPENDING}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"LOCKS", RLIMIT_LOCKS},
};

struct limit { int resource; struct rlimit value; };

static struct limit parse_limit(const char *text) {
    struct limit result;
    const char *equals = text ? strchr(text, '=') : NULL;
    if (!equals) refuse("--rlimit", text, "expected NAME=SOFT:HARD with SOFT <= HARD");
    size_t length = (size_t)(equals - text);
    int found = -1;
    for (size_t i = 0; i < sizeof limit_names / sizeof limit_names[0]; i++)
        if (strlen(limit_names[i].name) == length && strncmp(limit_names[i].name, text, length) == 0) found = limit_names[i].resource;
    if (found < 0) refuse("--rlimit", text, "unknown resource limit");
    char *end = NULL;
    errno = 0;
    unsigned long long soft = strtoull(equals + 1, &end, 10);
    if (errno || *end != ':' || equals[1] == '-') refuse("--rlimit", text, "expected NAME=SOFT:HARD with SOFT <= HARD");
    const char *second = end + 1;
    unsigned long long hard = strtoull(second, &end, 10);
    if (errno || *end || !*second || *second == '-' || soft > hard) refuse("--rlimit", text, "expected NAME=SOFT:HARD with SOFT <= HARD");
    result.resource = found;
    result.value.rlim_cur = (rlim_t)soft;
    result.value.rlim_max = (rlim_t)hard;
    return result;
}

/* Reads the gear's environment: NUL-separated KEY=VALUE entries, bounded. */
static char **read_environment(int fd) {
    char *bytes = malloc(MAX_ENV_BYTES + 1);
    if (!bytes) fail(126, "allocate", "environment", ENOMEM);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, bytes + used, MAX_ENV_BYTES + 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(126, "read environment from", "--env-fd", errno);
        if (n == 0) break;
        used += (size_t)n;
        if (used > MAX_ENV_BYTES) fail(126, "read environment (more than 4 MiB) from", "--env-fd", E2BIG);
    }
    close(fd);
    bytes[used] = 0;
    char **entries = calloc(MAX_ENV_ENTRIES + 1, sizeof *entries);
    if (!entries) fail(126, "allocate", "environment", ENOMEM);
    size_t count = 0;
    for (size_t start = 0; start < used;) {
        char *entry = bytes + start;
        size_t length = strlen(entry);
        char *equals = strchr(entry, '=');
        if (length > 0) {
            if (!equals || equals == entry) refuse("environment entry", entry, "expected KEY=VALUE");
            if (count == MAX_ENV_ENTRIES) fail(126, "read environment (too many entries) from", "--env-fd", E2BIG);
            entries[count++] = entry;
        }
        start += length + 1;
    }
    entries[count] = NULL;
    return entries;
}

static void close_other_descriptors(void) {
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 && max < 1048576 ? max : 65536); fd++) close((int)fd);
}

static void join_cgroup(const char *file) {
    int fd = open(file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail(126, "open cgroup file", file, errno);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)n) != n) fail(126, "join cgroup", file, errno);
    close(fd);
}

static int last_capability(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 63;
    char text[16] = {0};
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    int value = n > 0 ? atoi(text) : 63;
    return value > 0 && value < 64 ? value : 63;
}

static void set_exec_context(const char *context) {
    int fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(126, "open", "/proc/thread-self/attr/exec", errno);
    size_t length = strlen(context);
    if (write(fd, context, length) != (ssize_t)length) fail(126, "set the SELinux exec context", context, errno);
    close(fd);
}

/* Every Cap* line of /proc/self/status must be zero and NoNewPrivs set. */
static void verify(unsigned int uid, unsigned int gid) {
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) fail(126, "verify the uid", "", EPERM);
    if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) fail(126, "verify the gid", "", EPERM);
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(126, "open", "/proc/self/status", errno);
    char text[8192];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof text - 1 && (n = read(fd, text + used, sizeof text - 1 - used)) > 0) used += (size_t)n;
    close(fd);
    text[used] = 0;
    const char *fields[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *line = strstr(text, fields[i]);
        if (!line) {
            if (i == 4) continue; /* no ambient set on this kernel */
            fail(126, "verify that no capability is left:", fields[i], ENOENT);
        }
        unsigned long long value = strtoull(line + strlen(fields[i]), NULL, 16);
        if (value != 0) fail(126, "verify that no capability is left:", fields[i], EPERM);
    }
    const char *nnp = strstr(text, "NoNewPrivs:");
    if (!nnp || strtol(nnp + strlen("NoNewPrivs:"), NULL, 10) != 1) fail(126, "verify", "no_new_privs", EPERM);
}

int main(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        (void)!write(1, usage, sizeof usage - 1);
        return 0;
    }
    unsigned int uid = 0, gid = 0;
    gid_t groups[MAX_GROUPS];
    size_t group_count = 0;
    const char *context = NULL, *directory = NULL;
    const char *cgroups[MAX_CGROUPS];
    size_t cgroup_count = 0;
    struct limit limits[MAX_RLIMITS];
    size_t limit_count = 0;
    int env_fd = -1;
    int index = 1;
    for (; index < argc; index++) {
        const char *option = argv[index];
        if (strcmp(option, "--") == 0) { index++; break; }
        const char *value = index + 1 < argc ? argv[index + 1] : NULL;
        if (!value) refuse(option, "", "needs a value");
        index++;
        if (strcmp(option, "--uid") == 0) uid = parse_id(option, value);
        else if (strcmp(option, "--gid") == 0) gid = parse_id(option, value);
        else if (strcmp(option, "--groups") == 0) {
            char copy[4096];
            if (strlen(value) >= sizeof copy) refuse(option, value, "too long");
            strcpy(copy, value);
            char *save = NULL;
            for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
                if (group_count == MAX_GROUPS) refuse(option, value, "too many groups");
                groups[group_count++] = parse_id(option, part);
            }
        } else if (strcmp(option, "--context") == 0) context = value;
        else if (strcmp(option, "--cgroup") == 0) {
            if (cgroup_count == MAX_CGROUPS || value[0] != '/') refuse(option, value, "an absolute path, at most 16 of them");
            cgroups[cgroup_count++] = value;
        } else if (strcmp(option, "--rlimit") == 0) {
            if (limit_count == MAX_RLIMITS) refuse(option, value, "too many limits");
            limits[limit_count++] = parse_limit(value);
        } else if (strcmp(option, "--chdir") == 0) directory = value;
        else if (strcmp(option, "--env-fd") == 0) {
            char *end = NULL;
            long fd = strtol(value, &end, 10);
            if (*end || fd < 3 || fd > 1023) refuse(option, value, "a descriptor number from 3 to 1023");
            env_fd = (int)fd;
        } else refuse("option", option, "unknown option");
    }
    if (uid == 0 || gid == 0) refuse("--uid/--gid", "", "both are required");
    if (index >= argc || argv[index][0] != '/') refuse("PROGRAM", index < argc ? argv[index] : "", "an absolute path is required after --");

    char *no_environment[] = {NULL};
    char **environment = env_fd >= 0 ? read_environment(env_fd) : no_environment;
    close_other_descriptors();

    for (size_t i = 0; i < cgroup_count; i++) join_cgroup(cgroups[i]);
    for (size_t i = 0; i < limit_count; i++)
        if (setrlimit(limits[i].resource, &limits[i].value) != 0) fail(126, "setrlimit", "", errno);
    if (setgroups(group_count, groups) != 0) fail(126, "setgroups", "", errno);
    if (setresgid(gid, gid, gid) != 0) fail(126, "setresgid", "", errno);
    int last = last_capability();
    for (int cap = 0; cap <= last; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            fail(126, "PR_CAPBSET_DROP", "", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail(126, "PR_CAP_AMBIENT_CLEAR_ALL", "", errno);
    if (context) set_exec_context(context);
    if (setresuid(uid, uid, uid) != 0) fail(126, "setresuid", "", errno);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) fail(126, "capset", "", errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(126, "PR_SET_NO_NEW_PRIVS", "", errno);
    verify(uid, gid);
    if (directory && chdir(directory) != 0) fail(126, "chdir", directory, errno);

    execve(argv[index], argv + index, environment);
    fail(127, "exec", argv[index], errno);
    return 127;
}
