/* attacks/downgrade.c — TLS 1.2-only and plaintext clients (see downgrade.h). */
#include "attacks/downgrade.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attacks/attack_int.h"
#include "devices/mqtt_codec.h"

/* How long the plaintext client waits for an answer; the broker answers garbage at once. */
#define PLAIN_READ_MS 2000
#define PLAIN_RX_MAX 512

int fdl_atk_tls12(const fdl_atk_target *t, const char *as_id, fdl_atk_result *r)
{
    atk_env e;
    fdl_atk_loop *l = NULL;
    fdl_identity idn;
    int have_idn = 0, stage = FDL_ATK_STAGE_SETUP;
    fdl_atk_result_begin(r);
    if (atk_env_open(&e, t, r) != 0)
        goto cleanup;
    if (as_id) {
        if (atk_env_identity(&e, as_id, &idn, r) != 0)
            goto cleanup;
        have_idn = 1;
    }
    if (!(l = fdl_atk_loop_new()))
        goto cleanup;
    fdl_tls_client_cfg tls = atk_env_tls(&e, have_idn ? &idn.cert : NULL, have_idn ? idn.key : NULL);
    tls.allow_tls12 = 1;   /* devices/tls.c: min = max = TLS 1.2 */
    fdl_atk_note(r, "client offers TLS 1.2 only (no TLS 1.3), %s", have_idn ? "with a genuine device identity"
                                                                            : "without a client certificate");
    fdl_atk_sess *s = atk_env_sess(&e, l, as_id ? as_id : "tls12-attacker", &tls, 0);
    stage = fdl_atk_sess_connect(s, ATK_CONNECT_MS, "attacker", r);
    if (fdl_atk_log_wait(t, e.log_from, ATK_BROKER_TLS_ERROR, 3, ATK_LOG_WAIT_MS, r) <= 0)
        fdl_atk_note(r, "broker log: no failed-connection line since the attack began");
cleanup:
    fdl_atk_loop_free(l);
    if (have_idn)
        fdl_identity_free(&idn);
    atk_env_close(&e);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}

/* Connects with a bounded wait; the fd or -1 with errno. */
static int tcp_connect(const char *host, uint16_t port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        goto fail;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, timeout_ms) != 1) {
        errno = ETIMEDOUT;
        goto fail;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        errno = soerr;
        goto fail;
    }
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Says what the bytes that came back are. Returns 1 for an accepting CONNACK. */
static int describe_reply(const uint8_t *b, size_t n, fdl_atk_result *r)
{
    char hex[3 * 24 + 1] = "";
    for (size_t i = 0; i < n && i < 24; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", b[i]);
    fdl_atk_note(r, "received %zu bytes: %s%s", n, hex, n > 24 ? "..." : "");
    if (n >= 7 && b[0] == 0x15)
        fdl_atk_note(r, "= a TLS alert record (version %02x%02x, level %u, description %u): the listener speaks TLS, "
                        "not MQTT", b[1], b[2], b[5], b[6]);
    else if (n >= 1 && (b[0] == 0x16 || b[0] == 0x17))
        fdl_atk_note(r, "= a TLS record (type %u): the listener speaks TLS, not MQTT", b[0]);
    fdl_mqtt_packet p;
    size_t used = 0;
    if (fdl_mqtt_decode(b, n, 4096, &p, &used) == FDL_MQTT_OK && p.type == FDL_MQTT_CONNACK) {
        fdl_atk_note(r, "= an MQTT CONNACK, return code %u", p.u.connack.return_code);
        return p.u.connack.return_code == 0;
    }
    fdl_atk_note(r, "no MQTT CONNACK in the reply");
    return 0;
}

int fdl_atk_plaintext(const fdl_atk_target *t, const char *client_id, fdl_atk_result *r)
{
    int fd = -1, stage = FDL_ATK_STAGE_SETUP;
    fdl_atk_result_begin(r);
    uint64_t log_from = fdl_atk_log_offset(t);
    if (!t->host) {
        fdl_atk_note(r, "setup: target without a host");
        goto cleanup;
    }
    uint8_t out[256], in[PLAIN_RX_MAX];
    size_t n_out = 0, n_in = 0;
    fdl_mqtt_connect c;
    memset(&c, 0, sizeof c);
    c.client_id = fdl_mqtt_cstr(client_id ? client_id : "plaintext-attacker");
    c.keepalive_s = 30;
    c.clean_session = true;
    if (fdl_mqtt_encode_connect(out, sizeof out, &c, &n_out) != FDL_MQTT_OK) {
        fdl_atk_note(r, "setup: cannot encode CONNECT");
        goto cleanup;
    }
    fd = tcp_connect(t->host, t->port, 3000);
    if (fd < 0) {
        stage = FDL_ATK_STAGE_TCP;
        fdl_atk_note(r, "TCP connect to %s:%u failed: %s", t->host, (unsigned)t->port, strerror(errno));
        goto cleanup;
    }
    fdl_atk_note(r, "TCP connected to %s:%u (the broker's TLS port)", t->host, (unsigned)t->port);
    ssize_t w = send(fd, out, n_out, MSG_NOSIGNAL);
    fdl_atk_note(r, "sent a plaintext MQTT CONNECT (%zu bytes, client id %s): %s", n_out,
                 client_id ? client_id : "plaintext-attacker", w == (ssize_t)n_out ? "written" : strerror(errno));
    const char *end = "timed out";
    uint64_t deadline = fdl_atk_now_us() + PLAIN_READ_MS * 1000u;
    while (n_in < sizeof in) {
        int64_t left = (int64_t)(deadline - fdl_atk_now_us()) / 1000;
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) != 1)
            continue;
        ssize_t k = recv(fd, in + n_in, sizeof in - n_in, 0);
        if (k > 0) {
            n_in += (size_t)k;
            continue;
        }
        end = k == 0 ? "the broker closed the connection" : errno == ECONNRESET ? "the broker reset the connection"
                                                                                 : strerror(errno);
        break;
    }
    int accepted = 0;
    if (n_in)
        accepted = describe_reply(in, n_in, r);
    else
        fdl_atk_note(r, "received nothing back");
    fdl_atk_note(r, "then: %s", end);
    stage = accepted ? FDL_ATK_STAGE_NONE : FDL_ATK_STAGE_TLS;
    if (fdl_atk_log_wait(t, log_from, ATK_BROKER_TLS_ERROR, 3, ATK_LOG_WAIT_MS, r) <= 0)
        fdl_atk_note(r, "broker log: no failed-connection line since the attack began");
cleanup:
    if (fd >= 0)
        close(fd);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}
