/*
 * devices/tcp.h — the bottom transport layer: a libuv TCP connection.
 *
 * Received bytes are kept in a bounded buffer (reading pauses when it is full);
 * sent bytes go out with uv_try_write and, for what the kernel does not take at
 * once, a queued uv_write whose pending total is capped (send returns 0 above
 * the cap and FDL_TP_WRITABLE follows when the queue drains).
 * Connect attempts are bounded by a timeout.
 */
#ifndef FDL_TCP_H
#define FDL_TCP_H

#include <uv.h>

#include "devices/transport.h"

/*
 * Creates an unconnected TCP layer on `loop`. rx_cap: receive buffer size;
 * tx_cap: the most bytes that may wait in the write queue; connect_timeout_ms: 0
 * for none. Ownership: freed by the chain (fdl_tp_close); NULL on allocation failure.
 */
fdl_transport *fdl_tcp_new(uv_loop_t *loop, size_t rx_cap, size_t tx_cap, uint64_t connect_timeout_ms);

/* Binds the connection's local end to ipv4 (network order, port chosen by the
 * kernel) before connect: each virtual device can have its own loopback source
 * address (127.0.0.0/8), as real devices have their own. Call before connect. */
void fdl_tcp_set_source(fdl_transport *tp, uint32_t ipv4);

#endif
