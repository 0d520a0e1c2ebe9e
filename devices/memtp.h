/*
 * devices/memtp.h — an in-memory transport pair for tests: two connected ends
 * implementing devices/transport.h without sockets or a loop.
 *
 * Bytes sent on one end become readable on the other; delivery of the
 * FDL_TP_READABLE event is synchronous (inside send), so tests are
 * deterministic. An end can be told to accept at most N bytes per send (to
 * exercise partial writes) or to report "would block" (0) until released.
 */
#ifndef FDL_MEMTP_H
#define FDL_MEMTP_H

#include "devices/transport.h"

/* Creates both ends; each has capacity cap bytes of unread data. 0 or -1. Free with fdl_memtp_free. */
int fdl_memtp_pair(size_t cap, fdl_transport **a, fdl_transport **b);
/* Frees both ends (call once, with either end). */
void fdl_memtp_free(fdl_transport *end);
/* Limits every send on `end` to at most max bytes (0 = unlimited). */
void fdl_memtp_set_max_send(fdl_transport *end, size_t max);
/* While blocked, send on `end` returns 0; unblocking emits FDL_TP_WRITABLE on it. */
void fdl_memtp_set_blocked(fdl_transport *end, int blocked);
/* Closes `end` as if the peer went away: the other end's recv then returns FDL_TP_ECLOSED
 * and it receives FDL_TP_CLOSED. */
void fdl_memtp_hangup(fdl_transport *end);
/*
 * Deferred mode for `end`: bytes sent to it are stored but FDL_TP_READABLE is
 * not raised until fdl_memtp_deliver(end). Needed when both ends run engines
 * that must not be re-entered (two TLS stacks talking to each other).
 */
void fdl_memtp_set_deferred(fdl_transport *end, int deferred);
/* Raises a pending FDL_TP_READABLE on `end`; returns 1 if there was one. */
int fdl_memtp_deliver(fdl_transport *end);
/* Bytes sent through `end` so far. */
size_t fdl_memtp_sent(const fdl_transport *end);

#endif
