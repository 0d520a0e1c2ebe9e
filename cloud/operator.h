/*
 * cloud/operator.h — the operator actor (identity svc-operator): asks the broker
 * plugin, over $CONTROL/fleetdrill/v1, to drop every live connection of a
 * device, and waits for the plugin's answer. The connection uses libmosquitto
 * over TLS 1.3 with the operator's own certificate; its policy allows the
 * control topic and device commands only.
 */
#ifndef FDL_OPERATOR_H
#define FDL_OPERATOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct fdl_operator_cfg {
    const char *host;
    uint16_t port;
    const char *cafile, *certfile, *keyfile;
    unsigned timeout_ms;   /* connect + answer; 0 = 5000 */
} fdl_operator_cfg;

/*
 * Sends "kick <device_id>" and waits for the answer. 0 when the plugin
 * confirmed (every connection of the device is closed by then), -1 with err.
 * *rtt_ms (may be NULL) is the time from publishing the request to the answer.
 */
int fdl_operator_kick(const fdl_operator_cfg *cfg, const char *device_id, double *rtt_ms, char *err, size_t errcap);

#endif
