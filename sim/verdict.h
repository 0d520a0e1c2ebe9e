/*
 * sim/verdict.h — how the harness judges an attack step: from what was observed
 * (the attack's own result, follow-up probes, the audit, the fleet's live view,
 * the broker's log lines quoted in the evidence) to the outcomes and layers the
 * evidence supports. Never from what the scenario expected.
 *
 * An attack may be caught by more than one layer at once (defence in depth): a
 * key copied from a `flash` device gets in, is contained by the cloud policy AND
 * detected by the audit. The judge therefore returns every verdict the evidence
 * supports, strongest first (blocked, contained, detected), or a single `missed`
 * (nothing caught it) or `error` (the attack could not be mounted, or its
 * observation failed: no verdict either way). docs/scenarios.md has the mapping
 * as a table; tests/test_verdict.c pins it down.
 *
 * Plain C over plain data: no I/O, no allocation.
 */
#ifndef FDL_VERDICT_H
#define FDL_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attacks/attack.h"
#include "reports/report.h"

/* The attacks a scenario can run (attacks/ underneath), by name. */
typedef enum fdl_attack_kind {
    FDL_ATTACK_STOLEN_CERT = 0,   /* "stolen-cert": a device's certificate with a fresh key */
    FDL_ATTACK_EXTRACTED_KEY,     /* "extracted-key": the key read out of a device (flash) or refused (se) */
    FDL_ATTACK_ROGUE_CA,          /* "rogue-ca": a device pointed at a TLS endpoint of another CA (MITM) */
    FDL_ATTACK_TLS12,             /* "tls-downgrade": a client offering TLS 1.2 only */
    FDL_ATTACK_PLAINTEXT,         /* "plaintext": MQTT CONNECT in the clear to the TLS port */
    FDL_ATTACK_CROSS_PUBLISH,     /* "cross-publish": device X publishes as device Y */
    FDL_ATTACK_CROSS_SUBSCRIBE,   /* "cross-subscribe": device X subscribes to Y's topics */
    FDL_ATTACK_WILDCARD,          /* "wildcard-subscribe": device X subscribes #, telemetry/+, ... */
    FDL_ATTACK_JUNK,              /* "junk-payload": malformed, mistyped and oversized payloads */
    FDL_ATTACK_POLICY_WIDEN,      /* "policy-widen": the device policy widened to a wildcard at run time */
    FDL_ATTACK_REVOCATION,        /* "revocation": a compromised device, revoked under load */
    /* OTA and the firmware layer (attacks/ota.h): an image or a job document the
     * device must refuse, a store that misbehaves, a rollout that must halt. */
    FDL_ATTACK_OTA_UNSIGNED,      /* "unsigned-image" */
    FDL_ATTACK_OTA_WRONG_KEY,     /* "wrong-tier-key": signed with another tier's key */
    FDL_ATTACK_OTA_ROLLBACK,      /* "rollback": an old, validly signed image below the floor */
    FDL_ATTACK_OTA_TAMPERED,      /* "tampered-artifact": the stored image changed after the job was signed */
    FDL_ATTACK_OTA_MALICIOUS,     /* "malicious-store": the store serves another, well-formed image */
    FDL_ATTACK_JOB_REPLAY,        /* "job-replay": a document the device already acted on, again */
    FDL_ATTACK_JOB_EXPIRED,       /* "job-expired": a genuine document delivered after its expiry */
    FDL_ATTACK_JOB_FOREIGN,       /* "mix-and-match": a document for another device or hardware revision */
    FDL_ATTACK_OTA_ENDLESS,       /* "endless-data": more bytes than the declared size */
    FDL_ATTACK_OTA_SLOW,          /* "slow-retrieval": blocks served slower than the device waits */
    FDL_ATTACK_OTA_NO_CONFIRM,    /* "never-confirms": a signed image that never phones home */
    FDL_ATTACK_BAD_CANARY,        /* "bad-canary": a rollout whose canary stage fails */
    FDL_ATTACK__COUNT
} fdl_attack_kind;

/* "stolen-cert", ...; "?" out of range. */
const char *fdl_attack_kind_name(fdl_attack_kind k);
/* Name (with '-' or '_') -> kind. 0, or -1 for an unknown name. */
int fdl_attack_kind_parse(const char *name, fdl_attack_kind *out);

typedef struct fdl_verdict {
    fdl_outcome outcome;
    fdl_layer layer;
    char why[256];            /* one sentence: the evidence that supports it */
} fdl_verdict;

#define FDL_VERDICTS_MAX 6
typedef struct fdl_verdicts {
    fdl_verdict v[FDL_VERDICTS_MAX];
    size_t n;                 /* >= 1 after fdl_verdict_judge */
} fdl_verdicts;

/* Everything observed about one attack. Pointers are borrowed for the call. */
typedef struct fdl_observation {
    fdl_attack_kind kind;
    const fdl_atk_result *attack;   /* the attack's own result (required) */
    /* Follow-up probes run with the foothold the attack got (the copied key tries to
     * publish and subscribe beyond its device): each one's result. */
    const fdl_atk_result *probes[4];
    size_t n_probes;
    /* The audit (cloud/audit.h), run after the attack: did it flag what the attack did? */
    bool audit_ran;
    bool audit_flagged;
    const char *audit_finding;      /* the finding's id and message, if flagged */
    int64_t detect_ms;              /* attack start to the finding; negative = n/a */
    /* Rogue endpoint: MQTT CONNECTs it read (credentials leaked); negative = not a rogue attack. */
    int rogue_connects;
    /* Revocation: what the fleet's live view and the broker log showed. */
    bool revoke_ok;                 /* the registry part of the revoke succeeded */
    double disconnect_ms;           /* request to the device's connection dropping; negative = it did not */
    double within_ms;               /* the bound the drill sets on that */
    bool reconnected;               /* the device came back online after the revoke */
    bool denied_after;              /* ... and the broker denied its requests (deny-all policy) */
    bool revoked_led;               /* the device ended in its revoked state */
    uint32_t others_lost;           /* other devices that went offline meanwhile (collateral) */
    /* OTA: what the targeted device did (its reports on .../status, its boot records). */
    bool ota;                       /* an OTA attack: the fields below are filled */
    bool ota_delivery_denied;       /* the broker refused the attacker's delivery (policy) */
    const char *ota_final;          /* the device's last report on the job ("rejected", "failed",
                                       "reverted", "confirmed", ...), NULL if it said nothing */
    const char *ota_detail;         /* the reason it gave */
    bool ota_wrote;                 /* it reported the image written (slot marked for a trial boot) */
    bool ota_bad_ran;               /* a boot record shows the attacker's image ran */
    bool ota_bad_runs;              /* ... and it is what runs now */
    bool ota_reverted;              /* a boot record shows its trial reverted */
    bool ota_unverified_ran;        /* a boot record shows an image run without passing its checks */
    /* Rollout (bad canary): the job service's account and the fleet's. */
    bool rollout;
    bool rollout_halted, rollout_completed;
    unsigned rollout_stage;         /* the stage it stopped at (1 = the canary) */
    uint32_t rollout_targets, rollout_untouched; /* never notified */
    uint32_t rollout_bad_running;   /* devices running the bad image at the end */
    const char *rollout_reason;
} fdl_observation;

/* Fills *out from obs (see the file comment). */
void fdl_verdict_judge(const fdl_observation *obs, fdl_verdicts *out);

/*
 * The verdict to report for what the scenario expected: the one equal to
 * (expected, layer) when the evidence supports it (*pass = true), otherwise the
 * strongest (*pass = false). Never NULL after fdl_verdict_judge.
 */
const fdl_verdict *fdl_verdict_pick(const fdl_verdicts *v, fdl_outcome expected, fdl_layer layer, bool *pass);

/* The layer that a stage of the attack tooling belongs to (key extraction ->
 * hardware, TCP and TLS -> transport, CONNACK -> identity, publish, subscribe,
 * delivery and payload -> cloud); FDL_LAYER_NONE for none/setup. */
fdl_layer fdl_verdict_stage_layer(int stage);

#endif
