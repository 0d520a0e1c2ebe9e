/*
 * devices/mqtt_codec.c — sans-I/O MQTT 3.1.1 packet codec (see mqtt_codec.h).
 *
 * Decoding happens in two phases. The fixed header (type, flags, remaining
 * length) is checked first, byte by byte, so that a hostile peer is refused as
 * early as possible: bad flags on the first byte, a fifth length byte, a length
 * above the caller's ceiling, or a length that cannot fit the packet type are
 * all reported before the body arrives. Only once the whole packet is in the
 * buffer is the body parsed, through a bounded reader that never reads past
 * the remaining length. Because the body is parsed only when complete, every
 * strict prefix of a valid packet is NEED_MORE, never a partial decode.
 *
 * Encoders validate their arguments with the same rules the decoder enforces,
 * so any packet this file writes is one it would accept; they compute the full
 * size before writing so that NO_SPACE leaves the output buffer untouched.
 */
#include "devices/mqtt_codec.h"
#include "devices/utf8.h"

#include <string.h>

/* Bytes of a fixed header: one type/flags byte plus 1..4 length bytes. */
#define FDL_MQTT_MAX_HEADER 5u

/* CONNECT variable header: "MQTT" name (2 + 4), level, flags, keepalive. */
#define FDL_MQTT_CONNECT_VHDR 10u

/* CONNECT flag bits (3.1.2.3). */
#define CF_RESERVED 0x01u
#define CF_CLEAN 0x02u
#define CF_WILL 0x04u
#define CF_WILL_QOS_SHIFT 3
#define CF_WILL_QOS_MASK 0x18u
#define CF_WILL_RETAIN 0x20u
#define CF_PASSWORD 0x40u
#define CF_USERNAME 0x80u

/* PUBLISH fixed-header flag bits (3.3.1). */
#define PF_RETAIN 0x01u
#define PF_QOS_SHIFT 1
#define PF_QOS_MASK 0x06u
#define PF_DUP 0x08u

static const char *const fdl_mqtt_status_names[] = {
    [FDL_MQTT_OK] = "ok",
    [FDL_MQTT_NEED_MORE] = "need more bytes",
    [FDL_MQTT_MALFORMED] = "malformed MQTT packet",
    [FDL_MQTT_TOO_LARGE] = "MQTT packet larger than the configured ceiling",
    [FDL_MQTT_NO_SPACE] = "output buffer too small for the MQTT packet",
    [FDL_MQTT_BAD_ARG] = "invalid argument to the MQTT codec",
};

const char *fdl_mqtt_strerror(fdl_mqtt_status st)
{
    size_t i = (size_t)st;
    if (i < sizeof fdl_mqtt_status_names / sizeof fdl_mqtt_status_names[0] &&
        fdl_mqtt_status_names[i])
        return fdl_mqtt_status_names[i];
    return "unknown MQTT codec status";
}

fdl_mqtt_str fdl_mqtt_cstr(const char *s)
{
    fdl_mqtt_str r = {(const uint8_t *)s, 0};
    if (!s)
        return r;
    /* Bounded scan: never walk further than a length MQTT can carry. */
    size_t n = 0;
    while (n < UINT16_MAX && s[n] != '\0')
        n++;
    r.len = (uint16_t)n;
    return r;
}

/* ------------------------------------------------------------------------- */
/* Validation shared by the decoder and the encoders                          */
/* ------------------------------------------------------------------------- */

/* A string whose pointer may be dereferenced for len bytes. */
static bool str_usable(fdl_mqtt_str s)
{
    return s.len == 0 || s.ptr != NULL;
}

static bool utf8_str_valid(fdl_mqtt_str s)
{
    return str_usable(s) && fdl_utf8_valid_nonul(s.ptr, s.len);
}

/*
 * Topic name (PUBLISH, will topic): at least one character (4.7.3-1) and no
 * wildcard (3.3.2-2). Neither '+' nor '#' can occur inside a multi-byte UTF-8
 * sequence, so a byte scan is exact.
 */
static bool topic_name_valid(fdl_mqtt_str s)
{
    if (s.len == 0 || !utf8_str_valid(s))
        return false;
    return memchr(s.ptr, '+', s.len) == NULL && memchr(s.ptr, '#', s.len) == NULL;
}

/*
 * Topic filter (SUBSCRIBE, UNSUBSCRIBE): at least one character; '#' only as
 * the last character and alone in its level (4.7.1-2); '+' alone in its level
 * (4.7.1-3). Brokers such as Mosquitto drop the connection for these, so the
 * codec treats them as malformed rather than leaving every caller to re-check.
 */
static bool topic_filter_valid(fdl_mqtt_str s)
{
    if (s.len == 0 || !utf8_str_valid(s))
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c != '+' && c != '#')
            continue;
        bool starts_level = (i == 0 || s.ptr[i - 1] == '/');
        bool ends_level = (i + 1 == s.len || s.ptr[i + 1] == '/');
        if (!starts_level || !ends_level)
            return false;
        if (c == '#' && i + 1 != s.len)
            return false;
    }
    return true;
}

static bool suback_code_valid(uint8_t c)
{
    return c <= 2 || c == 0x80;
}

/*
 * Checks the fixed-header flags of the first byte (2.2.2, table 2.2). PUBLISH
 * carries DUP/QoS/RETAIN, where QoS 3 (3.3.1-4) and DUP on QoS 0 (3.3.1-2) are
 * malformed; PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0x2; all others 0.
 * Types 0 and 15 are reserved.
 */
static bool header_flags_valid(uint8_t type, uint8_t flags)
{
    switch (type) {
    case FDL_MQTT_PUBLISH: {
        uint8_t qos = (uint8_t)((flags & PF_QOS_MASK) >> PF_QOS_SHIFT);
        if (qos == 3)
            return false;
        if (qos == 0 && (flags & PF_DUP))
            return false;
        return true;
    }
    case FDL_MQTT_PUBREL:
    case FDL_MQTT_SUBSCRIBE:
    case FDL_MQTT_UNSUBSCRIBE:
        return flags == 0x2;
    case FDL_MQTT_CONNECT:
    case FDL_MQTT_CONNACK:
    case FDL_MQTT_PUBACK:
    case FDL_MQTT_PUBREC:
    case FDL_MQTT_PUBCOMP:
    case FDL_MQTT_SUBACK:
    case FDL_MQTT_UNSUBACK:
    case FDL_MQTT_PINGREQ:
    case FDL_MQTT_PINGRESP:
    case FDL_MQTT_DISCONNECT:
        return flags == 0;
    default:
        return false;
    }
}

/*
 * Checks the remaining length against the shape of the packet type, so that a
 * PINGREQ announcing 200 bytes is refused before those bytes are buffered.
 * Minimums: CONNECT 10 + 2 (empty client id); PUBLISH 2 + 1 (one-byte topic)
 * plus 2 for the packet id at QoS 1 and 2; SUBSCRIBE 2 + 2 + 1 + 1;
 * UNSUBSCRIBE 2 + 2 + 1; SUBACK 2 + 1.
 */
static bool remaining_fits_type(uint8_t type, uint8_t flags, uint32_t rem)
{
    switch (type) {
    case FDL_MQTT_CONNECT:
        return rem >= FDL_MQTT_CONNECT_VHDR + 2;
    case FDL_MQTT_PUBLISH:
        return rem >= ((flags & PF_QOS_MASK) ? 5u : 3u);
    case FDL_MQTT_SUBSCRIBE:
        return rem >= 6;
    case FDL_MQTT_UNSUBSCRIBE:
        return rem >= 5;
    case FDL_MQTT_SUBACK:
        return rem >= 3;
    case FDL_MQTT_CONNACK:
    case FDL_MQTT_PUBACK:
    case FDL_MQTT_PUBREC:
    case FDL_MQTT_PUBREL:
    case FDL_MQTT_PUBCOMP:
    case FDL_MQTT_UNSUBACK:
        return rem == 2;
    case FDL_MQTT_PINGREQ:
    case FDL_MQTT_PINGRESP:
    case FDL_MQTT_DISCONNECT:
        return rem == 0;
    default:
        return false;
    }
}

/* ------------------------------------------------------------------------- */
/* Decoder                                                                    */
/* ------------------------------------------------------------------------- */

/* A bounded cursor over one packet body; every read checks what is left. */
typedef struct reader {
    const uint8_t *p;
    size_t n;
    size_t off;
} reader;

static size_t rd_left(const reader *r)
{
    return r->n - r->off;
}

static bool rd_u8(reader *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return false;
    *v = r->p[r->off++];
    return true;
}

static bool rd_u16(reader *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return false;
    *v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
    r->off += 2;
    return true;
}

/* A two-byte length followed by that many bytes (binary data, 1.5.3 / 3.1.3). */
static bool rd_bin(reader *r, fdl_mqtt_str *s)
{
    uint16_t len;
    if (!rd_u16(r, &len) || rd_left(r) < len)
        return false;
    s->ptr = r->p + r->off;
    s->len = len;
    r->off += len;
    return true;
}

static bool rd_utf8(reader *r, fdl_mqtt_str *s)
{
    return rd_bin(r, s) && fdl_utf8_valid_nonul(s->ptr, s->len);
}

static fdl_mqtt_status decode_connect(reader *r, fdl_mqtt_connect *c)
{
    fdl_mqtt_str name;
    uint8_t level, fl;
    if (!rd_bin(r, &name) || name.len != 4 || memcmp(name.ptr, "MQTT", 4) != 0)
        return FDL_MQTT_MALFORMED;
    if (!rd_u8(r, &level) || level != 4)
        return FDL_MQTT_MALFORMED;
    if (!rd_u8(r, &fl) || (fl & CF_RESERVED))
        return FDL_MQTT_MALFORMED;
    c->protocol_level = level;
    c->clean_session = (fl & CF_CLEAN) != 0;
    c->has_will = (fl & CF_WILL) != 0;
    c->will_qos = (uint8_t)((fl & CF_WILL_QOS_MASK) >> CF_WILL_QOS_SHIFT);
    c->will_retain = (fl & CF_WILL_RETAIN) != 0;
    c->has_username = (fl & CF_USERNAME) != 0;
    c->has_password = (fl & CF_PASSWORD) != 0;
    /* 3.1.2-11, -13, -14, -15, -22. */
    if (c->will_qos == 3)
        return FDL_MQTT_MALFORMED;
    if (!c->has_will && (c->will_qos != 0 || c->will_retain))
        return FDL_MQTT_MALFORMED;
    if (c->has_password && !c->has_username)
        return FDL_MQTT_MALFORMED;
    if (!rd_u16(r, &c->keepalive_s))
        return FDL_MQTT_MALFORMED;
    /* The client id may be empty (3.1.3-6); whether the server accepts that is
     * a CONNACK decision (return code 2), not a framing error. */
    if (!rd_utf8(r, &c->client_id))
        return FDL_MQTT_MALFORMED;
    if (c->has_will) {
        if (!rd_bin(r, &c->will_topic) || !topic_name_valid(c->will_topic))
            return FDL_MQTT_MALFORMED;
        if (!rd_bin(r, &c->will_message))
            return FDL_MQTT_MALFORMED;
    }
    if (c->has_username && !rd_utf8(r, &c->username))
        return FDL_MQTT_MALFORMED;
    if (c->has_password && !rd_bin(r, &c->password))
        return FDL_MQTT_MALFORMED;
    /* Trailing bytes after the last announced field are a protocol violation. */
    return rd_left(r) == 0 ? FDL_MQTT_OK : FDL_MQTT_MALFORMED;
}

static fdl_mqtt_status decode_publish(reader *r, uint8_t flags, fdl_mqtt_publish *p)
{
    p->qos = (uint8_t)((flags & PF_QOS_MASK) >> PF_QOS_SHIFT);
    p->dup = (flags & PF_DUP) != 0;
    p->retain = (flags & PF_RETAIN) != 0;
    if (!rd_bin(r, &p->topic) || !topic_name_valid(p->topic))
        return FDL_MQTT_MALFORMED;
    if (p->qos > 0 && (!rd_u16(r, &p->packet_id) || p->packet_id == 0))
        return FDL_MQTT_MALFORMED;
    p->payload_len = rd_left(r);
    p->payload = p->payload_len ? r->p + r->off : NULL;
    r->off = r->n;
    return FDL_MQTT_OK;
}

/*
 * Walks SUBSCRIBE / UNSUBSCRIBE entries once to validate them, so that
 * fdl_mqtt_next_sub can trust the packet afterwards (3.8.3-3, 3.8.3-4,
 * 3.10.3-2).
 */
/* SUBSCRIBE (with_qos) / UNSUBSCRIBE entries in wire form: at least one, each a valid filter
 * (and a QoS byte <= 2, which also rules out the reserved bits). */
static bool sub_entries_valid(const uint8_t *p, size_t n, bool with_qos)
{
    reader r = {p, n, 0};
    size_t count = 0;
    while (rd_left(&r) > 0) {
        fdl_mqtt_str f;
        if (!rd_bin(&r, &f) || !topic_filter_valid(f))
            return false;
        if (with_qos) {
            uint8_t q;
            if (!rd_u8(&r, &q) || q > 2)
                return false;
        }
        count++;
    }
    return count > 0;
}

static fdl_mqtt_status decode_sub(reader *r, bool with_qos, fdl_mqtt_packet *pkt)
{
    uint16_t id;
    if (!rd_u16(r, &id) || id == 0)
        return FDL_MQTT_MALFORMED;
    if (!sub_entries_valid(r->p + r->off, r->n - r->off, with_qos))
        return FDL_MQTT_MALFORMED;
    pkt->u.sub.packet_id = id;
    pkt->u.sub.entries = r->p + r->off;
    pkt->u.sub.entries_len = r->n - r->off;
    r->off = r->n;
    return FDL_MQTT_OK;
}

static fdl_mqtt_status decode_body(reader *r, fdl_mqtt_packet *pkt)
{
    switch (pkt->type) {
    case FDL_MQTT_CONNECT:
        return decode_connect(r, &pkt->u.connect);
    case FDL_MQTT_CONNACK: {
        uint8_t ack, rc;
        if (!rd_u8(r, &ack) || !rd_u8(r, &rc))
            return FDL_MQTT_MALFORMED;
        /* 3.2.2.1: bits 7-1 reserved; 3.2.2-4: no session on refusal. */
        if ((ack & 0xFE) != 0 || rc > 5 || (rc != 0 && ack != 0))
            return FDL_MQTT_MALFORMED;
        pkt->u.connack.session_present = ack != 0;
        pkt->u.connack.return_code = rc;
        return FDL_MQTT_OK;
    }
    case FDL_MQTT_PUBLISH:
        return decode_publish(r, pkt->flags, &pkt->u.publish);
    case FDL_MQTT_PUBACK:
    case FDL_MQTT_PUBREC:
    case FDL_MQTT_PUBREL:
    case FDL_MQTT_PUBCOMP:
    case FDL_MQTT_UNSUBACK:
        if (!rd_u16(r, &pkt->u.packet_id) || pkt->u.packet_id == 0)
            return FDL_MQTT_MALFORMED;
        return FDL_MQTT_OK;
    case FDL_MQTT_SUBSCRIBE:
        return decode_sub(r, true, pkt);
    case FDL_MQTT_UNSUBSCRIBE:
        return decode_sub(r, false, pkt);
    case FDL_MQTT_SUBACK: {
        uint16_t id;
        if (!rd_u16(r, &id) || id == 0 || rd_left(r) == 0)
            return FDL_MQTT_MALFORMED;
        for (size_t i = r->off; i < r->n; i++)
            if (!suback_code_valid(r->p[i]))
                return FDL_MQTT_MALFORMED;
        pkt->u.suback.packet_id = id;
        pkt->u.suback.codes = r->p + r->off;
        pkt->u.suback.n_codes = rd_left(r);
        r->off = r->n;
        return FDL_MQTT_OK;
    }
    case FDL_MQTT_PINGREQ:
    case FDL_MQTT_PINGRESP:
    case FDL_MQTT_DISCONNECT:
        return FDL_MQTT_OK;   /* remaining == 0 was checked with the header */
    default:
        return FDL_MQTT_MALFORMED;
    }
}

fdl_mqtt_status fdl_mqtt_decode(const uint8_t *buf, size_t len, uint32_t max_remaining,
                                fdl_mqtt_packet *pkt, size_t *consumed)
{
    if (consumed)
        *consumed = 0;
    if (!pkt || !consumed || (!buf && len > 0))
        return FDL_MQTT_BAD_ARG;
    memset(pkt, 0, sizeof *pkt);
    if (len == 0)
        return FDL_MQTT_NEED_MORE;

    uint8_t type = (uint8_t)(buf[0] >> 4);
    uint8_t flags = (uint8_t)(buf[0] & 0x0F);
    if (!header_flags_valid(type, flags))
        return FDL_MQTT_MALFORMED;

    /* Remaining length (2.2.3): 7 bits per byte, at most 4 bytes. Non-minimal
     * encodings are legal 3.1.1 and accepted; a continuation bit on the fourth
     * byte is not. */
    uint32_t rem = 0;
    size_t hdr = 0;
    for (size_t i = 0; i < 4; i++) {
        if (1 + i >= len)
            return FDL_MQTT_NEED_MORE;
        uint8_t b = buf[1 + i];
        rem |= (uint32_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            hdr = 2 + i;
            break;
        }
    }
    if (hdr == 0)
        return FDL_MQTT_MALFORMED;
    if (rem > max_remaining)
        return FDL_MQTT_TOO_LARGE;
    if (!remaining_fits_type(type, flags, rem))
        return FDL_MQTT_MALFORMED;
    if (len - hdr < rem)
        return FDL_MQTT_NEED_MORE;

    pkt->type = type;
    pkt->flags = flags;
    pkt->remaining = rem;
    reader r = {buf + hdr, rem, 0};
    fdl_mqtt_status st = decode_body(&r, pkt);
    if (st == FDL_MQTT_OK && rd_left(&r) != 0)
        st = FDL_MQTT_MALFORMED;   /* every body parser must account for all bytes */
    if (st != FDL_MQTT_OK) {
        memset(pkt, 0, sizeof *pkt);
        return st;
    }
    *consumed = hdr + rem;
    return FDL_MQTT_OK;
}

bool fdl_mqtt_next_sub(const fdl_mqtt_packet *pkt, size_t *pos, fdl_mqtt_sub *out)
{
    if (!pkt || !pos || !out)
        return false;
    bool with_qos;
    if (pkt->type == FDL_MQTT_SUBSCRIBE)
        with_qos = true;
    else if (pkt->type == FDL_MQTT_UNSUBSCRIBE)
        with_qos = false;
    else
        return false;
    /* The packet was validated by fdl_mqtt_decode, but the reads stay bounded
     * by entries_len so that a hand-built packet cannot make this walk further. */
    if (!pkt->u.sub.entries || *pos >= pkt->u.sub.entries_len)
        return false;
    reader r = {pkt->u.sub.entries, pkt->u.sub.entries_len, *pos};
    fdl_mqtt_sub s = {{NULL, 0}, 0};
    if (!rd_bin(&r, &s.filter))
        return false;
    if (with_qos && !rd_u8(&r, &s.qos))
        return false;
    *out = s;
    *pos = r.off;
    return true;
}

/* ------------------------------------------------------------------------- */
/* Encoders                                                                   */
/* ------------------------------------------------------------------------- */

/* A cursor over an output buffer already known to be large enough. */
typedef struct writer {
    uint8_t *p;
    size_t off;
} writer;

static void wr_u8(writer *w, uint8_t v)
{
    w->p[w->off++] = v;
}

static void wr_u16(writer *w, uint16_t v)
{
    w->p[w->off++] = (uint8_t)(v >> 8);
    w->p[w->off++] = (uint8_t)(v & 0xFF);
}

static void wr_bytes(writer *w, const uint8_t *src, size_t n)
{
    if (n) {
        memcpy(w->p + w->off, src, n);
        w->off += n;
    }
}

static void wr_str(writer *w, fdl_mqtt_str s)
{
    wr_u16(w, s.len);
    wr_bytes(w, s.ptr, s.len);
}

static size_t varint_size(uint32_t rem)
{
    return rem < 128u ? 1 : rem < 16384u ? 2 : rem < 2097152u ? 3 : 4;
}

static void wr_varint(writer *w, uint32_t rem)
{
    do {
        uint8_t b = (uint8_t)(rem & 0x7F);
        rem >>= 7;
        if (rem)
            b |= 0x80;
        wr_u8(w, b);
    } while (rem);
}

/*
 * Checks that the whole packet fits in cap, and if so writes the fixed header. rem must already be known to be <= FDL_MQTT_MAX_REMAINING. On
 * NO_SPACE, *out_len reports the size that would have been needed.
 */
static fdl_mqtt_status begin_packet(uint8_t *out, size_t cap, uint8_t first, size_t rem,
                                    size_t *out_len, writer *w)
{
    size_t total = 1 + varint_size((uint32_t)rem) + rem;
    if (total > cap) {
        *out_len = total;
        return FDL_MQTT_NO_SPACE;
    }
    w->p = out;
    w->off = 0;
    wr_u8(w, first);
    wr_varint(w, (uint32_t)rem);
    return FDL_MQTT_OK;
}

static fdl_mqtt_status finish_packet(const writer *w, size_t *out_len)
{
    *out_len = w->off;
    return FDL_MQTT_OK;
}

/* out may be NULL only when cap is 0 (a pure size query that reports NO_SPACE). */
static bool out_args_ok(const uint8_t *out, size_t cap, size_t *out_len)
{
    if (!out_len)
        return false;
    *out_len = 0;
    return out != NULL || cap == 0;
}

fdl_mqtt_status fdl_mqtt_encode_connect(uint8_t *out, size_t cap, const fdl_mqtt_connect *c,
                                        size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len) || !c)
        return FDL_MQTT_BAD_ARG;
    if (!utf8_str_valid(c->client_id))
        return FDL_MQTT_BAD_ARG;
    if (c->has_will) {
        if (c->will_qos > 2 || !topic_name_valid(c->will_topic) || !str_usable(c->will_message))
            return FDL_MQTT_BAD_ARG;
    } else if (c->will_qos != 0 || c->will_retain) {
        /* The decoder refuses these flags without a will (3.1.2-13, -15). */
        return FDL_MQTT_BAD_ARG;
    }
    if (c->has_password && !c->has_username)
        return FDL_MQTT_BAD_ARG;
    if (c->has_username && !utf8_str_valid(c->username))
        return FDL_MQTT_BAD_ARG;
    if (c->has_password && !str_usable(c->password))
        return FDL_MQTT_BAD_ARG;

    /* At most 10 + 5 * (2 + 65535): far below FDL_MQTT_MAX_REMAINING. */
    size_t rem = FDL_MQTT_CONNECT_VHDR + 2u + c->client_id.len;
    uint8_t fl = 0;
    if (c->clean_session)
        fl |= CF_CLEAN;
    if (c->has_will) {
        fl |= CF_WILL | (uint8_t)(c->will_qos << CF_WILL_QOS_SHIFT);
        if (c->will_retain)
            fl |= CF_WILL_RETAIN;
        rem += 2u + c->will_topic.len + 2u + c->will_message.len;
    }
    if (c->has_username) {
        fl |= CF_USERNAME;
        rem += 2u + c->username.len;
    }
    if (c->has_password) {
        fl |= CF_PASSWORD;
        rem += 2u + c->password.len;
    }

    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, FDL_MQTT_CONNECT << 4, rem, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_str(&w, fdl_mqtt_cstr("MQTT"));
    wr_u8(&w, 4);
    wr_u8(&w, fl);
    wr_u16(&w, c->keepalive_s);
    wr_str(&w, c->client_id);
    if (c->has_will) {
        wr_str(&w, c->will_topic);
        wr_str(&w, c->will_message);
    }
    if (c->has_username)
        wr_str(&w, c->username);
    if (c->has_password)
        wr_str(&w, c->password);
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present, uint8_t rc,
                                        size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    if (rc > 5 || (rc != 0 && session_present))
        return FDL_MQTT_BAD_ARG;
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, FDL_MQTT_CONNACK << 4, 2, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_u8(&w, session_present ? 1 : 0);
    wr_u8(&w, rc);
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_publish(uint8_t *out, size_t cap, const fdl_mqtt_publish *p,
                                        size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len) || !p)
        return FDL_MQTT_BAD_ARG;
    if (p->qos > 2 || !topic_name_valid(p->topic))
        return FDL_MQTT_BAD_ARG;
    if (p->qos == 0 && (p->dup || p->packet_id != 0))
        return FDL_MQTT_BAD_ARG;
    if (p->qos > 0 && p->packet_id == 0)
        return FDL_MQTT_BAD_ARG;
    if (p->payload_len > 0 && !p->payload)
        return FDL_MQTT_BAD_ARG;
    size_t head = 2u + p->topic.len + (p->qos > 0 ? 2u : 0u);
    if (p->payload_len > FDL_MQTT_MAX_REMAINING - head)
        return FDL_MQTT_BAD_ARG;
    size_t rem = head + p->payload_len;

    uint8_t first = (uint8_t)((FDL_MQTT_PUBLISH << 4) | (p->qos << PF_QOS_SHIFT));
    if (p->dup)
        first |= PF_DUP;
    if (p->retain)
        first |= PF_RETAIN;
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, first, rem, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_str(&w, p->topic);
    if (p->qos > 0)
        wr_u16(&w, p->packet_id);
    wr_bytes(&w, p->payload, p->payload_len);
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_ack(uint8_t *out, size_t cap, uint8_t type, uint16_t packet_id,
                                    size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    uint8_t first;
    switch (type) {
    case FDL_MQTT_PUBACK:
    case FDL_MQTT_PUBREC:
    case FDL_MQTT_PUBCOMP:
    case FDL_MQTT_UNSUBACK:
        first = (uint8_t)(type << 4);
        break;
    case FDL_MQTT_PUBREL:
        first = (uint8_t)((type << 4) | 0x2);
        break;
    default:
        return FDL_MQTT_BAD_ARG;
    }
    if (packet_id == 0)
        return FDL_MQTT_BAD_ARG;
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, first, 2, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_u16(&w, packet_id);
    return finish_packet(&w, out_len);
}

/* Shared by SUBSCRIBE (with_qos) and UNSUBSCRIBE. */
static fdl_mqtt_status encode_sub(uint8_t *out, size_t cap, uint8_t type, bool with_qos,
                                  uint16_t packet_id, const fdl_mqtt_sub *subs, size_t n,
                                  size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    if (packet_id == 0 || n == 0 || !subs)
        return FDL_MQTT_BAD_ARG;
    size_t rem = 2;
    for (size_t i = 0; i < n; i++) {
        if (!topic_filter_valid(subs[i].filter) || (with_qos && subs[i].qos > 2))
            return FDL_MQTT_BAD_ARG;
        size_t entry = 2u + subs[i].filter.len + (with_qos ? 1u : 0u);
        if (entry > FDL_MQTT_MAX_REMAINING - rem)
            return FDL_MQTT_BAD_ARG;
        rem += entry;
    }
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, (uint8_t)((type << 4) | 0x2), rem, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_u16(&w, packet_id);
    for (size_t i = 0; i < n; i++) {
        wr_str(&w, subs[i].filter);
        if (with_qos)
            wr_u8(&w, subs[i].qos);
    }
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t packet_id,
                                          const fdl_mqtt_sub *subs, size_t n, size_t *out_len)
{
    return encode_sub(out, cap, FDL_MQTT_SUBSCRIBE, true, packet_id, subs, n, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint16_t packet_id,
                                            const fdl_mqtt_sub *subs, size_t n, size_t *out_len)
{
    return encode_sub(out, cap, FDL_MQTT_UNSUBSCRIBE, false, packet_id, subs, n, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t packet_id,
                                       const uint8_t *codes, size_t n, size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    if (packet_id == 0 || n == 0 || !codes || n > FDL_MQTT_MAX_REMAINING - 2u)
        return FDL_MQTT_BAD_ARG;
    for (size_t i = 0; i < n; i++)
        if (!suback_code_valid(codes[i]))
            return FDL_MQTT_BAD_ARG;
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, FDL_MQTT_SUBACK << 4, 2u + n, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    wr_u16(&w, packet_id);
    wr_bytes(&w, codes, n);
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_simple(uint8_t *out, size_t cap, uint8_t type, size_t *out_len)
{
    if (!out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    if (type != FDL_MQTT_PINGREQ && type != FDL_MQTT_PINGRESP && type != FDL_MQTT_DISCONNECT)
        return FDL_MQTT_BAD_ARG;
    writer w;
    fdl_mqtt_status st = begin_packet(out, cap, (uint8_t)(type << 4), 0, out_len, &w);
    if (st != FDL_MQTT_OK)
        return st;
    return finish_packet(&w, out_len);
}

fdl_mqtt_status fdl_mqtt_encode_packet(uint8_t *out, size_t cap, const fdl_mqtt_packet *p, size_t *out_len)
{
    if (!p || !out_args_ok(out, cap, out_len))
        return FDL_MQTT_BAD_ARG;
    switch (p->type) {
    case FDL_MQTT_CONNECT:
        return fdl_mqtt_encode_connect(out, cap, &p->u.connect, out_len);
    case FDL_MQTT_CONNACK:
        return fdl_mqtt_encode_connack(out, cap, p->u.connack.session_present, p->u.connack.return_code, out_len);
    case FDL_MQTT_PUBLISH:
        return fdl_mqtt_encode_publish(out, cap, &p->u.publish, out_len);
    case FDL_MQTT_PUBACK:
    case FDL_MQTT_PUBREC:
    case FDL_MQTT_PUBREL:
    case FDL_MQTT_PUBCOMP:
    case FDL_MQTT_UNSUBACK:
        return fdl_mqtt_encode_ack(out, cap, p->type, p->u.packet_id, out_len);
    case FDL_MQTT_SUBSCRIBE:
    case FDL_MQTT_UNSUBSCRIBE: {
        /* Entries are written back in wire form, after the same checks decode applies. */
        bool with_qos = p->type == FDL_MQTT_SUBSCRIBE;
        if (p->u.sub.packet_id == 0 || !p->u.sub.entries ||
            p->u.sub.entries_len > FDL_MQTT_MAX_REMAINING - 2u ||
            !sub_entries_valid(p->u.sub.entries, p->u.sub.entries_len, with_qos))
            return FDL_MQTT_BAD_ARG;
        writer w;
        fdl_mqtt_status st = begin_packet(out, cap, (uint8_t)((p->type << 4) | 0x2), 2u + p->u.sub.entries_len,
                                          out_len, &w);
        if (st != FDL_MQTT_OK)
            return st;
        wr_u16(&w, p->u.sub.packet_id);
        wr_bytes(&w, p->u.sub.entries, p->u.sub.entries_len);
        return finish_packet(&w, out_len);
    }
    case FDL_MQTT_SUBACK:
        return fdl_mqtt_encode_suback(out, cap, p->u.suback.packet_id, p->u.suback.codes, p->u.suback.n_codes,
                                      out_len);
    case FDL_MQTT_PINGREQ:
    case FDL_MQTT_PINGRESP:
    case FDL_MQTT_DISCONNECT:
        return fdl_mqtt_encode_simple(out, cap, p->type, out_len);
    default:
        return FDL_MQTT_BAD_ARG;
    }
}
