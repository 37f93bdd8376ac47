/* net.h - the eddy server: event loops, connections, the RESP command table.
 *
 * main() (net/main.c) parses the configuration with net_config_load, then runs
 * net_server_run until SHUTDOWN or a signal. Everything else in net/ is private
 * (net_int.h). Depends on engine/ and common/.
 */
#ifndef EDDY_NET_H
#define EDDY_NET_H

#include "../common/common.h"

struct net_config;

/* Builds a configuration from the defaults, then the file named by --config, then
 * the other command-line flags (a flag overrides the file). Returns NULL with err set
 * on a bad flag or file; *exit_now is set when --help or --version was handled. */
struct net_config *net_config_load(int argc, char **argv, bool *exit_now, struct cm_err *err);
void net_config_free(struct net_config *cfg);

/* Opens the store, listens, serves until shutdown. Returns the process exit code. */
int net_server_run(struct net_config *cfg);

#endif
