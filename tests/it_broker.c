/* tests/it_broker.c — a real Mosquitto on loopback: TLS 1.3 + client certs only, clean stop, no orphans. */
#include "testutil.h"

#include "cloud/pki.h"
#include "devices/se.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

/* One fleet PKI, a rogue PKI, and client identities from each, shared by all tests. */
typedef struct fixture {
    char base[256];
    char pki[512], rogue[512];
    char root[600], chain[600], server[600], server_key[600];
    char client[600], client_key[600];         /* dev-000001 from our CA */
    char rogue_client[600], rogue_client_key[600];
} fixture;

static fixture fx;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void write_client(fdl_pki *pki, const char *id, const char *cert_path, const char *key_path,
                         mbedtls_ctr_drbg_context *drbg)
{
    mbedtls_pk_context key;
    unsigned char pem[2048];

    mbedtls_pk_init(&key);
    assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), mbedtls_ctr_drbg_random,
                                         drbg),
                     0);
    assert_int_equal(mbedtls_pk_write_key_pem(&key, pem, sizeof pem), 0);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    fchmod(fileno(f), 0600);
    fputs((char *)pem, f);
    fclose(f);

    fdl_pki_leaf_req req = {.device_id = id, .public_key = &key};
    assert_int_equal(fdl_pki_issue_file(pki, &req, cert_path, NULL), FDL_PKI_OK);
    mbedtls_pk_free(&key);
}

static int group_setup(void **state)
{
    (void)state;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);

    fdl_test_mkdtemp("broker", fx.base, sizeof fx.base);
    snprintf(fx.pki, sizeof fx.pki, "%s/pki", fx.base);
    snprintf(fx.rogue, sizeof fx.rogue, "%s/rogue", fx.base);
    /* The fleet CA as in production: CA keys in a SoftHSM2 token. The rogue CA,
     * as an attacker would have it: software keys, the same names. */
    char conf[600];
    fdl_se_module *se = NULL;
    fdl_pki *ours = NULL, *theirs = NULL;
    fdl_test_softhsm_conf(fx.base, conf, sizeof conf);
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, conf, &se), FDL_SE_OK);
    if (fdl_pki_setup(se, fx.pki, NULL) != FDL_PKI_OK || fdl_pki_open(se, fx.pki, &ours) != FDL_PKI_OK)
        fail_msg("fleet PKI: %s", fdl_pki_last_error());
    assert_int_equal(fdl_pki_setup_soft(fx.rogue, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_open_soft(fx.rogue, &theirs), FDL_PKI_OK);
    snprintf(fx.root, sizeof fx.root, "%s/%s", fx.pki, FDL_PKI_ROOT_PEM);
    snprintf(fx.chain, sizeof fx.chain, "%s/%s", fx.pki, FDL_PKI_CHAIN_PEM);
    snprintf(fx.server, sizeof fx.server, "%s/%s", fx.pki, FDL_PKI_SERVER_PEM);
    snprintf(fx.server_key, sizeof fx.server_key, "%s/%s", fx.pki, FDL_PKI_SERVER_KEY_PEM);
    snprintf(fx.client, sizeof fx.client, "%s/client.pem", fx.base);
    snprintf(fx.client_key, sizeof fx.client_key, "%s/client-key.pem", fx.base);
    snprintf(fx.rogue_client, sizeof fx.rogue_client, "%s/rogue-client.pem", fx.base);
    snprintf(fx.rogue_client_key, sizeof fx.rogue_client_key, "%s/rogue-client-key.pem", fx.base);
    write_client(ours, "dev-000001", fx.client, fx.client_key, &drbg);
    /* The rogue CA mints a certificate for the very same device id. */
    write_client(theirs, "dev-000001", fx.rogue_client, fx.rogue_client_key, &drbg);
    fdl_pki_free(theirs);
    fdl_pki_free(ours);
    fdl_se_module_free(se);

    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    /* FDL_TEST_KEEP=1 keeps the PKI, configs and broker logs for a post-mortem. */
    if (!getenv("FDL_TEST_KEEP"))
        fdl_test_rmrf(fx.base);
    else
        fprintf(stderr, "kept %s\n", fx.base);
    return 0;
}

static void broker_opts(fdl_broker_opts *o, const char *subdir, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", fx.base, subdir);
    fdl_broker_opts_init(o);
    o->dir = dir;
    o->cafile = fx.chain;
    o->certfile = fx.server;
    o->keyfile = fx.server_key;
}

static fdl_broker *start(const char *subdir)
{
    char dir[600], err[4096];
    fdl_broker_opts o;
    fdl_broker *b = NULL;
    broker_opts(&o, subdir, dir, sizeof dir);
    fdl_broker_status st = fdl_broker_start(&o, &b, err, sizeof err);
    if (st != FDL_BROKER_OK)
        fail_msg("fdl_broker_start: %s: %s", fdl_broker_strerror(st), err);
    return b;
}

/* Runs a shell command; returns its exit status, its output (stdout+stderr) in out. */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int tcp_accepts(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* ---------------------------------------------------------------------------------------- */

static void serves_tls13_with_client_certs_only(void **state)
{
    (void)state;
    char out[16384];
    fdl_broker *b = start("b1");
    uint16_t port = fdl_broker_port(b);
    pid_t pid = fdl_broker_pid(b);
    print_message("broker pid %d on %s:%u ready in %.1f ms\n", (int)pid, fdl_broker_host(b), port,
                  fdl_broker_ready_ms(b));
    assert_true(pid > 0);
    assert_true(port > 0);
    assert_string_equal(fdl_broker_host(b), "127.0.0.1");
    assert_int_equal(getpgid(pid), pid);
    assert_true(tcp_accepts(port));

    /* The generated config says what we promise. */
    char *conf = slurp(fdl_broker_conf_path(b));
    assert_non_null(conf);
    char listener[64];
    snprintf(listener, sizeof listener, "\nlistener %u 127.0.0.1\n", port);
    assert_non_null(strstr(conf, listener));
    assert_non_null(strstr(conf, "\ntls_version tlsv1.3\n"));
    assert_non_null(strstr(conf, "\nrequire_certificate true\n"));
    assert_non_null(strstr(conf, "\nuse_identity_as_username true\n"));
    assert_non_null(strstr(conf, "\nallow_anonymous false\n"));
    free(conf);

    /* RLIMIT_NOFILE was raised to the hard limit in the broker. */
    char lim[128];
    snprintf(lim, sizeof lim, "/proc/%d/limits", (int)pid);
    char *limits = slurp(lim);
    assert_non_null(limits);
    unsigned long soft = 0, hard = 0;
    char *line = strstr(limits, "Max open files");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "Max open files %lu %lu", &soft, &hard), 2);
    assert_int_equal(soft, hard);
    free(limits);

    /* TLS 1.2 is refused, even with a valid client certificate. */
    int rc = sh(out, sizeof out,
                "openssl s_client -connect 127.0.0.1:%u -tls1_2 -brief -CAfile '%s' -cert '%s' -key '%s' "
                "</dev/null",
                port, fx.chain, fx.client, fx.client_key);
    if (rc == 0 || strstr(out, "Protocol version: TLSv1.2") || !strstr(out, "protocol version"))
        fail_msg("TLS 1.2 was not refused with a protocol_version alert (rc %d):\n%s", rc, out);

    /* TLS 1.3 with a certificate from our CA: handshake completes, and the server
     * verifies against the root alone, as devices pin it (the broker sends the
     * intermediate: OpenSSL builds the chain from cafile = chain.pem). */
    rc = sh(out, sizeof out,
            "openssl s_client -connect 127.0.0.1:%u -tls1_3 -brief -verify_return_error -verify_hostname "
            "localhost -CAfile '%s' -cert '%s' -key '%s' </dev/null",
            port, fx.root, fx.client, fx.client_key);
    if (rc != 0 || !strstr(out, "Protocol version: TLSv1.3") || !strstr(out, "Verification: OK"))
        fail_msg("TLS 1.3 handshake failed (rc %d):\n%s", rc, out);

    /* A full MQTT exchange with that identity; the broker takes the CN as username,
     * whatever username the client claims. */
    rc = sh(out, sizeof out,
            "mosquitto_pub -h 127.0.0.1 -p %u --tls-version tlsv1.3 --cafile '%s' --cert '%s' --key '%s' "
            "-i dev-000001 -u dev-999999 -P x -t telemetry/dev-000001 -m hello -q 1",
            port, fx.chain, fx.client, fx.client_key);
    if (rc != 0)
        fail_msg("mosquitto_pub with a fleet certificate failed (rc %d):\n%s", rc, out);

    /* No client certificate: refused (the server aborts the handshake). */
    rc = sh(out, sizeof out,
            "mosquitto_pub -h 127.0.0.1 -p %u --tls-version tlsv1.3 --cafile '%s' -i nocert -t t -m x -q 1",
            port, fx.chain);
    if (rc == 0)
        fail_msg("a client without a certificate published:\n%s", out);
    rc = sh(out, sizeof out,
            "(sleep 1; printf '\\020\\014\\000\\004MQTT\\004\\002\\000\\074\\000\\000') | "
            "openssl s_client -connect 127.0.0.1:%u -tls1_3 -quiet -CAfile '%s'",
            port, fx.chain);
    /* In TLS 1.3 the client finishes its side first; the refusal is the server's
     * certificate_required alert (116) when the client's first record arrives. */
    if (rc == 0 || !strstr(out, "alert certificate required"))
        fail_msg("no-certificate TLS client was not refused (rc %d):\n%s", rc, out);

    /* A certificate for the same device id from the rogue CA: refused. */
    rc = sh(out, sizeof out,
            "mosquitto_pub -h 127.0.0.1 -p %u --tls-version tlsv1.3 --cafile '%s' --cert '%s' --key '%s' "
            "-i dev-000001 -t telemetry/dev-000001 -m x -q 1",
            port, fx.chain, fx.rogue_client, fx.rogue_client_key);
    if (rc == 0)
        fail_msg("a rogue-CA client published:\n%s", out);

    /* Plaintext MQTT on the TLS port: no CONNACK ever comes back. */
    rc = sh(out, sizeof out, "mosquitto_pub -h 127.0.0.1 -p %u -i plain -t t -m x -q 1", port);
    assert_int_not_equal(rc, 0);

    /* The log has timestamps, the listener, and the authenticated username. */
    char *log = slurp(fdl_broker_log_path(b));
    assert_non_null(log);
    char want[96];
    snprintf(want, sizeof want, "Opening ipv4 listen socket on port %u.", port);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "u'dev-000001'"));
    assert_null(strstr(log, "u'dev-999999'"));
    assert_true(log[0] >= '2' && log[4] == '-' && log[10] == 'T'); /* 2026-..T..: ISO 8601 */
    free(log);

    /* Stop: no process left; stopping again is fine. */
    double t0 = now_ms();
    assert_int_equal(fdl_broker_stop(b), FDL_BROKER_OK);
    print_message("stop took %.1f ms\n", now_ms() - t0);
    assert_true(gone(pid));
    assert_int_equal(fdl_broker_pid(b), 0);
    assert_true(WIFEXITED(fdl_broker_exit_status(b)));
    assert_int_equal(fdl_broker_stop(b), FDL_BROKER_OK);
    assert_int_equal(fdl_broker_running(b), 0);
    assert_false(tcp_accepts(port));
    fdl_broker_free(b);
}

/* A parent that dies by SIGKILL takes its broker with it (PR_SET_PDEATHSIG). */
static void broker_dies_with_killed_parent(void **state)
{
    (void)state;
    int pfd[2];
    /* Orphans are re-parented to us, so we can reap the broker and read how it ended. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    assert_int_equal(pipe(pfd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char dir[600], err[4096];
        fdl_broker_opts o;
        fdl_broker *b = NULL;
        close(pfd[0]);
        broker_opts(&o, "b-orphan", dir, sizeof dir);
        int pid = -1;
        if (fdl_broker_start(&o, &b, err, sizeof err) == FDL_BROKER_OK)
            pid = (int)fdl_broker_pid(b);
        else
            fprintf(stderr, "child: %s\n", err);
        if (write(pfd[1], &pid, sizeof pid) != sizeof pid)
            _exit(2);
        for (;;)
            pause();
    }
    close(pfd[1]);
    int bpid = -1;
    assert_int_equal(read(pfd[0], &bpid, sizeof bpid), (ssize_t)sizeof bpid);
    close(pfd[0]);
    if (bpid <= 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fail_msg("the child could not start its broker");
    }
    assert_int_equal(kill(bpid, 0), 0);

    assert_int_equal(kill(child, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    double t0 = now_ms();

    /* The broker must exit on its own within a couple of seconds. */
    pid_t r = 0;
    while ((r = waitpid(bpid, &st, WNOHANG)) == 0 && now_ms() - t0 < 3000)
        usleep(10000);
    if (r != bpid) {
        kill(bpid, SIGKILL);
        waitpid(bpid, NULL, 0);
        fail_msg("broker %d survived its parent for 3 s", bpid);
    }
    print_message("orphaned broker exited %.1f ms after its parent was killed (status 0x%x)\n", now_ms() - t0,
                  (unsigned)st);
    assert_true(gone(bpid));
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

/* A broker that cannot start reports why, with its own words. */
static void early_exit_reports_log(void **state)
{
    (void)state;
    char dir[600], err[4096];
    fdl_broker_opts o;
    fdl_broker *b = NULL;
    broker_opts(&o, "b-bad", dir, sizeof dir);
    o.keyfile = fx.chain; /* a certificate where the key should be */
    double t0 = now_ms();
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_EXITED);
    print_message("early exit detected in %.1f ms: %s\n", now_ms() - t0, err);
    assert_null(b);
    assert_non_null(strstr(err, "last lines of"));
    assert_non_null(strstr(err, "key"));

    /* The port is taken by someone else: ERR_PORT, with the broker's complaint. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 1), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    broker_opts(&o, "b-busy", dir, sizeof dir);
    o.port = ntohs(a.sin_port);
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_PORT);
    assert_non_null(strstr(err, "Address already in use"));
    close(s);

    /* Options that would inject config lines, or miss a file. */
    broker_opts(&o, "b-arg", dir, sizeof dir);
    o.acl_file = "/tmp/x\nallow_anonymous true";
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_ARG);
    broker_opts(&o, "b-arg", dir, sizeof dir);
    o.cafile = "/nonexistent/chain.pem";
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_ARG);
    broker_opts(&o, "b-arg", dir, sizeof dir);
    o.host = "localhost";
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_ARG);
    fdl_broker_kv bad_kv = {"a b", "c"};
    broker_opts(&o, "b-arg", dir, sizeof dir);
    o.plugin_opts = &bad_kv;
    o.n_plugin_opts = 1;
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_ARG);
    assert_null(b);
    assert_string_equal(fdl_broker_strerror(FDL_BROKER_ERR_PORT), "broker port unavailable");
    fdl_broker_free(NULL);
}

/* Writes an executable shell script; the stand-ins below play a broker that misbehaves. */
static void write_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    assert_int_equal(chmod(path, 0700), 0);
}

/* A broker that ignores SIGTERM is SIGKILLed after stop_timeout_ms; one that
 * never gets ready is killed at the ready timeout. */
static void stop_escalates_and_ready_times_out(void **state)
{
    (void)state;
    char stubborn[700], silent[700], dir[600], err[4096], pidfile[700];
    fdl_broker_opts o;
    fdl_broker *b = NULL;

    snprintf(stubborn, sizeof stubborn, "%s/fake-stubborn", fx.base);
    write_script(stubborn,
                 "#!/bin/sh\n"
                 "port=$(sed -n 's/^listener \\([0-9]*\\) .*/\\1/p' \"$2\")\n"
                 "exec /usr/bin/python3 -c '\n"
                 "import signal, socket, sys, time\n"
                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                 "s = socket.socket()\n"
                 "s.bind((\"127.0.0.1\", int(sys.argv[1])))\n"
                 "s.listen(16)\n"
                 "print(\"Opening ipv4 listen socket on port %s.\" % sys.argv[1])\n"
                 "print(\"mosquitto version fake running\", flush=True)\n"
                 "while True: time.sleep(1)\n"
                 "' \"$port\"\n");
    broker_opts(&o, "b-stubborn", dir, sizeof dir);
    o.bin = stubborn;
    o.stop_timeout_ms = 300;
    if (fdl_broker_start(&o, &b, err, sizeof err) != FDL_BROKER_OK)
        fail_msg("stubborn stand-in did not start: %s", err);
    pid_t pid = fdl_broker_pid(b);
    double t0 = now_ms();
    assert_int_equal(fdl_broker_stop(b), FDL_BROKER_OK);
    double took = now_ms() - t0;
    print_message("SIGTERM ignored: SIGKILL after %.0f ms\n", took);
    assert_true(took >= 290);
    assert_true(WIFSIGNALED(fdl_broker_exit_status(b)));
    assert_int_equal(WTERMSIG(fdl_broker_exit_status(b)), SIGKILL);
    assert_true(gone(pid));
    fdl_broker_free(b);

    snprintf(silent, sizeof silent, "%s/fake-silent", fx.base);
    write_script(silent, "#!/bin/sh\necho $$ > \"$(dirname \"$2\")/fake.pid\"\nexec sleep 100\n");
    broker_opts(&o, "b-silent", dir, sizeof dir);
    o.bin = silent;
    o.ready_timeout_ms = 300;
    b = NULL;
    assert_int_equal(fdl_broker_start(&o, &b, err, sizeof err), FDL_BROKER_ERR_TIMEOUT);
    assert_null(b);
    assert_non_null(strstr(err, "not ready after 300 ms"));
    snprintf(pidfile, sizeof pidfile, "%s/fake.pid", dir);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int spid = 0;
    assert_int_equal(fscanf(f, "%d", &spid), 1);
    fclose(f);
    assert_true(gone((pid_t)spid));
}

/* The atexit and signal-handler paths. */
static void stop_all_and_signal_all(void **state)
{
    (void)state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    fdl_broker *b1 = start("b-all-1");
    /* The second one with per-listener security and extra config text: mosquitto must accept both. */
    char dir[600], err[4096];
    fdl_broker_opts o;
    fdl_broker *b2 = NULL;
    broker_opts(&o, "b-all-2", dir, sizeof dir);
    o.per_listener_settings = true;
    o.extra_conf = "# appended by the test\nmax_queued_messages 100";
    if (fdl_broker_start(&o, &b2, err, sizeof err) != FDL_BROKER_OK)
        fail_msg("per_listener_settings broker: %s", err);
    pid_t p1 = fdl_broker_pid(b1), p2 = fdl_broker_pid(b2);
    assert_int_not_equal(fdl_broker_port(b1), fdl_broker_port(b2));

    /* What a SIGINT handler would do: signal only; the main flow reaps. */
    fdl_broker_signal_all(SIGTERM);
    double t0 = now_ms();
    while ((fdl_broker_running(b1) || fdl_broker_running(b2)) && now_ms() - t0 < 3000)
        usleep(5000);
    assert_int_equal(fdl_broker_running(b1), 0);
    assert_int_equal(fdl_broker_running(b2), 0);
    assert_true(gone(p1));
    assert_true(gone(p2));
    /* Signalling again after the reap touches nobody. */
    fdl_broker_signal_all(SIGTERM);
    fdl_broker_free(b1);
    fdl_broker_free(b2);

    /* What an atexit handler would do. */
    b1 = start("b-all-3");
    p1 = fdl_broker_pid(b1);
    fdl_broker_kill_from_signal(0, SIGTERM); /* pid 0 is ignored, never "my process group" */
    assert_int_equal(kill(p1, 0), 0);
    fdl_broker_stop_all();
    assert_int_equal(fdl_broker_pid(b1), 0);
    assert_true(gone(p1));
    fdl_broker_free(b1);

    fdl_alloc_stats z = fdl_alloc_get_stats();
    assert_int_equal(z.allocs - a.allocs, z.frees - a.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serves_tls13_with_client_certs_only),
        cmocka_unit_test(broker_dies_with_killed_parent),
        cmocka_unit_test(early_exit_reports_log),
        cmocka_unit_test(stop_escalates_and_ready_times_out),
        cmocka_unit_test(stop_all_and_signal_all),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
