/*
 * attacks/credentials.h — attacks on a device's identity (layers 1 and 3):
 * a certificate stolen without its key, and a private key extracted from a device.
 *
 * Each call is synchronous and bounded (ATK_CONNECT_MS and friends in
 * attack_int.h: a few seconds at most), runs a real client against the
 * target's broker on loopback, fills *r (see attack.h) and returns r->succeeded.
 */
#ifndef FDL_ATK_CREDENTIALS_H
#define FDL_ATK_CREDENTIALS_H

#include <stdint.h>

#include "attacks/attack.h"

/*
 * Stolen certificate WITHOUT its key: copies devices/<victim>/cert.pem, makes a
 * fresh P-256 key and runs the TLS 1.3 mutual-auth handshake to the broker
 * presenting the victim's certificate (client id = the victim's id). The
 * CertificateVerify is signed with the wrong key, so the broker must refuse.
 * succeeded: CONNACK 0. Evidence: that the key does not match the certificate,
 * the TLS outcome (alert / error), and the broker's log lines about it.
 * Expected: blocked by layer 3 (identity) at stage tls-handshake.
 */
int fdl_atk_stolen_cert(const fdl_atk_target *t, const char *victim_id, fdl_atk_result *r);

/*
 * Key extracted from a device, by profile (devices/<victim>/profile):
 *  - `flash`: reads devices/<victim>/key.pem (extractable by design), connects
 *    from another loopback source address source_ipv4 (network order; 0 =
 *    127.0.0.66) with the victim's certificate and that key as client id
 *    "<victim>-clone", and publishes one valid telemetry message on
 *    telemetry/<victim> while the ingest actor observes. succeeded: connected.
 *    Expected: not blocked (the identity is genuine); contained by the policy to
 *    the victim's own topics and visible to detection (second source address).
 *  - `se`: logs in to the victim's token with the PIN from its flash and asks
 *    for the private key's value (C_GetAttributeValue CKA_VALUE). succeeded: the
 *    token returned key bytes. Evidence: the CK_RV (CKR_ATTRIBUTE_SENSITIVE) and
 *    the key's CKA_SENSITIVE / CKA_EXTRACTABLE. Expected: blocked by layer 1
 *    (hardware) at stage key-extraction.
 */
int fdl_atk_extracted_key(const fdl_atk_target *t, const char *victim_id, uint32_t source_ipv4, fdl_atk_result *r);

#endif
