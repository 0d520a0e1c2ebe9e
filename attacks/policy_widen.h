/*
 * attacks/policy_widen.h — a policy misconfiguration injected at runtime (the
 * ablation "wildcard policy", layer 5), and its undo.
 *
 * Writes through the registry API (cloud/registry.h) into <state>/registry.db,
 * as an operator's mistaken edit would; the broker plugin's policy cache follows
 * registry edits (PRAGMA data_version), so the next authorisation check uses
 * the widened text. The registry's audit log records both edits (actor "attack").
 */
#ifndef FDL_ATK_POLICY_WIDEN_H
#define FDL_ATK_POLICY_WIDEN_H

#include "attacks/attack.h"

/* The widening the brief's drills use: any device may read every device's telemetry. */
#define FDL_ATK_WIDEN_TELEMETRY                                   \
    "# injected by attacks/policy_widen.c: wildcard misconfiguration\n" \
    "allow subscribe telemetry/#\n"                               \
    "allow receive   telemetry/#\n"

/* The policy as it was before widening; restore puts it back. Opaque. */
typedef struct fdl_atk_policy_saved fdl_atk_policy_saved;

/*
 * Appends extra_lines (NULL = FDL_ATK_WIDEN_TELEMETRY) to the text of policy
 * (NULL = "device-default") and puts it back with the same per-device flag.
 * On success *saved (ownership passes to the caller: fdl_atk_policy_saved_free)
 * holds the original. r (may be NULL) is filled like an attack's result:
 * succeeded = the widened policy is in the registry (the misconfiguration is
 * in place), evidence = the lines added. Returns 0, or -1 (nothing changed;
 * the reason in r, stage setup).
 */
int fdl_atk_policy_widen(const fdl_atk_target *t, const char *policy, const char *extra_lines,
                         fdl_atk_policy_saved **saved, fdl_atk_result *r);

/* Puts the saved text back. r (may be NULL): succeeded = restored. 0 or -1 with the reason in r. */
int fdl_atk_policy_restore(const fdl_atk_target *t, const fdl_atk_policy_saved *saved, fdl_atk_result *r);

/* NULL is a no-op. */
void fdl_atk_policy_saved_free(fdl_atk_policy_saved *s);

#endif
