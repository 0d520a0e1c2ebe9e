/*
 * cloud/plugin/fleetdrill_auth.c — the Mosquitto 2.0 plugin (API v5): a thin shell.
 *
 * Everything it decides is decided by cloud/authz.c (plain C, tested without a
 * broker); this file only translates Mosquitto events into those calls and logs
 * every refusal with its reason. Options (mosquitto.conf):
 *   plugin_opt_registry <path>   the fleet registry (sqlite), required
 *
 * The listener must not set use_identity_as_username: Mosquitto skips plugin
 * authentication when it does. Here the plugin authenticates the certificate
 * against the registry and then sets the user name to the registered device id.
 */
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "cloud/authz.h"

/* Only the three plugin entry points are exported (the library is built with hidden visibility). */
#define FDL_PLUGIN_API __attribute__((visibility("default")))

static mosquitto_plugin_id_t *g_id;
static fdl_authz *g_authz;

FDL_PLUGIN_API int mosquitto_plugin_version(int count, const int *versions)
{
    for (int i = 0; i < count; i++)
        if (versions[i] == 5)
            return 5;
    return -1;
}

static const char *safe(const char *s)
{
    return s ? s : "(none)";
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    (void)event;
    (void)userdata;
    X509 *cert = mosquitto_client_certificate(ed->client);
    unsigned char *der = NULL;
    int len = cert ? i2d_X509(cert, &der) : 0;
    char id[80];
    fdl_authz_reason r = fdl_authz_connect(g_authz, der, len > 0 ? (size_t)len : 0, id, sizeof id);
    OPENSSL_free(der);
    X509_free(cert);
    if (r != FDL_AUTHZ_ALLOW) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: refused connection from %s (client id %s): %s",
                             safe(mosquitto_client_address(ed->client)), safe(mosquitto_client_id(ed->client)),
                             fdl_authz_reason_str(r));
        return MOSQ_ERR_AUTH;
    }
    if (mosquitto_set_username(ed->client, id) != MOSQ_ERR_SUCCESS)
        return MOSQ_ERR_AUTH;
    return MOSQ_ERR_SUCCESS;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    (void)event;
    (void)userdata;
    fdl_policy_action action;
    const char *verb;
    switch (ed->access) {
    case MOSQ_ACL_WRITE: action = FDL_POLICY_PUBLISH; verb = "publish to"; break;
    case MOSQ_ACL_SUBSCRIBE: action = FDL_POLICY_SUBSCRIBE; verb = "subscribe to"; break;
    case MOSQ_ACL_READ: action = FDL_POLICY_RECEIVE; verb = "receive from"; break;
    case MOSQ_ACL_UNSUBSCRIBE: return MOSQ_ERR_SUCCESS;   /* giving up access needs no permission */
    default: return MOSQ_ERR_ACL_DENIED;
    }
    const char *user = mosquitto_client_username(ed->client);
    char detail[160];
    fdl_authz_reason r = fdl_authz_check(g_authz, user, mosquitto_client_id(ed->client), action, ed->topic,
                                         ed->topic ? strlen(ed->topic) : 0, detail, sizeof detail);
    if (r == FDL_AUTHZ_ALLOW)
        return MOSQ_ERR_SUCCESS;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: denied %s %s %s: %s (%s)", safe(user), verb, safe(ed->topic),
                         fdl_authz_reason_str(r), detail[0] ? detail : "-");
    return MOSQ_ERR_ACL_DENIED;
}

FDL_PLUGIN_API int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int n)
{
    const char *registry = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].key, "registry"))
            registry = opts[i].value;
    if (!registry) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: plugin_opt_registry is required");
        return MOSQ_ERR_INVAL;
    }
    char err[256];
    if (fdl_authz_open(registry, &g_authz, err, sizeof err) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: %s", err);
        return MOSQ_ERR_UNKNOWN;
    }
    g_id = identifier;
    *userdata = NULL;
    if (mosquitto_callback_register(g_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_callback_register(g_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL) != MOSQ_ERR_SUCCESS) {
        fdl_authz_free(g_authz);
        g_authz = NULL;
        return MOSQ_ERR_UNKNOWN;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, "fleetdrill: authentication and authorization from registry %s", registry);
    return MOSQ_ERR_SUCCESS;
}

FDL_PLUGIN_API int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int n)
{
    (void)userdata;
    (void)opts;
    (void)n;
    mosquitto_callback_unregister(g_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
    mosquitto_callback_unregister(g_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
    fdl_authz_free(g_authz);
    g_authz = NULL;
    return MOSQ_ERR_SUCCESS;
}
