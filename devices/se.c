/*
 * devices/se.c — the device secure element: SoftHSM2 tokens through PKCS#11 (see se.h).
 *
 * Three things live here:
 *
 * 1. Loading. The module is dlopen'ed and reached only through the function
 *    list from C_GetFunctionList; nothing links against SoftHSM2.
 *
 * 2. Token bookkeeping. A device's token is found by its label. PKCS#11 has no
 *    "find token by label" call, so the first lookup scans every slot once
 *    (C_GetSlotList + C_GetTokenInfo) and fills a label -> slot hash map; after
 *    that a lookup is O(1), and fdl_se_token_create adds to the map itself.
 *    Slot IDs are only valid for one C_Initialize: SoftHSM2 2.6.1 derives them
 *    from the token serial at start-up but gives a token created in this run
 *    the ID of the free slot it was made in. The map is therefore never
 *    persisted. SoftHSM2 keeps exactly one uninitialised slot and only adds the
 *    next one when an application asks for the slot count
 *    (C_GetSlotList(pSlotList = NULL)), so after each C_InitToken we ask again
 *    before the next creation; SoftHSM lists that free slot last, so we look
 *    for it from the end of the list.
 *
 *    PKCS#11 login state belongs to the token, not to a session: every session
 *    an application has on a token is logged in or out together. Keys are
 *    fdl_se_key objects with a session each, so the map entry also counts the
 *    keys open on each token. Only the first key logs in, and the token is
 *    logged out only when the last key's session closes (closing an
 *    application's last session does that); a C_Logout from any one key would
 *    log out its neighbours when several keys share a token. A later key on an already logged-in token
 *    must still present the right PIN, so the entry keeps a salted SHA-256 of
 *    the PIN that logged in (never the PIN) and compares in constant time.
 *
 * 3. The mbedTLS bridge. fdl_se_key_pk returns an ordinary ECKEY pk context
 *    holding the real public point, whose method table is a copy of mbedTLS's
 *    own ECKEY table with sign_func replaced by a function that signs with
 *    C_Sign. That needs the private 3.6 layout of mbedtls_pk_info_t, mirrored
 *    below, checked at compile time (configuration options that change it) and
 *    at run time by fdl_se_module_open (fields and a probe sign through the
 *    public API).
 */

/* The one place fleetdrill reaches into mbedTLS internals (pk_info, ecp keypair). */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include "devices/se.h"

#include "sim/alloc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/build_info.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/sha256.h>

#include <p11-kit/pkcs11.h>

#if MBEDTLS_VERSION_MAJOR != 3 || MBEDTLS_VERSION_MINOR != 6
#error "devices/se.c mirrors the mbedTLS 3.6 LTS mbedtls_pk_info_t layout; port fdl_se_key_pk to this mbedTLS version"
#endif
#if defined(MBEDTLS_USE_PSA_CRYPTO) || defined(MBEDTLS_ECP_RESTARTABLE) || defined(MBEDTLS_PK_USE_PSA_EC_DATA)
#error "devices/se.c: this mbedTLS is configured with MBEDTLS_USE_PSA_CRYPTO, MBEDTLS_ECP_RESTARTABLE or MBEDTLS_PK_USE_PSA_EC_DATA, which change the private mbedtls_pk_info_t layout or the ECKEY context that fdl_se_key_pk relies on; build mbedTLS without them or port fdl_se_key_pk"
#endif

/* Limits, each with its unit and reason. */
/* bytes: random CKA_ID shared by both halves of a key pair (unique per token). */
#define SE_KEY_ID_LEN 16u
/* bytes: CK_TOKEN_INFO.label is a fixed 32-byte, blank-padded field. */
#define SE_TOKEN_LABEL_MAX 32u
/* bytes: our ceiling on CKA_LABEL; keeps URIs and stack buffers bounded. */
#define SE_KEY_LABEL_MAX 64u
/* bytes: SoftHSM accepts 4..255; device PINs in fleetdrill are short, and a
 * fixed ceiling lets us copy the PIN to a stack buffer we can wipe. */
#define SE_PIN_MAX 64u
/* bytes: longest hash we sign (SHA-512); ECDSA uses the leftmost 256 bits. */
#define SE_HASH_MAX 64u
/* bytes: raw r||s from C_Sign for P-256 is 64; room for larger curves. */
#define SE_RAW_SIG_MAX 132u
/* slots: ceiling on C_GetSlotList results (the scan buffer grows up to this). */
#define SE_SLOTS_MAX (1u << 20)
/* bytes: an uncompressed P-256 point 04||X||Y. */
#define SE_P256_POINT_LEN 65u
/* PIN tag salt, bytes. */
#define SE_SALT_LEN 16u

/* DER OID for prime256v1 / secp256r1 (CKA_EC_PARAMS namedCurve). */
static const uint8_t se_p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

#define se_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * Mirror of struct mbedtls_pk_info_t from mbedTLS 3.6 library/pk_wrap.h, for a
 * configuration without MBEDTLS_ECP_RESTARTABLE (enforced above). The order of
 * the fields is the contract; fdl_se_module_open checks it at run time.
 */
struct se_pk_info {
    mbedtls_pk_type_t type;
    const char *name;
    size_t (*get_bitlen)(mbedtls_pk_context *pk);
    int (*can_do)(mbedtls_pk_type_t type);
    int (*verify_func)(mbedtls_pk_context *pk, mbedtls_md_type_t md_alg, const unsigned char *hash,
                       size_t hash_len, const unsigned char *sig, size_t sig_len);
    int (*sign_func)(mbedtls_pk_context *pk, mbedtls_md_type_t md_alg, const unsigned char *hash,
                     size_t hash_len, unsigned char *sig, size_t sig_size, size_t *sig_len,
                     int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
    int (*decrypt_func)(mbedtls_pk_context *pk, const unsigned char *input, size_t ilen,
                        unsigned char *output, size_t *olen, size_t osize,
                        int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
    int (*encrypt_func)(mbedtls_pk_context *pk, const unsigned char *input, size_t ilen,
                        unsigned char *output, size_t *olen, size_t osize,
                        int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
    int (*check_pair_func)(mbedtls_pk_context *pub, mbedtls_pk_context *prv,
                           int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
    void *(*ctx_alloc_func)(void);
    void (*ctx_free_func)(void *ctx);
    void (*debug_func)(mbedtls_pk_context *pk, mbedtls_pk_debug_item *items);
};
_Static_assert(sizeof(struct se_pk_info) == 12 * sizeof(void *),
               "mbedtls_pk_info_t mirror must be 12 pointer-sized slots");

/* One token in the label map. */
struct se_tok {
    uint8_t label[SE_TOKEN_LABEL_MAX]; /* blank-padded, as in CK_TOKEN_INFO */
    uint8_t used;
    CK_SLOT_ID slot;
    unsigned open_keys;                /* fdl_se_key objects sharing this token's login */
    uint8_t logging_in;                /* a C_Login on this token is running outside the lock */
    uint8_t pin_tag[32];               /* SHA-256(salt || PIN) while open_keys > 0 */
};

struct fdl_se_module {
    void *dl;
    CK_FUNCTION_LIST *p11;
    _Atomic unsigned long last_rv;
    /* The method table every fdl_se_key's pk context points at. */
    struct se_pk_info pk_info;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t login_done; /* signalled when a token's logging_in clears */
    int scanned;          /* the label map reflects every slot */
    struct se_tok *toks;  /* open addressing, linear probing, cap is a power of 2 */
    size_t tok_cap, tok_count;
    int have_free_slot;   /* free_slot holds an uninitialised slot */
    CK_SLOT_ID free_slot;
    CK_SLOT_ID *slots;    /* scratch for C_GetSlotList, grows to SE_SLOTS_MAX */
    size_t slots_cap;
    size_t live_keys;
    int finalized;        /* fdl_se_module_shutdown ran: sessions are gone, keys only free memory */
    uint8_t pin_salt[SE_SALT_LEN];
};

struct fdl_se_key {
    mbedtls_pk_context pk; /* fdl_se_key_pk; its sign_func finds us with container_of */
    fdl_se_module *m;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE priv;
    uint8_t label[SE_TOKEN_LABEL_MAX]; /* the token's, to find its map entry */
    int counted;                       /* holds one of the token's open_keys */
};

static const char *const se_status_names[] = {
    [FDL_SE_OK] = "ok",
    [FDL_SE_ERR_ARG] = "invalid argument to the secure element",
    [FDL_SE_ERR_LOAD] = "could not load or initialise the PKCS#11 module",
    [FDL_SE_ERR_MBEDTLS_ABI] = "mbedTLS pk layout is not the 3.6 one fdl_se_key_pk expects",
    [FDL_SE_ERR_NOT_FOUND] = "no token or key with that label",
    [FDL_SE_ERR_EXISTS] = "a token or key with that label already exists",
    [FDL_SE_ERR_PIN] = "PIN refused",
    [FDL_SE_ERR_NO_SLOT] = "no free PKCS#11 slot to initialise a token in",
    [FDL_SE_ERR_PKCS11] = "PKCS#11 call failed",
    [FDL_SE_ERR_NOMEM] = "out of memory",
    [FDL_SE_ERR_SMALL] = "output buffer too small",
};

const char *fdl_se_strerror(fdl_se_status st)
{
    size_t i = (size_t)st;
    if (i < sizeof se_status_names / sizeof se_status_names[0] && se_status_names[i])
        return se_status_names[i];
    return "unknown secure element status";
}

unsigned long fdl_se_last_rv(const fdl_se_module *m)
{
    if (!m)
        return CKR_ARGUMENTS_BAD;
    return atomic_load(&m->last_rv);
}

/* Records rv as the module's last CK_RV and returns it. */
static CK_RV se_rv(fdl_se_module *m, CK_RV rv)
{
    atomic_store(&m->last_rv, (unsigned long)rv);
    return rv;
}

/* The status for a CK_RV outside of login (PIN errors are mapped by the callers). */
static fdl_se_status se_status(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return FDL_SE_OK;
    case CKR_HOST_MEMORY:
        return FDL_SE_ERR_NOMEM;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
        return FDL_SE_ERR_PIN;
    default:
        return FDL_SE_ERR_PKCS11;
    }
}

/* ---- labels and PINs ----------------------------------------------------- */

/*
 * Blank-pads a token label into out. Refuses empty labels, labels over 32 bytes
 * and labels ending in a blank, which padding would make indistinguishable
 * from the shorter label.
 */
static int se_pad_label(const char *label, uint8_t out[SE_TOKEN_LABEL_MAX])
{
    if (!label)
        return 0;
    size_t n = strnlen(label, SE_TOKEN_LABEL_MAX + 1);
    if (n == 0 || n > SE_TOKEN_LABEL_MAX || label[n - 1] == ' ')
        return 0;
    memset(out, ' ', SE_TOKEN_LABEL_MAX);
    memcpy(out, label, n);
    return 1;
}

static int se_key_label_ok(const char *label, size_t *len)
{
    if (!label)
        return 0;
    size_t n = strnlen(label, SE_KEY_LABEL_MAX + 1);
    if (n == 0 || n > SE_KEY_LABEL_MAX)
        return 0;
    *len = n;
    return 1;
}

/*
 * A PIN copied into a buffer we own: the PKCS#11 prototypes take non-const
 * PINs, and a private copy can be wiped (se_pin_wipe) as soon as the call is
 * done, whatever the caller does with theirs.
 */
typedef struct se_pin {
    CK_UTF8CHAR b[SE_PIN_MAX];
    CK_ULONG len;
} se_pin;

static int se_pin_load(se_pin *p, const char *pin)
{
    p->len = 0;
    if (!pin)
        return 0;
    size_t n = strnlen(pin, SE_PIN_MAX + 1);
    if (n == 0 || n > SE_PIN_MAX)
        return 0;
    memcpy(p->b, pin, n);
    p->len = (CK_ULONG)n;
    return 1;
}

static void se_pin_wipe(se_pin *p)
{
    fdl_wipe(p->b, sizeof p->b);
    p->len = 0;
}

/* SHA-256(salt || PIN): lets a later key on a logged-in token prove the PIN. */
static void se_pin_tag(const fdl_se_module *m, const se_pin *p, uint8_t tag[32])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts(&c, 0);
    mbedtls_sha256_update(&c, m->pin_salt, sizeof m->pin_salt);
    mbedtls_sha256_update(&c, p->b, p->len);
    mbedtls_sha256_finish(&c, tag);
    mbedtls_sha256_free(&c);
}

/* ---- the label -> slot map (module lock held) ---------------------------- */

static uint64_t se_hash(const uint8_t label[SE_TOKEN_LABEL_MAX])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < SE_TOKEN_LABEL_MAX; i++) {
        h ^= label[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct se_tok *se_map_find(fdl_se_module *m, const uint8_t label[SE_TOKEN_LABEL_MAX])
{
    if (m->tok_cap == 0)
        return NULL;
    size_t mask = m->tok_cap - 1;
    for (size_t i = (size_t)se_hash(label) & mask;; i = (i + 1) & mask) {
        struct se_tok *t = &m->toks[i];
        if (!t->used)
            return NULL;
        if (memcmp(t->label, label, SE_TOKEN_LABEL_MAX) == 0)
            return t;
    }
}

/* Places an entry known to be absent into a table with room (no growth). */
static struct se_tok *se_map_place(struct se_tok *toks, size_t cap, const uint8_t label[SE_TOKEN_LABEL_MAX])
{
    size_t mask = cap - 1;
    size_t i = (size_t)se_hash(label) & mask;
    while (toks[i].used)
        i = (i + 1) & mask;
    return &toks[i];
}

/* Adds label -> slot; an existing entry for the label is kept (first one wins). */
static fdl_se_status se_map_add(fdl_se_module *m, const uint8_t label[SE_TOKEN_LABEL_MAX], CK_SLOT_ID slot)
{
    if (se_map_find(m, label))
        return FDL_SE_OK;
    /* Keep the load factor at or under 1/2 so probes stay short. */
    if ((m->tok_count + 1) * 2 > m->tok_cap) {
        size_t ncap = m->tok_cap ? m->tok_cap * 2 : 64;
        if (ncap > 2 * (size_t)SE_SLOTS_MAX)
            return FDL_SE_ERR_NOMEM;
        struct se_tok *n = fdl_calloc(ncap, sizeof *n);
        if (!n)
            return FDL_SE_ERR_NOMEM;
        for (size_t i = 0; i < m->tok_cap; i++)
            if (m->toks[i].used)
                *se_map_place(n, ncap, m->toks[i].label) = m->toks[i];
        if (m->toks) {
            fdl_wipe(m->toks, m->tok_cap * sizeof *m->toks); /* PIN tags */
            fdl_free(m->toks);
        }
        m->toks = n;
        m->tok_cap = ncap;
    }
    struct se_tok *t = se_map_place(m->toks, m->tok_cap, label);
    memset(t, 0, sizeof *t);
    memcpy(t->label, label, SE_TOKEN_LABEL_MAX);
    t->used = 1;
    t->slot = slot;
    m->tok_count++;
    return FDL_SE_OK;
}

/*
 * C_GetSlotList into m->slots. Asking for the count first is not only how the
 * buffer is sized: SoftHSM2 adds a new uninitialised slot on that call when
 * the previous one has been used by C_InitToken.
 */
static fdl_se_status se_slot_list(fdl_se_module *m, CK_ULONG *count)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        CK_ULONG n = 0;
        CK_RV rv = se_rv(m, m->p11->C_GetSlotList(CK_TRUE, NULL, &n));
        if (rv != CKR_OK)
            return se_status(rv);
        if (n > SE_SLOTS_MAX)
            return FDL_SE_ERR_NOMEM;
        if (n + 1 > m->slots_cap) {
            size_t ncap = m->slots_cap ? m->slots_cap : 64;
            while (ncap < n + 1)
                ncap *= 2;
            CK_SLOT_ID *s = fdl_realloc(m->slots, ncap * sizeof *s);
            if (!s)
                return FDL_SE_ERR_NOMEM;
            m->slots = s;
            m->slots_cap = ncap;
        }
        n = (CK_ULONG)m->slots_cap;
        rv = se_rv(m, m->p11->C_GetSlotList(CK_TRUE, m->slots, &n));
        if (rv == CKR_BUFFER_TOO_SMALL)
            continue; /* a slot appeared between the two calls */
        if (rv != CKR_OK)
            return se_status(rv);
        *count = n;
        return FDL_SE_OK;
    }
    return FDL_SE_ERR_PKCS11;
}

/* The first scan: every initialised token into the map, one free slot noted. */
static fdl_se_status se_scan(fdl_se_module *m)
{
    if (m->scanned)
        return FDL_SE_OK;
    CK_ULONG n = 0;
    fdl_se_status st = se_slot_list(m, &n);
    if (st != FDL_SE_OK)
        return st;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        CK_RV rv = se_rv(m, m->p11->C_GetTokenInfo(m->slots[i], &ti));
        if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED)
            continue;
        if (rv != CKR_OK)
            return se_status(rv);
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            m->free_slot = m->slots[i];
            m->have_free_slot = 1;
            continue;
        }
        st = se_map_add(m, ti.label, m->slots[i]);
        if (st != FDL_SE_OK)
            return st;
    }
    m->scanned = 1;
    return FDL_SE_OK;
}

/* Finds an uninitialised slot after the previous one was used. */
static fdl_se_status se_find_free_slot(fdl_se_module *m)
{
    if (m->have_free_slot)
        return FDL_SE_OK;
    CK_ULONG n = 0;
    fdl_se_status st = se_slot_list(m, &n);
    if (st != FDL_SE_OK)
        return st;
    /* SoftHSM2 lists its free slot last: this loop normally asks once. */
    for (CK_ULONG i = n; i-- > 0;) {
        CK_TOKEN_INFO ti;
        CK_RV rv = se_rv(m, m->p11->C_GetTokenInfo(m->slots[i], &ti));
        if (rv != CKR_OK)
            continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            m->free_slot = m->slots[i];
            m->have_free_slot = 1;
            return FDL_SE_OK;
        }
    }
    return FDL_SE_ERR_NO_SLOT;
}

/* ---- the mbedTLS bridge --------------------------------------------------- */

static int se_pk_sign(mbedtls_pk_context *pk, mbedtls_md_type_t md_alg, const unsigned char *hash,
                      size_t hash_len, unsigned char *sig, size_t sig_size, size_t *sig_len,
                      int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
    (void)md_alg; /* CKM_ECDSA signs the hash it is given, whatever made it */
    (void)f_rng;  /* the token has its own RNG */
    (void)p_rng;
    fdl_se_key *k = se_container_of(pk, fdl_se_key, pk);
    switch (fdl_se_key_sign(k, hash, hash_len, sig, sig_size, sig_len)) {
    case FDL_SE_OK:
        return 0;
    case FDL_SE_ERR_SMALL:
        return MBEDTLS_ERR_PK_BUFFER_TOO_SMALL;
    case FDL_SE_ERR_ARG:
        return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    case FDL_SE_ERR_NOMEM:
        return MBEDTLS_ERR_PK_ALLOC_FAILED;
    default:
        return MBEDTLS_ERR_PLATFORM_HW_ACCEL_FAILED;
    }
}

/* For the run-time layout probe: a pk context whose sign only counts. */
struct se_probe {
    mbedtls_pk_context pk;
    int signs;
};

static int se_probe_sign(mbedtls_pk_context *pk, mbedtls_md_type_t md_alg, const unsigned char *hash,
                         size_t hash_len, unsigned char *sig, size_t sig_size, size_t *sig_len,
                         int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
    (void)md_alg, (void)hash, (void)hash_len, (void)f_rng, (void)p_rng;
    struct se_probe *p = se_container_of(pk, struct se_probe, pk);
    p->signs++;
    if (sig_size < 1)
        return MBEDTLS_ERR_PK_BUFFER_TOO_SMALL;
    sig[0] = 0x5a;
    *sig_len = 1;
    return 0;
}

static int se_probe_rng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    memset(out, 0x42, n);
    return 0;
}

/*
 * Copies mbedTLS's ECKEY method table into m->pk_info and checks that our
 * mirror of its layout is right. The two leading fields are compared
 * directly; the function slots are then exercised through the public API
 * (setup, type, name, can_do, get_bitlen, sign, free) on a probe context whose
 * sign_func is ours: if any slot were shifted, one of these answers would be
 * wrong.
 */
static fdl_se_status se_check_mbedtls_abi(fdl_se_module *m)
{
    const mbedtls_pk_info_t *orig = mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY);
    if (!orig)
        return FDL_SE_ERR_MBEDTLS_ABI;
    memcpy(&m->pk_info, orig, sizeof m->pk_info);
    const struct se_pk_info *i = &m->pk_info;
    if (i->type != MBEDTLS_PK_ECKEY || !i->name || strcmp(i->name, "EC") != 0 || !i->get_bitlen ||
        !i->can_do || !i->verify_func || !i->sign_func || !i->ctx_alloc_func || !i->ctx_free_func)
        return FDL_SE_ERR_MBEDTLS_ABI;

    struct se_pk_info probe_info = m->pk_info;
    probe_info.sign_func = se_probe_sign;
    struct se_probe p = {.signs = 0};
    fdl_se_status st = FDL_SE_ERR_MBEDTLS_ABI;
    mbedtls_pk_init(&p.pk);
    if (mbedtls_pk_setup(&p.pk, (const mbedtls_pk_info_t *)&probe_info) != 0)
        goto cleanup;
    mbedtls_ecp_keypair *kp = mbedtls_pk_ec(p.pk);
    if (mbedtls_pk_get_type(&p.pk) != MBEDTLS_PK_ECKEY || strcmp(mbedtls_pk_get_name(&p.pk), "EC") != 0 ||
        !mbedtls_pk_can_do(&p.pk, MBEDTLS_PK_ECDSA) || mbedtls_pk_can_do(&p.pk, MBEDTLS_PK_RSA) || !kp)
        goto cleanup;
    if (mbedtls_ecp_group_load(&kp->MBEDTLS_PRIVATE(grp), MBEDTLS_ECP_DP_SECP256R1) != 0 ||
        mbedtls_pk_get_bitlen(&p.pk) != 256)
        goto cleanup;
    unsigned char hash[32] = {0}, sig[8];
    size_t sig_len = 0;
    if (mbedtls_pk_sign(&p.pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &sig_len,
                        se_probe_rng, NULL) != 0 ||
        p.signs != 1 || sig_len != 1 || sig[0] != 0x5a)
        goto cleanup;
    m->pk_info.sign_func = se_pk_sign;
    st = FDL_SE_OK;
cleanup:
    mbedtls_pk_free(&p.pk); /* through ctx_free_func: checks that slot too (ASan/valgrind) */
    return st;
}

/* ---- module --------------------------------------------------------------- */

fdl_se_status fdl_se_module_open(const char *module_path, const char *softhsm_conf, fdl_se_module **out)
{
    if (!module_path || !out)
        return FDL_SE_ERR_ARG;
    *out = NULL;
    fdl_se_module *m = fdl_calloc(1, sizeof *m);
    if (!m)
        return FDL_SE_ERR_NOMEM;
    fdl_se_status st = FDL_SE_ERR_LOAD;
    int locked_init = 0, p11_init = 0;
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        goto cleanup;
    if (pthread_cond_init(&m->login_done, NULL) != 0) {
        pthread_mutex_destroy(&m->lock);
        goto cleanup;
    }
    locked_init = 1;

    st = se_check_mbedtls_abi(m);
    if (st != FDL_SE_OK)
        goto cleanup;
    st = FDL_SE_ERR_LOAD;
    if (getrandom(m->pin_salt, sizeof m->pin_salt, 0) != (ssize_t)sizeof m->pin_salt)
        goto cleanup;
    /* SoftHSM2 reads SOFTHSM2_CONF during C_Initialize; setenv copies it. */
    if (softhsm_conf && setenv("SOFTHSM2_CONF", softhsm_conf, 1) != 0)
        goto cleanup;

    m->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl)
        goto cleanup;
    /* POSIX guarantees a function address survives the trip through void *. */
    void *sym = dlsym(m->dl, "C_GetFunctionList");
    CK_C_GetFunctionList get_list = NULL;
    if (sym)
        memcpy(&get_list, &sym, sizeof get_list);
    if (!get_list || se_rv(m, get_list(&m->p11)) != CKR_OK || !m->p11)
        goto cleanup;
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    /* CKR_CRYPTOKI_ALREADY_INITIALIZED means another module in this process
     * owns PKCS#11; it is not ours to finalise, so it is a load failure. */
    if (se_rv(m, m->p11->C_Initialize(&args)) != CKR_OK)
        goto cleanup;
    p11_init = 1;
    *out = m;
    return FDL_SE_OK;

cleanup:
    if (p11_init)
        m->p11->C_Finalize(NULL);
    if (m->dl)
        dlclose(m->dl);
    if (locked_init) {
        pthread_cond_destroy(&m->login_done);
        pthread_mutex_destroy(&m->lock);
    }
    fdl_wipe(m->pin_salt, sizeof m->pin_salt);
    fdl_free(m);
    return st;
}

void fdl_se_module_free(fdl_se_module *m)
{
    if (!m)
        return;
    if (m->live_keys != 0) {
        /* Each key holds a session and a pointer to this module: finalising
         * now would leave them dangling. This is a caller bug, not input. */
        fprintf(stderr, "fdl_se_module_free: %zu keys still open; free them first\n", m->live_keys);
        abort();
    }
    if (!m->finalized)
        m->p11->C_Finalize(NULL);
    dlclose(m->dl);
    if (m->toks) {
        fdl_wipe(m->toks, m->tok_cap * sizeof *m->toks);
        fdl_free(m->toks);
    }
    fdl_free(m->slots);
    pthread_cond_destroy(&m->login_done);
    pthread_mutex_destroy(&m->lock);
    fdl_wipe(m->pin_salt, sizeof m->pin_salt);
    fdl_free(m);
}

void fdl_se_module_shutdown(fdl_se_module *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    if (!m->finalized) {
        /* C_Finalize closes every session at once; SoftHSM2 would otherwise walk
         * all handles for each C_CloseSession, O(N^2) over a fleet. */
        m->p11->C_Finalize(NULL);
        m->finalized = 1;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- tokens --------------------------------------------------------------- */

int fdl_se_token_exists(fdl_se_module *m, const char *token_label)
{
    uint8_t label[SE_TOKEN_LABEL_MAX];
    if (!m || !se_pad_label(token_label, label))
        return 0;
    pthread_mutex_lock(&m->lock);
    int found = se_scan(m) == FDL_SE_OK && se_map_find(m, label) != NULL;
    pthread_mutex_unlock(&m->lock);
    return found;
}

fdl_se_status fdl_se_token_create(fdl_se_module *m, const char *token_label, const char *so_pin,
                                  const char *user_pin)
{
    uint8_t label[SE_TOKEN_LABEL_MAX];
    se_pin so, user;
    if (!m || !se_pad_label(token_label, label))
        return FDL_SE_ERR_ARG;
    if (!se_pin_load(&so, so_pin))
        return FDL_SE_ERR_ARG;
    if (!se_pin_load(&user, user_pin)) {
        se_pin_wipe(&so);
        return FDL_SE_ERR_ARG;
    }

    fdl_se_status st;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_RV rv;
    /* Creation is serialised: it changes the slot list and the map. */
    pthread_mutex_lock(&m->lock);
    st = se_scan(m);
    if (st != FDL_SE_OK)
        goto cleanup;
    if (se_map_find(m, label)) {
        st = FDL_SE_ERR_EXISTS;
        goto cleanup;
    }
    st = se_find_free_slot(m);
    if (st != FDL_SE_OK)
        goto cleanup;
    CK_SLOT_ID slot = m->free_slot;
    rv = se_rv(m, m->p11->C_InitToken(slot, so.b, so.len, label));
    if (rv != CKR_OK) {
        st = (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID) ? FDL_SE_ERR_ARG : se_status(rv);
        goto cleanup;
    }
    m->have_free_slot = 0;
    /* The label is taken from here on, even if setting the user PIN fails. */
    st = se_map_add(m, label, slot);
    if (st != FDL_SE_OK)
        goto cleanup;

    st = FDL_SE_ERR_PKCS11;
    rv = se_rv(m, m->p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    if (rv != CKR_OK) {
        st = se_status(rv);
        s = CK_INVALID_HANDLE;
        goto cleanup;
    }
    rv = se_rv(m, m->p11->C_Login(s, CKU_SO, so.b, so.len));
    if (rv != CKR_OK) {
        st = se_status(rv);
        goto cleanup;
    }
    /* No C_Logout: closing this, the token's only session, logs the SO out
     * (see se_key_release for why that matters with many keys open). */
    rv = se_rv(m, m->p11->C_InitPIN(s, user.b, user.len));
    if (rv != CKR_OK) {
        st = (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID) ? FDL_SE_ERR_ARG : se_status(rv);
        goto cleanup;
    }
    st = FDL_SE_OK;
cleanup:
    if (s != CK_INVALID_HANDLE)
        m->p11->C_CloseSession(s);
    pthread_mutex_unlock(&m->lock);
    se_pin_wipe(&so);
    se_pin_wipe(&user);
    return st;
}

/* ---- keys ----------------------------------------------------------------- */

/* Gives back the key's share of its token's login and closes its session. */
static void se_key_release(fdl_se_key *k)
{
    fdl_se_module *m = k->m;
    pthread_mutex_lock(&m->lock);
    if (k->counted) {
        struct se_tok *t = se_map_find(m, k->label);
        if (t && t->open_keys > 0 && --t->open_keys == 0)
            fdl_wipe(t->pin_tag, sizeof t->pin_tag);
        k->counted = 0;
    }
    /*
     * Closing the application's last session on a token logs it out
     * (PKCS#11 C_CloseSession), so the last key does not call C_Logout: in
     * SoftHSM2 each C_Logout and C_CloseSession walks every handle of every
     * token, and one walk fewer per key cut teardown of 10,000 keys from 8.7 s
     * to 6.1 s (docs/secure-element.md).
     * Done under the lock, so that a concurrent open on the same token either
     * sees the login still counted or logs in again after this close.
     */
    if (k->session != CK_INVALID_HANDLE) {
        if (!m->finalized)
            m->p11->C_CloseSession(k->session);
        k->session = CK_INVALID_HANDLE;
    }
    pthread_mutex_unlock(&m->lock);
}

/*
 * Common start of keygen and open: finds the token, opens a session on it and
 * makes sure it is logged in as the user with this PIN. On success *out is a
 * key with a session and a counted login but no objects yet.
 */
static fdl_se_status se_key_begin(fdl_se_module *m, const char *token_label, const char *user_pin, int rw,
                                  fdl_se_key **out)
{
    uint8_t label[SE_TOKEN_LABEL_MAX];
    se_pin pin;
    if (!se_pad_label(token_label, label))
        return FDL_SE_ERR_ARG;
    if (!se_pin_load(&pin, user_pin))
        return FDL_SE_ERR_ARG;
    fdl_se_key *k = fdl_calloc(1, sizeof *k);
    if (!k) {
        se_pin_wipe(&pin);
        return FDL_SE_ERR_NOMEM;
    }
    mbedtls_pk_init(&k->pk);
    k->m = m;
    k->session = CK_INVALID_HANDLE;
    k->priv = CK_INVALID_HANDLE;
    memcpy(k->label, label, sizeof label);

    fdl_se_status st;
    CK_RV rv;
    uint8_t tag[32];
    se_pin_tag(m, &pin, tag);
    pthread_mutex_lock(&m->lock);
    m->live_keys++;
    st = se_scan(m);
    if (st != FDL_SE_OK)
        goto unlock;
    struct se_tok *t = se_map_find(m, label);
    if (!t) {
        st = FDL_SE_ERR_NOT_FOUND;
        goto unlock;
    }
    /* Another thread is logging in to this very token: wait, then share its login. */
    while (t->logging_in) {
        pthread_cond_wait(&m->login_done, &m->lock);
        t = se_map_find(m, label);   /* the map may have grown while we waited */
        if (!t) {
            st = FDL_SE_ERR_NOT_FOUND;
            goto unlock;
        }
    }
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    if (t->open_keys > 0) {
        rv = se_rv(m, m->p11->C_OpenSession(t->slot, flags, NULL, NULL, &k->session));
        if (rv != CKR_OK) {
            k->session = CK_INVALID_HANDLE;
            st = se_status(rv);
            goto unlock;
        }
        /* Already logged in through another key: check the PIN ourselves. */
        if (mbedtls_ct_memcmp(tag, t->pin_tag, sizeof tag) != 0) {
            st = FDL_SE_ERR_PIN;
            goto unlock;
        }
    } else {
        /*
         * C_Login derives a key from the PIN (about 1 ms in SoftHSM2): run it
         * outside the module lock so logins on different tokens proceed in
         * parallel (a fleet of 10,000 opens its keys on every worker thread).
         * logging_in keeps other openers of this token waiting meanwhile.
         */
        CK_SLOT_ID slot = t->slot;
        t->logging_in = 1;
        pthread_mutex_unlock(&m->lock);
        rv = se_rv(m, m->p11->C_OpenSession(slot, flags, NULL, NULL, &k->session));
        if (rv == CKR_OK) {
            rv = se_rv(m, m->p11->C_Login(k->session, CKU_USER, pin.b, pin.len));
            if (rv == CKR_USER_ALREADY_LOGGED_IN) {
                /* Logged in outside our bookkeeping: start over so the PIN is checked. */
                m->p11->C_Logout(k->session);
                rv = se_rv(m, m->p11->C_Login(k->session, CKU_USER, pin.b, pin.len));
            }
        } else {
            k->session = CK_INVALID_HANDLE;
        }
        pthread_mutex_lock(&m->lock);
        t = se_map_find(m, label);
        if (t)
            t->logging_in = 0;
        pthread_cond_broadcast(&m->login_done);
        if (!t) {
            st = FDL_SE_ERR_NOT_FOUND;
            goto unlock;
        }
        if (rv != CKR_OK) {
            st = (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_LEN_RANGE ||
                  rv == CKR_PIN_INVALID || rv == CKR_PIN_EXPIRED || rv == CKR_USER_PIN_NOT_INITIALIZED)
                     ? FDL_SE_ERR_PIN
                     : se_status(rv);
            goto unlock;
        }
        memcpy(t->pin_tag, tag, sizeof tag);
    }
    t->open_keys++;
    k->counted = 1;
    st = FDL_SE_OK;
unlock:
    pthread_mutex_unlock(&m->lock);
    fdl_wipe(tag, sizeof tag);
    se_pin_wipe(&pin);
    if (st != FDL_SE_OK) {
        fdl_se_key_free(k);
        return st;
    }
    *out = k;
    return FDL_SE_OK;
}

/* Finds objects of a class matching one attribute; *n is how many (at most 2 looked at). */
static fdl_se_status se_find(fdl_se_key *k, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE type, const void *val,
                             size_t len, CK_OBJECT_HANDLE *h, CK_ULONG *n)
{
    fdl_se_module *m = k->m;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {type, (void *)val, (CK_ULONG)len},
    };
    CK_OBJECT_HANDLE found[2];
    *n = 0;
    CK_RV rv = se_rv(m, m->p11->C_FindObjectsInit(k->session, tmpl, 2));
    if (rv != CKR_OK)
        return se_status(rv);
    rv = se_rv(m, m->p11->C_FindObjects(k->session, found, 2, n));
    m->p11->C_FindObjectsFinal(k->session);
    if (rv != CKR_OK)
        return se_status(rv);
    if (*n > 0)
        *h = found[0];
    return FDL_SE_OK;
}

/* Reads one attribute into buf[0..cap); *len is its length. */
static fdl_se_status se_get_attr(fdl_se_key *k, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, void *buf,
                                 size_t cap, size_t *len)
{
    CK_ATTRIBUTE a = {type, buf, (CK_ULONG)cap};
    CK_RV rv = se_rv(k->m, k->m->p11->C_GetAttributeValue(k->session, h, &a, 1));
    if (rv != CKR_OK)
        return rv == CKR_BUFFER_TOO_SMALL ? FDL_SE_ERR_SMALL : se_status(rv);
    *len = a.ulValueLen;
    return FDL_SE_OK;
}

/*
 * The uncompressed point inside CKA_EC_POINT. PKCS#11 says the attribute is a
 * DER OCTET STRING holding the point (SoftHSM2 does that); some modules give
 * the bare point, so both are accepted.
 */
static const uint8_t *se_unwrap_point(const uint8_t *v, size_t len)
{
    if (len == SE_P256_POINT_LEN + 2 && v[0] == 0x04 && v[1] == SE_P256_POINT_LEN && v[2] == 0x04)
        return v + 2;
    if (len == SE_P256_POINT_LEN && v[0] == 0x04)
        return v;
    return NULL;
}

/* Loads the public point into k->pk, an ECKEY context signing through the token. */
static fdl_se_status se_key_load_public(fdl_se_key *k, const uint8_t *ec_point, size_t len)
{
    const uint8_t *pt = se_unwrap_point(ec_point, len);
    if (!pt) {
        se_rv(k->m, CKR_ATTRIBUTE_VALUE_INVALID);
        return FDL_SE_ERR_PKCS11;
    }
    int ret = mbedtls_pk_setup(&k->pk, (const mbedtls_pk_info_t *)&k->m->pk_info);
    if (ret != 0)
        return ret == MBEDTLS_ERR_PK_ALLOC_FAILED ? FDL_SE_ERR_NOMEM : FDL_SE_ERR_MBEDTLS_ABI;
    mbedtls_ecp_keypair *kp = mbedtls_pk_ec(k->pk);
    if (mbedtls_ecp_group_load(&kp->MBEDTLS_PRIVATE(grp), MBEDTLS_ECP_DP_SECP256R1) != 0 ||
        mbedtls_ecp_point_read_binary(&kp->MBEDTLS_PRIVATE(grp), &kp->MBEDTLS_PRIVATE(Q), pt,
                                      SE_P256_POINT_LEN) != 0 ||
        mbedtls_ecp_check_pubkey(&kp->MBEDTLS_PRIVATE(grp), &kp->MBEDTLS_PRIVATE(Q)) != 0) {
        se_rv(k->m, CKR_ATTRIBUTE_VALUE_INVALID);
        return FDL_SE_ERR_PKCS11;
    }
    return FDL_SE_OK;
}

fdl_se_status fdl_se_keygen(fdl_se_module *m, const char *token_label, const char *user_pin,
                            const char *key_label, fdl_se_key **out)
{
    size_t llen;
    if (!m || !out || !se_key_label_ok(key_label, &llen))
        return FDL_SE_ERR_ARG;
    *out = NULL;
    fdl_se_key *k = NULL;
    fdl_se_status st = se_key_begin(m, token_label, user_pin, 1, &k);
    if (st != FDL_SE_OK)
        return st;

    CK_OBJECT_HANDLE h, pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    CK_ULONG n;
    CK_RV rv;
    /* Labels name keys in URIs and tools: refuse a second pair under one. */
    if ((st = se_find(k, CKO_PRIVATE_KEY, CKA_LABEL, key_label, llen, &h, &n)) != FDL_SE_OK)
        goto fail;
    if (n == 0 && (st = se_find(k, CKO_PUBLIC_KEY, CKA_LABEL, key_label, llen, &h, &n)) != FDL_SE_OK)
        goto fail;
    if (n > 0) {
        st = FDL_SE_ERR_EXISTS;
        goto fail;
    }

    /*
     * Both halves get one random CKA_ID in the templates. Deriving it from the
     * public point (the RFC 5280 key-identifier convention) would need a
     * C_SetAttributeValue on each half after generation, and SoftHSM rewrites
     * an object's whole file for that: on ext4 those two rewrites cost about a
     * sixth of device creation (docs/secure-element.md). A certificate stored
     * later pairs with the key by copying the key's CKA_ID.
     */
    uint8_t id[SE_KEY_ID_LEN];
    if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id) {
        se_rv(m, CKR_FUNCTION_FAILED);
        st = FDL_SE_ERR_PKCS11;
        goto fail;
    }
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub_tmpl[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_ENCRYPT, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},
        {CKA_EC_PARAMS, (void *)se_p256_oid, sizeof se_p256_oid},
        {CKA_LABEL, (void *)key_label, (CK_ULONG)llen},
        {CKA_ID, id, sizeof id},
    };
    CK_ATTRIBUTE priv_tmpl[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        /* Sign only: SoftHSM2 would otherwise default these to true. */
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
        {CKA_LABEL, (void *)key_label, (CK_ULONG)llen},
        {CKA_ID, id, sizeof id},
    };
    rv = se_rv(m, m->p11->C_GenerateKeyPair(k->session, &mech, pub_tmpl, sizeof pub_tmpl / sizeof pub_tmpl[0],
                                            priv_tmpl, sizeof priv_tmpl / sizeof priv_tmpl[0], &pub, &priv));
    if (rv != CKR_OK) {
        pub = priv = CK_INVALID_HANDLE;
        st = se_status(rv);
        goto fail;
    }
    uint8_t point[SE_P256_POINT_LEN + 8];
    size_t plen = 0;
    if ((st = se_get_attr(k, pub, CKA_EC_POINT, point, sizeof point, &plen)) != FDL_SE_OK)
        goto fail;
    if ((st = se_key_load_public(k, point, plen)) != FDL_SE_OK)
        goto fail;
    k->priv = priv;
    *out = k;
    return FDL_SE_OK;

fail:
    /* Leave no half-made pair behind: the label would be taken for good. */
    if (priv != CK_INVALID_HANDLE)
        m->p11->C_DestroyObject(k->session, priv);
    if (pub != CK_INVALID_HANDLE)
        m->p11->C_DestroyObject(k->session, pub);
    fdl_se_key_free(k);
    return st;
}

fdl_se_status fdl_se_key_open(fdl_se_module *m, const char *token_label, const char *user_pin,
                              const char *key_label, fdl_se_key **out)
{
    size_t llen;
    if (!m || !out || !se_key_label_ok(key_label, &llen))
        return FDL_SE_ERR_ARG;
    *out = NULL;
    fdl_se_key *k = NULL;
    fdl_se_status st = se_key_begin(m, token_label, user_pin, 0, &k);
    if (st != FDL_SE_OK)
        return st;

    CK_OBJECT_HANDLE priv, pub;
    CK_ULONG n;
    if ((st = se_find(k, CKO_PRIVATE_KEY, CKA_LABEL, key_label, llen, &priv, &n)) != FDL_SE_OK)
        goto fail;
    if (n != 1) {
        st = n == 0 ? FDL_SE_ERR_NOT_FOUND : FDL_SE_ERR_EXISTS; /* two keys: ambiguous */
        goto fail;
    }

    /* Only P-256 EC keys are device keys. */
    CK_KEY_TYPE kt = 0;
    uint8_t params[32], id[64];
    size_t len = 0, idlen = 0;
    if ((st = se_get_attr(k, priv, CKA_KEY_TYPE, &kt, sizeof kt, &len)) != FDL_SE_OK)
        goto fail;
    if (kt != CKK_EC ||
        (st = se_get_attr(k, priv, CKA_EC_PARAMS, params, sizeof params, &len)) != FDL_SE_OK ||
        len != sizeof se_p256_oid || memcmp(params, se_p256_oid, len) != 0) {
        se_rv(m, CKR_KEY_TYPE_INCONSISTENT);
        st = FDL_SE_ERR_PKCS11;
        goto fail;
    }

    /* The public half: same CKA_ID, or failing that the same label. */
    n = 0;
    if (se_get_attr(k, priv, CKA_ID, id, sizeof id, &idlen) == FDL_SE_OK && idlen > 0 &&
        (st = se_find(k, CKO_PUBLIC_KEY, CKA_ID, id, idlen, &pub, &n)) != FDL_SE_OK)
        goto fail;
    if (n == 0 && (st = se_find(k, CKO_PUBLIC_KEY, CKA_LABEL, key_label, llen, &pub, &n)) != FDL_SE_OK)
        goto fail;
    if (n == 0) {
        st = FDL_SE_ERR_NOT_FOUND;
        goto fail;
    }
    uint8_t point[SE_P256_POINT_LEN + 8];
    if ((st = se_get_attr(k, pub, CKA_EC_POINT, point, sizeof point, &len)) != FDL_SE_OK)
        goto fail;
    if ((st = se_key_load_public(k, point, len)) != FDL_SE_OK)
        goto fail;
    k->priv = priv;
    *out = k;
    return FDL_SE_OK;

fail:
    fdl_se_key_free(k);
    return st;
}

void fdl_se_key_free(fdl_se_key *k)
{
    if (!k)
        return;
    fdl_se_module *m = k->m;
    se_key_release(k);
    /* Frees the ecp keypair through the copied ctx_free_func. */
    mbedtls_pk_free(&k->pk);
    pthread_mutex_lock(&m->lock);
    m->live_keys--;
    pthread_mutex_unlock(&m->lock);
    fdl_free(k);
}

/* ---- signing -------------------------------------------------------------- */

/* DER INTEGER body length for an unsigned big-endian value: no leading zeros, sign byte if needed. */
static size_t se_der_int_len(const uint8_t *v, size_t n, size_t *skip)
{
    size_t i = 0;
    while (i + 1 < n && v[i] == 0)
        i++;
    *skip = i;
    return (n - i) + ((v[i] & 0x80) ? 1 : 0);
}

static uint8_t *se_der_put_int(uint8_t *p, const uint8_t *v, size_t n, size_t skip, size_t body)
{
    *p++ = 0x02;
    *p++ = (uint8_t)body;
    if (body > n - skip)
        *p++ = 0x00;
    memcpy(p, v + skip, n - skip);
    return p + (n - skip);
}

fdl_se_status fdl_se_key_sign(fdl_se_key *k, const uint8_t *hash, size_t hash_len, uint8_t *sig, size_t cap,
                              size_t *sig_len)
{
    if (!k || !hash || hash_len == 0 || hash_len > SE_HASH_MAX || !sig || !sig_len ||
        k->priv == CK_INVALID_HANDLE)
        return FDL_SE_ERR_ARG;
    fdl_se_module *m = k->m;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_RV rv = se_rv(m, m->p11->C_SignInit(k->session, &mech, k->priv));
    if (rv != CKR_OK)
        return se_status(rv);
    uint8_t raw[SE_RAW_SIG_MAX];
    CK_ULONG rlen = sizeof raw;
    rv = se_rv(m, m->p11->C_Sign(k->session, (CK_BYTE_PTR)hash, (CK_ULONG)hash_len, raw, &rlen));
    if (rv != CKR_OK)
        return se_status(rv);
    if (rlen == 0 || rlen % 2 != 0 || rlen > sizeof raw) {
        se_rv(m, CKR_FUNCTION_FAILED);
        return FDL_SE_ERR_PKCS11;
    }
    /* PKCS#11 gives r || s; X.509 and TLS carry SEQUENCE { INTEGER r, INTEGER s }. */
    size_t half = rlen / 2, rskip, sskip;
    size_t rl = se_der_int_len(raw, half, &rskip);
    size_t sl = se_der_int_len(raw + half, half, &sskip);
    size_t body = 2 + rl + 2 + sl;
    size_t hdr = body < 0x80 ? 2 : 3; /* P-521 needs the long form */
    if (hdr + body > cap)
        return FDL_SE_ERR_SMALL;
    uint8_t *p = sig;
    *p++ = 0x30;
    if (hdr == 3)
        *p++ = 0x81;
    *p++ = (uint8_t)body;
    p = se_der_put_int(p, raw, half, rskip, rl);
    p = se_der_put_int(p, raw + half, half, sskip, sl);
    *sig_len = (size_t)(p - sig);
    return FDL_SE_OK;
}

mbedtls_pk_context *fdl_se_key_pk(fdl_se_key *k)
{
    return k ? &k->pk : NULL;
}

unsigned long fdl_se_key_get_private_attr(fdl_se_key *k, unsigned long attr_type, void *value,
                                          unsigned long *value_len)
{
    if (!k || !value_len || k->priv == CK_INVALID_HANDLE)
        return CKR_ARGUMENTS_BAD;
    CK_ATTRIBUTE a = {attr_type, value, value ? *value_len : 0};
    CK_RV rv = se_rv(k->m, k->m->p11->C_GetAttributeValue(k->session, k->priv, &a, 1));
    *value_len = a.ulValueLen;
    return rv;
}

/* ---- URIs ----------------------------------------------------------------- */

/*
 * Appends label percent-encoded per RFC 7512: everything outside RFC 3986
 * "unreserved" is encoded. The RFC would allow a few more characters bare,
 * but encoding them is always valid and every parser reads it.
 */
static size_t se_uri_put(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~';
        if (plain) {
            if (out)
                out[n] = (char)c;
            n++;
        } else {
            if (out) {
                out[n] = '%';
                out[n + 1] = hex[c >> 4];
                out[n + 2] = hex[c & 15];
            }
            n += 3;
        }
    }
    return n;
}

fdl_se_status fdl_se_uri(const char *token_label, const char *key_label, char *buf, size_t cap)
{
    static const char p0[] = "pkcs11:token=", p1[] = ";object=", p2[] = ";type=private";
    if (!token_label || !key_label || !buf)
        return FDL_SE_ERR_ARG;
    size_t need = (sizeof p0 - 1) + se_uri_put(NULL, token_label) + (sizeof p1 - 1) +
                  se_uri_put(NULL, key_label) + (sizeof p2 - 1) + 1;
    if (need > cap)
        return FDL_SE_ERR_SMALL; /* buf untouched */
    size_t n = 0;
    memcpy(buf + n, p0, sizeof p0 - 1);
    n += sizeof p0 - 1;
    n += se_uri_put(buf + n, token_label);
    memcpy(buf + n, p1, sizeof p1 - 1);
    n += sizeof p1 - 1;
    n += se_uri_put(buf + n, key_label);
    memcpy(buf + n, p2, sizeof p2);
    return FDL_SE_OK;
}
