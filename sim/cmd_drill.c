/*
 * sim/cmd_drill.c — `fleetdrill drill` (run scenario files, report, CI gate),
 * `fleetdrill matrix` (every drill once per ablation switch: the attack x layer
 * matrix) and `fleetdrill report` (compare with an earlier drill).
 */
#include "sim/cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fdl_buildcfg.h"
#include "reports/history.h"
#include "reports/report.h"
#include "sim/alloc.h"
#include "sim/context.h"
#include "sim/fdl_log.h"
#include "sim/drillenv.h"
#include "sim/scenario.h"

/* Scenario files one run takes: a drill suite is tens of files. */
#define MAX_FILES 1024
/* Subdirectory depth searched for scenarios. */
#define MAX_DEPTH 4

#define FAIL_USAGE(...)                                                                                           \
    do {                                                                                                          \
        fprintf(stderr, "fleetdrill: " __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                                      \
        return FDL_EXIT_USAGE;                                                                                    \
    } while (0)

/* ---- scenario files ------------------------------------------------------------------- */

typedef struct file_list {
    char *path[MAX_FILES];
    size_t n;
} file_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_file(file_list *fl, const char *path)
{
    if (fl->n == MAX_FILES) {
        fprintf(stderr, "fleetdrill: more than %d scenario files\n", MAX_FILES);
        return -1;
    }
    if (!(fl->path[fl->n] = fdl_strdup(path)))
        return -1;
    fl->n++;
    return 0;
}

/* Every *.lua under dir (sorted), except the library directory "lib". */
static int add_dir(file_list *fl, const char *dir, int depth)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        fprintf(stderr, "fleetdrill: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    size_t first = fl->n;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[FDL_PATH_MAX];
        int n = snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        size_t len = strlen(de->d_name);
        if (S_ISDIR(sb.st_mode)) {
            if (strcmp(de->d_name, "lib") != 0 && depth < MAX_DEPTH)
                rc = add_dir(fl, path, depth + 1);
        } else if (len > 4 && !strcmp(de->d_name + len - 4, ".lua")) {
            rc = add_file(fl, path);
        }
    }
    closedir(dh);
    qsort(fl->path + first, fl->n - first, sizeof fl->path[0], cmp_str);
    return rc;
}

static int collect(file_list *fl, int argc, char **argv, int first, const char *def)
{
    memset(fl, 0, sizeof *fl);
    if (first >= argc && def)
        return add_dir(fl, def, 0);
    for (int i = first; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "fleetdrill: %s: %s\n", argv[i], strerror(errno));
            return -1;
        }
        if ((S_ISDIR(sb.st_mode) ? add_dir(fl, argv[i], 0) : add_file(fl, argv[i])) != 0)
            return -1;
    }
    if (!fl->n) {
        fprintf(stderr, "fleetdrill: no scenario (*.lua) found\n");
        return -1;
    }
    return 0;
}

static void free_files(file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        fdl_free(fl->path[i]);
    fl->n = 0;
}

/* ---- options shared by drill and matrix ------------------------------------------------- */

typedef struct drill_opts {
    char state[FDL_PATH_MAX];
    const char *json, *junit, *html, *history;
    double min_pass;
    unsigned without;
    int unsafe_lua, quiet, no_history;
    uint32_t devices;
    char history_buf[FDL_PATH_MAX + 32];
} drill_opts;

static const char k_drill_usage[] =
    "usage: fleetdrill drill PATH... [options]\n"
    "Runs the scenario files (PATH: a file, or a directory of *.lua; lib/ is skipped), each\n"
    "against its own fleet, judges every attack step from its evidence and prints the summary.\n\n"
    "  --state DIR          drill state (default $FLEETDRILL_STATE/drills or ./.fleetdrill/drills):\n"
    "                       its own CA, device identities (kept), a registry reset per scenario\n"
    "  --json FILE          report as JSON (schema fleetdrill-report/1)\n"
    "  --junit FILE         report as JUnit XML (one testcase per attack step)\n"
    "  --html FILE          report as one self-contained HTML page\n"
    "  --history DB         save the run into this sqlite history (default <state>/history.db)\n"
    "  --no-history         do not save the run\n"
    "  --min-pass PERCENT   exit 4 when fewer steps pass (default 100)\n"
    "  --without SWITCH     turn one defence off (repeatable): pinning, registry, policy,\n"
    "                       payload-rules, tls13-only\n"
    "  --devices N          every fleet gets N devices, whatever the scenario declares\n"
    "  --unsafe-lua         run scenarios without the sandbox (full Lua standard library)\n"
    "  --quiet              no progress lines on stderr\n\n"
    "exit status: 0 pass rate at or above --min-pass, 4 below it, 1 error, 2 usage, 130 interrupted.\n"
    "docs/scenarios.md explains how to write a drill; docs/usage.md every option.\n";

static const char k_matrix_usage[] =
    "usage: fleetdrill matrix [PATH...] [options]\n"
    "Runs every drill (default: the scenarios/ directory of this source tree) once as it is and\n"
    "once per ablation switch, and prints the attack x layer matrix: for each attack the outcome\n"
    "and catching layer with each defence off, how many layers catch it on their own and how\n"
    "many independent layers stand between it and success.\n\n"
    "  --state DIR  --json FILE  --html FILE  --history DB  --no-history  --devices N\n"
    "  --unsafe-lua  --quiet     as for `fleetdrill drill`\n"
    "  --switches LIST           only these switches (comma-separated), default all\n\n"
    "exit status: 0 done, 1 error, 2 usage, 130 interrupted.\n";

static int parse_drill(int argc, char **argv, drill_opts *o, int matrix, unsigned *switches)
{
    memset(o, 0, sizeof *o);
    o->min_pass = 100.0;
    snprintf(o->state, sizeof o->state, "%s/drills", fdl_default_state_dir());
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"json", required_argument, 0, 'j'},
                                         {"junit", required_argument, 0, 'J'},
                                         {"html", required_argument, 0, 'H'},
                                         {"history", required_argument, 0, 'y'},
                                         {"no-history", no_argument, 0, 'Y'},
                                         {"min-pass", required_argument, 0, 'm'},
                                         {"without", required_argument, 0, 'w'},
                                         {"switches", required_argument, 0, 'S'},
                                         {"devices", required_argument, 0, 'n'},
                                         {"unsafe-lua", no_argument, 0, 'u'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        char *end;
        unsigned bit;
        switch (c) {
        case 's': snprintf(o->state, sizeof o->state, "%s", optarg); break;
        case 'j': o->json = optarg; break;
        case 'J': o->junit = optarg; break;
        case 'H': o->html = optarg; break;
        case 'y': o->history = optarg; break;
        case 'Y': o->no_history = 1; break;
        case 'm':
            errno = 0;
            o->min_pass = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(o->min_pass >= 0 && o->min_pass <= 100))
                FAIL_USAGE("--min-pass wants a percentage from 0 to 100");
            break;
        case 'w':
            if (matrix)
                FAIL_USAGE("matrix runs every switch itself; use --switches to choose them");
            if (fdl_switch_parse(optarg, &bit) != 0)
                FAIL_USAGE("--without: unknown switch '%s' (pinning, registry, policy, payload-rules, tls13-only)",
                           optarg);
            o->without |= bit;
            break;
        case 'S': {
            if (!matrix)
                FAIL_USAGE("--switches is for fleetdrill matrix");
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            *switches = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (fdl_switch_parse(tok, &bit) != 0)
                    FAIL_USAGE("--switches: unknown switch '%s'", tok);
                *switches |= bit;
            }
            break;
        }
        case 'n': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 1 || v >= FDL_SCENARIO_RANGE)
                FAIL_USAGE("--devices wants 1 .. %u", FDL_SCENARIO_RANGE - 1);
            o->devices = (uint32_t)v;
            break;
        }
        case 'u': o->unsafe_lua = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(matrix ? k_matrix_usage : k_drill_usage, stdout); return -1;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (!o->history) {
        snprintf(o->history_buf, sizeof o->history_buf, "%s/history.db", o->state);
        o->history = o->history_buf;
    }
    return 0;
}

/* ---- running ------------------------------------------------------------------------------ */

/* Runs every file into r; 0, or FDL_EXIT_INTERRUPTED. */
static int run_files(const file_list *fl, const fdl_scenario_opts *so, fdl_report *r)
{
    for (size_t i = 0; i < fl->n; i++) {
        int rc = fdl_scenario_run(fl->path[i], so, r);
        if (rc == 2 || fdl_fleet_stop_requested())
            return FDL_EXIT_INTERRUPTED;
        if (rc < 0) {
            fprintf(stderr, "fleetdrill: the report cannot take %s (out of memory or limits)\n", fl->path[i]);
            return FDL_EXIT_ERROR;
        }
    }
    return 0;
}

static int write_outputs(const fdl_report *r, const drill_opts *o)
{
    int rc = 0;
    const struct {
        const char *path;
        fdl_report_format fmt;
    } outs[] = {{o->json, FDL_REPORT_JSON}, {o->junit, FDL_REPORT_JUNIT}, {o->html, FDL_REPORT_HTML}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        if (!outs[i].path)
            continue;
        fdl_report_status st = fdl_report_write_file(r, outs[i].fmt, outs[i].path);
        if (st != FDL_REPORT_OK) {
            fprintf(stderr, "fleetdrill: cannot write %s: %s\n", outs[i].path, fdl_report_strerror(st));
            rc = -1;
        } else if (!o->quiet) {
            fprintf(stderr, "fleetdrill: wrote %s\n", outs[i].path);
        }
    }
    if (!o->no_history) {
        fdl_history *h = NULL;
        fdl_history_status hs = fdl_history_open(o->history, &h);
        int64_t id = 0;
        if (hs == FDL_HISTORY_OK)
            hs = fdl_history_save(h, r, &id);
        if (hs != FDL_HISTORY_OK) {
            fprintf(stderr, "fleetdrill: history %s: %s %s\n", o->history, fdl_history_strerror(hs),
                    h ? fdl_history_errmsg(h) : "");
            rc = -1;
        } else if (!o->quiet) {
            fprintf(stderr, "fleetdrill: saved as run %lld in %s (compare: fleetdrill report --compare previous "
                            "--history %s)\n",
                    (long long)id, o->history, o->history);
        }
        fdl_history_free(h);
    }
    return rc;
}

static int open_ctx(fdl_ctx *ctx, const drill_opts *o)
{
    char err[1024];
    if (fdl_ctx_open(ctx, o->state, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return -1;
    }
    return 0;
}

int fdl_cmd_drill(int argc, char **argv)
{
    drill_opts o;
    int pr = parse_drill(argc, argv, &o, 0, NULL);
    if (pr)
        return pr < 0 ? 0 : pr;
    if (optind >= argc)
        FAIL_USAGE("drill needs at least one scenario file or directory (e.g. scenarios/)");
    file_list fl;
    if (collect(&fl, argc, argv, optind, NULL) != 0) {
        free_files(&fl);
        return FDL_EXIT_USAGE;
    }
    fdl_cli_install_signals();
    if (o.quiet && !getenv("FLEETDRILL_LOG"))
        fdl_log_set_level(FDL_LOG_WARN); /* --quiet: warnings and errors only, the devices' info lines too */
    fdl_ctx ctx;
    if (open_ctx(&ctx, &o) != 0) {
        free_files(&fl);
        return FDL_EXIT_ERROR;
    }
    char sw[128];
    fdl_report *r = fdl_report_new(FDL_VERSION, (int64_t)time(NULL),
                                   o.without ? fdl_switch_list(o.without, sw, sizeof sw) : NULL);
    int rc = FDL_EXIT_ERROR;
    if (!r)
        goto out;
    fdl_scenario_opts so = {.ctx = &ctx, .without = o.without, .unsafe_lua = o.unsafe_lua, .devices = o.devices,
                            .verbose = !o.quiet};
    int run_rc = run_files(&fl, &so, r);
    if (run_rc == FDL_EXIT_ERROR)
        goto out;
    fputc('\n', stdout);
    fdl_report_write_table(r, stdout);
    fflush(stdout);
    int out_rc = write_outputs(r, &o);
    fdl_report_counts cnt;
    fdl_report_get_counts(r, &cnt);
    double rate = cnt.pass_rate * 100.0;
    if (run_rc == FDL_EXIT_INTERRUPTED) {
        rc = FDL_EXIT_INTERRUPTED;
    } else if (cnt.steps + cnt.errors == 0) {
        /* A gate over nothing must not pass silently (a directory of drills that define no step). */
        printf("\nfleetdrill: no attack step ran, so there is no pass rate to gate on\n");
        rc = FDL_EXIT_FINDINGS;
    } else if (rate + 1e-9 < o.min_pass) {
        printf("\nfleetdrill: pass rate %.1f%% is below --min-pass %.1f%%\n", rate, o.min_pass);
        rc = FDL_EXIT_FINDINGS;
    } else {
        rc = out_rc ? FDL_EXIT_ERROR : FDL_EXIT_OK;
    }
out:
    fdl_report_free(r);
    fdl_ctx_close(&ctx);
    free_files(&fl);
    return rc;
}

/* ---- matrix ------------------------------------------------------------------------------- */

#define MATRIX_COLS (FDL_SWITCH_COUNT + 1)
#define MATRIX_ROWS 256

typedef struct mrow {
    char attack[64];
    int set[MATRIX_COLS];
    fdl_verdict cell[MATRIX_COLS];   /* the weakest primary verdict seen in that column */
    unsigned layers;                 /* bit per fdl_layer that caught it somewhere */
} mrow;

typedef struct matrix {
    mrow row[MATRIX_ROWS];
    size_t n;
    int col;                         /* the column being run */
} matrix;

static void on_attack(void *ud, const char *attack, const fdl_verdicts *v)
{
    matrix *m = ud;
    mrow *r = NULL;
    for (size_t i = 0; i < m->n && !r; i++)
        if (!strcmp(m->row[i].attack, attack))
            r = &m->row[i];
    if (!r) {
        if (m->n == MATRIX_ROWS)
            return;
        r = &m->row[m->n++];
        memset(r, 0, sizeof *r);
        snprintf(r->attack, sizeof r->attack, "%s", attack);
    }
    const fdl_verdict *p = &v->v[0];
    /* Two attacks of one name in a column: the matrix shows the weaker result. */
    if (!r->set[m->col] || p->outcome > r->cell[m->col].outcome)
        r->cell[m->col] = *p;
    r->set[m->col] = 1;
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i].outcome <= FDL_OUTCOME_DETECTED && v->v[i].layer != FDL_LAYER_NONE)
            r->layers |= 1u << v->v[i].layer;
}

static int popcount(unsigned x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* Layers that catch it on their own, and independent layers: 0 if it gets through as is,
 * 1 if one switch alone lets it through, else every layer seen catching it. */
static void depth(const mrow *r, const int *cols_run, int *alone, int *independent)
{
    *alone = popcount(r->layers);
    if (!r->set[0] || r->cell[0].outcome >= FDL_OUTCOME_MISSED) {
        *independent = r->set[0] && r->cell[0].outcome == FDL_OUTCOME_MISSED ? 0 : -1;
        return;
    }
    for (int c = 1; c < MATRIX_COLS; c++)
        if (cols_run[c] && r->set[c] && r->cell[c].outcome == FDL_OUTCOME_MISSED) {
            *independent = 1;
            return;
        }
    *independent = *alone > 1 ? *alone : 1;
}

static void print_matrix(FILE *out, const matrix *m, const int *cols_run)
{
    const char *names[MATRIX_COLS] = {"baseline"};
    for (int c = 1; c < MATRIX_COLS; c++)
        names[c] = fdl_switch_name((unsigned)c - 1);
    fprintf(out, "\nattack x layer matrix (column: the defence turned off; cell: outcome/catching layer)\n\n");
    fprintf(out, "%-26s", "ATTACK");
    for (int c = 0; c < MATRIX_COLS; c++)
        if (cols_run[c])
            fprintf(out, " %-20s", c ? names[c] : "baseline");
    fprintf(out, " %6s %11s\n", "LAYERS", "INDEPENDENT");
    for (size_t i = 0; i < m->n; i++) {
        const mrow *r = &m->row[i];
        fprintf(out, "%-26.26s", r->attack);
        for (int c = 0; c < MATRIX_COLS; c++) {
            if (!cols_run[c])
                continue;
            char cell[48] = "-";
            if (r->set[c])
                snprintf(cell, sizeof cell, "%s%s%s", fdl_outcome_name(r->cell[c].outcome),
                         r->cell[c].layer != FDL_LAYER_NONE ? "/" : "",
                         r->cell[c].layer != FDL_LAYER_NONE ? fdl_layer_name(r->cell[c].layer) : "");
            fprintf(out, " %-20s", cell);
        }
        int alone, indep;
        depth(r, cols_run, &alone, &indep);
        char ind[16] = "?";
        if (indep >= 0)
            snprintf(ind, sizeof ind, "%d", indep);
        fprintf(out, " %6d %11s\n", alone, ind);
    }
    fprintf(out, "\nLAYERS: distinct layers seen catching the attack on their own. INDEPENDENT: 0 = it gets\n"
                 "through as configured; 1 = turning one defence off lets it through; otherwise the layers\n"
                 "seen catching it.\n");
}

int fdl_cmd_matrix(int argc, char **argv)
{
    drill_opts o;
    unsigned switches = (1u << FDL_SWITCH_COUNT) - 1;
    int pr = parse_drill(argc, argv, &o, 1, &switches);
    if (pr)
        return pr < 0 ? 0 : pr;
    file_list fl;
    if (collect(&fl, argc, argv, optind, FDL_SOURCE_DIR "/scenarios") != 0) {
        free_files(&fl);
        return FDL_EXIT_USAGE;
    }
    fdl_cli_install_signals();
    if (o.quiet && !getenv("FLEETDRILL_LOG"))
        fdl_log_set_level(FDL_LOG_WARN); /* --quiet: warnings and errors only, the devices' info lines too */
    fdl_ctx ctx;
    if (open_ctx(&ctx, &o) != 0) {
        free_files(&fl);
        return FDL_EXIT_ERROR;
    }
    matrix *m = fdl_calloc(1, sizeof *m);
    fdl_report *r = fdl_report_new(FDL_VERSION, (int64_t)time(NULL), NULL);
    int rc = FDL_EXIT_ERROR, cols_run[MATRIX_COLS] = {0};
    if (!m || !r)
        goto out;
    for (int c = 0; c < MATRIX_COLS; c++) {
        if (c && !(switches & (1u << (c - 1))))
            continue;
        m->col = c;
        cols_run[c] = 1;
        if (!o.quiet)
            fprintf(stderr, "fleetdrill: matrix column %s%s\n", c ? "without " : "baseline",
                    c ? fdl_switch_name((unsigned)c - 1) : "");
        fdl_scenario_opts so = {.ctx = &ctx, .without = c ? 1u << (c - 1) : 0, .unsafe_lua = o.unsafe_lua,
                                .devices = o.devices, .verbose = !o.quiet, .on_attack = on_attack, .ud = m};
        int run_rc = run_files(&fl, &so, r);
        if (run_rc) {
            rc = run_rc;
            goto out;
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        const mrow *row = &m->row[i];
        for (int c = 0; c < MATRIX_COLS; c++)
            if (cols_run[c] && row->set[c])
                fdl_report_matrix_set(r, row->attack, c ? fdl_switch_name((unsigned)c - 1) : "baseline",
                                      row->cell[c].outcome, row->cell[c].layer);
        int alone, indep;
        depth(row, cols_run, &alone, &indep);
        fdl_report_matrix_set_depth(r, row->attack, alone, indep);
    }
    print_matrix(stdout, m, cols_run);
    fflush(stdout);
    o.min_pass = 0;
    rc = write_outputs(r, &o) ? FDL_EXIT_ERROR : FDL_EXIT_OK;
out:
    fdl_report_free(r);
    fdl_free(m);
    fdl_ctx_close(&ctx);
    free_files(&fl);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------- */

int fdl_cmd_report(int argc, char **argv)
{
    const char *history = NULL, *compare = NULL;
    int json = 0, list = 0;
    char def[FDL_PATH_MAX + 32];
    snprintf(def, sizeof def, "%s/drills/history.db", fdl_default_state_dir());
    static const struct option opts[] = {{"compare", required_argument, 0, 'c'},
                                         {"history", required_argument, 0, 'y'},
                                         {"list", no_argument, 0, 'l'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': compare = optarg; break;
        case 'y': history = optarg; break;
        case 'l': list = 1; break;
        case 'j': json = 1; break;
        case 'h':
            puts("usage: fleetdrill report --compare PREVIOUS [--history DB] [--json]\n"
                 "       fleetdrill report --list [--history DB] [--json]\n"
                 "Compares the latest drill in the history with run PREVIOUS (a run id from --list, or\n"
                 "'previous' for the run before the latest): scenarios and steps added or removed,\n"
                 "regressions, fixes, changed outcomes or layers, time-to-respond changes.\n"
                 "  --history DB   default $FLEETDRILL_STATE/drills/history.db or ./.fleetdrill/drills/history.db\n"
                 "exit status: 0 no regression, 4 regressions, 1 error (e.g. fewer than two runs), 2 usage.");
            return 0;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        FAIL_USAGE("unexpected argument '%s'", argv[optind]);
    if (!compare && !list)
        FAIL_USAGE("report needs --compare PREVIOUS or --list");
    int64_t prev = 0;
    if (compare && strcmp(compare, "previous") && strcmp(compare, "last")) {
        char *end;
        errno = 0;
        long long v = strtoll(compare, &end, 10);
        if (errno || *end || end == compare || v < 1)
            FAIL_USAGE("--compare wants a run id (fleetdrill report --list) or 'previous'");
        prev = v;
    }
    if (!history)
        history = def;
    struct stat sb;
    if (stat(history, &sb) != 0) {
        fprintf(stderr, "fleetdrill: no drill history at %s (run fleetdrill drill first)\n", history);
        return FDL_EXIT_ERROR;
    }
    fdl_history *h = NULL;
    fdl_history_status st = fdl_history_open(history, &h);
    size_t regressions = 0;
    if (st == FDL_HISTORY_OK)
        st = list ? fdl_history_list_runs(h, stdout, json) : fdl_history_compare(h, prev, stdout, json, &regressions);
    if (st != FDL_HISTORY_OK) {
        fprintf(stderr, "fleetdrill: %s: %s%s%s\n", history, fdl_history_strerror(st), h ? " " : "",
                h ? fdl_history_errmsg(h) : "");
        fdl_history_free(h);
        return FDL_EXIT_ERROR;
    }
    fdl_history_free(h);
    return regressions ? FDL_EXIT_FINDINGS : FDL_EXIT_OK;
}
