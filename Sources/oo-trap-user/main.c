/*
 * oo-trap-user: the login shell of gear accounts.
 *
 * sshd runs it as the gear's user (no privilege at all), either as
 *     oo-trap-user -c "<command>"     a key's forced command `[NAME=value ]<GEAR_SHELL>` with the
 *                                     client's command in SSH_ORIGINAL_COMMAND, or (GSSAPI, no
 *                                     forced command) the client's command itself;
 *     -oo-trap-user                   a login without a command.
 * It runs only the commands a gear's user needs, each from an argv it builds itself: no shell ever
 * sees the user's string, and the trap never runs itself again.
 *
 *   git-receive-pack|git-upload-pack PATH   PATH resolved inside ~/git/ (no `..`, links resolved)
 *   tail [--opts BASE64] GLOB...            files of the home only, allowed tail options only
 *   snapshot | restore [INCLUDE_GIT]        <dir>/gear snapshot | restore [--restore-git-repo]
 *   gear WORD... | ctl_all start|stop|restart   <dir>/gear ...
 *   binary-deploy|oo-binary-deploy [--hot-deploy]   <dir>/gear binary-deploy [--hot-deploy]
 *   quota | true | /usr/lib/openssh/sftp-server
 *   (nothing) | rhcsh                        an interactive bash with the gear's environment
 * where <dir> is the directory of this executable (the in-gear `gear` tool is installed beside it).
 *
 * The environment is built without a shell from a clean start: what sshd provides that a session
 * needs, then the gear's .env, every cartridge's env, the primary cartridge's again, the user's
 * variables (never loader or shell start-up names, never over another), PATH from the cartridges'
 * *_PATH_ELEMENT. Before the exec the process sets no_new_privs and moves itself into the gear's
 * cgroup (cgroup v1: the node makes the gear's cgroup.procs files the gear's); a gear whose cgroup
 * exists but cannot be joined does not log in. When SYSLOG_GEAR_LOGIN is true each login is one
 * syslog line. Statically linked, like oo-gear-exec: no loader and no NSS module runs, so the
 * account comes from /etc/passwd, where the node's useradd writes gear accounts.
 *
 * SELinux: on an enforcing host the login's context is set by PAM (pam_openshift in the original);
 * this trap does not compute or check it yet.
 *
 * Every message of the trap goes to stderr (stdout is git's protocol stream). Exit status:
 *   2   node.conf is malformed ("Error in node configuration")
 *   3   a git repository path is refused
 *   32  tail: no file matches                88  tail: a path or an option is refused
 *   91  tail: a match cannot be examined     1   not a gear account (uid 0, or home not GEAR_BASE_DIR/<name>),
 *                                            or the account or its home cannot be read
 *   125 the gear's cgroup exists but cannot be joined, or no_new_privs cannot be set
 *   126 the command is refused (not one the trap runs, bad quoting, bad arguments)
 *   127 the program cannot be executed (e.g. quota is not installed)
 *   otherwise the program's own.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

enum {
    EXIT_INTERNAL = 1, EXIT_CONFIG = 2, EXIT_GIT = 3, EXIT_TAIL_NO_MATCH = 32, EXIT_TAIL_PATH = 88,
    EXIT_TAIL_STAT = 91, EXIT_CONTAINMENT = 125, EXIT_REFUSED = 126, EXIT_EXEC = 127,
};

#define VALUE_LIMIT (128 * 1024)
#define ENV_TOTAL_LIMIT (4 << 20)
#define ENV_MAX_ENTRIES 4096
#define DIR_MAX_ENTRIES 1024
#define MAX_WORDS 1024
#define COMMAND_LIMIT (64 * 1024)
#define CONF_LIMIT (1 << 20)

static const char default_path[] = "/usr/local/bin:/usr/bin:/bin";

/* ---------------------------------------------------------------- messages */

static void say(const char *format, ...) {
    char line[2048];
    int n = snprintf(line, sizeof line, "oo-trap-user: ");
    va_list args;
    va_start(args, format);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, format, args);
    va_end(args);
    size_t length = (size_t)n + (m < 0 ? 0 : (size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[length++] = '\n';
    (void)!write(2, line, length);
}

#define DIE(code, ...) do { say(__VA_ARGS__); _exit(code); } while (0)

static void *checked_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) DIE(EXIT_INTERNAL, "out of memory");
    return p;
}

static char *join(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = checked_malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = 0;
    return s;
}

/* Reads at most `limit` bytes of an open descriptor; NULL (errno E2BIG) when there are more. */
static char *read_bounded(int fd, size_t limit, size_t *length) {
    char *buffer = checked_malloc(limit + 2);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + used, limit + 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { free(buffer); return NULL; }
        if (n == 0) break;
        used += (size_t)n;
        if (used > limit) { free(buffer); errno = E2BIG; return NULL; }
    }
    buffer[used] = 0;
    if (length) *length = used;
    return buffer;
}

static char *read_file(const char *path, size_t limit, size_t *length) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return NULL;
    char *text = read_bounded(fd, limit, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return text;
}

/* ---------------------------------------------------------------- names */

static int is_variable_name(const char *name, size_t length) {
    if (length == 0 || length > 128 || !(isalpha((unsigned char)name[0]) || name[0] == '_')) return 0;
    for (size_t i = 0; i < length; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '_') || (unsigned char)name[i] > 127) return 0;
    return 1;
}

/* Loader and shell start-up variables (the node's VariablePolicy.startUp and its prefixes). */
static const char *const start_up_names[] = {
    "GLIBC_TUNABLES", "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "LOCALDOMAIN", "RES_OPTIONS",
    "TZDIR", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH", "GLOBIGNORE", "BASH_FUNC",
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "MAIL", "TMPDIR", "TMP", "TMP_DIR", "HISTFILE", "GEM_HOME",
    "PYTHONSTARTUP", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", NULL,
};
static const char *const start_up_prefixes[] = {"LD_", "MALLOC_", "BASH_FUNC_", "DYLD_", NULL};

static int is_start_up_name(const char *name) {
    for (size_t i = 0; start_up_names[i]; i++) if (strcmp(name, start_up_names[i]) == 0) return 1;
    for (size_t i = 0; start_up_prefixes[i]; i++) if (strncmp(name, start_up_prefixes[i], strlen(start_up_prefixes[i])) == 0) return 1;
    return 0;
}

/* What a user variable may not be (VariablePolicy.userRefusal): start-up names and OPENSHIFT_ ones. */
static int user_variable_refused(const char *name) {
    return is_start_up_name(name) || strncmp(name, "OPENSHIFT_", 10) == 0;
}

/* A gear name (GearIdentity.validate): 1-32 of [a-z0-9_-], not starting with - or _. */
static int is_gear_name(const char *name) {
    size_t length = strlen(name);
    if (length == 0 || length > 32 || name[0] == '-' || name[0] == '_') return 0;
    for (size_t i = 0; i < length; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-' || name[i] == '_')) return 0;
    return 1;
}

/* ---------------------------------------------------------------- the environment being built */

static char *env_entries[ENV_MAX_ENTRIES + 1];
static size_t env_count, env_bytes;

static ssize_t env_index(const char *name) {
    size_t length = strlen(name);
    for (size_t i = 0; i < env_count; i++)
        if (strncmp(env_entries[i], name, length) == 0 && env_entries[i][length] == '=') return (ssize_t)i;
    return -1;
}

static const char *env_get(const char *name) {
    ssize_t i = env_index(name);
    return i < 0 ? NULL : env_entries[i] + strlen(name) + 1;
}

/* Sets a variable; returns 0 when the bounds (entries, 4 MiB in all) leave no room. */
static int env_set(const char *name, const char *value) {
    size_t size = strlen(name) + strlen(value) + 2;
    ssize_t i = env_index(name);
    size_t old = i < 0 ? 0 : strlen(env_entries[i]) + 1;
    if (env_bytes - old + size > ENV_TOTAL_LIMIT || (i < 0 && env_count == ENV_MAX_ENTRIES)) return 0;
    char *entry = join(name, "=", value);
    if (i < 0) {
        env_entries[env_count++] = entry;
        env_entries[env_count] = NULL;
    } else {
        free(env_entries[i]);
        env_entries[i] = entry;
    }
    env_bytes = env_bytes - old + size;
    return 1;
}

/* What sshd provides that a session needs; everything else of the inherited environment (PAM's,
 * the client's) is dropped. */
static int inherited(const char *name, size_t length) {
    static const char *const keep[] = {
        "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "SSH_ORIGINAL_COMMAND", "SSH_AUTH_SOCK", "TERM", "LANG", "GIT_PROTOCOL",
        "MAIL", "KRB5CCNAME", NULL,
    };
    for (size_t i = 0; keep[i]; i++) if (strlen(keep[i]) == length && strncmp(name, keep[i], length) == 0) return 1;
    return length > 3 && strncmp(name, "LC_", 3) == 0;
}

/* Whether sshd says the session was opened with a key (ExposeAuthInfo: SSH_USER_AUTH names a file
 * listing the methods used). Only a key's forced command may set variables such as OPENSHIFT_LOGIN:
 * a Kerberos user sends its command as -c too and could otherwise claim any login in the audit
 * line. Without ExposeAuthInfo there is no way to tell, and the forced command's form is trusted. */
static int opened_with_key(void) {
    const char *file = getenv("SSH_USER_AUTH");
    if (!file || !*file) return 1;
    size_t length = 0;
    char *text = read_file(file, 1 << 16, &length);
    if (!text) return 0;
    int key = 0;
    for (char *line = text; line && *line; ) {
        if (strncmp(line, "publickey ", 10) == 0) key = 1;
        else { key = 0; break; }     /* every method used must be a key */
        line = strchr(line, '\n');
        if (line) line++;
    }
    free(text);
    return key;
}

/* ---------------------------------------------------------------- node.conf */

struct config {
    char gear_base_dir[1024];
    char cgroup_root[1024];
    char cloud_domain[256];
    char broker_host[256];
    int syslog_login;
};

static void config_error(const char *file, int line, const char *reason) {
    openlog("oo-trap-user", LOG_PID, LOG_USER);
    syslog(LOG_ERR, "node config error: %s line %d: %s", file, line, reason);
    DIE(EXIT_CONFIG, "Error in node configuration (%s line %d: %s)", file, line, reason);
}

/* One value, as NodeConfParser reads it: quotes, backslash escapes in double quotes, no expansion. */
static void parse_value(const char *raw, char *out, size_t size, const char *file, int line) {
    size_t used = 0;
    const char *p = raw;
    while (*p) {
        if (used + 2 >= size) config_error(file, line, "value too long");
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (used + 2 >= size) config_error(file, line, "value too long");
                if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) { out[used++] = p[1]; p += 2; continue; }
                out[used++] = *p++;
            }
            if (!*p) config_error(file, line, "unterminated double quote");
            p++;
        } else if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (used + 2 >= size) config_error(file, line, "value too long");
                out[used++] = *p++;
            }
            if (!*p) config_error(file, line, "unterminated single quote");
            p++;
        } else if (*p == ' ' || *p == '\t') {
            while (*p == ' ' || *p == '\t') p++;
            if (*p && *p != '#') config_error(file, line, "unquoted space in value");
            break;
        } else if (*p == '#' && p == raw) {
            break;
        } else {
            out[used++] = *p++;
        }
    }
    out[used] = 0;
}

static int parse_boolean(const char *value, int *result) {
    static const char *const yes[] = {"true", "t", "yes", "y", "1", "on", NULL};
    static const char *const no[] = {"false", "f", "no", "n", "0", "off", "", NULL};
    for (size_t i = 0; yes[i]; i++) if (strcasecmp(value, yes[i]) == 0) { *result = 1; return 1; }
    for (size_t i = 0; no[i]; i++) if (strcasecmp(value, no[i]) == 0) { *result = 0; return 1; }
    return 0;
}

static void read_config(const char *file, struct config *config) {
    snprintf(config->gear_base_dir, sizeof config->gear_base_dir, "/var/lib/openshift");
    snprintf(config->cgroup_root, sizeof config->cgroup_root, "/openshift");
    snprintf(config->cloud_domain, sizeof config->cloud_domain, "example.com");
    snprintf(config->broker_host, sizeof config->broker_host, "localhost");
    config->syslog_login = 1;
    size_t length = 0;
    char *text = read_file(file, CONF_LIMIT, &length);
    if (!text) {
        if (errno == ENOENT) return; /* no node.conf: every key has its default */
        config_error(file, 0, strerror(errno));
    }
    if (memchr(text, 0, length)) config_error(file, 0, "holds a NUL byte");
    int number = 0;
    char value[VALUE_LIMIT > 8192 ? 8192 : VALUE_LIMIT];
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        number++; /* strtok_r skips empty lines; the number only names a line in messages */
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = 0;
        while (*line == ' ' || *line == '\t') line++;
        if (!*line || *line == '#') continue;
        if (strncmp(line, "export ", 7) == 0) { line += 7; while (*line == ' ') line++; }
        char *equals = strchr(line, '=');
        if (!equals) config_error(file, number, "expected KEY=value");
        if (!is_variable_name(line, (size_t)(equals - line))) config_error(file, number, "invalid key name");
        *equals = 0;
        parse_value(equals + 1, value, sizeof value, file, number);
        if (strcmp(line, "GEAR_BASE_DIR") == 0) snprintf(config->gear_base_dir, sizeof config->gear_base_dir, "%s", value);
        else if (strcmp(line, "OPENSHIFT_CGROUP_ROOT") == 0) snprintf(config->cgroup_root, sizeof config->cgroup_root, "%s", value);
        else if (strcmp(line, "CLOUD_DOMAIN") == 0) snprintf(config->cloud_domain, sizeof config->cloud_domain, "%s", value);
        else if (strcmp(line, "BROKER_HOST") == 0) snprintf(config->broker_host, sizeof config->broker_host, "%s", value);
        else if (strcmp(line, "SYSLOG_GEAR_LOGIN") == 0 && !parse_boolean(value, &config->syslog_login))
            config_error(file, number, "SYSLOG_GEAR_LOGIN must be a boolean");
    }
    free(text);
}

/* ---------------------------------------------------------------- the account */

/* The account of the real uid, from /etc/passwd (gear accounts are local: the node's useradd). */
static void find_account(uid_t uid, char *name, size_t name_size, char *home, size_t home_size) {
    size_t length = 0;
    char *text = read_file("/etc/passwd", 64u << 20, &length);
    if (!text) DIE(EXIT_INTERNAL, "cannot read /etc/passwd: %s", strerror(errno));
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *fields[7];
        int count = 0;
        for (char *p = line; count < 7; count++) {
            fields[count] = p;
            char *colon = strchr(p, ':');
            if (!colon) { count++; break; }
            *colon = 0;
            p = colon + 1;
        }
        if (count < 7) continue;
        char *end = NULL;
        errno = 0;
        unsigned long value = strtoul(fields[2], &end, 10);
        if (errno || *end || !*fields[2] || value != uid) continue;
        if (strlen(fields[0]) >= name_size || strlen(fields[5]) >= home_size || fields[5][0] != '/')
            DIE(EXIT_INTERNAL, "the account of uid %u has an unusable name or home", (unsigned)uid);
        strcpy(name, fields[0]);
        strcpy(home, fields[5]);
        free(text);
        return;
    }
    DIE(EXIT_INTERNAL, "uid %u has no account in /etc/passwd", (unsigned)uid);
}

/* ---------------------------------------------------------------- env directories */

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names of a directory (sorted, at most DIR_MAX_ENTRIES), filtered by `accept`. */
static size_t list_directory(int dirfd, char **names, int (*accept)(const char *)) {
    int copy = dup(dirfd);
    if (copy < 0) return 0;
    DIR *dir = fdopendir(copy);
    if (!dir) { close(copy); return 0; }
    size_t count = 0;
    struct dirent *entry;
    while (count < DIR_MAX_ENTRIES && (entry = readdir(dir)))
        if (accept(entry->d_name)) names[count++] = strdup(entry->d_name);
    closedir(dir);
    qsort(names, count, sizeof *names, compare_names);
    return count;
}

static int accept_variable(const char *name) { return is_variable_name(name, strlen(name)); }
static int accept_cartridge(const char *name) { return name[0] != '.' && strlen(name) < 256; }

/* Appends `value` to a PATH under construction unless it is already there. */
static void path_append(char *path, size_t size, const char *value) {
    if (!*value) return;
    size_t length = strlen(value);
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n == length && strncmp(p, value, n) == 0) return;
        p += n + (colon ? 1 : 0);
    }
    size_t used = strlen(path);
    if (used + length + 2 > size) return;
    if (used) path[used++] = ':';
    memcpy(path + used, value, length + 1);
}

enum load_mode { LOAD_ALL, LOAD_USER };

/* Loads the variables of a directory (one regular file per variable, value at most 128 KiB, read
 * without following links); collects *_PATH_ELEMENT values into `path` when given. */
static void load_directory(int parentfd, const char *relative, enum load_mode mode, char *path, size_t path_size) {
    int dirfd = openat(parentfd, relative, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) return;
    char *names[DIR_MAX_ENTRIES];
    size_t count = list_directory(dirfd, names, accept_variable);
    for (size_t i = 0; i < count; i++) {
        const char *name = names[i];
        if (mode == LOAD_USER && (env_get(name) || user_variable_refused(name))) continue;
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st;
        size_t length = 0;
        char *value = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read_bounded(fd, VALUE_LIMIT, &length) : NULL;
        close(fd);
        if (!value) continue;
        size_t kept = 0;
        for (size_t j = 0; j < length; j++) if (value[j]) value[kept++] = value[j];
        if (kept && value[kept - 1] == '\n') kept--;
        value[kept] = 0;
        env_set(name, value);
        size_t n = strlen(name);
        if (path && n > 13 && strcmp(name + n - 13, "_PATH_ELEMENT") == 0 &&
            !(n > 24 && strcmp(name + n - 24, "_LD_LIBRARY_PATH_ELEMENT") == 0))
            path_append(path, path_size, value);
        free(value);
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    close(dirfd);
}

/* The gear's environment, the way the node builds a hook's: node defaults, .env, every
 * cartridge's env, the primary's again, user variables for names not set, PATH. */
static void build_environment(int homefd, const struct config *config, char *path, size_t path_size) {
    if (!env_get("LANG")) env_set("LANG", "C.UTF-8");
    env_set("OPENSHIFT_CLOUD_DOMAIN", config->cloud_domain);
    env_set("OPENSHIFT_BROKER_HOST", config->broker_host);
    load_directory(homefd, ".env", LOAD_ALL, NULL, 0);
    char primary[256] = "";
    const char *primary_dir = env_get("OPENSHIFT_PRIMARY_CARTRIDGE_DIR");
    if (primary_dir) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", primary_dir);
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
        const char *base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        if (accept_cartridge(base) && strcmp(base, "..") != 0) snprintf(primary, sizeof primary, "%s", base);
    }
    char *names[DIR_MAX_ENTRIES];
    size_t count = list_directory(homefd, names, accept_cartridge);
    char primary_path[8192] = "", other_path[8192] = "";
    for (size_t i = 0; i < count; i++) {
        int cartfd = openat(homefd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cartfd < 0) continue;
        int is_primary = strcmp(names[i], primary) == 0;
        load_directory(cartfd, "env", LOAD_ALL, is_primary ? primary_path : other_path,
                       is_primary ? sizeof primary_path : sizeof other_path);
        close(cartfd);
    }
    if (*primary) {
        int cartfd = openat(homefd, primary, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cartfd >= 0) {
            load_directory(cartfd, "env", LOAD_ALL, NULL, 0);
            close(cartfd);
        }
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    load_directory(homefd, ".env/user_vars", LOAD_USER, NULL, 0);
    path[0] = 0;
    for (const char *part = primary_path, *again = other_path; part; part = again, again = NULL) {
        char copy[8192];
        snprintf(copy, sizeof copy, "%s", part);
        for (char *save = NULL, *element = strtok_r(copy, ":", &save); element; element = strtok_r(NULL, ":", &save))
            path_append(path, path_size, element);
    }
    char copy[sizeof default_path];
    memcpy(copy, default_path, sizeof default_path);
    for (char *save = NULL, *element = strtok_r(copy, ":", &save); element; element = strtok_r(NULL, ":", &save))
        path_append(path, path_size, element);
}

/* ---------------------------------------------------------------- words */

/* Splits a command into words as a shell would quote them (single quotes, double quotes,
 * backslash), expanding nothing. Returns the count, or -1 on a quote error. */
static int split_words(const char *text, char **words, char *buffer) {
    int count = 0;
    const char *p = text;
    char *out = buffer;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) return count;
        if (count == MAX_WORDS) return -1;
        words[count++] = out;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'') *out++ = *p++;
                if (!*p) return -1;
                p++;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] == '\n') { p += 2; continue; }
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) { *out++ = p[1]; p += 2; continue; }
                    *out++ = *p++;
                }
                if (!*p) return -1;
                p++;
            } else if (*p == '\\') {
                if (!p[1]) return -1;
                if (p[1] != '\n') *out++ = p[1];
                p += 2;
            } else {
                *out++ = *p++;
            }
        }
        *out++ = 0;
    }
}

/* The command for the audit line: control characters escaped, so one login is one line. */
static void escape_for_log(const char *text, char *out, size_t size) {
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && used + 8 < size; p++) {
        if (*p == '\\') { out[used++] = '\\'; out[used++] = '\\'; }
        else if (*p == '\n') { out[used++] = '\\'; out[used++] = 'n'; }
        else if (*p == '\t') { out[used++] = '\\'; out[used++] = 't'; }
        else if (*p < 0x20 || *p == 0x7f) used += (size_t)snprintf(out + used, size - used, "\\x%02x", *p);
        else out[used++] = (char)*p;
    }
    if (*text && used + 8 >= size) { memcpy(out + used, "...", 3); used += 3; }
    out[used] = 0;
}

/* ---------------------------------------------------------------- containment */

static void unescape_mount_path(char *path) {
    char *out = path;
    for (char *p = path; *p;) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 4;
        } else {
            *out++ = *p++;
        }
    }
    *out = 0;
}

/* Moves this process into the gear's cgroup in every mounted v1 controller the node uses
 * (GearCgroup: cpu, cpuacct, memory, pids, freezer). A controller where the gear has no cgroup is
 * skipped; one where it has a cgroup that cannot be joined refuses the login. On a host with
 * cgroup v2 only, nothing is joined: moving a process there needs write access to the common
 * ancestor of both cgroups, which a gear does not have. */
static void join_cgroups(const char *cgroup_root, const char *gear) {
    size_t length = 0;
    char *mounts = read_file("/proc/self/mounts", 1 << 20, &length);
    if (!mounts) DIE(EXIT_CONTAINMENT, "cannot read /proc/self/mounts: %s", strerror(errno));
    char parent[1024] = "";
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", cgroup_root);
    for (char *save = NULL, *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0 || strcmp(part, "..") == 0) continue;
        size_t used = strlen(parent);
        snprintf(parent + used, sizeof parent - used, "%s%s", used ? "/" : "", part);
    }
    char joined[8][PATH_MAX];
    int joined_count = 0;
    for (char *save = NULL, *line = strtok_r(mounts, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *fields[4];
        int count = 0;
        for (char *inner = NULL, *field = strtok_r(line, " ", &inner); field && count < 4; field = strtok_r(NULL, " ", &inner))
            fields[count++] = field;
        if (count < 4 || strcmp(fields[2], "cgroup") != 0) continue;
        int used = 0;
        for (char *inner = NULL, *option = strtok_r(fields[3], ",", &inner); option; option = strtok_r(NULL, ",", &inner))
            if (!strcmp(option, "cpu") || !strcmp(option, "cpuacct") || !strcmp(option, "memory") || !strcmp(option, "pids") ||
                !strcmp(option, "freezer")) used = 1;
        if (!used) continue;
        unescape_mount_path(fields[1]);
        char directory[PATH_MAX];
        if (snprintf(directory, sizeof directory, "%s/%s%s%s", fields[1], parent, *parent ? "/" : "", gear) >= (int)sizeof directory) continue;
        int seen = 0;
        for (int i = 0; i < joined_count; i++) if (strcmp(joined[i], directory) == 0) seen = 1;
        if (seen) continue;
        struct stat st;
        if (stat(directory, &st) != 0) {
            if (errno == ENOENT) continue;
            DIE(EXIT_CONTAINMENT, "cannot examine the gear's cgroup %s: %s", directory, strerror(errno));
        }
        /* "0" to tasks moves this thread, which is the whole process (the shell is single-threaded),
         * and lets the kernel skip the global threadgroup lock whose RCU grace period makes a
         * cgroup.procs move cost ~1.4 ms per controller; cgroup.procs with the pid is the fallback
         * (a node that did not hand out tasks). */
        char file[PATH_MAX + 16];
        snprintf(file, sizeof file, "%s/tasks", directory);
        int fd = open(file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && write(fd, "0", 1) == 1) {
            close(fd);
        } else {
            if (fd >= 0) close(fd);
            snprintf(file, sizeof file, "%s/cgroup.procs", directory);
            fd = open(file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
            if (fd < 0 || write(fd, pid, (size_t)n) != n)
                DIE(EXIT_CONTAINMENT, "cannot join the gear's cgroup %s: %s; not logging in outside the gear's limits", file, strerror(errno));
            close(fd);
        }
        if (joined_count < 8) snprintf(joined[joined_count++], PATH_MAX, "%s", directory);
    }
    free(mounts);
}

/* ---------------------------------------------------------------- the login */

struct login {
    char name[256];
    char home[PATH_MAX];
    char real_home[PATH_MAX];
    char directory[PATH_MAX]; /* of this executable: where `gear` is */
    struct config config;
    const char *command;      /* the user's command, for the audit line */
};

static struct login session;

static void audit(void) {
    if (!session.config.syslog_login) return;
    char command[2048], login[512], from[256];
    escape_for_log(session.command ? session.command : "rhcsh", command, sizeof command);
    const char *who = env_get("OPENSHIFT_LOGIN");
    escape_for_log(who && *who ? who : "None", login, sizeof login);
    const char *client = env_get("SSH_CLIENT");
    char address[128] = "unknown";
    if (client && *client) {
        size_t n = strcspn(client, " ");
        if (n >= sizeof address) n = sizeof address - 1;
        memcpy(address, client, n);
        address[n] = 0;
    }
    escape_for_log(address, from, sizeof from);
    openlog("oo-trap-user", LOG_PID, LOG_USER);
    syslog(LOG_INFO, "oo_login: %s from: %s gearUuid=%s cmd=%s", login, from, session.name, command);
    closelog();
}

/* Containment, then the program, from its argv, with the environment built above. */
static void run(const char *program, char **argv) {
    join_cgroups(session.config.cgroup_root, session.name);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) DIE(EXIT_CONTAINMENT, "cannot set no_new_privs: %s", strerror(errno));
    if (chdir(session.home) != 0) DIE(EXIT_INTERNAL, "cannot enter the gear's home %s: %s", session.home, strerror(errno));
    execve(program, argv, env_entries);
    DIE(EXIT_EXEC, "cannot execute %s: %s", program, strerror(errno));
}

static void refuse(const char *what) {
    DIE(EXIT_REFUSED, "%s. This gear runs only: git-receive-pack, git-upload-pack, tail, snapshot, restore, gear, ctl_all, "
        "binary-deploy, quota, true, or an interactive shell (ssh without a command).", what);
}

static int inside(const char *path, const char *directory) {
    size_t n = strlen(directory);
    return strncmp(path, directory, n) == 0 && (path[n] == '/' || path[n] == 0);
}

static int has_dot_dot(const char *path) {
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
        p += n;
        while (*p == '/') p++;
    }
    return 0;
}

static void git(const char *command, int count, char **words) {
    if (count != 2) DIE(EXIT_GIT, "Invalid repository: %s takes exactly one repository path", command);
    const char *given = words[1];
    char path[PATH_MAX];
    int n;
    if (given[0] == '~' && (given[1] == 0 || given[1] == '/')) n = snprintf(path, sizeof path, "%s/%s", session.home, given + 1);
    else if (given[0] == '/') n = snprintf(path, sizeof path, "%s", given);
    else n = snprintf(path, sizeof path, "%s/%s", session.home, given);
    if (n < 0 || n >= (int)sizeof path || !*given) DIE(EXIT_GIT, "Invalid repository %s: not a path", given);
    if (has_dot_dot(given)) DIE(EXIT_GIT, "Invalid repository %s: '..' is not allowed", given);
    char real[PATH_MAX], git_directory[PATH_MAX + 8];
    snprintf(git_directory, sizeof git_directory, "%s/git", session.real_home);
    if (!realpath(path, real)) DIE(EXIT_GIT, "Invalid repository %s: %s", given, strerror(errno));
    if (!inside(real, git_directory) || strcmp(real, git_directory) == 0)
        DIE(EXIT_GIT, "Invalid repository %s: not in the application's git directory (~/git/)", given);
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) DIE(EXIT_GIT, "Invalid repository %s: not a directory", given);
    char program[64];
    snprintf(program, sizeof program, "/usr/bin/%s", command);
    char *argv[] = {(char *)command, real, NULL};
    run(program, argv);
}

static int base64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 (padding optional, newlines ignored); NULL when it is not base64 or too long. */
static char *base64_decode(const char *text) {
    size_t length = strlen(text);
    if (length > 4096) return NULL;
    char *out = checked_malloc(length + 1);
    size_t used = 0;
    unsigned int bits = 0, count = 0;
    int padding = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\r') continue;
        if (*p == '=') { padding = 1; continue; }
        int v = base64_value((unsigned char)*p);
        if (v < 0 || padding) { free(out); return NULL; }
        bits = (bits << 6) | (unsigned int)v;
        if (++count == 4) {
            out[used++] = (char)(bits >> 16);
            out[used++] = (char)(bits >> 8);
            out[used++] = (char)bits;
            bits = count = 0;
        }
    }
    if (count == 1) { free(out); return NULL; }
    if (count == 2) out[used++] = (char)(bits >> 4);
    if (count == 3) { out[used++] = (char)(bits >> 10); out[used++] = (char)(bits >> 2); }
    out[used] = 0;
    if (strlen(out) != used) { free(out); return NULL; }
    return out;
}

static int is_count(const char *text) {
    if (*text == '+' || *text == '-') text++;
    size_t n = strlen(text);
    if (n == 0 || n > 18) return 0;
    for (size_t i = 0; i < n; i++) if (!isdigit((unsigned char)text[i])) return 0;
    return 1;
}

static void tail(int count, char **words) {
    char *argv[MAX_WORDS * 2 + 8];
    int argc = 0, follow = 0, first = 1;
    argv[argc++] = "tail";
    if (count >= 2 && strcmp(words[1], "--opts") == 0) {
        if (count < 3) DIE(EXIT_TAIL_PATH, "tail: --opts needs a value");
        char *options = base64_decode(words[2]);
        if (!options) DIE(EXIT_TAIL_PATH, "tail: --opts is not base64");
        char *tokens[64];
        int n = 0;
        for (char *save = NULL, *t = strtok_r(options, " \t\n\r", &save); t; t = strtok_r(NULL, " \t\n\r", &save)) {
            if (n == 64) DIE(EXIT_TAIL_PATH, "tail: too many options");
            tokens[n++] = t;
        }
        for (int i = 0; i < n; i++) {
            char *t = tokens[i];
            if (t[0] == '/' || strncmp(t, "..", 2) == 0) DIE(EXIT_TAIL_PATH, "All paths must be relative: %s", t);
            if ((strcmp(t, "-n") == 0 || strcmp(t, "-c") == 0) && i + 1 < n && is_count(tokens[i + 1])) {
                argv[argc++] = t;
                argv[argc++] = tokens[++i];
            } else if (((strncmp(t, "-n", 2) == 0 || strncmp(t, "-c", 2) == 0) && is_count(t + 2)) ||
                       (strncmp(t, "--lines=", 8) == 0 && is_count(t + 8)) || (strncmp(t, "--bytes=", 8) == 0 && is_count(t + 8)) ||
                       !strcmp(t, "-q") || !strcmp(t, "-v") || !strcmp(t, "--quiet") || !strcmp(t, "--silent") || !strcmp(t, "--verbose")) {
                argv[argc++] = t;
            } else if (!strcmp(t, "-f") || !strcmp(t, "-F") || !strcmp(t, "--follow") || !strcmp(t, "--follow=name") ||
                       !strcmp(t, "--follow=descriptor")) {
                argv[argc++] = t;
                follow = 1;
            } else {
                DIE(EXIT_TAIL_PATH, "tail: option not allowed: %s (allowed: -n N, -c N, --lines=N, --bytes=N, -f, -F, --follow, -q, -v)", t);
            }
        }
        first = 3;
    }
    if (first >= count) DIE(EXIT_REFUSED, "tail needs at least one file pattern relative to the gear's home");
    if (!follow) argv[argc++] = "-f";
    argv[argc++] = "--";
    if (chdir(session.home) != 0) DIE(EXIT_TAIL_STAT, "Error: %s", strerror(errno));
    int files = 0;
    for (int i = first; i < count; i++) {
        const char *pattern = words[i];
        if (pattern[0] == '/' || pattern[0] == '~' || has_dot_dot(pattern) || !*pattern)
            DIE(EXIT_TAIL_PATH, "All paths must be relative: %s", pattern);
        glob_t matches;
        memset(&matches, 0, sizeof matches);
        int rc = glob(pattern, GLOB_ERR, NULL, &matches);
        if (rc == GLOB_NOMATCH) { globfree(&matches); continue; }
        if (rc != 0) DIE(EXIT_TAIL_STAT, "Error: %s: %s", pattern, rc == GLOB_ABORTED ? "cannot read a directory" : "out of memory");
        for (size_t j = 0; j < matches.gl_pathc; j++) {
            char real[PATH_MAX];
            if (!realpath(matches.gl_pathv[j], real)) DIE(EXIT_TAIL_STAT, "Error: %s: %s", matches.gl_pathv[j], strerror(errno));
            if (!inside(real, session.real_home) || strcmp(real, session.real_home) == 0)
                DIE(EXIT_TAIL_PATH, "All paths must be relative: %s leads out of the gear's home", matches.gl_pathv[j]);
            struct stat st;
            if (stat(real, &st) != 0) DIE(EXIT_TAIL_STAT, "Error: %s: %s", matches.gl_pathv[j], strerror(errno));
            if (!S_ISREG(st.st_mode)) continue; /* directories of a log glob are not files to follow */
            if (argc >= (int)(sizeof argv / sizeof argv[0]) - 1) DIE(EXIT_TAIL_PATH, "tail: too many files");
            argv[argc++] = strdup(real);
            files++;
        }
        globfree(&matches);
    }
    if (files == 0) DIE(EXIT_TAIL_NO_MATCH, "Could not find any files matching glob");
    argv[argc] = NULL;
    run("/usr/bin/tail", argv);
}

/* `<dir>/gear WORD...`: the in-gear tool installed beside this executable. */
static void gear_tool(char **arguments, int count) {
    char program[PATH_MAX + 8];
    snprintf(program, sizeof program, "%s/gear", session.directory);
    char *argv[MAX_WORDS + 2];
    argv[0] = "gear";
    for (int i = 0; i < count; i++) argv[i + 1] = arguments[i];
    argv[count + 1] = NULL;
    run(program, argv);
}

/* Appends `text` single-quoted for bash. */
static size_t shell_quote(char *out, size_t size, const char *text) {
    size_t used = 0;
    if (used + 1 < size) out[used++] = '\'';
    for (const char *p = text; *p && used + 5 < size; p++) {
        if (*p == '\'') { memcpy(out + used, "'\\''", 4); used += 4; }
        else out[used++] = *p;
    }
    if (used + 1 < size) out[used++] = '\'';
    out[used] = 0;
    return used;
}

/* The interactive shell: bash with an rc file from a memfd (the original's rhcsh). */
static void interactive(void) {
    int fd = (int)syscall(SYS_memfd_create, "oo-trap-user-rc", 0U);
    if (fd < 0) DIE(EXIT_INTERNAL, "memfd_create: %s", strerror(errno));
    char gear[PATH_MAX * 4 + 16], gear_path[PATH_MAX + 8];
    snprintf(gear_path, sizeof gear_path, "%s/gear", session.directory);
    shell_quote(gear, sizeof gear, gear_path);
    char *rc = NULL;
    int n = asprintf(&rc,
        "# The gear's interactive shell (oo-trap-user's rc, the original's rhcsh)\n"
        "exec %d<&-\n"
        "[ -f \"$HOME/app-root/data/.bash_profile\" ] && . \"$HOME/app-root/data/.bash_profile\"\n"
        "PS1='[$OPENSHIFT_GEAR_DNS \\W]\\> '\n"
        "TMOUT=300\n"
        "SHELL=/bin/bash\n"
        "export TMOUT SHELL\n"
        "gear() { %s \"$@\"; }\n"
        "ctl_app() { gear \"$@\"; }\n"
        "ctl_all() {\n"
        "    case \"$1\" in\n"
        "        start) echo 'Starting services' >&2; gear start ;;\n"
        "        stop) echo 'Stopping services' >&2; gear stop ;;\n"
        "        restart) echo 'Restarting services' >&2; gear restart ;;\n"
        "        *) echo 'usage: ctl_all start|stop|restart' >&2; return 64 ;;\n"
        "    esac\n"
        "}\n"
        "tail_all() { tail -f */logs/* */log/*; }\n"
        "help() {\n"
        "    cat >&2 <<'EOF'\n"
        "Help menu: the following commands control your application:\n"
        "  ctl_all start|stop|restart   start, stop or restart the application\n"
        "  gear COMMAND                 the gear's tool (gear --help)\n"
        "  tail_all                     follow the logs of the gear's cartridges\n"
        "  quota                        the gear's disk use against its quota\n"
        "  help                         this menu\n"
        "EOF\n"
        "}\n"
        "printf '\\n    Welcome to OpenShift shell of %%s\\n\\n    Type \"help\" for more info.\\n\\n' \"${OPENSHIFT_GEAR_DNS:-this gear}\" >&2\n"
        "if [ -z \"$SSH_TTY\" ]; then\n"
        "    echo 'WARNING: This ssh terminal was started without a tty.' >&2\n"
        "    echo 'It is highly recommended to login with: ssh -t' >&2\n"
        "fi\n",
        fd, gear);
    if (n < 0 || write(fd, rc, (size_t)n) != n || lseek(fd, 0, SEEK_SET) != 0) DIE(EXIT_INTERNAL, "cannot write the shell's rc file");
    free(rc);
    char rcfile[32];
    snprintf(rcfile, sizeof rcfile, "/dev/fd/%d", fd);
    char *argv[] = {"bash", "--noprofile", "--rcfile", rcfile, "-i", NULL};
    run("/bin/bash", argv);
}

static void dispatch(int count, char **words) {
    if (count == 0 || (count == 1 && strcmp(words[0], "rhcsh") == 0)) interactive();
    const char *command = words[0];
    if (!strcmp(command, "git-receive-pack") || !strcmp(command, "git-upload-pack")) git(command, count, words);
    if (!strcmp(command, "tail")) tail(count, words);
    if (!strcmp(command, "snapshot")) {
        if (count != 1) refuse("snapshot takes no argument");
        char *arguments[] = {"snapshot"};
        gear_tool(arguments, 1);
    }
    if (!strcmp(command, "restore")) {
        char *arguments[4] = {"restore"};
        int n = 1;
        for (int i = 1; i < count; i++) {
            if (!strcmp(words[i], "INCLUDE_GIT") && n < 3) arguments[n++] = "--restore-git-repo";
            else if (!strcmp(words[i], "--no-report-deployments") && n < 3) arguments[n++] = "--no-report-deployments";
            else refuse("restore takes only INCLUDE_GIT (and --no-report-deployments)");
        }
        gear_tool(arguments, n);
    }
    if (!strcmp(command, "binary-deploy") || !strcmp(command, "oo-binary-deploy")) {
        char *arguments[4] = {"binary-deploy"};
        int n = 1;
        for (int i = 1; i < count; i++) {
            if (!strcmp(words[i], "--hot-deploy") && n < 2) arguments[n++] = "--hot-deploy";
            else if (strcmp(words[i], "--force-clean-build") != 0) refuse("binary-deploy takes only --hot-deploy");
        }
        gear_tool(arguments, n);
    }
    if (!strcmp(command, "gear")) gear_tool(words + 1, count - 1);
    if (!strcmp(command, "ctl_all")) {
        if (count != 2 || (strcmp(words[1], "start") && strcmp(words[1], "stop") && strcmp(words[1], "restart")))
            refuse("ctl_all takes start, stop or restart");
        gear_tool(words + 1, 1);
    }
    if (!strcmp(command, "quota")) {
        if (access("/usr/bin/quota", X_OK) != 0)
            DIE(EXIT_EXEC, "quota is not installed on this node (/usr/bin/quota): the gear's disk use cannot be shown");
        char *argv[] = {"quota", "--always-resolve", NULL};
        run("/usr/bin/quota", argv);
    }
    if (!strcmp(command, "true")) {
        char *argv[] = {"true", NULL};
        run("/bin/true", argv);
    }
    if (count == 1 && !strcmp(command, "/usr/lib/openssh/sftp-server")) {
        char *argv[] = {"sftp-server", NULL};
        run("/usr/lib/openssh/sftp-server", argv);
    }
    char what[256];
    escape_for_log(command, what, sizeof what);
    char message[512];
    snprintf(message, sizeof message, "command not allowed: '%s'", what);
    refuse(message);
}

int main(int argc, char **argv) {
    extern char **environ;
    /* Only 0, 1 and 2 go on to the gear's program. */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        for (int fd = 3; fd < 1024; fd++) close(fd);

    /* Which form: -c COMMAND, or a login shell with no argument. */
    const char *forced = NULL;
    if (argc >= 3 && strcmp(argv[1], "-c") == 0) forced = argv[2];
    else if (argc != 1) refuse("oo-trap-user runs as a login shell: with no argument or with -c COMMAND");

    const char *conf_file = "/etc/openshift/node.conf";
    const char *original_command = NULL;
    for (char **e = environ; *e; e++) {
        const char *equals = strchr(*e, '=');
        if (!equals) continue;
        size_t n = (size_t)(equals - *e);
        if (n == 19 && strncmp(*e, "OPENSHIFT_NODE_CONF", 19) == 0 && equals[1] == '/') conf_file = equals + 1;
        if (!inherited(*e, n)) continue;
        char name[128];
        if (n >= sizeof name) continue;
        memcpy(name, *e, n);
        name[n] = 0;
        if (strlen(equals + 1) > VALUE_LIMIT) continue;
        env_set(name, equals + 1);
    }
    original_command = env_get("SSH_ORIGINAL_COMMAND");
    read_config(conf_file, &session.config);

    find_account(getuid(), session.name, sizeof session.name, session.home, sizeof session.home);
    /* A gear is what the node creates: a gear name, never uid 0, home GEAR_BASE_DIR/<name>. */
    char expected_home[PATH_MAX];
    size_t base_length = strlen(session.config.gear_base_dir);
    while (base_length > 1 && session.config.gear_base_dir[base_length - 1] == '/') session.config.gear_base_dir[--base_length] = 0;
    snprintf(expected_home, sizeof expected_home, "%s/%s", session.config.gear_base_dir, session.name);
    if (getuid() == 0 || !is_gear_name(session.name) || strcmp(session.home, expected_home) != 0)
        DIE(EXIT_INTERNAL, "account %s (uid %u, home %s) is not a gear of this node (GEAR_BASE_DIR %s)", session.name,
            (unsigned)getuid(), session.home, session.config.gear_base_dir);
    if (!realpath(session.home, session.real_home)) DIE(EXIT_INTERNAL, "cannot open the gear's home %s: %s", session.home, strerror(errno));
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) DIE(EXIT_INTERNAL, "cannot read /proc/self/exe: %s", strerror(errno));
    self[n] = 0;
    snprintf(session.directory, sizeof session.directory, "%.*s", (int)(strrchr(self, '/') - self), self);

    /* The words of -c: a forced command `[NAME=value ]<this trap>` sets NAME; anything else is the
     * user's command (a GSSAPI login gives the client's command here). */
    static char *words[MAX_WORDS];
    char *buffer = NULL;
    int count = 0;
    const char *command = original_command;
    char *assignments[16];
    int assignment_count = 0;
    if (forced) {
        if (strlen(forced) > COMMAND_LIMIT) refuse("the command is longer than 64 KiB");
        buffer = checked_malloc(strlen(forced) + 1);
        count = split_words(forced, words, buffer);
        int first = 0;
        while (first < count && first < 16) {
            char *equals = strchr(words[first], '=');
            if (!equals || !is_variable_name(words[first], (size_t)(equals - words[first]))) break;
            first++;
        }
        char real[PATH_MAX];
        int is_trap = count >= 0 && count - first == 1 && realpath(words[first], real) && strcmp(real, self) == 0;
        if (is_trap) {
            if (opened_with_key())
                for (int i = 0; i < first; i++) assignments[assignment_count++] = words[i];
        } else if (!original_command) {
            command = forced;
        }
    }

    int homefd = open(session.home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (homefd < 0) DIE(EXIT_INTERNAL, "cannot open the gear's home %s: %s", session.home, strerror(errno));
    char path[16384];
    build_environment(homefd, &session.config, path, sizeof path);
    close(homefd);
    for (int i = 0; i < assignment_count; i++) {
        char *equals = strchr(assignments[i], '=');
        *equals = 0;
        if (!is_start_up_name(assignments[i]) && (strncmp(assignments[i], "OPENSHIFT_", 10) != 0 || !strcmp(assignments[i], "OPENSHIFT_LOGIN")))
            env_set(assignments[i], equals + 1);
    }
    env_set("PATH", path);
    env_set("HOME", session.home);
    env_set("USER", session.name);
    env_set("LOGNAME", session.name);
    env_set("OPENSHIFT_GEAR_UUID", session.name);
    const char *mask = env_get("OPENSHIFT_UMASK");
    mode_t umask_value = 077;
    if (mask && *mask && strlen(mask) <= 4 && strspn(mask, "01234567") == strlen(mask)) umask_value = (mode_t)strtoul(mask, NULL, 8) & 0777;
    umask(umask_value);

    session.command = command;
    audit(); /* every login, refused ones included, before anything is decided */
    if (!command) interactive();
    if (strlen(command) > COMMAND_LIMIT) { refuse("the command is longer than 64 KiB"); }
    char *user_buffer = checked_malloc(strlen(command) + 1);
    static char *user_words[MAX_WORDS];
    int user_count = split_words(command, user_words, user_buffer);
    if (user_count < 0) { refuse("the command has an unterminated quote or too many words"); }
    dispatch(user_count, user_words);
    return EXIT_REFUSED;
}
