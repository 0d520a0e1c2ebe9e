/*
 * sim/progress.h — a one-line terminal progress bar that stays silent off a terminal.
 *
 * The bar is drawn only when out is a terminal (isatty), TERM is not "dumb" and
 * CI is not "true" (or "1"): piped or captured output, CI logs and dumb
 * terminals get nothing, so scripts and reports never contain \r noise. A
 * disabled bar turns every call into a no-op.
 *
 * The line reads, for example,
 *     connect [##########--------------] 4210/10000  42.1% 1203/s ETA 0:04 tls 812
 * (label, bar, done/total, percentage, rate per second, ETA, caller's status).
 * With total 0 (unknown) only the label, the count, the rate and the status are
 * shown. The line starts with \r, ends with ESC[K (erase to end of line) and is
 * cut to the terminal width (80 columns when unknown), so it never wraps.
 * Redrawing is rate-limited to one draw per 100 ms of CLOCK_MONOTONIC, so
 * calling fdl_progress_update for every event costs almost nothing.
 *
 * Logging: an enabled bar installs itself as the fdl_log before-write hook (see
 * fdl_log.h), so a log line first erases the bar instead of being glued to it;
 * the next update redraws the bar at once. Only one bar should be alive at a
 * time; fdl_progress_free removes the hook.
 *
 * Not thread-safe, except that the log hook may run on any thread that logs.
 */
#ifndef FDL_PROGRESS_H
#define FDL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct fdl_progress fdl_progress;

/*
 * A bar that writes to out (borrowed; must outlive the bar) headed by label
 * (copied; NULL means none) counting up to total (0 = unknown). Returns NULL only
 * when out of memory; every function accepts NULL. Free with fdl_progress_free.
 */
fdl_progress *fdl_progress_new(FILE *out, const char *label, uint64_t total);

/* Like fdl_progress_new, but always enabled, whatever out, TERM and CI are (for tests). */
fdl_progress *fdl_progress_new_forced(FILE *out, const char *label, uint64_t total);

/* 1 when the bar draws, 0 when every call is a no-op (or p is NULL). */
int fdl_progress_enabled(const fdl_progress *p);

/*
 * Records done and redraws if 100 ms have passed since the last draw (or this is
 * the first draw, or a log line erased the bar). fmt: printf-style short status
 * (at most 127 bytes kept, control characters shown as spaces), NULL for none;
 * it is formatted only when the line is actually drawn.
 */
void fdl_progress_update(fdl_progress *p, uint64_t done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Draws the final state (the last done, the last status drawn, and the total
 * time taken instead of the ETA) followed by a newline. Later updates and
 * finishes are no-ops.
 */
void fdl_progress_finish(fdl_progress *p);

/*
 * Removes the log hook and frees p; if the bar is on screen and was not finished,
 * a newline first keeps its last state visible. NULL is a no-op.
 */
void fdl_progress_free(fdl_progress *p);

#endif /* FDL_PROGRESS_H */
