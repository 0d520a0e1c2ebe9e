/*
 * devices/transport.h — the byte-stream interface every connection layer implements.
 *
 * A connection is a chain of layers (curl's connection filters): the device's
 * MQTT client talks to the top layer; each layer moves bytes through the one
 * below it (`next`). TCP (over a libuv handle) is the bottom; TLS (mbedTLS over
 * those bytes) sits on it; attack filters (drop, mutate, replay, MITM) and an
 * in-memory pair for tests implement the same interface. Device firmware is the
 * same with and without an attack: only the chain differs.
 *
 * Return rules for send/recv (as in coreMQTT's transport interface):
 *   > 0  bytes moved;
 *   0    would block (nothing moved; an FDL_TP_WRITABLE / FDL_TP_READABLE event follows);
 *   < 0  an fdl_tp_err; a closed peer is FDL_TP_ECLOSED, never 0.
 *
 * Events go up the chain through `cb`: a layer installs itself as the callback of
 * the layer below it; the owner installs its callback on the top layer.
 * FDL_TP_CLOSED is delivered at most once, with the reason in `status`.
 *
 * Lifetime: the owner calls fdl_tp_close(top) once and then forgets the chain:
 * no event reaches the owner afterwards, and the layers free themselves when the
 * bottom's libuv handle has closed (never inside one of their own callbacks).
 */
#ifndef FDL_TRANSPORT_H
#define FDL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum fdl_tp_event {
    FDL_TP_CONNECTED = 1,  /* the layer is ready for application bytes */
    FDL_TP_READABLE,       /* recv may now return bytes */
    FDL_TP_WRITABLE,       /* send, which returned 0, may now accept bytes */
    FDL_TP_CLOSED,         /* the connection is gone; status says why */
} fdl_tp_event;

typedef enum fdl_tp_err {
    FDL_TP_OK = 0,
    FDL_TP_ECLOSED = -1,     /* orderly close by the peer */
    FDL_TP_ERESET = -2,      /* connection reset / refused / unreachable */
    FDL_TP_ETIMEDOUT = -3,
    FDL_TP_ETLS = -4,        /* TLS failure other than certificate verification */
    FDL_TP_ECERT = -5,       /* the peer's certificate did not verify */
    FDL_TP_EPROTO = -6,      /* malformed input from the peer */
    FDL_TP_ENOMEM = -7,
    FDL_TP_EABORT = -8,      /* closed locally */
    FDL_TP_ETLSALERT = -9,   /* the peer sent a fatal TLS alert (e.g. refused our certificate) */
} fdl_tp_err;

const char *fdl_tp_strerror(int err);

typedef struct fdl_transport fdl_transport;
typedef void (*fdl_tp_cb)(fdl_transport *t, fdl_tp_event ev, int status, void *user);

typedef struct fdl_transport_vtbl {
    const char *name;
    /* Starts connecting (bottom) or starting the layer's protocol once the layer below is connected. */
    int (*connect)(fdl_transport *t, const char *host, uint16_t port);
    ssize_t (*send)(fdl_transport *t, const uint8_t *buf, size_t len);
    ssize_t (*recv)(fdl_transport *t, uint8_t *buf, size_t cap);
    /* Called on this layer when the layer below reports an event (installed as next->cb). */
    void (*on_lower)(fdl_transport *t, fdl_tp_event ev, int status);
    /* Starts closing this layer and everything below it. */
    void (*close)(fdl_transport *t);
    /* Frees this layer's memory only (called bottom-up after the bottom has closed). */
    void (*destroy)(fdl_transport *t);
} fdl_transport_vtbl;

struct fdl_transport {
    const fdl_transport_vtbl *vt;
    fdl_transport *next;   /* the layer below, or NULL at the bottom */
    fdl_transport *above;  /* the layer above, or NULL at the top */
    fdl_tp_cb cb;          /* where this layer's events go */
    void *user;
    int closing;           /* set by fdl_tp_close: no more events go up */
    int closed_sent;       /* FDL_TP_CLOSED already delivered */
};

/* Stacks `upper` on `lower`: lower's events go to upper->vt->on_lower. */
void fdl_tp_stack(fdl_transport *upper, fdl_transport *lower);
/* Delivers an event from t to whoever is above (or to the owner at the top). */
void fdl_tp_emit(fdl_transport *t, fdl_tp_event ev, int status);
/* Sets the owner's callback on the top layer. */
void fdl_tp_set_cb(fdl_transport *top, fdl_tp_cb cb, void *user);
/* Closes the whole chain from the top; see "Lifetime" above. */
void fdl_tp_close(fdl_transport *top);
/* Called by the bottom layer when its handle has closed: destroys every layer. */
void fdl_tp_release_chain(fdl_transport *bottom);

static inline ssize_t fdl_tp_send(fdl_transport *t, const uint8_t *b, size_t n) { return t->vt->send(t, b, n); }
static inline ssize_t fdl_tp_recv(fdl_transport *t, uint8_t *b, size_t n) { return t->vt->recv(t, b, n); }

#endif /* FDL_TRANSPORT_H */
