/* attacks/attack.c — results, evidence lines and the broker-log helper (see attack.h). */
#include "attacks/attack.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sim/alloc.h"
#include "sim/broker.h"

/* The most of the log one call reads: an attack window appends kilobytes, not megabytes. */
#define LOG_READ_MAX (1u << 20)

static const char *const stage_names[FDL_ATK_STAGE__COUNT] = {
    [FDL_ATK_STAGE_NONE] = "none",
    [FDL_ATK_STAGE_SETUP] = "setup",
    [FDL_ATK_STAGE_KEY_EXTRACT] = "key-extraction",
    [FDL_ATK_STAGE_TCP] = "tcp",
    [FDL_ATK_STAGE_TLS] = "tls-handshake",
    [FDL_ATK_STAGE_CONNACK] = "mqtt-connack",
    [FDL_ATK_STAGE_PUBLISH] = "publish",
    [FDL_ATK_STAGE_SUBSCRIBE] = "subscribe",
    [FDL_ATK_STAGE_DELIVERY] = "delivery",
    [FDL_ATK_STAGE_PAYLOAD] = "payload",
    [FDL_ATK_STAGE_JOB] = "job-document",
    [FDL_ATK_STAGE_IMAGE] = "image",
    [FDL_ATK_STAGE_TRIAL] = "trial",
    [FDL_ATK_STAGE_ROLLOUT] = "rollout-gate",
};

const char *fdl_atk_stage_name(int stage)
{
    if (stage < 0 || stage >= FDL_ATK_STAGE__COUNT)
        return "unknown";
    return stage_names[stage];
}

uint64_t fdl_atk_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void fdl_atk_result_begin(fdl_atk_result *r)
{
    memset(r, 0, sizeof *r);
    r->elapsed_us = fdl_atk_now_us();   /* start time until _end turns it into a duration */
}

void fdl_atk_result_end(fdl_atk_result *r, int succeeded, int stage)
{
    r->elapsed_us = fdl_atk_now_us() - r->elapsed_us;
    r->succeeded = succeeded ? 1 : 0;
    r->stage = succeeded ? FDL_ATK_STAGE_NONE : stage;
}

void fdl_atk_note(fdl_atk_result *r, const char *fmt, ...)
{
    size_t used = strlen(r->evidence), cap = sizeof r->evidence;
    if (used + 5 >= cap)
        return;   /* already truncated */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fact per line: a newline inside a fact (a log line, a payload) would split it. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    int n = snprintf(r->evidence + used, cap - used, "%s%s", used ? "\n" : "", line);
    if (n < 0 || (size_t)n >= cap - used)
        memcpy(r->evidence + cap - 4, "...", 4);
}

int fdl_atk_broker_log_path(const fdl_atk_target *t, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/broker/%s", t->state_dir ? t->state_dir : ".", FDL_BROKER_LOG);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

uint64_t fdl_atk_log_offset(const fdl_atk_target *t)
{
    char path[1200];
    struct stat sb;
    if (fdl_atk_broker_log_path(t, path, sizeof path) != 0 || stat(path, &sb) != 0)
        return 0;
    return (uint64_t)sb.st_size;
}

int fdl_atk_log_since(const fdl_atk_target *t, uint64_t from, const char *needle, int max_lines,
                      fdl_atk_result *r)
{
    char path[1200];
    if (fdl_atk_broker_log_path(t, path, sizeof path) != 0)
        return -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (uint64_t)sb.st_size < from)
        from = 0;   /* the broker restarted and truncated its log */
    char *buf = fdl_malloc(LOG_READ_MAX + 1);
    int count = -1;
    if (!buf || fseeko(f, (off_t)from, SEEK_SET) != 0)
        goto cleanup;
    size_t n = fread(buf, 1, LOG_READ_MAX, f);
    buf[n] = '\0';
    count = 0;
    for (char *line = buf, *end; line < buf + n; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            break;   /* a line still being written: not evidence yet */
        *end = '\0';
        if (needle && needle[0] && !strstr(line, needle))
            continue;
        if (count++ < max_lines && r)
            fdl_atk_note(r, "broker: %s", line);
    }
cleanup:
    fdl_free(buf);
    fclose(f);
    return count;
}

int fdl_atk_log_wait(const fdl_atk_target *t, uint64_t from, const char *needle, int max_lines, unsigned wait_ms,
                     fdl_atk_result *r)
{
    /* Once a line matches, wait a little longer for its siblings: one refusal can log
     * several lines (an OpenSSL error queue), and a loaded broker writes them apart. */
    unsigned settle = 0;
    for (unsigned waited = 0;; waited += 20) {
        int n = fdl_atk_log_since(t, from, needle, 0, NULL);
        if (n > 0)
            settle += 20;
        if (settle > 300 || (n > 0 && n >= max_lines) || waited >= wait_ms)
            return fdl_atk_log_since(t, from, needle, max_lines, r);
        usleep(20000);
    }
}
