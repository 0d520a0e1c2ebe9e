/*
 * sim/broker.h — runs the real Mosquitto broker (FDL_MOSQUITTO_BIN) as a child process.
 *
 * fdl_broker_start writes <dir>/mosquitto.conf (docs/broker.md explains each
 * line), spawns mosquitto on it and returns once the broker is ready: its log
 * says the listener is open and a TCP connect to the port is accepted. The
 * listener is MQTT over TLS 1.3 only (unless tls_min_version says otherwise), with client certificates required and the
 * certificate's CN used as the MQTT username; nothing listens in plaintext.
 *
 * The child is made hard to orphan:
 *   - PR_SET_PDEATHSIG(SIGTERM): the kernel stops the broker when the thread
 *     that started it dies, even by SIGKILL. Note "thread": start the broker
 *     from a thread that lives as long as the broker (the main thread).
 *   - its own process group, so a terminal's Ctrl-C reaches fleetdrill only and
 *     fleetdrill stops the broker in order (devices first, then the broker);
 *   - a registry of running brokers for fdl_broker_stop_all (atexit) and
 *     fdl_broker_signal_all (signal handlers).
 * Its RLIMIT_NOFILE soft limit is raised to the hard limit so that 10,000+
 * connections fit; file descriptors of the parent (device sockets, ...) are
 * closed in the child.
 *
 * Readiness cost (loopback, idle machine): the broker is usually ready in
 * 10-30 ms; the default timeout is 10 s. The readiness probe is one TCP
 * connection closed at once, which the broker logs as a client that closed
 * before CONNECT.
 *
 * Threads: one fdl_broker is used by one thread at a time. fdl_broker_stop_all
 * and fdl_broker_signal_all may be called from any thread.
 * Do not set SIGCHLD to SIG_IGN in the process: the broker must stay reapable.
 */
#ifndef FDL_BROKER_H
#define FDL_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum fdl_broker_status {
    FDL_BROKER_OK = 0,
    FDL_BROKER_ERR_ARG,     /* missing file, bad host, newline in a config value, ... */
    FDL_BROKER_ERR_NOMEM,
    FDL_BROKER_ERR_IO,      /* the directory, config or log could not be written */
    FDL_BROKER_ERR_PORT,    /* the requested port is taken, or no free port after retries */
    FDL_BROKER_ERR_SPAWN,   /* fork failed */
    FDL_BROKER_ERR_EXITED,  /* the broker exited before it was ready (err has its last log lines) */
    FDL_BROKER_ERR_TIMEOUT, /* not ready in time; the broker was killed (err has its last log lines) */
} fdl_broker_status;

/* Static string; never NULL. */
const char *fdl_broker_strerror(fdl_broker_status st);

/* File names inside opts.dir. */
#define FDL_BROKER_CONF "mosquitto.conf"
#define FDL_BROKER_LOG "mosquitto.log"

/* Defaults (fdl_broker_opts_init), with their reasons. */
/* Readiness: mosquitto is ready in tens of ms; 10 s covers a loaded CI machine. */
#define FDL_BROKER_READY_TIMEOUT_MS 10000u
/* Graceful stop: mosquitto closes its clients and exits well under 1 s; SIGKILL after this. */
#define FDL_BROKER_STOP_TIMEOUT_MS 3000u
/* Port 0: how many free ports to try when another process grabs ours first. */
#define FDL_BROKER_PORT_ATTEMPTS 5u
/* Seconds; the longest keepalive a client may ask for (AWS IoT Core's cap). A
 * dead connection holds its slot for up to 1.5 x this. */
#define FDL_BROKER_MAX_KEEPALIVE_S 1200u
/* Bytes; the largest MQTT packet accepted. Our largest message (a signed job
 * document) is far below; the cap bounds what a hostile client makes the broker buffer. */
#define FDL_BROKER_MAX_PACKET 262144u
/* Brokers one process can track for stop_all / signal_all. */
#define FDL_BROKER_MAX_TRACKED 16

/* One extra plugin option: written as "plugin_opt_<key> <value>". */
typedef struct fdl_broker_kv {
    const char *key;
    const char *value;
} fdl_broker_kv;

/*
 * What to run. Every string is borrowed for the duration of fdl_broker_start
 * only (the broker copies what it keeps). No value may contain a newline
 * (FDL_BROKER_ERR_ARG): the config is line-oriented and a newline would inject
 * a directive. Call fdl_broker_opts_init first, then set fields.
 */
typedef struct fdl_broker_opts {
    const char *dir;              /* required; created (0700) if missing; holds conf + log */
    const char *bin;              /* mosquitto executable; default FDL_MOSQUITTO_BIN */
    const char *host;             /* IPv4 address to bind; default "127.0.0.1" */
    uint16_t port;                /* 0 (default): pick a free one */
    const char *cafile;           /* required: trust for client certificates (chain.pem) */
    const char *certfile;         /* required: server certificate (server.pem) */
    const char *keyfile;          /* required: server key (server-key.pem) */
    const char *crlfile;          /* optional CRL (PEM) for client certificates */
    const char *user;             /* account mosquitto switches to when started as root;
                                     NULL (default): stay the user fleetdrill runs as, who
                                     owns the 0600 key and the 0700 state directory */
    bool per_listener_settings;   /* default false: one security policy for the broker */
    unsigned max_keepalive_s;     /* default FDL_BROKER_MAX_KEEPALIVE_S */
    unsigned max_packet_size;     /* default FDL_BROKER_MAX_PACKET */
    const char *acl_file;         /* optional mosquitto ACL file */
    const char *plugin;           /* optional plugin .so (the fleetdrill auth plugin) */
    const fdl_broker_kv *plugin_opts; /* n_plugin_opts entries, for the plugin */
    size_t n_plugin_opts;
    const char *extra_conf;       /* optional text appended verbatim (may hold newlines) */
    const char *tls_min_version;  /* NULL (default) or "tlsv1.3": TLS 1.3 only; "tlsv1.2": also
                                     accept TLS 1.2 — the ablation "tls13-only" off, for drills */
    unsigned ready_timeout_ms;    /* default FDL_BROKER_READY_TIMEOUT_MS */
    unsigned stop_timeout_ms;     /* default FDL_BROKER_STOP_TIMEOUT_MS */
} fdl_broker_opts;

typedef struct fdl_broker fdl_broker;

/* Fills o with the defaults above (and NULL for everything required). */
void fdl_broker_opts_init(fdl_broker_opts *o);

/*
 * Writes the config, starts mosquitto and waits until it is ready.
 * On success *out (ownership passes to the caller: fdl_broker_free) is a
 * running broker. On failure *out is NULL, no broker process is left, and err
 * (err may be NULL; errcap bytes, always NUL-terminated when errcap > 0) says
 * why — for ERR_EXITED / ERR_TIMEOUT including the last lines of the broker log.
 * The log file is truncated at each start.
 */
fdl_broker_status fdl_broker_start(const fdl_broker_opts *o, fdl_broker **out, char *err, size_t errcap);

/*
 * Stops the broker: SIGTERM, up to stop_timeout_ms for it to exit, then
 * SIGKILL; reaps it. Idempotent: stopping a stopped (or crashed) broker is
 * FDL_BROKER_OK. Afterwards fdl_broker_pid() is 0 and the accessors still work.
 */
fdl_broker_status fdl_broker_stop(fdl_broker *b);

/* Stops the broker if it runs, then frees; fdl_broker_free(NULL) is a no-op. */
void fdl_broker_free(fdl_broker *b);

/* 1 while the broker process runs; reaps it and returns 0 once it has exited. */
int fdl_broker_running(fdl_broker *b);

/* Borrowed strings valid until fdl_broker_free. */
const char *fdl_broker_host(const fdl_broker *b);
uint16_t fdl_broker_port(const fdl_broker *b);
pid_t fdl_broker_pid(const fdl_broker *b);   /* 0 once stopped */
const char *fdl_broker_conf_path(const fdl_broker *b);
const char *fdl_broker_log_path(const fdl_broker *b);
/* Milliseconds from spawn to ready (for reports and tuning). */
double fdl_broker_ready_ms(const fdl_broker *b);
/* How the stopped broker ended, as a waitpid status; -1 while running or unknown. */
int fdl_broker_exit_status(const fdl_broker *b);

/*
 * Stops every broker this process started and has not freed (fdl_broker_stop
 * on each, so waits up to their stop timeouts). Not async-signal-safe; safe
 * from an atexit handler: atexit(fdl_broker_stop_all).
 */
void fdl_broker_stop_all(void);

/*
 * Async-signal-safe: for SIGINT/SIGTERM handlers. Sends sig to every tracked
 * broker (reads lock-free atomics and calls kill(); errno is preserved). It
 * does not wait or reap: the main flow still calls fdl_broker_stop/free, which
 * then finds the broker exiting or gone.
 */
void fdl_broker_signal_all(int sig);

/* Async-signal-safe: kill(pid, sig) if pid > 0, errno preserved. For a
 * handler that kept fdl_broker_pid() in a volatile variable. */
void fdl_broker_kill_from_signal(pid_t pid, int sig);

#endif /* FDL_BROKER_H */
