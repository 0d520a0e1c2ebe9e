/* sim/cli.c — fleetdrill subcommands: pki, device, provision, run, bench (see cli.h). */
#include "sim/cli.h"

#include "cloud/provisioning.h"
#include "sim/cloudrun.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/broker.h"
#include "sim/context.h"
#include "sim/drillenv.h"
#include "sim/fdl_log.h"
#include "sim/fleet.h"
#include "sim/json.h"
#include "sim/metrics.h"
#include "sim/progress.h"

static volatile sig_atomic_t g_signals;

static void on_signal(int sig)
{
    (void)sig;
    g_signals++;
    fdl_fleet_request_stop();
    if (g_signals >= 2) {
        /* Second Ctrl-C: do not wait for a graceful stop, but never orphan the broker. */
        fdl_broker_signal_all(SIGKILL);
        _exit(FDL_EXIT_INTERRUPTED);
    }
}

void fdl_cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Every other way out of the process (exit() on an error path) stops the broker too. */
    atexit(fdl_broker_stop_all);
}

static void usage(FILE *out)
{
    fprintf(out,
            "fleetdrill %s — fleet simulator and security test harness\n\n"
            "usage: fleetdrill <command> [options]\n\n"
            "commands:\n"
            "  run --devices N --duration S   provision, start the broker, run N devices for S seconds\n"
            "  provision --devices N          create missing device identities (token + key + certificate)\n"
            "  pki init                       create the fleet CA (root + issuing CA in a token, broker cert)\n"
            "  device show ID [--json]        where a device's certificate, key (PKCS#11 URI) and PIN are\n"
            "  bench connect --devices N      connect N devices as fast as possible and print rates\n"
            "  revoke DEVICE                  deny-all policy, certificates revoked, live connection dropped\n"
            "  audit [--json]                 audit the registry: wildcard/shared policies, expiring and\n"
            "                                 revoked-but-connected certificates, PII in subjects\n"
            "  drill PATH... [--junit F ...]  run Lua scenario drills, judge each attack from its evidence,\n"
            "                                 report (table, JSON, JUnit, HTML, history); CI gate --min-pass\n"
            "  matrix [PATH...]               every drill once per defence switched off: attack x layer matrix\n"
            "  report --compare PREVIOUS      what changed since an earlier drill (history database)\n"
            "  fw build|sign|inspect|keys|keyring  firmware images, their signing keys (offline token),\n"
            "                                 keyrings; inspect shows a parsed header and its signer\n\n"
            "common options:\n"
            "  --state DIR     state directory (default $FLEETDRILL_STATE or ./.fleetdrill)\n"
            "  -h, --help      help for a command\n\n"
            "see docs/usage.md for every option.\n",
            FDL_VERSION);
}

static int parse_u32(const char *s, uint32_t *out, uint32_t min, uint32_t max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *s, double *out, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

#define FAIL_USAGE(...)                                                                                           \
    do {                                                                                                          \
        fprintf(stderr, "fleetdrill: " __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                                      \
        return FDL_EXIT_USAGE;                                                                                    \
    } while (0)

/* ---- pki ------------------------------------------------------------------ */

int fdl_cmd_pki(int argc, char **argv)
{
    const char *state = fdl_default_state_dir();
    static const struct option opts[] = {{"state", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0}};
    if (argc < 2 || strcmp(argv[1], "init") != 0)
        FAIL_USAGE("usage: fleetdrill pki init [--state DIR]");
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 's')
            state = optarg;
        else if (c == 'h') {
            puts("usage: fleetdrill pki init [--state DIR]\n"
                 "Creates (once) the fleet CA: offline root and issuing intermediate (P-256, keys generated\n"
                 "inside the CA token) and the broker's server certificate.");
            return 0;
        } else
            return FDL_EXIT_USAGE;
    }
    char err[512];
    fdl_ctx ctx;
    if (fdl_ctx_open(&ctx, state, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return FDL_EXIT_ERROR;
    }
    printf("fleet CA ready in %s\n", ctx.st.pki_dir);
    printf("  root:         %s/%s\n", ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    printf("  intermediate: %s/%s\n", ctx.st.pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    printf("  chain:        %s/%s\n", ctx.st.pki_dir, FDL_PKI_CHAIN_PEM);
    printf("  broker cert:  %s/%s\n", ctx.st.pki_dir, FDL_PKI_SERVER_PEM);
    printf("  CA keys:      token \"%s\" (SOFTHSM2_CONF=%s)\n", FDL_PKI_TOKEN_LABEL, ctx.st.hsm_conf);
    printf("verify: openssl verify -CAfile %s/%s -untrusted %s/%s %s/%s\n", ctx.st.pki_dir, FDL_PKI_ROOT_PEM,
           ctx.st.pki_dir, FDL_PKI_INTERMEDIATE_PEM, ctx.st.pki_dir, FDL_PKI_SERVER_PEM);
    fdl_ctx_close(&ctx);
    return 0;
}

/* ---- provisioning ----------------------------------------------------------- */

int fdl_cmd_provision(int argc, char **argv)
{
    const char *state = fdl_default_state_dir();
    uint32_t n = 0, first = 0;
    fdl_profile profile = FDL_PROFILE_SE;
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"devices", required_argument, 0, 'n'},
                                         {"first", required_argument, 0, 'f'},
                                         {"profile", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'n':
            if (parse_u32(optarg, &n, 1, 1000000))
                FAIL_USAGE("--devices wants a number from 1 to 1000000");
            break;
        case 'f':
            if (parse_u32(optarg, &first, 0, 999999))
                FAIL_USAGE("--first wants a number from 0 to 999999");
            break;
        case 'p':
            if (fdl_profile_parse(optarg, &profile))
                FAIL_USAGE("--profile is se or flash");
            break;
        case 'h':
            puts("usage: fleetdrill provision --devices N [--profile se|flash] [--first K] [--state DIR]");
            return 0;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (!n)
        FAIL_USAGE("provision needs --devices N");
    fdl_cli_install_signals();
    char err[512];
    fdl_ctx ctx;
    if (fdl_ctx_open(&ctx, state, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return FDL_EXIT_ERROR;
    }
    uint32_t made;
    int r = fdl_ctx_open_cloud(&ctx, 0, err, sizeof err);
    if (r != 0)
        fprintf(stderr, "fleetdrill: %s\n", err);
    else
        r = fdl_drillenv_provision(&ctx, ctx.pki, first, n, profile, &made);
    if (r == 0 && fdl_cloud_prepare_fleet(&ctx, first, n, FDL_PROV_DIRECT, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        r = -1;
    }
    fdl_ctx_close(&ctx);
    if (r == -2)
        return FDL_EXIT_INTERRUPTED;
    return r ? FDL_EXIT_ERROR : 0;
}

/* ---- device show ------------------------------------------------------------- */

/*
 * mosquitto_pub/sub 2.0 call mosquitto_tls_set(), which fopen()s the key argument,
 * before they apply --keyform engine; a PKCS#11 URI then fails as "File not
 * found". An empty file named exactly like the URI (with its PIN) in a private
 * directory lets the check pass; the engine then loads the key from the token.
 */
static int make_key_stub(const fdl_state *st, const char *id, const char *uri, char *dir, size_t cap)
{
    char pinpath[FDL_PATH_MAX], pin[64] = "", name[FDL_PATH_MAX * 2];
    fdl_identity_path(st, id, "cli", dir, cap);
    fdl_identity_path(st, id, "pin", pinpath, sizeof pinpath);
    FILE *f = fopen(pinpath, "re");
    if (!f)
        return -1;
    size_t n = fread(pin, 1, sizeof pin - 1, f);
    fclose(f);
    pin[n] = 0;
    pin[strcspn(pin, "\r\n")] = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(name, sizeof name, "%s/%s;pin-value=%s", dir, uri, pin);
    fdl_wipe(pin, sizeof pin);
    int fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int fdl_cmd_device(int argc, char **argv)
{
    const char *state = fdl_default_state_dir();
    int json = 0;
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    if (argc < 2 || strcmp(argv[1], "show") != 0)
        FAIL_USAGE("usage: fleetdrill device show ID [--json] [--state DIR]");
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 's')
            state = optarg;
        else if (c == 'j')
            json = 1;
        else if (c == 'h') {
            puts("usage: fleetdrill device show ID [--json] [--state DIR]");
            return 0;
        } else
            return FDL_EXIT_USAGE;
    }
    if (optind >= argc)
        FAIL_USAGE("device show needs a device id (e.g. dev-000000)");
    const char *id = argv[optind];
    char err[512];
    fdl_ctx ctx;
    if (fdl_ctx_open(&ctx, state, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return FDL_EXIT_ERROR;
    }
    int rc = FDL_EXIT_ERROR;
    fdl_profile prof;
    if (!fdl_identity_exists(&ctx.st, id) || fdl_identity_profile(&ctx.st, id, &prof) != 0) {
        fprintf(stderr, "fleetdrill: no device %s in %s (provision it with 'fleetdrill provision')\n", id, ctx.st.dir);
        goto out;
    }
    char cert[FDL_PATH_MAX], pin[FDL_PATH_MAX], key[FDL_PATH_MAX], uri[512], ca[FDL_PATH_MAX];
    fdl_identity_path(&ctx.st, id, "cert.pem", cert, sizeof cert);
    fdl_identity_path(&ctx.st, id, "pin", pin, sizeof pin);
    fdl_identity_path(&ctx.st, id, "key.pem", key, sizeof key);
    snprintf(ca, sizeof ca, "%s/%s", ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    uri[0] = 0;
    if (prof == FDL_PROFILE_SE)
        fdl_se_uri(id, FDL_DEVICE_KEY_LABEL, uri, sizeof uri);
    if (json) {
        fdl_json *j = fdl_json_new(1 << 16);
        fdl_json_set_pretty(j, 1);
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "id", id);
        fdl_json_str(j, "profile", fdl_profile_name(prof));
        fdl_json_str(j, "certificate", cert);
        fdl_json_str(j, "ca_file", ca);
        if (prof == FDL_PROFILE_SE) {
            fdl_json_str(j, "key_uri", uri);
            fdl_json_str(j, "token_label", id);
            fdl_json_str(j, "pin_file", pin);
            fdl_json_str(j, "softhsm2_conf", ctx.st.hsm_conf);
            fdl_json_str(j, "pkcs11_module", FDL_SOFTHSM2_MODULE);
            fdl_json_str(j, "openssl_conf", ctx.openssl_cnf);
            char stubdir[FDL_PATH_MAX];
            if (make_key_stub(&ctx.st, id, uri, stubdir, sizeof stubdir) == 0)
                fdl_json_str(j, "mosquitto_cli_dir", stubdir);
        } else {
            fdl_json_str(j, "key_file", key);
        }
        fdl_json_obj_end(j);
        const char *t = fdl_json_text(j, NULL);
        if (t)
            puts(t);
        fdl_json_free(j);
    } else {
        printf("device       %s\nprofile      %s\ncertificate  %s\nCA (root)    %s\n", id, fdl_profile_name(prof),
               cert, ca);
        if (prof == FDL_PROFILE_SE) {
            printf("key          %s\n", uri);
            printf("token        %s (PIN in %s)\n", id, pin);
            printf("SoftHSM2     SOFTHSM2_CONF=%s\nmodule       %s\nOpenSSL      OPENSSL_CONF=%s\n",
                   ctx.st.hsm_conf, FDL_SOFTHSM2_MODULE, ctx.openssl_cnf);
            char stubdir[FDL_PATH_MAX];
            if (make_key_stub(&ctx.st, id, uri, stubdir, sizeof stubdir) == 0) {
                printf("\nuse the device identity from standard tools while 'fleetdrill run' is up (port in %s):\n",
                       ctx.st.run_json);
                printf("  cd %s && SOFTHSM2_CONF=%s OPENSSL_CONF=%s \\\n"
                       "    mosquitto_sub -h localhost -p PORT --cafile %s --cert %s \\\n"
                       "      --keyform engine --tls-engine pkcs11 --key \"%s;pin-value=$(cat %s)\" \\\n"
                       "      -i %s-probe -t telemetry/%s\n",
                       stubdir, ctx.st.hsm_conf, ctx.openssl_cnf, ca, cert, uri, pin, id, id);
                printf("  (mosquitto 2.0 clients open --key as a file before they honour --keyform engine;\n"
                       "   %s holds an empty placeholder named after the URI so the check passes.)\n", stubdir);
            }
        } else {
            printf("key          %s (a file: this profile has no secure element)\n", key);
        }
    }
    rc = 0;
out:
    fdl_ctx_close(&ctx);
    return rc;
}

/* ---- run ---------------------------------------------------------------------- */

typedef struct run_opts {
    const char *state;
    const char *json_path;
    uint32_t devices, first;
    double duration_s;
    fdl_profile profile;
    uint16_t port;
    int bench;
    fdl_prov_mode provision;
    const char *rules_path;
    fdl_fleet_cfg fleet;
    fdl_prov_stats prov;      /* the provisioning service's figures at the end */
    int have_prov;
} run_opts;

typedef struct progress_ctx {
    fdl_progress *bar;
    const char *label;
    uint32_t total;
} progress_ctx;

/* On the fleet thread; the bar is made at the first call, after the set-up lines. */
static void on_progress(void *ud, uint32_t online, uint32_t ever, uint32_t failed, uint64_t acked, double el)
{
    progress_ctx *p = ud;
    (void)el;
    if (!p->bar && !(p->bar = fdl_progress_new(stderr, p->label, p->total)))
        return;
    fdl_progress_update(p->bar, ever, "online %u, failed attempts %u, acked %llu", online, failed,
                        (unsigned long long)acked);
}

static void us_fmt(char *buf, size_t cap, uint64_t us)
{
    if (us >= 1000000)
        snprintf(buf, cap, "%.2f s", (double)us / 1e6);
    else
        snprintf(buf, cap, "%.1f ms", (double)us / 1e3);
}

static void print_summary(FILE *out, const run_opts *o, const fdl_fleet_result *r)
{
    char a[32], b[32], c[32];
    fprintf(out, "\nfleetdrill run summary\n");
    fprintf(out, "  devices            %u (%s profile, %u worker loop%s, time scale x%g)\n", r->devices,
            fdl_profile_name(o->profile), r->threads, r->threads == 1 ? "" : "s", o->fleet.time_scale);
    fprintf(out, "  connected          %u/%u", r->connected, r->devices);
    if (r->all_connected_s > 0)
        fprintf(out, " (all within %.1f s)", r->all_connected_s);
    fprintf(out, "\n  failed             %u\n", r->failed);
    for (int i = 1; i < FDL_FAIL__COUNT; i++)
        if (r->fail_by_reason[i])
            fprintf(out, "    %-22s %llu   e.g. %s\n", fdl_device_fail_name((fdl_device_fail)i),
                    (unsigned long long)r->fail_by_reason[i], r->fail_example[i]);
    fprintf(out, "  connect attempts   %llu\n", (unsigned long long)r->attempts);
    us_fmt(a, sizeof a, r->hs_p50_us);
    us_fmt(b, sizeof b, r->hs_p95_us);
    us_fmt(c, sizeof c, r->hs_p99_us);
    fprintf(out, "  TLS 1.3 handshake  p50 %s  p95 %s  p99 %s\n", a, b, c);
    us_fmt(a, sizeof a, r->conn_p50_us);
    us_fmt(b, sizeof b, r->conn_p95_us);
    us_fmt(c, sizeof c, r->conn_p99_us);
    fprintf(out, "  connect to CONNACK p50 %s  p95 %s  p99 %s\n", a, b, c);
    fprintf(out, "  messages           %llu published, %llu acknowledged (QoS 1)\n", (unsigned long long)r->published,
            (unsigned long long)r->acked);
    if (r->malformed_in)
        fprintf(out, "  malformed packets  %llu refused by devices (connection dropped, device reconnected)\n",
                (unsigned long long)r->malformed_in);
    if (r->registered || o->provision != FDL_PROV_DIRECT) {
        us_fmt(a, sizeof a, r->prov_p50_us);
        us_fmt(b, sizeof b, r->prov_p95_us);
        us_fmt(c, sizeof c, r->prov_p99_us);
        fprintf(out, "  provisioning       %u devices %s (%s)", r->registered,
                o->provision == FDL_PROV_CLAIM ? "claimed their certificate" : "registered just in time",
                fdl_prov_mode_name(o->provision));
        if (r->registered && r->prov_span_s > 0)
            fprintf(out, " in %.1f s, %.0f/s", r->prov_span_s, r->registered / r->prov_span_s);
        fprintf(out, "\n    first attempt to first CONNACK  p50 %s  p95 %s  p99 %s\n", a, b, c);
        if (o->have_prov && o->provision == FDL_PROV_CLAIM) {
            us_fmt(a, sizeof a, o->prov.claim_issue_p50_us);
            us_fmt(b, sizeof b, o->prov.claim_issue_p99_us);
            fprintf(out, "    claim service  %llu requests: %llu certificates issued, %llu refused (%llu bad CSR), "
                         "%llu rule errors; CSR to certificate p50 %s p99 %s\n",
                    (unsigned long long)o->prov.claim_requests, (unsigned long long)o->prov.claim_issued,
                    (unsigned long long)o->prov.claim_rejected, (unsigned long long)o->prov.claim_bad_csr,
                    (unsigned long long)o->prov.rule_errors, a, b);
        } else if (o->have_prov)
            fprintf(out, "    registration service  %llu requests: %llu activated, %llu rejected, %llu rule errors\n",
                    (unsigned long long)o->prov.requests, (unsigned long long)o->prov.activated,
                    (unsigned long long)o->prov.rejected, (unsigned long long)o->prov.rule_errors);
    }
    if (r->revoked_at_end)
        fprintf(out, "  revoked (LED on)   %u device%s, e.g. %s: refused repeatedly, publishing stopped\n",
                r->revoked_at_end, r->revoked_at_end == 1 ? "" : "s", r->revoked_example);
    fprintf(out, "  identities loaded  in %.1f s\n", r->load_s);
    fprintf(out, "  peak RSS           %.1f MiB", (double)r->rss_peak_kib / 1024.0);
    if (r->connected)
        fprintf(out, " (%.1f KiB per connected device above the idle process)",
                (double)(r->rss_connected_kib > r->rss_before_kib ? r->rss_connected_kib - r->rss_before_kib : 0) /
                    r->connected);
    fprintf(out, "\n  CPU                %.1f s over %.1f s wall\n", r->cpu_s, r->wall_s);
}

static void result_json(fdl_json *j, const run_opts *o, const fdl_fleet_result *r, const char *key)
{
    fdl_json_obj_begin(j, key);
    fdl_json_uint(j, "devices", r->devices);
    fdl_json_str(j, "profile", fdl_profile_name(o->profile));
    fdl_json_uint(j, "connected", r->connected);
    fdl_json_uint(j, "failed", r->failed);
    fdl_json_obj_begin(j, "failed_by_reason");
    for (int i = 1; i < FDL_FAIL__COUNT; i++)
        if (r->fail_by_reason[i]) {
            fdl_json_obj_begin(j, fdl_device_fail_name((fdl_device_fail)i));
            fdl_json_uint(j, "devices", r->fail_by_reason[i]);
            fdl_json_str(j, "example", r->fail_example[i]);
            fdl_json_obj_end(j);
        }
    fdl_json_obj_end(j);
    fdl_json_uint(j, "online_at_end", r->online_at_end);
    fdl_json_uint(j, "connect_attempts", r->attempts);
    fdl_json_num(j, "all_connected_s", r->all_connected_s);
    fdl_json_obj_begin(j, "handshake_us");
    fdl_json_uint(j, "p50", r->hs_p50_us);
    fdl_json_uint(j, "p95", r->hs_p95_us);
    fdl_json_uint(j, "p99", r->hs_p99_us);
    fdl_json_uint(j, "max", r->hs_max_us);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "connect_us");
    fdl_json_uint(j, "p50", r->conn_p50_us);
    fdl_json_uint(j, "p95", r->conn_p95_us);
    fdl_json_uint(j, "p99", r->conn_p99_us);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "messages");
    fdl_json_uint(j, "published", r->published);
    fdl_json_uint(j, "acknowledged", r->acked);
    fdl_json_uint(j, "ack_p50_us", r->ack_p50_us);
    fdl_json_uint(j, "ack_p99_us", r->ack_p99_us);
    fdl_json_uint(j, "commands_received", r->commands_received);
    fdl_json_uint(j, "malformed_refused", r->malformed_in);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "provisioning");
    fdl_json_str(j, "mode", fdl_prov_mode_name(o->provision));
    fdl_json_uint(j, "registered", r->registered);
    fdl_json_num(j, "span_s", r->prov_span_s);
    fdl_json_num(j, "per_second", r->prov_span_s > 0 ? r->registered / r->prov_span_s : 0.0);
    fdl_json_uint(j, "p50_us", r->prov_p50_us);
    fdl_json_uint(j, "p95_us", r->prov_p95_us);
    fdl_json_uint(j, "p99_us", r->prov_p99_us);
    fdl_json_uint(j, "max_us", r->prov_max_us);
    if (o->have_prov) {
        fdl_json_uint(j, "requests", o->prov.requests);
        fdl_json_uint(j, "activated", o->prov.activated);
        fdl_json_uint(j, "rejected", o->prov.rejected);
        fdl_json_uint(j, "rule_errors", o->prov.rule_errors);
        fdl_json_uint(j, "decide_p50_us", o->prov.decide_p50_us);
        fdl_json_uint(j, "decide_p99_us", o->prov.decide_p99_us);
        fdl_json_uint(j, "claim_requests", o->prov.claim_requests);
        fdl_json_uint(j, "claim_issued", o->prov.claim_issued);
        fdl_json_uint(j, "claim_rejected", o->prov.claim_rejected);
        fdl_json_uint(j, "claim_bad_csr", o->prov.claim_bad_csr);
        fdl_json_uint(j, "claim_issue_p50_us", o->prov.claim_issue_p50_us);
        fdl_json_uint(j, "claim_issue_p99_us", o->prov.claim_issue_p99_us);
    }
    fdl_json_uint(j, "claimed", r->claimed);
    fdl_json_uint(j, "claims_sent", r->claims_sent);
    fdl_json_obj_end(j);
    fdl_json_uint(j, "revoked_at_end", r->revoked_at_end);
    fdl_json_uint(j, "peak_rss_kib", r->rss_peak_kib);
    fdl_json_num(j, "rss_per_device_kib",
                 r->connected ? (double)(r->rss_connected_kib > r->rss_before_kib
                                             ? r->rss_connected_kib - r->rss_before_kib
                                             : 0) / r->connected
                              : 0.0);
    fdl_json_num(j, "identity_load_s", r->load_s);
    fdl_json_num(j, "wall_s", r->wall_s);
    fdl_json_num(j, "cpu_s", r->cpu_s);
    fdl_json_num(j, "cpu_connect_s", r->cpu_connect_s);
    fdl_json_uint(j, "threads", r->threads);
    fdl_json_num(j, "time_scale", o->fleet.time_scale);
    fdl_json_bool(j, "interrupted", r->interrupted);
    fdl_json_obj_end(j);
}

static int run_usage(int bench)
{
    if (bench)
        puts("usage: fleetdrill bench connect --devices N [--state DIR] [--json FILE] [--threads T]\n"
             "                               [--max-connecting M] [--profile se|flash] [--timeout S]\n"
             "Connects N devices as fast as the admission limit allows, then prints the connect rate,\n"
             "handshake CPU per device and RSS per device.");
    else
        puts("usage: fleetdrill run --devices N --duration SECONDS [options]\n"
             "  --state DIR             state directory (identities persist here)\n"
             "  --json FILE             write the summary as JSON\n"
             "  --time-scale X          device timers run X times faster than real time (default 1)\n"
             "  --profile se|flash      key storage of newly provisioned devices (default se)\n"
             "  --telemetry-interval S  simulated seconds between telemetry messages (default 5)\n"
             "  --threads T             worker loops (default: number of CPUs)\n"
             "  --max-connecting M      connection attempts in progress at once (default 128)\n"
             "  --port P                broker port on 127.0.0.1 (default: a free one)\n"
             "  --first K               first device index (for shards)\n"
             "  --provision MODE        direct (certificates enrolled at issuance, default), jitr\n"
             "                          (factory certificates registered on first connect) or claim\n"
             "                          (shared claim certificate, then a CSR for the device's own key)\n"
             "  --registration-rules F  Lua rules of the JITR registration handler\n"
             "                          (default cloud/registration.lua)");
    return 0;
}

static int parse_run(int argc, char **argv, run_opts *o, int bench)
{
    memset(o, 0, sizeof *o);
    fdl_fleet_cfg_defaults(&o->fleet);
    o->state = fdl_default_state_dir();
    o->duration_s = bench ? 300 : 20;
    o->devices = 200;
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"devices", required_argument, 0, 'n'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"timeout", required_argument, 0, 'd'},
                                         {"json", required_argument, 0, 'j'},
                                         {"time-scale", required_argument, 0, 'x'},
                                         {"profile", required_argument, 0, 'p'},
                                         {"telemetry-interval", required_argument, 0, 'i'},
                                         {"threads", required_argument, 0, 't'},
                                         {"max-connecting", required_argument, 0, 'm'},
                                         {"port", required_argument, 0, 'P'},
                                         {"first", required_argument, 0, 'f'},
                                         {"provision", required_argument, 0, 'M'},
                                         {"registration-rules", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int c;
    uint32_t v;
    double dv;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': o->state = optarg; break;
        case 'j': o->json_path = optarg; break;
        case 'n':
            if (parse_u32(optarg, &o->devices, 1, 1000000))
                FAIL_USAGE("--devices wants a number from 1 to 1000000");
            break;
        case 'f':
            if (parse_u32(optarg, &o->first, 0, 999999))
                FAIL_USAGE("--first wants a number from 0 to 999999");
            break;
        case 'd':
            if (parse_double(optarg, &o->duration_s, 0.1, 7 * 86400.0))
                FAIL_USAGE("--duration wants seconds (0.1 .. 604800)");
            break;
        case 'x':
            if (parse_double(optarg, &o->fleet.time_scale, 1.0, 100000.0))
                FAIL_USAGE("--time-scale wants a factor from 1 to 100000");
            break;
        case 'p':
            if (fdl_profile_parse(optarg, &o->profile))
                FAIL_USAGE("--profile is se or flash");
            break;
        case 'i':
            if (parse_double(optarg, &dv, 0.01, 86400.0))
                FAIL_USAGE("--telemetry-interval wants simulated seconds (0.01 .. 86400)");
            o->fleet.params.telemetry_interval_ms = (uint64_t)(dv * 1000.0);
            break;
        case 't':
            if (parse_u32(optarg, &v, 1, 16))
                FAIL_USAGE("--threads wants 1 .. 16");
            o->fleet.threads = v;
            break;
        case 'm':
            if (parse_u32(optarg, &v, 1, 100000))
                FAIL_USAGE("--max-connecting wants 1 .. 100000");
            o->fleet.max_connecting = v;
            break;
        case 'P':
            if (parse_u32(optarg, &v, 1, 65535))
                FAIL_USAGE("--port wants 1 .. 65535");
            o->port = (uint16_t)v;
            break;
        case 'M':
            if (fdl_prov_mode_parse(optarg, &o->provision))
                FAIL_USAGE("--provision is direct, jitr or claim");
            break;
        case 'R': o->rules_path = optarg; break;
        case 'h': return run_usage(bench) - 1;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        FAIL_USAGE("unexpected argument '%s'", argv[optind]);
    o->bench = bench;
    return 0;
}

static int do_run(run_opts *o)
{
    char err[1024];
    int rc = FDL_EXIT_ERROR;
    fdl_ctx ctx;
    fdl_drillenv *env = NULL;
    uint64_t got_nofile = 0;
    fdl_raise_nofile_limit((uint64_t)o->devices * 2 + 1024, &got_nofile);
    if (got_nofile < (uint64_t)o->devices + 256)
        fprintf(stderr, "fleetdrill: warning: open-file limit %llu may be too low for %u devices\n",
                (unsigned long long)got_nofile, o->devices);
    fdl_cli_install_signals();
    if (fdl_ctx_open(&ctx, o->state, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return FDL_EXIT_ERROR;
    }
    fdl_drillenv_opts eo;
    fdl_drillenv_opts_init(&eo, &ctx);
    eo.devices = o->devices;
    eo.first = o->first;
    eo.profile = o->profile;
    eo.provision = o->provision;
    eo.port = o->port;
    eo.rules_path = o->rules_path;
    eo.write_run_json = 1;
    eo.progress = 1;
    eo.fleet = o->fleet;
    eo.fleet.duration_ms = (uint64_t)(o->duration_s * 1000.0);
    eo.fleet.stop_when_all_online = o->bench;
    eo.fleet.finalize_se_at_end = 1;   /* nothing uses the tokens after the run */
    progress_ctx pc = {NULL, o->bench ? "connecting" : "fleet", o->devices};
    eo.on_progress = on_progress;
    eo.progress_ud = &pc;
    int sr = fdl_drillenv_start(&eo, &env, err, sizeof err);
    if (sr != 0) {
        if (sr == -2) {
            rc = FDL_EXIT_INTERRUPTED;
        } else {
            fprintf(stderr, "fleetdrill: %s\n", err);
        }
        goto out;
    }
    fdl_drillenv_join(env);
    if (pc.bar) {
        fdl_progress_finish(pc.bar);
        fdl_progress_free(pc.bar);
    }
    o->have_prov = fdl_drillenv_prov_stats(env, &o->prov) == 0;
    const fdl_fleet_result *resp;
    const char *ferr;
    if (fdl_drillenv_result(env, &resp, &ferr) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", ferr);
        goto out;
    }
    fdl_fleet_result res = *resp;
    if (res.load_failed)
        fprintf(stderr, "fleetdrill: %s\n", ferr);

    if (o->bench) {
        double rate = res.all_connected_s > 0 ? res.connected / res.all_connected_s : 0;
        printf("bench connect: %u/%u devices connected", res.connected, res.devices);
        if (res.all_connected_s > 0)
            printf(" in %.2f s\n", res.all_connected_s);
        else
            printf(" (not all connected)\n");
        printf("  connect rate        %.0f devices/s\n", rate);
        printf("  handshake CPU       %.2f ms per device (simulator process: TLS, PKCS#11 signing, MQTT)\n",
               res.connected ? res.cpu_connect_s * 1000.0 / res.connected : 0.0);
        printf("  RSS per device      %.1f KiB (RSS with all connected minus RSS before loading, / devices)\n",
               res.connected ? (double)(res.rss_connected_kib - res.rss_before_kib) / res.connected : 0.0);
        printf("  handshake latency   p50 %.1f ms  p99 %.1f ms\n", res.hs_p50_us / 1e3, res.hs_p99_us / 1e3);
        printf("  identity load       %.2f s (%.0f/s)\n", res.load_s, res.load_s > 0 ? res.devices / res.load_s : 0);
        printf("  peak RSS            %.1f MiB, %u worker loops\n", res.rss_peak_kib / 1024.0, res.threads);
    } else {
        print_summary(stdout, o, &res);
    }
    if (o->json_path) {
        fdl_json *j = fdl_json_new(1 << 20);
        fdl_json_set_pretty(j, 1);
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "fleetdrill", FDL_VERSION);
        fdl_json_str(j, "command", o->bench ? "bench connect" : "run");
        result_json(j, o, &res, "result");
        fdl_json_obj_end(j);
        if (fdl_json_write_file(j, o->json_path) != 0)
            fprintf(stderr, "fleetdrill: cannot write %s\n", o->json_path);
        fdl_json_free(j);
    }
    if (res.interrupted)
        rc = FDL_EXIT_INTERRUPTED;
    else
        rc = res.connected == res.devices ? FDL_EXIT_OK : FDL_EXIT_INCOMPLETE;
out:
    fdl_drillenv_free(env);
    fdl_ctx_close(&ctx);
    return rc;
}

int fdl_cmd_run(int argc, char **argv)
{
    run_opts o;
    optind = 1;
    int r = parse_run(argc, argv, &o, 0);
    if (r)
        return r < 0 ? 0 : r;
    return do_run(&o);
}

int fdl_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "connect") != 0)
        FAIL_USAGE("usage: fleetdrill bench connect --devices N [--state DIR] [--json FILE]");
    run_opts o;
    optind = 2;
    int r = parse_run(argc, argv, &o, 1);
    if (r)
        return r < 0 ? 0 : r;
    return do_run(&o);
}

int fdl_cli_main(int argc, char **argv)
{
    const char *lv = getenv("FLEETDRILL_LOG");
    if (lv && !strcmp(lv, "debug"))
        fdl_log_set_level(FDL_LOG_DEBUG);
    else if (lv && !strcmp(lv, "info"))
        fdl_log_set_level(FDL_LOG_INFO);
    if (argc < 2) {
        usage(stderr);
        return FDL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("fleetdrill %s\n", FDL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return fdl_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "provision"))
        return fdl_cmd_provision(argc - 1, argv + 1);
    if (!strcmp(cmd, "pki"))
        return fdl_cmd_pki(argc - 1, argv + 1);
    if (!strcmp(cmd, "device"))
        return fdl_cmd_device(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return fdl_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "revoke"))
        return fdl_cmd_revoke(argc - 1, argv + 1);
    if (!strcmp(cmd, "audit"))
        return fdl_cmd_audit(argc - 1, argv + 1);
    if (!strcmp(cmd, "drill"))
        return fdl_cmd_drill(argc - 1, argv + 1);
    if (!strcmp(cmd, "matrix"))
        return fdl_cmd_matrix(argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return fdl_cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "fw"))
        return fdl_cmd_fw(argc - 1, argv + 1);
    fprintf(stderr, "fleetdrill: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return FDL_EXIT_USAGE;
}
