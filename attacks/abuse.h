/*
 * attacks/abuse.h — a compromised device misusing its own identity (layer 5):
 * cross-device publish and subscribe, wildcard subscriptions, junk and
 * oversized payloads.
 *
 * The attacker is device X's real identity: for an `se` device the key stays in
 * its token and is used as a signing oracle (devices/se.h), for `flash` it is
 * read from key.pem. It connects with client id "<X>-atk" (so a running device X
 * is not taken over). Success is judged from DELIVERY, never from PUBACK
 * (Mosquitto acknowledges denied publishes in MQTT 3.1.1): an observer — the
 * ingest actor svc-ingest with its own identity (<state>/pki/actors/), allowed
 * to read telemetry/+ — records what arrives during the attack window.
 * Evidence: SUBACK codes (0x80 = refused), PUBACKs, what the attacker and the
 * observer received, and the broker's log lines (the plugin's denials).
 *
 * Synchronous and bounded: a few seconds plus window_ms where there is one.
 * Each fills *r (attack.h) and returns r->succeeded.
 */
#ifndef FDL_ATK_ABUSE_H
#define FDL_ATK_ABUSE_H

#include "attacks/attack.h"

/* Longest observation window an attack accepts, in ms (a drill step, not a soak). */
#define FDL_ATK_WINDOW_MAX_MS 30000u

/*
 * X publishes valid telemetry on its own topic (the control: the observer must
 * see it) and then on telemetry/<victim>. succeeded: the observer received the
 * message X published on the victim's topic. Expected: blocked by layer 5 at
 * stage publish (the broker drops it; the plugin logs the denial).
 */
int fdl_atk_cross_publish(const fdl_atk_target *t, const char *attacker_id, const char *victim_id, fdl_atk_result *r);

/*
 * X subscribes commands/<victim> and telemetry/<victim> and listens for window_ms.
 * succeeded: X received any message on them. Expected: blocked by layer 5 at
 * stage subscribe (SUBACK 0x80 for both).
 */
int fdl_atk_cross_subscribe(const fdl_atk_target *t, const char *attacker_id, const char *victim_id,
                            unsigned window_ms, fdl_atk_result *r);

/*
 * X subscribes "#", "telemetry/+" and "telemetry/#" and listens for window_ms.
 * succeeded: X received a message on a topic that is not its own. Expected:
 * blocked by layer 5 at stage subscribe; with a widened policy it succeeds
 * (the ablation "wildcard policy").
 */
int fdl_atk_wildcard_subscribe(const fdl_atk_target *t, const char *attacker_id, unsigned window_ms,
                               fdl_atk_result *r);

/*
 * X publishes on its own telemetry topic: non-JSON text, JSON with wrong field
 * types, valid-looking JSON of 4 KiB (over the payload rule's 1 KiB), a valid
 * control message, then 300 KB (over the broker's max_packet_size). succeeded:
 * the observer received any of the junk. Evidence: per payload, delivered or
 * not; the plugin's "dropped payload" lines; how the broker answered the
 * oversized packet. Expected: blocked by layer 5 (payload rules) at stage payload.
 */
int fdl_atk_junk_payloads(const fdl_atk_target *t, const char *attacker_id, fdl_atk_result *r);

#endif
