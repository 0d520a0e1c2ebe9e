/*
 * attacks/downgrade.h — attacks on the transport (layer 4): a TLS 1.2-only client
 * and a plaintext MQTT client against the broker's TLS 1.3 listener.
 *
 * Synchronous and bounded (a few seconds), loopback only; fills *r (attack.h)
 * and returns r->succeeded.
 */
#ifndef FDL_ATK_DOWNGRADE_H
#define FDL_ATK_DOWNGRADE_H

#include "attacks/attack.h"

/*
 * A TLS client offering only TLS 1.2 (mbedTLS min = max = 1.2), otherwise the
 * device stack; as_id: a device whose identity it presents (NULL: no client
 * certificate), so that only the protocol version differs from a genuine
 * device. succeeded: CONNACK 0. Evidence: the alert (protocol_version) or
 * error, the negotiated version if any, the broker's log lines.
 * Expected: blocked by layer 4 at stage tls-handshake.
 */
int fdl_atk_tls12(const fdl_atk_target *t, const char *as_id, fdl_atk_result *r);

/*
 * A raw TCP client that sends an MQTT CONNECT (devices/mqtt_codec.h, client id
 * client_id or "plaintext-attacker") in the clear to the broker's TLS port and
 * reads what comes back for up to 2 s. succeeded: a CONNACK with return code 0.
 * Evidence: bytes sent, what came back (nothing, a close, a reset, bytes in hex
 * and what they are: a TLS alert record, a CONNACK), the broker's log lines.
 * Expected: blocked by layer 4 at stage tls-handshake (the listener speaks TLS only).
 */
int fdl_atk_plaintext(const fdl_atk_target *t, const char *client_id, fdl_atk_result *r);

#endif
