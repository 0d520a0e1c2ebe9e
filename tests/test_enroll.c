/* tests/test_enroll.c — built-in policies of an older registry are brought up to date,
 * an operator's edit never is. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "cloud/enroll.h"
#include "cloud/policy.h"
#include "cloud/registry.h"

/* device-default as the release before the OTA topics wrote it (a copy: the test must
 * fail if enroll.c stops recognising what is really on disk in old state dirs). */
static const char k_old_default[] =
    "# fleetdrill default device policy\n"
    "allow publish   telemetry/${thing}\n"
    "allow subscribe commands/${thing}\n"
    "allow receive   commands/${thing}\n"
    "allow publish   $fleet/provisioning/${thing}/#\n"
    "allow subscribe $fleet/provisioning/${thing}/#\n"
    "allow receive   $fleet/provisioning/${thing}/#\n"
    "allow publish   $fleet/jobs/${thing}/#\n"
    "allow subscribe $fleet/jobs/${thing}/#\n"
    "allow receive   $fleet/jobs/${thing}/#\n";

typedef struct fixture {
    char dir[512], path[600];
    fdl_registry *reg;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    fdl_test_mkdtemp("enroll", f.dir, sizeof f.dir);
    snprintf(f.path, sizeof f.path, "%s/registry.db", f.dir);
    if (fdl_registry_open(f.path, NULL, &f.reg) != FDL_REG_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fdl_registry_free(f->reg);
    fdl_test_rmrf(f->dir);
    return 0;
}

static void text_of(fixture *f, char *buf, size_t cap)
{
    assert_int_equal(fdl_registry_policy_get(f->reg, FDL_ENROLL_POLICY_DEVICE, buf, cap, NULL), FDL_REG_OK);
}

static void an_unedited_old_default_is_upgraded(void **state)
{
    fixture *f = *state;
    char err[256], buf[4096];
    unsigned n = 9;
    assert_int_equal(fdl_registry_policy_put(f->reg, FDL_ENROLL_POLICY_DEVICE, k_old_default, 1), FDL_REG_OK);
    assert_int_equal(fdl_enroll_upgrade_policies(f->reg, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    text_of(f, buf, sizeof buf);
    assert_string_equal(buf, FDL_POLICY_DEFAULT_DEVICE);
    assert_non_null(strstr(buf, "$fleet/ota/${thing}/block"));
    /* Idempotent: the current text is left as it is. */
    assert_int_equal(fdl_enroll_upgrade_policies(f->reg, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

static void an_operator_edit_is_never_touched(void **state)
{
    fixture *f = *state;
    char err[256], buf[4096], edited[4096];
    unsigned n = 9;
    snprintf(edited, sizeof edited, "%sallow publish   debug/${thing}\n", k_old_default);
    assert_int_equal(fdl_registry_policy_put(f->reg, FDL_ENROLL_POLICY_DEVICE, edited, 1), FDL_REG_OK);
    assert_int_equal(fdl_enroll_upgrade_policies(f->reg, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    text_of(f, buf, sizeof buf);
    assert_string_equal(buf, edited);
    /* The old text, but no longer a per-device template: also someone's decision. */
    assert_int_equal(fdl_registry_policy_put(f->reg, FDL_ENROLL_POLICY_DEVICE, k_old_default, 0), FDL_REG_OK);
    assert_int_equal(fdl_enroll_upgrade_policies(f->reg, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

static void a_missing_policy_is_left_to_bootstrap(void **state)
{
    fixture *f = *state;
    char err[256], buf[64];
    unsigned n = 9;
    assert_int_equal(fdl_enroll_upgrade_policies(f->reg, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fdl_registry_policy_get(f->reg, FDL_ENROLL_POLICY_DEVICE, buf, sizeof buf, NULL),
                     FDL_REG_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_unedited_old_default_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(an_operator_edit_is_never_touched, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_policy_is_left_to_bootstrap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
