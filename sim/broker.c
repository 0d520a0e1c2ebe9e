/* sim/broker.c — Mosquitto as a supervised child process (see broker.h and docs/broker.md). */
#include "sim/broker.h"

#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How often readiness and stop poll the child, in milliseconds. */
#define POLL_MS 5
/* Bytes of the log scanned for readiness and copied into error messages. */
#define LOG_SCAN_MAX (256u * 1024u)
#define LOG_TAIL_LINES 12
/* NOFILE to ask for when the hard limit is "unlimited" (the kernel refuses infinity). */
#define NOFILE_FALLBACK 1048576

/* lock-free atomics are async-signal-safe (C11 7.14.1.1); fdl_broker_signal_all relies on it. */
#if ATOMIC_INT_LOCK_FREE != 2
#error "fdl_broker_signal_all needs lock-free atomic int"
#endif
_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is stored in an atomic_int");

struct fdl_broker {
    char *dir, *conf_path, *log_path;
    char host[INET_ADDRSTRLEN];
    uint16_t port;
    pid_t pid;                 /* 0 when not running */
    int slot;                  /* index in the registry, or -1 */
    unsigned stop_timeout_ms;
    double ready_ms;
    int exit_status;           /* waitpid status once reaped, else -1 */
};

/* ---------------------------------------------------------------------------------------- */
/* Registry: brokers for fdl_broker_stop_all, their pids for fdl_broker_signal_all.          */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static fdl_broker *reg_brokers[FDL_BROKER_MAX_TRACKED];
/* Written under reg_lock, read lock-free by signal handlers. A slot is cleared
 * before its process is reaped, so a handler can never signal a recycled pid
 * from the same thread (a zombie keeps its pid until reaped). */
static atomic_int reg_pids[FDL_BROKER_MAX_TRACKED];

static void reg_add(fdl_broker *b)
{
    pthread_mutex_lock(&reg_lock);
    b->slot = -1;
    for (int i = 0; i < FDL_BROKER_MAX_TRACKED; i++) {
        if (!reg_brokers[i]) {
            reg_brokers[i] = b;
            atomic_store(&reg_pids[i], (int)b->pid);
            b->slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    /* A full registry only loses the atexit/signal safety net; PDEATHSIG still holds. */
}

static void reg_clear_pid(fdl_broker *b)
{
    if (b->slot >= 0)
        atomic_store(&reg_pids[b->slot], 0);
}

static void reg_remove(fdl_broker *b)
{
    pthread_mutex_lock(&reg_lock);
    if (b->slot >= 0) {
        atomic_store(&reg_pids[b->slot], 0);
        reg_brokers[b->slot] = NULL;
        b->slot = -1;
    }
    pthread_mutex_unlock(&reg_lock);
}

void fdl_broker_signal_all(int sig)
{
    int saved = errno;
    for (int i = 0; i < FDL_BROKER_MAX_TRACKED; i++) {
        int pid = atomic_load(&reg_pids[i]);
        if (pid > 0)
            kill((pid_t)pid, sig);
    }
    errno = saved;
}

void fdl_broker_kill_from_signal(pid_t pid, int sig)
{
    int saved = errno;
    if (pid > 0)
        kill(pid, sig);
    errno = saved;
}

void fdl_broker_stop_all(void)
{
    /* Stop outside the lock: fdl_broker_stop does not take it, but a slow stop
     * should not block another thread's start. Snapshot, then stop. */
    fdl_broker *list[FDL_BROKER_MAX_TRACKED];
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < FDL_BROKER_MAX_TRACKED; i++)
        if (reg_brokers[i])
            list[n++] = reg_brokers[i];
    pthread_mutex_unlock(&reg_lock);
    for (int i = 0; i < n; i++)
        fdl_broker_stop(list[i]);
}

/* ---------------------------------------------------------------------------------------- */
/* Status, errors, small helpers.                                                            */

static const char *const status_str[] = {
    [FDL_BROKER_OK] = "ok",
    [FDL_BROKER_ERR_ARG] = "invalid broker option",
    [FDL_BROKER_ERR_NOMEM] = "out of memory",
    [FDL_BROKER_ERR_IO] = "cannot write the broker directory, config or log",
    [FDL_BROKER_ERR_PORT] = "broker port unavailable",
    [FDL_BROKER_ERR_SPAWN] = "cannot start the broker process",
    [FDL_BROKER_ERR_EXITED] = "broker exited before it was ready",
    [FDL_BROKER_ERR_TIMEOUT] = "broker not ready in time",
};

const char *fdl_broker_strerror(fdl_broker_status st)
{
    if ((unsigned)st < sizeof status_str / sizeof status_str[0] && status_str[st])
        return status_str[st];
    return "unknown fdl_broker status";
}

__attribute__((format(printf, 4, 5)))
static fdl_broker_status fail(fdl_broker_status st, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return st;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *dup_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = fdl_malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int has_newline(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Reads up to LOG_SCAN_MAX bytes of the log (the end of it if longer); caller frees. */
static char *read_log(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t got = 0;
    struct stat sb;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) != 0)
        goto cleanup;
    if ((uint64_t)sb.st_size > LOG_SCAN_MAX && lseek(fd, sb.st_size - (off_t)LOG_SCAN_MAX, SEEK_SET) < 0)
        goto cleanup;
    buf = fdl_malloc(LOG_SCAN_MAX + 1);
    if (!buf)
        goto cleanup;
    while (got < LOG_SCAN_MAX) {
        ssize_t r = read(fd, buf + got, LOG_SCAN_MAX - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
cleanup:
    close(fd);
    return buf;
}

/* 1 if the log has mosquitto's "mosquitto version X running" line. */
static int log_has_running(const char *log)
{
    for (const char *p = strstr(log, "mosquitto version "); p; p = strstr(p + 1, "mosquitto version ")) {
        size_t n = strcspn(p, "\n");
        if (n >= 8 && memcmp(p + n - 8, " running", 8) == 0)
            return 1;
    }
    return 0;
}

/* Appends the last LOG_TAIL_LINES lines of the log to err. */
static void append_log_tail(const char *log_path, char *err, size_t cap)
{
    if (!err || !cap)
        return;
    char *log = read_log(log_path);
    size_t used = strlen(err);
    if (!log) {
        snprintf(err + used, cap - used, " (no broker log at %s)", log_path);
        return;
    }
    size_t n = strlen(log);
    while (n > 0 && (log[n - 1] == '\n' || log[n - 1] == '\r'))
        log[--n] = '\0';
    const char *start = log + n;
    for (int lines = 0; start > log && lines < LOG_TAIL_LINES;) {
        start--;
        if (*start == '\n' && ++lines == LOG_TAIL_LINES) {
            start++;
            break;
        }
    }
    snprintf(err + used, cap - used, "; last lines of %s:\n%s", log_path, n ? start : "(empty)");
    fdl_free(log);
}

/* ---------------------------------------------------------------------------------------- */
/* Ports.                                                                                    */

/* A port on addr that was free a moment ago, or 0. */
static uint16_t pick_port(const struct in_addr *addr)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr = *addr};
    socklen_t len = sizeof a;
    uint16_t port = 0;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

/* 1 if a TCP connection to addr:port is accepted (then closed at once). */
static int port_accepts(const struct in_addr *addr, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = *addr};
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok;
    if (s < 0)
        return 0;
    /* Loopback connects complete or fail at once; no need for a non-blocking dance. */
    do {
        ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    } while (!ok && errno == EINTR);
    close(s);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* The configuration file.                                                                   */

static fdl_broker_status write_conf(const fdl_broker_opts *o, const fdl_broker *b, char *err, size_t cap)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    fdl_broker_status st = FDL_BROKER_ERR_IO;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", b->conf_path);

    /* Started as root, mosquitto switches to the "mosquitto" account unless told
     * otherwise, and then cannot read our 0600 key or write into our 0700 dir.
     * Without a configured user it stays whoever runs fleetdrill; when that is
     * root, mosquitto logs a warning, which is accurate. */
    const char *user = o->user ? o->user : geteuid() == 0 ? "root" : NULL;

    if (n < 0 || (size_t)n >= sizeof tmp)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "path too long: %s", b->conf_path);
    f = fopen(tmp, "we");
    if (!f) {
        st = fail(FDL_BROKER_ERR_IO, err, cap, "create %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    fchmod(fileno(f), 0600);
    /* Each line is explained in docs/broker.md. */
    fprintf(f,
            "# %s: generated by fleetdrill (sim/broker.c) at every start; edits are lost.\n"
            "# docs/broker.md explains each line.\n"
            "per_listener_settings %s\n"
            "persistence false\n"
            "log_dest file %s\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            "log_type information\n"
            "log_timestamp true\n"
            "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n"
            "connection_messages true\n"
            "max_keepalive %u\n"
            "max_packet_size %u\n"
            "set_tcp_nodelay true\n"
            "%s%s%s"
            "\n"
            "listener %u %s\n"
            "protocol mqtt\n"
            "max_connections -1\n"
            "tls_version %s\n"
            "cafile %s\n"
            "certfile %s\n"
            "keyfile %s\n"
            "require_certificate true\n"
            /* With a plugin, Mosquitto must not take the user name from the certificate:
             * it would then skip plugin authentication. The plugin sets it itself. */
            "use_identity_as_username %s\n",
            FDL_BROKER_CONF, o->per_listener_settings ? "true" : "false", b->log_path, o->max_keepalive_s,
            o->max_packet_size, user ? "user " : "", user ? user : "", user ? "\n" : "", (unsigned)b->port,
            b->host, o->tls_min_version ? o->tls_min_version : "tlsv1.3", o->cafile, o->certfile, o->keyfile, o->plugin ? "false" : "true");
    if (o->crlfile)
        fprintf(f, "crlfile %s\n", o->crlfile);
    /* Security settings: global when per_listener_settings is false, and
     * belonging to the listener above when it is true. */
    fprintf(f, "\nallow_anonymous false\n");
    /* Cloud actors (the provisioning service) take bursts of one message per
     * device; the default queue of 1000 per client would drop most of a JITR storm. */
    fprintf(f, "max_queued_messages 100000\n");
    if (o->acl_file)
        fprintf(f, "acl_file %s\n", o->acl_file);
    if (o->plugin)
        fprintf(f, "plugin %s\n", o->plugin);
    for (size_t i = 0; i < o->n_plugin_opts; i++)
        fprintf(f, "plugin_opt_%s %s\n", o->plugin_opts[i].key, o->plugin_opts[i].value);
    if (o->extra_conf)
        fprintf(f, "\n%s\n", o->extra_conf);
    if (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        st = fail(FDL_BROKER_ERR_IO, err, cap, "write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (fclose(f) != 0) {
        f = NULL;
        st = fail(FDL_BROKER_ERR_IO, err, cap, "write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    f = NULL;
    if (rename(tmp, b->conf_path) != 0) {
        st = fail(FDL_BROKER_ERR_IO, err, cap, "rename to %s: %s", b->conf_path, strerror(errno));
        goto cleanup;
    }
    st = FDL_BROKER_OK;
cleanup:
    if (f)
        fclose(f);
    if (st != FDL_BROKER_OK)
        unlink(tmp);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Spawning.                                                                                 */

/* Everything the child needs, prepared before fork: after fork only async-signal-safe calls. */
typedef struct spawn_plan {
    const char *bin;
    char *argv[4];
    int log_fd, null_fd;
    pid_t parent;
    struct rlimit nofile;
    int raise_nofile;
    long max_fd;               /* for the close() loop if close_range is missing */
} spawn_plan;

static void plan_nofile(spawn_plan *p)
{
    p->raise_nofile = getrlimit(RLIMIT_NOFILE, &p->nofile) == 0;
    if (!p->raise_nofile)
        return;
    if (p->nofile.rlim_max == RLIM_INFINITY)
        p->nofile.rlim_cur = NOFILE_FALLBACK;
    else
        p->nofile.rlim_cur = p->nofile.rlim_max;
}

static void child_write(int fd, const char *msg)
{
    ssize_t r = write(fd, msg, strlen(msg));
    (void)r;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
__attribute__((noreturn))
static void child_exec(const spawn_plan *p)
{
    sigset_t none;

    /* Own process group: a terminal's Ctrl-C goes to fleetdrill, which stops us in order. */
    setpgid(0, 0);
    /* Die with the thread that started us, even if it is SIGKILLed... */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        child_write(p->log_fd, "fleetdrill: prctl(PR_SET_PDEATHSIG) failed\n");
        _exit(126);
    }
    /* ...and if it died before prctl took effect, nobody will ever send that signal. */
    if (getppid() != p->parent)
        _exit(125);

    /* The parent may block or ignore signals (libuv, SIGPIPE): mosquitto must see them. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);

    if (p->raise_nofile && setrlimit(RLIMIT_NOFILE, &p->nofile) != 0)
        child_write(p->log_fd, "fleetdrill: could not raise RLIMIT_NOFILE; broker keeps the inherited limit\n");

    if (dup2(p->null_fd, 0) < 0 || dup2(p->log_fd, 1) < 0 || dup2(p->log_fd, 2) < 0)
        _exit(124);
    /* Close every other descriptor: device sockets of the parent must not leak into the broker. */
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (long fd = 3; fd < p->max_fd; fd++)
            close((int)fd);
    }
    execv(p->bin, p->argv);
    child_write(2, "fleetdrill: exec of the mosquitto binary failed\n");
    _exit(127);
}

/* Polls the child without reaping it: 1 if it has exited (status filled), 0 if it runs. */
static int child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD; /* already reaped elsewhere: treat as exited */
    return si.si_pid == pid;
}

/* Reaps an exited child; the registry forgets its pid first (see reg_pids). */
static void reap(fdl_broker *b)
{
    int status = -1;
    pid_t r;
    reg_clear_pid(b);
    do {
        r = waitpid(b->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    b->exit_status = r == b->pid ? status : -1;
    b->pid = 0;
}

static void describe_exit(int status, char *buf, size_t cap)
{
    if (status < 0)
        snprintf(buf, cap, "exited");
    else if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, cap, "ended (status 0x%x)", (unsigned)status);
}

/*
 * One attempt: truncate the log, spawn, wait for readiness. On
 * FDL_BROKER_ERR_EXITED, *port_taken says whether the log blames the port.
 */
static fdl_broker_status spawn_and_wait(fdl_broker *b, const fdl_broker_opts *o, const struct in_addr *addr,
                                        int *port_taken, char *err, size_t cap)
{
    fdl_broker_status st = FDL_BROKER_ERR_IO;
    spawn_plan plan;
    double t0, deadline;
    char how[64], *log = NULL;
    int listener_seen = 0;
    char want[64];

    memset(&plan, 0, sizeof plan);
    plan.log_fd = plan.null_fd = -1;
    *port_taken = 0;
    plan.log_fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (plan.log_fd < 0) {
        st = fail(FDL_BROKER_ERR_IO, err, cap, "open %s: %s", b->log_path, strerror(errno));
        goto cleanup;
    }
    plan.null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (plan.null_fd < 0) {
        st = fail(FDL_BROKER_ERR_IO, err, cap, "open /dev/null: %s", strerror(errno));
        goto cleanup;
    }
    plan.bin = o->bin;
    plan.argv[0] = (char *)o->bin;
    plan.argv[1] = (char *)"-c";
    plan.argv[2] = b->conf_path;
    plan.argv[3] = NULL;
    plan.parent = getpid();
    plan_nofile(&plan);
    plan.max_fd = sysconf(_SC_OPEN_MAX);
    if (plan.max_fd <= 0 || plan.max_fd > NOFILE_FALLBACK)
        plan.max_fd = 65536;
    snprintf(want, sizeof want, "Opening ipv4 listen socket on port %u.", (unsigned)b->port);

    t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        st = fail(FDL_BROKER_ERR_SPAWN, err, cap, "fork: %s", strerror(errno));
        goto cleanup;
    }
    if (pid == 0)
        child_exec(&plan);
    /* Also from the parent, so the group exists before we could ever signal it. */
    setpgid(pid, pid);
    b->pid = pid;
    b->exit_status = -1;
    reg_add(b);

    deadline = t0 + o->ready_timeout_ms;
    for (;;) {
        if (child_exited(b->pid)) {
            reap(b);
            describe_exit(b->exit_status, how, sizeof how);
            fdl_free(log);
            log = read_log(b->log_path);
            *port_taken = log && strstr(log, "Address already in use") != NULL;
            st = fail(FDL_BROKER_ERR_EXITED, err, cap, "mosquitto %s before it was ready", how);
            append_log_tail(b->log_path, err, cap);
            goto cleanup;
        }
        if (!listener_seen) {
            fdl_free(log);
            log = read_log(b->log_path);
            listener_seen = log && strstr(log, want) != NULL && log_has_running(log);
        }
        /* mosquitto logs "Opening ... listen socket" before it loads the TLS
         * files, and exits if they are bad, so the port alone can accept a
         * connection from a broker about to die: we also wait for "running",
         * which comes after every listener is complete. The connect then proves
         * the port accepts, the log that it is our mosquitto holding it. */
        if (listener_seen && port_accepts(addr, b->port)) {
            b->ready_ms = now_ms() - t0;
            st = FDL_BROKER_OK;
            goto cleanup;
        }
        if (now_ms() >= deadline) {
            st = fail(FDL_BROKER_ERR_TIMEOUT, err, cap, "mosquitto not ready after %u ms (%s)",
                      o->ready_timeout_ms, listener_seen ? "broker running, port not accepting"
                                                         : "listener and running never logged");
            append_log_tail(b->log_path, err, cap);
            fdl_broker_stop(b);
            goto cleanup;
        }
        sleep_ms(POLL_MS);
    }
cleanup:
    if (st != FDL_BROKER_OK && b->pid > 0)
        fdl_broker_stop(b);
    if (st != FDL_BROKER_OK)
        reg_remove(b);
    fdl_free(log);
    if (plan.log_fd >= 0)
        close(plan.log_fd);
    if (plan.null_fd >= 0)
        close(plan.null_fd);
    return st;
}

void fdl_broker_opts_init(fdl_broker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bin = FDL_MOSQUITTO_BIN;
    o->host = "127.0.0.1";
    o->max_keepalive_s = FDL_BROKER_MAX_KEEPALIVE_S;
    o->max_packet_size = FDL_BROKER_MAX_PACKET;
    o->ready_timeout_ms = FDL_BROKER_READY_TIMEOUT_MS;
    o->stop_timeout_ms = FDL_BROKER_STOP_TIMEOUT_MS;
}

static fdl_broker_status check_opts(const fdl_broker_opts *o, fdl_broker_opts *eff, struct in_addr *addr,
                                    char *err, size_t cap)
{
    const char *files[] = {o->cafile, o->certfile, o->keyfile};
    const char *names[] = {"cafile", "certfile", "keyfile"};

    *eff = *o;
    if (!eff->bin)
        eff->bin = FDL_MOSQUITTO_BIN;
    if (!eff->host)
        eff->host = "127.0.0.1";
    if (!eff->max_keepalive_s)
        eff->max_keepalive_s = FDL_BROKER_MAX_KEEPALIVE_S;
    if (!eff->max_packet_size)
        eff->max_packet_size = FDL_BROKER_MAX_PACKET;
    if (!eff->ready_timeout_ms)
        eff->ready_timeout_ms = FDL_BROKER_READY_TIMEOUT_MS;
    if (!eff->stop_timeout_ms)
        eff->stop_timeout_ms = FDL_BROKER_STOP_TIMEOUT_MS;

    if (!o->dir || !*o->dir)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "broker dir is required");
    if (eff->max_keepalive_s > 65535)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "max_keepalive above 65535 s");
    if (inet_pton(AF_INET, eff->host, addr) != 1)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "host must be an IPv4 address: %s", eff->host);
    for (int i = 0; i < 3; i++) {
        if (!files[i])
            return fail(FDL_BROKER_ERR_ARG, err, cap, "%s is required", names[i]);
        if (access(files[i], R_OK) != 0)
            return fail(FDL_BROKER_ERR_ARG, err, cap, "%s %s: %s", names[i], files[i], strerror(errno));
    }
    if (access(eff->bin, X_OK) != 0)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "mosquitto binary %s: %s", eff->bin, strerror(errno));
    if (has_newline(o->dir) || has_newline(o->cafile) || has_newline(o->certfile) ||
        has_newline(o->keyfile) || has_newline(o->crlfile) || has_newline(o->acl_file) ||
        has_newline(o->plugin) || has_newline(o->user) || (o->user && strpbrk(o->user, " \t")))
        return fail(FDL_BROKER_ERR_ARG, err, cap, "a path contains a newline");
    if (o->tls_min_version && strcmp(o->tls_min_version, "tlsv1.3") && strcmp(o->tls_min_version, "tlsv1.2"))
        return fail(FDL_BROKER_ERR_ARG, err, cap, "tls_min_version is tlsv1.3 or tlsv1.2");
    if (o->n_plugin_opts && !o->plugin_opts)
        return fail(FDL_BROKER_ERR_ARG, err, cap, "n_plugin_opts without plugin_opts");
    for (size_t i = 0; i < o->n_plugin_opts; i++) {
        const fdl_broker_kv *kv = &o->plugin_opts[i];
        if (!kv->key || !kv->value || !*kv->key || strpbrk(kv->key, " \t\r\n") || has_newline(kv->value))
            return fail(FDL_BROKER_ERR_ARG, err, cap, "plugin option %zu: key without blanks and a one-line value", i);
    }
    return FDL_BROKER_OK;
}

fdl_broker_status fdl_broker_start(const fdl_broker_opts *o, fdl_broker **out, char *err, size_t errcap)
{
    fdl_broker_status st = FDL_BROKER_ERR_ARG;
    fdl_broker_opts eff;
    struct in_addr addr;
    fdl_broker *b = NULL;
    unsigned attempts;

    if (err && errcap)
        err[0] = '\0';
    if (!o || !out)
        return fail(FDL_BROKER_ERR_ARG, err, errcap, "opts and out are required");
    *out = NULL;
    if ((st = check_opts(o, &eff, &addr, err, errcap)) != FDL_BROKER_OK)
        goto cleanup;
    if (fdl_mkdir_p(eff.dir, 0700) != 0) {
        st = fail(FDL_BROKER_ERR_IO, err, errcap, "mkdir %s: %s", eff.dir, strerror(errno));
        goto cleanup;
    }
    b = fdl_calloc(1, sizeof *b);
    if (!b) {
        st = fail(FDL_BROKER_ERR_NOMEM, err, errcap, "fdl_broker");
        goto cleanup;
    }
    b->slot = -1;
    b->exit_status = -1;
    b->stop_timeout_ms = eff.stop_timeout_ms;
    snprintf(b->host, sizeof b->host, "%s", eff.host);
    b->dir = fdl_strdup(eff.dir);
    b->conf_path = dup_path(eff.dir, FDL_BROKER_CONF);
    b->log_path = dup_path(eff.dir, FDL_BROKER_LOG);
    if (!b->dir || !b->conf_path || !b->log_path) {
        st = fail(FDL_BROKER_ERR_NOMEM, err, errcap, "fdl_broker paths");
        goto cleanup;
    }

    /* Port 0: learn a free port, then start; if another process takes it in
     * between (EADDRINUSE in the broker log), try again with a new one. */
    attempts = eff.port ? 1 : FDL_BROKER_PORT_ATTEMPTS;
    for (unsigned i = 0; i < attempts; i++) {
        int taken = 0;
        b->port = eff.port ? eff.port : pick_port(&addr);
        if (b->port == 0) {
            st = fail(FDL_BROKER_ERR_PORT, err, errcap, "no free port on %s", b->host);
            goto cleanup;
        }
        if ((st = write_conf(&eff, b, err, errcap)) != FDL_BROKER_OK)
            goto cleanup;
        st = spawn_and_wait(b, &eff, &addr, &taken, err, errcap);
        if (st == FDL_BROKER_OK)
            break;
        if (st == FDL_BROKER_ERR_EXITED && taken) {
            st = FDL_BROKER_ERR_PORT;
            continue;
        }
        goto cleanup;
    }
    if (st != FDL_BROKER_OK)
        goto cleanup;
    *out = b;
    b = NULL;
cleanup:
    fdl_broker_free(b);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Stopping.                                                                                 */

fdl_broker_status fdl_broker_stop(fdl_broker *b)
{
    if (!b || b->pid <= 0)
        return FDL_BROKER_OK;
    if (!child_exited(b->pid)) {
        double deadline = now_ms() + b->stop_timeout_ms;
        kill(b->pid, SIGTERM);
        while (!child_exited(b->pid) && now_ms() < deadline)
            sleep_ms(POLL_MS);
        if (!child_exited(b->pid))
            kill(b->pid, SIGKILL); /* reap() below then waits for the kernel to finish it */
    }
    reap(b);
    return FDL_BROKER_OK;
}

int fdl_broker_running(fdl_broker *b)
{
    if (!b || b->pid <= 0)
        return 0;
    if (child_exited(b->pid)) {
        reap(b);
        return 0;
    }
    return 1;
}

void fdl_broker_free(fdl_broker *b)
{
    if (!b)
        return;
    fdl_broker_stop(b);
    reg_remove(b);
    fdl_free(b->dir);
    fdl_free(b->conf_path);
    fdl_free(b->log_path);
    fdl_free(b);
}

const char *fdl_broker_host(const fdl_broker *b)
{
    return b->host;
}

uint16_t fdl_broker_port(const fdl_broker *b)
{
    return b->port;
}

pid_t fdl_broker_pid(const fdl_broker *b)
{
    return b->pid;
}

const char *fdl_broker_conf_path(const fdl_broker *b)
{
    return b->conf_path;
}

const char *fdl_broker_log_path(const fdl_broker *b)
{
    return b->log_path;
}

double fdl_broker_ready_ms(const fdl_broker *b)
{
    return b->ready_ms;
}

int fdl_broker_exit_status(const fdl_broker *b)
{
    return b->pid > 0 ? -1 : b->exit_status;
}
