/* main.c - eddyd's entry point: configuration, then the server. */
#include <stdio.h>

#include "net.h"

int main(int argc, char **argv)
{
    struct cm_err err = {0};
    bool exit_now;
    struct net_config *cfg = net_config_load(argc, argv, &exit_now, &err);
    if (cfg == NULL) {
        fprintf(stderr, "eddyd: %s\n", err.msg);
        return 1;
    }
    int rc = exit_now ? 0 : net_server_run(cfg);
    net_config_free(cfg);
    return rc;
}
