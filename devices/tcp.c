/* devices/tcp.c — libuv TCP as the bottom of a transport chain (see tcp.h). */
#include "devices/tcp.h"

#include <arpa/inet.h>
#include <string.h>

#include "sim/alloc.h"

typedef struct tcp_layer {
    fdl_transport base;
    uv_tcp_t handle;
    uv_connect_t creq;
    uv_timer_t timer;        /* connect timeout */
    int handles_open;        /* uv handles not yet closed (tcp, timer) */
    int connected, reading, eof, want_writable;
    uint32_t source_ip;      /* network order; 0 = any */
    int eof_status;
    size_t tx_pending, tx_cap;
    size_t rx_len, rx_cap;
    uint64_t connect_timeout_ms;
    uint8_t *rx;
} tcp_layer;

typedef struct tcp_wreq {
    uv_write_t req;
    tcp_layer *t;
    size_t len;
    uint8_t data[];
} tcp_wreq;

static int map_uv_err(int e)
{
    switch (e) {
    case UV_EOF: return FDL_TP_ECLOSED;
    case UV_ETIMEDOUT: return FDL_TP_ETIMEDOUT;
    case UV_ENOMEM: return FDL_TP_ENOMEM;
    case UV_ECANCELED: return FDL_TP_EABORT;
    default: return FDL_TP_ERESET;
    }
}

static void handle_closed(uv_handle_t *h)
{
    tcp_layer *t = h->data;
    if (--t->handles_open == 0)
        fdl_tp_release_chain(&t->base);
}

static void tcp_shutdown_handles(tcp_layer *t)
{
    if (!uv_is_closing((uv_handle_t *)&t->handle))
        uv_close((uv_handle_t *)&t->handle, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, handle_closed);
}

static void fail(tcp_layer *t, int err)
{
    if (t->reading) {
        uv_read_stop((uv_stream_t *)&t->handle);
        t->reading = 0;
    }
    t->eof = 1;
    t->eof_status = err;
    fdl_tp_emit(&t->base, FDL_TP_CLOSED, err);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    tcp_layer *t = h->data;
    (void)suggested;
    buf->base = (char *)t->rx + t->rx_len;
    buf->len = t->rx_cap - t->rx_len;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tcp_layer *t = s->data;
    (void)buf;
    if (n < 0) {
        fail(t, map_uv_err((int)n));
        return;
    }
    if (n == 0)
        return;
    t->rx_len += (size_t)n;
    if (t->rx_len == t->rx_cap) {
        uv_read_stop(s);   /* back-pressure: resume when the layer above drains us */
        t->reading = 0;
    }
    fdl_tp_emit(&t->base, FDL_TP_READABLE, 0);
}

static void start_reading(tcp_layer *t)
{
    if (!t->reading && !t->eof && !t->base.closing && t->rx_len < t->rx_cap) {
        if (uv_read_start((uv_stream_t *)&t->handle, alloc_cb, read_cb) == 0)
            t->reading = 1;
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    tcp_layer *t = req->data;
    uv_timer_stop(&t->timer);
    if (t->base.closing)
        return;
    if (status < 0) {
        fail(t, status == UV_ECANCELED ? FDL_TP_ETIMEDOUT : map_uv_err(status));
        return;
    }
    t->connected = 1;
    uv_tcp_nodelay(&t->handle, 1);
    start_reading(t);
    fdl_tp_emit(&t->base, FDL_TP_CONNECTED, 0);
}

static void timeout_cb(uv_timer_t *tm)
{
    tcp_layer *t = tm->data;
    if (!t->connected && !t->eof) {
        /* Closing the handle cancels the connect request (UV_ECANCELED); report the real cause first. */
        fail(t, FDL_TP_ETIMEDOUT);
    }
}

void fdl_tcp_set_source(fdl_transport *tp, uint32_t ipv4)
{
    ((tcp_layer *)tp)->source_ip = ipv4;
}

static int tcp_connect(fdl_transport *base, const char *host, uint16_t port)
{
    tcp_layer *t = (tcp_layer *)base;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return FDL_TP_ERESET;
    t->creq.data = t;
    if (t->source_ip) {
        struct sockaddr_in src;
        memset(&src, 0, sizeof src);
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = t->source_ip;
        int b = uv_tcp_bind(&t->handle, (struct sockaddr *)&src, 0);
        if (b < 0)
            return map_uv_err(b);
    }
    int r = uv_tcp_connect(&t->creq, &t->handle, (struct sockaddr *)&sa, connect_cb);
    if (r < 0)
        return map_uv_err(r);
    if (t->connect_timeout_ms)
        uv_timer_start(&t->timer, timeout_cb, t->connect_timeout_ms, 0);
    return 0;
}

static void write_cb(uv_write_t *req, int status)
{
    tcp_wreq *w = (tcp_wreq *)req;
    tcp_layer *t = w->t;
    t->tx_pending -= w->len;
    fdl_free(w);
    if (t->base.closing)
        return;
    if (status < 0) {
        fail(t, map_uv_err(status));
        return;
    }
    if (t->want_writable && t->tx_pending < t->tx_cap / 2) {
        t->want_writable = 0;
        fdl_tp_emit(&t->base, FDL_TP_WRITABLE, 0);
    }
}

static ssize_t tcp_send(fdl_transport *base, const uint8_t *buf, size_t len)
{
    tcp_layer *t = (tcp_layer *)base;
    if (t->eof)
        return t->eof_status ? t->eof_status : FDL_TP_ECLOSED;
    if (!t->connected)
        return 0;
    size_t done = 0;
    if (t->tx_pending == 0) {
        uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
        int r = uv_try_write((uv_stream_t *)&t->handle, &b, 1);
        if (r > 0)
            done = (size_t)r;
        else if (r < 0 && r != UV_EAGAIN)
            return map_uv_err(r);
        if (done == len)
            return (ssize_t)len;
    }
    size_t rest = len - done;
    if (t->tx_pending + rest > t->tx_cap) {
        t->want_writable = 1;
        return (ssize_t)done;   /* 0 means would block */
    }
    tcp_wreq *w = fdl_malloc(sizeof *w + rest);
    if (!w)
        return done ? (ssize_t)done : FDL_TP_ENOMEM;
    w->t = t;
    w->len = rest;
    memcpy(w->data, buf + done, rest);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)rest);
    int r = uv_write(&w->req, (uv_stream_t *)&t->handle, &b, 1, write_cb);
    if (r < 0) {
        fdl_free(w);
        return done ? (ssize_t)done : map_uv_err(r);
    }
    t->tx_pending += rest;
    return (ssize_t)len;
}

static ssize_t tcp_recv(fdl_transport *base, uint8_t *buf, size_t cap)
{
    tcp_layer *t = (tcp_layer *)base;
    if (t->rx_len == 0) {
        if (t->eof)
            return t->eof_status ? t->eof_status : FDL_TP_ECLOSED;
        return 0;
    }
    size_t n = t->rx_len < cap ? t->rx_len : cap;
    memcpy(buf, t->rx, n);
    memmove(t->rx, t->rx + n, t->rx_len - n);
    t->rx_len -= n;
    start_reading(t);
    return (ssize_t)n;
}

static void tcp_on_lower(fdl_transport *base, fdl_tp_event ev, int status)
{
    (void)base; (void)ev; (void)status;   /* bottom layer: nothing below */
}

static void tcp_close(fdl_transport *base)
{
    tcp_layer *t = (tcp_layer *)base;
    t->base.closing = 1;
    tcp_shutdown_handles(t);
}

static void tcp_destroy(fdl_transport *base)
{
    tcp_layer *t = (tcp_layer *)base;
    fdl_free(t->rx);
    fdl_free(t);
}

static const fdl_transport_vtbl tcp_vtbl = {
    .name = "tcp",
    .connect = tcp_connect,
    .send = tcp_send,
    .recv = tcp_recv,
    .on_lower = tcp_on_lower,
    .close = tcp_close,
    .destroy = tcp_destroy,
};

fdl_transport *fdl_tcp_new(uv_loop_t *loop, size_t rx_cap, size_t tx_cap, uint64_t connect_timeout_ms)
{
    tcp_layer *t = fdl_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rx = fdl_malloc(rx_cap);
    if (!t->rx || uv_tcp_init(loop, &t->handle) != 0) {
        fdl_free(t->rx);
        fdl_free(t);
        return NULL;
    }
    uv_timer_init(loop, &t->timer);
    t->handles_open = 2;
    t->handle.data = t;
    t->timer.data = t;
    t->rx_cap = rx_cap;
    t->tx_cap = tx_cap;
    t->connect_timeout_ms = connect_timeout_ms;
    t->base.vt = &tcp_vtbl;
    return &t->base;
}
