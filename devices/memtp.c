/* devices/memtp.c — in-memory transport pair for tests (see memtp.h). */
#include "devices/memtp.h"

#include <string.h>

#include "sim/alloc.h"

typedef struct mem_end {
    fdl_transport base;
    struct mem_end *peer;
    uint8_t *buf;          /* bytes waiting to be read by this end */
    size_t len, cap;
    size_t max_send, sent;
    int blocked, hung_up, want_writable;
    int deferred, pending_readable;
} mem_end;

static ssize_t mem_send(fdl_transport *t, const uint8_t *b, size_t n)
{
    mem_end *e = (mem_end *)t;
    if (e->hung_up || e->peer->hung_up)
        return FDL_TP_ECLOSED;
    if (e->blocked) {
        e->want_writable = 1;
        return 0;
    }
    mem_end *p = e->peer;
    size_t room = p->cap - p->len;
    if (e->max_send && n > e->max_send)
        n = e->max_send;
    if (n > room)
        n = room;
    if (n == 0) {
        e->want_writable = 1;
        return 0;
    }
    memcpy(p->buf + p->len, b, n);
    p->len += n;
    e->sent += n;
    if (p->deferred)
        p->pending_readable = 1;
    else
        fdl_tp_emit(&p->base, FDL_TP_READABLE, 0);
    return (ssize_t)n;
}

static ssize_t mem_recv(fdl_transport *t, uint8_t *b, size_t cap)
{
    mem_end *e = (mem_end *)t;
    if (e->len == 0)
        return (e->peer->hung_up || e->hung_up) ? FDL_TP_ECLOSED : 0;
    size_t n = e->len < cap ? e->len : cap;
    memcpy(b, e->buf, n);
    memmove(e->buf, e->buf + n, e->len - n);
    e->len -= n;
    if (e->peer->want_writable) {
        e->peer->want_writable = 0;
        fdl_tp_emit(&e->peer->base, FDL_TP_WRITABLE, 0);
    }
    return (ssize_t)n;
}

static int mem_connect(fdl_transport *t, const char *h, uint16_t p)
{
    (void)h;
    (void)p;
    fdl_tp_emit(t, FDL_TP_CONNECTED, 0);
    return 0;
}

static void mem_on_lower(fdl_transport *t, fdl_tp_event ev, int st)
{
    (void)t;
    (void)ev;
    (void)st;
}

static void mem_close(fdl_transport *t)
{
    fdl_memtp_hangup(t);
}

static void mem_destroy(fdl_transport *t)
{
    (void)t;   /* both ends are freed together by fdl_memtp_free */
}

static const fdl_transport_vtbl mem_vtbl = {
    .name = "memory",
    .connect = mem_connect,
    .send = mem_send,
    .recv = mem_recv,
    .on_lower = mem_on_lower,
    .close = mem_close,
    .destroy = mem_destroy,
};

int fdl_memtp_pair(size_t cap, fdl_transport **a, fdl_transport **b)
{
    mem_end *x = fdl_calloc(1, sizeof *x), *y = fdl_calloc(1, sizeof *y);
    if (x)
        x->buf = fdl_malloc(cap);
    if (y)
        y->buf = fdl_malloc(cap);
    if (!x || !y || !x->buf || !y->buf) {
        if (x)
            fdl_free(x->buf);
        if (y)
            fdl_free(y->buf);
        fdl_free(x);
        fdl_free(y);
        return -1;
    }
    x->base.vt = y->base.vt = &mem_vtbl;
    x->cap = y->cap = cap;
    x->peer = y;
    y->peer = x;
    *a = &x->base;
    *b = &y->base;
    return 0;
}

void fdl_memtp_free(fdl_transport *end)
{
    if (!end)
        return;
    mem_end *e = (mem_end *)end, *p = e->peer;
    fdl_free(e->buf);
    fdl_free(p->buf);
    fdl_free(p);
    fdl_free(e);
}

void fdl_memtp_set_max_send(fdl_transport *end, size_t max)
{
    ((mem_end *)end)->max_send = max;
}

void fdl_memtp_set_blocked(fdl_transport *end, int blocked)
{
    mem_end *e = (mem_end *)end;
    e->blocked = blocked;
    if (!blocked && e->want_writable) {
        e->want_writable = 0;
        fdl_tp_emit(&e->base, FDL_TP_WRITABLE, 0);
    }
}

void fdl_memtp_hangup(fdl_transport *end)
{
    mem_end *e = (mem_end *)end;
    if (e->hung_up)
        return;
    e->hung_up = 1;
    fdl_tp_emit(&e->peer->base, FDL_TP_CLOSED, FDL_TP_ECLOSED);
}

void fdl_memtp_set_deferred(fdl_transport *end, int deferred)
{
    ((mem_end *)end)->deferred = deferred;
}

int fdl_memtp_deliver(fdl_transport *end)
{
    mem_end *e = (mem_end *)end;
    if (!e->pending_readable)
        return 0;
    e->pending_readable = 0;
    fdl_tp_emit(&e->base, FDL_TP_READABLE, 0);
    return 1;
}

size_t fdl_memtp_sent(const fdl_transport *end)
{
    return ((const mem_end *)end)->sent;
}
