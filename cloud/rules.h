/*
 * cloud/rules.h — the JITR registration handler's business rules, in Lua 5.4.
 *
 * The rules file defines one global function:
 *     function register(device) ... return true, "<policy>"  |  return false, "<reason>" end
 * device is a table: id, serial, fingerprint, source (peer address), sold
 * (boolean), recalled (boolean), firmware (string, "" if unknown), known (the
 * registry had a record of the device before its certificate showed up),
 * method ("jitr" or "claim": how the device asks; for a claim, serial and
 * fingerprint are "" since the certificate does not exist yet).
 *
 * The file runs in a restricted environment: no io, os, package, require,
 * load, loadfile, dofile, collectgarbage, debug — only string, table, math,
 * utf8 and the pure base functions. Text chunks only (no bytecode). Each call
 * is bounded to FDL_RULES_MAX_INSTRUCTIONS VM instructions, so a loop in the
 * rules cannot stall provisioning. Errors carry the file and line.
 *
 * Threads: one fdl_rules per thread.
 */
#ifndef FDL_RULES_H
#define FDL_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define FDL_RULES_MAX_INSTRUCTIONS 1000000

typedef struct fdl_rules fdl_rules;

typedef struct fdl_rules_device {
    const char *id, *serial, *fingerprint, *source, *firmware;
    const char *method;        /* "jitr" (NULL) or "claim" */
    bool sold, recalled, known;
} fdl_rules_device;

/* Loads and runs the rules file (which must define register). 0, or -1 with
 * "file:line: message" in err. Free with fdl_rules_free. */
int fdl_rules_open(const char *path, fdl_rules **out, char *err, size_t errcap);
void fdl_rules_free(fdl_rules *r);

/*
 * Calls register(device). 1 = accept (policy filled: the policy to attach),
 * 0 = reject (reason filled), -1 = the rules failed (err has file:line): the
 * caller must treat that as "not decided", never as accept.
 */
int fdl_rules_decide(fdl_rules *r, const fdl_rules_device *d, char *policy, size_t policy_cap, char *reason,
                     size_t reason_cap, char *err, size_t errcap);

#endif
