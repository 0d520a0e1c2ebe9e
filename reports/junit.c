/*
 * reports/junit.c — the report as JUnit XML for CI (see report.h, docs/reports.md).
 *
 * The mapping: one <testsuite> per scenario, one <testcase> per attack step
 * (classname = the scenario, name = the step's label and its attack). A step that did
 * not pass carries <failure>, or <error> when the step itself failed to run (outcome
 * "error"); the message is the verdict ("expected blocked by transport, got missed")
 * and the text is the evidence. A scenario error is one more testcase with <error>.
 * This is the subset of the JUnit schema that Jenkins, GitLab and GitHub reporters
 * all read.
 */
#include "reports/report_int.h"

#include <string.h>

/* Seconds for JUnit's time attributes; an unknown duration counts as 0. */
static double seconds(int64_t ms)
{
    return ms < 0 ? 0.0 : (double)ms / 1000.0;
}

/* A scenario's suite and class name: its name, and the switch it ran under if any. */
static void put_suite_name(FILE *out, const fdl_report_scenario *s)
{
    fdl_rpt_put_markup(out, s->name, true);
    if (s->ablation) {
        fputs(" [ablation: ", out);
        fdl_rpt_put_markup(out, s->ablation, true);
        fputc(']', out);
    }
}

static void put_property(FILE *out, const char *name, const char *value)
{
    if (!value)
        return;
    fprintf(out, "      <property name=\"%s\" value=\"", name);
    fdl_rpt_put_markup(out, value, true);
    fputs("\"/>\n", out);
}

static void put_step(FILE *out, const fdl_report_scenario *s, const fdl_report_step *st)
{
    fputs("    <testcase classname=\"", out);
    put_suite_name(out, s);
    fputs("\" name=\"", out);
    fdl_rpt_put_markup(out, st->label, true);
    if (strcmp(st->label, st->attack) != 0) {
        fputs(" (", out);
        fdl_rpt_put_markup(out, st->attack, true);
        fputc(')', out);
    }
    fprintf(out, "\" time=\"%.3f\"", seconds(st->duration_ms));
    if (st->pass && !st->evidence) {
        fputs("/>\n", out);
        return;
    }
    fputs(">\n", out);
    if (!st->pass) {
        const char *tag = st->actual == FDL_OUTCOME_ERROR ? "error" : "failure";
        char verdict[128];
        fprintf(out, "      <%s message=\"", tag);
        fdl_rpt_put_markup(out, fdl_rpt_verdict(st, verdict, sizeof verdict), true);
        fprintf(out, "\" type=\"%s\">", fdl_outcome_name(st->actual));
        fdl_rpt_put_markup(out, st->evidence, false);
        fprintf(out, "</%s>\n", tag);
    } else {
        /* A passing step's evidence shows what caught the attack; CI shows it as output. */
        fputs("      <system-out>", out);
        fdl_rpt_put_markup(out, st->evidence, false);
        fputs("</system-out>\n", out);
    }
    fputs("    </testcase>\n", out);
}

static void put_suite(FILE *out, const fdl_report_scenario *s, const char *when)
{
    size_t failures = 0, errors = s->error ? 1 : 0;
    int64_t ms = 0;
    for (size_t i = 0; i < s->n_steps; i++) {
        const fdl_report_step *st = s->steps[i];
        if (!st->pass && st->actual == FDL_OUTCOME_ERROR)
            errors++;
        else if (!st->pass)
            failures++;
        ms += st->duration_ms > 0 ? st->duration_ms : 0;
    }
    fputs("  <testsuite name=\"", out);
    put_suite_name(out, s);
    fprintf(out, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"0\" time=\"%.3f\" timestamp=\"%s\">\n",
            s->n_steps + (s->error ? 1 : 0), failures, errors, seconds(ms), when);
    fputs("    <properties>\n", out);
    put_property(out, "path", s->path);
    put_property(out, "description", s->description);
    put_property(out, "ablation", s->ablation);
    char devices[32];
    snprintf(devices, sizeof devices, "%llu", (unsigned long long)s->devices);
    put_property(out, "fleet.devices", devices);
    put_property(out, "fleet.profile", s->profile);
    put_property(out, "fleet.provisioning", s->provisioning);
    fputs("    </properties>\n", out);
    if (s->error) {
        fputs("    <testcase classname=\"", out);
        put_suite_name(out, s);
        fputs("\" name=\"scenario\" time=\"0.000\">\n      <error message=\"", out);
        fdl_rpt_put_markup(out, s->error, true);
        fputs("\" type=\"scenario-error\">", out);
        fdl_rpt_put_markup(out, s->error, false);
        fputs("</error>\n    </testcase>\n", out);
    }
    for (size_t i = 0; i < s->n_steps; i++)
        put_step(out, s, s->steps[i]);
    fputs("  </testsuite>\n", out);
}

fdl_report_status fdl_report_write_junit(const fdl_report *r, FILE *out)
{
    if (!r || !out)
        return FDL_REPORT_ERR_ARG;
    fdl_report_counts c;
    fdl_report_get_counts(r, &c);
    size_t errors = c.errors, failures = 0;
    int64_t ms = 0;
    for (size_t i = 0; i < r->n_scenarios; i++)
        for (size_t k = 0; k < r->scenarios[i]->n_steps; k++) {
            const fdl_report_step *st = r->scenarios[i]->steps[k];
            if (!st->pass && st->actual == FDL_OUTCOME_ERROR)
                errors++;
            else if (!st->pass)
                failures++;
            ms += st->duration_ms > 0 ? st->duration_ms : 0;
        }
    char when[32];
    fdl_rpt_iso_time(r->started_unix, when, sizeof when);
    /* JUnit timestamps have no zone designator (the schema's xs:dateTime pattern). */
    when[strcspn(when, "Z")] = '\0';
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    fprintf(out, "<testsuites name=\"fleetdrill\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\""
            " timestamp=\"%s\">\n", c.steps + c.errors, failures, errors, seconds(ms), when);
    for (size_t i = 0; i < r->n_scenarios; i++)
        put_suite(out, r->scenarios[i], when);
    fputs("</testsuites>\n", out);
    return ferror(out) ? FDL_REPORT_ERR_IO : FDL_REPORT_OK;
}
