/* devices/transport.c — chain plumbing shared by every transport layer. */
#include "devices/transport.h"

#include <stddef.h>

const char *fdl_tp_strerror(int err)
{
    switch (err) {
    case FDL_TP_OK: return "ok";
    case FDL_TP_ECLOSED: return "connection closed by peer";
    case FDL_TP_ERESET: return "connection reset or refused";
    case FDL_TP_ETIMEDOUT: return "timed out";
    case FDL_TP_ETLS: return "TLS failure";
    case FDL_TP_ECERT: return "peer certificate not trusted";
    case FDL_TP_EPROTO: return "malformed data from peer";
    case FDL_TP_ENOMEM: return "out of memory";
    case FDL_TP_EABORT: return "closed locally";
    case FDL_TP_ETLSALERT: return "fatal TLS alert from peer";
    default: return "unknown transport error";
    }
}

static void lower_cb(fdl_transport *lower, fdl_tp_event ev, int status, void *user)
{
    fdl_transport *upper = user;
    (void)lower;
    upper->vt->on_lower(upper, ev, status);
}

void fdl_tp_stack(fdl_transport *upper, fdl_transport *lower)
{
    upper->next = lower;
    lower->above = upper;
    lower->cb = lower_cb;
    lower->user = upper;
}

void fdl_tp_emit(fdl_transport *t, fdl_tp_event ev, int status)
{
    if (t->closing || t->closed_sent)
        return;
    if (ev == FDL_TP_CLOSED)
        t->closed_sent = 1;
    if (t->cb)
        t->cb(t, ev, status, t->user);
}

void fdl_tp_set_cb(fdl_transport *top, fdl_tp_cb cb, void *user)
{
    top->cb = cb;
    top->user = user;
}

void fdl_tp_close(fdl_transport *top)
{
    for (fdl_transport *t = top; t; t = t->next)
        t->closing = 1;
    top->vt->close(top);
}

void fdl_tp_release_chain(fdl_transport *bottom)
{
    fdl_transport *top = bottom;
    while (top->above)
        top = top->above;
    /* Destroy top-down: an upper layer may still reference the one below while it frees. */
    while (top) {
        fdl_transport *next = top->next;
        top->vt->destroy(top);
        top = next;
    }
}
