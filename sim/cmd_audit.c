/* sim/cmd_audit.c — `fleetdrill audit`: the registry audit (cloud/audit.h) as text or JSON, with an exit code for CI. */
#include "sim/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cloud/audit.h"
#include "cloud/registry.h"
#include "fdl_buildcfg.h"
#include "sim/context.h"
#include "sim/identity.h"
#include "sim/json.h"

static const char k_usage[] =
    "usage: fleetdrill audit [--state DIR] [--json [FILE]] [--now UNIX] [--help]\n"
    "Audits the fleet registry (<state>/registry.db) read-only: wildcard and shared policies,\n"
    "expiring certificates and CAs, revoked certificates still connected, certificates used by\n"
    "several clients, personal data in subjects. See docs/audit.md.\n\n"
    "  --state DIR     state directory (default $FLEETDRILL_STATE or ./.fleetdrill)\n"
    "  --json [FILE]   JSON report to FILE (written atomically; the text report still goes to\n"
    "                  stdout), or to stdout instead of the text when FILE is absent or '-'\n"
    "  --now UNIX      judge as if it were this time (Unix seconds), e.g. to see what expires\n\n"
    "exit status: 0 no finding of high severity or worse, 4 at least one, 1 error, 2 usage.\n";

/* Text has room for every finding, the JSON report a ceiling of its own: each finding
 * is at most object + message (each escaped at most 6x) plus its keys. */
static size_t json_ceiling(const fdl_audit_report *r)
{
    return 4096 + r->n * (size_t)(6 * (FDL_AUDIT_OBJECT_MAX + FDL_AUDIT_MESSAGE_MAX) + 128);
}

static void upper(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
    out[i] = '\0';
}

static void print_text(FILE *out, const fdl_audit_report *r)
{
    char sev[16];
    for (size_t i = 0; i < r->n; i++) {
        const fdl_audit_finding *f = &r->findings[i];
        upper(fdl_audit_severity_name(f->severity), sev, sizeof sev);
        fprintf(out, "%-8s  %-22s  %s:%s  %s\n", sev, fdl_audit_check_id(f->check), f->object_kind, f->object,
                f->message);
    }
    uint64_t total = 0;
    for (int s = 0; s < FDL_AUDIT_SEVERITY_COUNT; s++)
        total += r->counts[s];
    if (r->n)
        fputc('\n', out);
    fprintf(out, "audit: %llu finding%s (critical %llu, high %llu, medium %llu, low %llu, info %llu)\n",
            (unsigned long long)total, total == 1 ? "" : "s", (unsigned long long)r->counts[FDL_AUDIT_CRITICAL],
            (unsigned long long)r->counts[FDL_AUDIT_HIGH], (unsigned long long)r->counts[FDL_AUDIT_MEDIUM],
            (unsigned long long)r->counts[FDL_AUDIT_LOW], (unsigned long long)r->counts[FDL_AUDIT_INFO]);
    for (int c = 0; c < FDL_AUDIT_CHECK_COUNT; c++) {
        uint64_t n = 0;
        for (int s = 0; s < FDL_AUDIT_SEVERITY_COUNT; s++)
            n += r->by_check[c][s];
        if (!n)
            continue;
        fprintf(out, "  %-22s  %llu:", fdl_audit_check_id((fdl_audit_check)c), (unsigned long long)n);
        const char *sep = " ";
        for (int s = FDL_AUDIT_SEVERITY_COUNT - 1; s >= 0; s--) {
            if (r->by_check[c][s]) {
                fprintf(out, "%s%s %llu", sep, fdl_audit_severity_name((fdl_audit_severity)s),
                        (unsigned long long)r->by_check[c][s]);
                sep = ", ";
            }
        }
        fputc('\n', out);
    }
    if (r->dropped)
        fprintf(out, "  %llu findings not listed (more than the %zu kept in memory; the counts include them)\n",
                (unsigned long long)r->dropped, r->n);
}

static fdl_json *report_json(const fdl_audit_report *r)
{
    fdl_json *j = fdl_json_new(json_ceiling(r));
    fdl_json_set_pretty(j, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "fleetdrill", FDL_VERSION);
    fdl_json_str(j, "command", "audit");
    fdl_json_int(j, "now", r->now);
    fdl_json_arr_begin(j, "findings");
    for (size_t i = 0; i < r->n; i++) {
        const fdl_audit_finding *f = &r->findings[i];
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "check", fdl_audit_check_id(f->check));
        fdl_json_str(j, "severity", fdl_audit_severity_name(f->severity));
        fdl_json_str(j, "object_kind", f->object_kind);
        fdl_json_str(j, "object", f->object);
        fdl_json_str(j, "message", f->message);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_obj_begin(j, "counts");
    for (int s = FDL_AUDIT_SEVERITY_COUNT - 1; s >= 0; s--)
        fdl_json_uint(j, fdl_audit_severity_name((fdl_audit_severity)s), r->counts[s]);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "by_check");
    for (int c = 0; c < FDL_AUDIT_CHECK_COUNT; c++) {
        uint64_t n = 0;
        for (int s = 0; s < FDL_AUDIT_SEVERITY_COUNT; s++)
            n += r->by_check[c][s];
        if (n)
            fdl_json_uint(j, fdl_audit_check_id((fdl_audit_check)c), n);
    }
    fdl_json_obj_end(j);
    fdl_json_uint(j, "dropped", r->dropped);
    fdl_json_obj_end(j);
    return j;
}

int fdl_cmd_audit(int argc, char **argv)
{
    const char *state = fdl_default_state_dir();
    const char *json_path = NULL;
    int want_json = 0;
    fdl_audit_opts ao = {0};
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"json", optional_argument, 0, 'j'},
                                         {"now", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    /* 0 makes glibc re-initialise getopt completely: this function may be called more
     * than once in a process (tests). */
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'j':
            want_json = 1;
            /* "--json FILE" as well as "--json=FILE": audit takes no operands, so a
             * following word that is not an option is the file. */
            if (optarg)
                json_path = optarg;
            else if (optind < argc && argv[optind][0] != '-')
                json_path = argv[optind++];
            else if (optind < argc && !strcmp(argv[optind], "-"))
                optind++;
            break;
        case 'n': {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || v <= 0) {
                fprintf(stderr, "fleetdrill: --now wants Unix seconds (a positive integer)\n");
                return FDL_EXIT_USAGE;
            }
            ao.now = v;
            break;
        }
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default:
            fputs("usage: fleetdrill audit [--state DIR] [--json [FILE]] [--now UNIX] [--help]\n", stderr);
            return FDL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fleetdrill: audit takes no operand ('%s'); see fleetdrill audit --help\n", argv[optind]);
        return FDL_EXIT_USAGE;
    }
    if (json_path && !strcmp(json_path, "-"))
        json_path = NULL;

    /* An audit must not conjure up an empty fleet: look before fdl_state_init (which
     * creates the directory layout) and before fdl_registry_open (which creates the file). */
    char probe[FDL_PATH_MAX + 32];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/registry.db", state);
    int serr = stat(probe, &sb) != 0 ? errno : S_ISREG(sb.st_mode) ? 0 : -1;
    if (serr) {
        fprintf(stderr, "fleetdrill: no fleet registry at %s (%s): nothing to audit; provision or run a fleet first, "
                        "or pass --state DIR\n",
                probe, serr > 0 ? strerror(serr) : "not a regular file");
        return FDL_EXIT_ERROR;
    }
    fdl_state st;
    int r = fdl_state_init(&st, state);
    if (r) {
        fprintf(stderr, "fleetdrill: state directory %s: %s\n", state, strerror(-r));
        return FDL_EXIT_ERROR;
    }
    fdl_registry *reg = NULL;
    fdl_registry_opts ro = {.actor = "audit"};
    fdl_reg_status rs = fdl_registry_open(st.registry, &ro, &reg);
    if (rs != FDL_REG_OK) {
        fprintf(stderr, "fleetdrill: cannot open %s: %s\n", st.registry, fdl_reg_strerror(rs));
        return FDL_EXIT_ERROR;
    }
    fdl_audit_report *rep = NULL;
    char err[256];
    fdl_audit_status as = fdl_audit_run(reg, &ao, &rep, err, sizeof err);
    fdl_registry_free(reg);
    if (as != FDL_AUDIT_OK) {
        fprintf(stderr, "fleetdrill: audit of %s failed: %s (%s)\n", st.registry, fdl_audit_strerror(as), err);
        return FDL_EXIT_ERROR;
    }

    int rc = fdl_audit_worst(rep) >= FDL_AUDIT_HIGH ? FDL_EXIT_FINDINGS : FDL_EXIT_OK;
    if (!want_json || json_path)
        print_text(stdout, rep);
    if (want_json) {
        fdl_json *j = report_json(rep);
        if (json_path) {
            int w = fdl_json_write_file(j, json_path);
            if (w) {
                fprintf(stderr, "fleetdrill: cannot write %s: %s\n", json_path,
                        w == -EINVAL ? fdl_json_strerror(fdl_json_error(j)) : strerror(-w));
                rc = FDL_EXIT_ERROR;
            }
        } else {
            const char *t = fdl_json_text(j, NULL);
            if (t) {
                puts(t);
            } else {
                fprintf(stderr, "fleetdrill: JSON report: %s\n", fdl_json_strerror(fdl_json_error(j)));
                rc = FDL_EXIT_ERROR;
            }
        }
        fdl_json_free(j);
    }
    fflush(stdout);
    fdl_audit_report_free(rep);
    return rc;
}
