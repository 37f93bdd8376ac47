/* testhook.h - an in-process eddy server for fuzz targets (implemented in net/testhook.c).
 *
 * th_open builds what eddyd builds (configuration, engine, function registry, one
 * worker with its own event loop) but listens on nothing: one client connection is
 * a socketpair whose far end the hook drives. th_exec sends one command through the
 * real path (read, parse, dispatch, reply, flush) and runs the worker's loop until
 * the whole reply has come back, so preempted function calls and MAPREDUCE finish
 * as they do in the server. Single-threaded: use one hook from one thread.
 */
#ifndef EDDY_TESTHOOK_H
#define EDDY_TESTHOOK_H

#include <stddef.h>

#include "../../common/common.h"
#include "../../net/resp.h"

struct th;

/* Opens a server on dir (created if missing) with eddyd's command-line flags in
 * args (NULL-terminated, e.g. "--udf-time-limit", "200", NULL; --dir is set by the
 * hook). Returns NULL with err set on failure. At most one hook may be open. */
struct th *th_open(const char *dir, const char *const *args, struct cm_err *err);
/* Closes the connection and the server (syncs the WAL). NULL is a no-op. */
void th_close(struct th *h);

/* Results of th_exec besides 0. */
enum {
    TH_CLOSED = -100,  /* the server closed the connection (QUIT, CLIENT KILL, ...);
                          the hook has opened a new one */
    TH_BADREPLY = -101,/* the server sent bytes that are not RESP: a server bug */
    TH_TIMEOUT = -102  /* a hang: no whole reply within timeout_ms of the process's CPU
                          time, or 60 times timeout_ms of wall time (reason says which) */
};

/* Sends one command and waits up to timeout_ms (see TH_TIMEOUT) for its reply. Returns 0 with *reply
 * set (owned; resp_value_free) or one of TH_*; reason (if not NULL, 256 bytes) gets
 * the reader's error for TH_BADREPLY. */
int th_exec(struct th *h, int argc, const char *const *argv, const size_t *argvlen,
            int timeout_ms, struct resp_value **reply, char *reason);

/* Restores the configuration given to th_open (after a CONFIG SET) and clears the
 * shutdown flag that SHUTDOWN set. */
void th_reset_config(struct th *h);

/* Flushes the engine's memtables and compacts them away (eng_compact), so that the
 * range deletions of many FLUSHALLs stop slowing every read and scan. Returns 0 or
 * CM_EIO with err set. */
int th_compact(struct th *h, struct cm_err *err);

#endif
