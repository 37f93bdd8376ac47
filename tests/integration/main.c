/* main.c - entry point of the integration suite (bin/tests/integration): starts the
 * shared eddyd (or attaches to EDDY_TEST_PORT), runs every suite, then stops it.
 * Environment: EDDYD (default bin/eddyd), EDDY_TEST_PORT, EDDY_TEST_ONLY (run only
 * the suites of those names, e.g. "keys,protocol": conn strings keys server pipeline persist protocol limits cluster migrate ...),
 * EDDY_TEST_NAME (run only the tests whose name contains one of its comma-separated words). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const struct {
    const char *name;
    void (*fn)(void);
} suites[] = {
    {"conn", suite_conn},         {"strings", suite_strings}, {"keys", suite_keys},
    {"server", suite_server},     {"pipeline", suite_pipeline}, {"protocol", suite_protocol},
    {"limits", suite_limits},     {"persist", suite_persist},   {"udf", suite_udf},
    {"cluster", suite_cluster},   {"migrate", suite_migrate},
    {"train", suite_train},
    {"hardening", suite_hardening},
    {"faults", suite_faults},
};

/* True if name is one of the words of list (separated by spaces or commas). */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        size_t w = strcspn(p, " ,");
        if (w == n && strncmp(p, name, n) == 0)
            return true;
        p += w;
        p += strspn(p, " ,");
    }
    return false;
}

int main(void)
{
    if (!h_setup())
        return 1;
    const char *only = getenv("EDDY_TEST_ONLY");
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (only == NULL || *only == '\0' || listed(only, suites[i].name))
            suites[i].fn();
    return h_teardown();
}
