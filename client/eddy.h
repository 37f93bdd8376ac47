/* eddy.h - libeddy, the C client library of eddy (and of any RESP2/RESP3 server).
 *
 * A blocking client: connect, send commands (one at a time or pipelined), read
 * replies as trees of struct eddy_reply. Self-contained: it includes only libc
 * headers and is installed as $(PREFIX)/include/eddy.h; link with -leddy
 * (pkg-config eddy).
 *
 * Conventions.
 *   - Functions that act return int: EDDY_OK (0) or a negative EDDY_ERR_* code.
 *     eddy_strerror names a code; eddy_errstr gives the detail of the last failure.
 *   - Once a connection has failed (I/O error, EOF, protocol violation, timeout,
 *     out of memory), the failure sticks: every later call on that handle returns
 *     the same code at once, because the byte stream can no longer be trusted.
 *     Only eddy_free is then useful. Failures that leave the stream intact do not
 *     stick: EDDY_ERR_INVAL, EDDY_ERR_REPLY, and EDDY_ERR_NOMEM from eddy_append_argv.
 *   - A reply the server sends as an error ("-ERR ...") is not a library failure:
 *     it is returned as a reply of type EDDY_REPLY_ERROR.
 *   - Every function taking an eddy_ctx needs a valid handle, except eddy_free (NULL
 *     is a no-op there).
 *   - A handle is not thread-safe: use one per thread, or lock around it.
 *   - The library writes with MSG_NOSIGNAL, so a closed peer never raises SIGPIPE.
 */
#ifndef EDDY_H
#define EDDY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Error codes ------------------------------------------------------------------ */
enum {
    EDDY_OK = 0,
    EDDY_ERR_IO = -1,       /* a socket call failed (errno text in eddy_errstr) */
    EDDY_ERR_EOF = -2,      /* the server closed the connection */
    EDDY_ERR_PROTOCOL = -3, /* the server sent bytes that are not RESP */
    EDDY_ERR_TIMEOUT = -4,  /* the socket was not ready within the timeout */
    EDDY_ERR_NOMEM = -5,    /* an allocation failed */
    EDDY_ERR_INVAL = -6,    /* a bad argument from the caller; does not stick */
    EDDY_ERR_REPLY = -7     /* the server answered with an error reply; does not stick */
};

/* Size of the error buffers that eddy_connect fills, including the NUL. */
#define EDDY_ERRLEN 256

/* Returns a static, human-readable name for an EDDY_ERR_* code ("timeout"), or
 * "unknown error" for any other value. Never NULL. */
const char *eddy_strerror(int code);

/* Returns the library version as a static string, e.g. "0.1.0". */
const char *eddy_version(void);

/* ---- Replies ---------------------------------------------------------------------- */
enum eddy_reply_type {
    EDDY_REPLY_STRING = 1, /* bulk string, binary-safe: str, len */
    EDDY_REPLY_ARRAY,      /* elements, element[] */
    EDDY_REPLY_INTEGER,    /* integer */
    EDDY_REPLY_NIL,        /* RESP2 null bulk or null array, RESP3 null */
    EDDY_REPLY_STATUS,     /* simple string such as "OK": str, len */
    EDDY_REPLY_ERROR,      /* error reply (simple or RESP3 blob): str, len */
    EDDY_REPLY_DOUBLE,     /* RESP3 double: dval, and its text in str, len */
    EDDY_REPLY_BOOL,       /* RESP3 boolean: integer is 0 or 1 */
    EDDY_REPLY_MAP,        /* RESP3 map: element[] is k1, v1, k2, v2...; elements = 2 * pairs */
    EDDY_REPLY_SET,        /* RESP3 set: elements, element[] */
    EDDY_REPLY_ATTR,       /* RESP3 attribute: laid out like a map */
    EDDY_REPLY_PUSH,       /* RESP3 push (out-of-band data): elements, element[] */
    EDDY_REPLY_BIGNUM,     /* RESP3 big number: its decimal digits in str, len */
    EDDY_REPLY_VERB        /* RESP3 verbatim string: format in vtype ("txt"), text in str */
};

/* One reply, possibly the root of a tree of replies. Owned by the caller that
 * received it and freed, tree and all, with eddy_reply_free; the nested replies
 * belong to the root and are never freed on their own. Treat it as read-only and
 * never pass any part of it to free(3): its memory comes from the library's
 * allocator. str is NUL-terminated (len excludes the NUL, and str may itself
 * contain NUL bytes); str is NULL for types without text. */
struct eddy_reply {
    enum eddy_reply_type type;
    long long integer;          /* INTEGER; BOOL (0 or 1) */
    double dval;                /* DOUBLE */
    char *str;                  /* STRING STATUS ERROR DOUBLE BIGNUM VERB */
    size_t len;                 /* bytes in str */
    size_t elements;            /* ARRAY MAP SET ATTR PUSH */
    struct eddy_reply **element;
    char vtype[4];              /* VERB: 3-letter format and a NUL */
};

/* Frees a reply and everything it contains. NULL is a no-op. */
void eddy_reply_free(struct eddy_reply *reply);

/* Returns a static lowercase name of a reply type ("string", "map"...), or "?". */
const char *eddy_reply_type_name(enum eddy_reply_type type);

/* ---- Connections -------------------------------------------------------------------- */

/* An open connection. Opaque; created by eddy_connect*, freed by eddy_free. */
typedef struct eddy_ctx eddy_ctx;

/* Connects over TCP to host (a name or a numeric IPv4/IPv6 address) and port, with
 * TCP_NODELAY set. timeout_ms bounds the connect and, later, every wait for the
 * socket (see eddy_set_timeout); 0 or less waits forever. If password is not NULL,
 * sends "AUTH password" and fails unless the server answers +OK.
 * Returns a new handle, owned by the caller and freed with eddy_free; or NULL, and
 * then, if errbuf is not NULL, writes a NUL-terminated message of at most
 * EDDY_ERRLEN bytes into it (e.g. "Connection refused", or the server's AUTH error).
 * host and password are only read during the call. */
eddy_ctx *eddy_connect(const char *host, int port, int timeout_ms, const char *password,
                       char *errbuf);

/* Like eddy_connect, over a Unix domain socket at path. */
eddy_ctx *eddy_connect_unix(const char *path, int timeout_ms, const char *password,
                            char *errbuf);

/* Closes the connection and frees the handle, queued commands and unread replies.
 * NULL is a no-op. */
void eddy_free(eddy_ctx *ctx);

/* Sets the timeout in milliseconds for every later wait for the socket to become
 * readable or writable; 0 or less waits forever. A reply that keeps arriving is
 * never cut short: the timeout bounds each silence, not the whole transfer.
 * A timeout makes the handle fail with EDDY_ERR_TIMEOUT (sticky). Returns EDDY_OK,
 * or the sticky error if the handle has already failed. */
int eddy_set_timeout(eddy_ctx *ctx, int timeout_ms);

/* Returns the socket's file descriptor (in non-blocking mode), for poll(2) or
 * getsockopt(2); it stays owned by ctx. Do not read, write or close it. */
int eddy_fd(const eddy_ctx *ctx);

/* Returns the sticky error code of ctx: EDDY_OK while the connection is healthy. */
int eddy_err(const eddy_ctx *ctx);

/* Returns a message about the last failure on ctx (including EDDY_ERR_INVAL and
 * EDDY_ERR_REPLY), or "" if nothing has failed. The string belongs to ctx and is
 * valid until the next call on ctx. */
const char *eddy_errstr(const eddy_ctx *ctx);

/* ---- Commands ----------------------------------------------------------------------- */

/* Sends one command of argc binary-safe arguments (argv[i] has argvlen[i] bytes; if
 * argvlen is NULL every argv[i] is a C string) and waits for its reply. If earlier
 * commands were queued with eddy_append_argv and their replies not yet taken, this
 * returns the oldest unread reply instead, as the replies arrive in order: do not
 * mix the two styles without reading everything in between.
 * Returns the reply (owned by the caller; free with eddy_reply_free), which may be
 * of type EDDY_REPLY_ERROR; or NULL on failure: eddy_errstr says why, and eddy_err
 * returns the sticky code if the connection failed, or EDDY_OK if only this call
 * failed (bad arguments, or out of memory while queuing). The arguments are copied
 * before the call returns. */
struct eddy_reply *eddy_command_argv(eddy_ctx *ctx, int argc, const char **argv,
                                     const size_t *argvlen);

/* Convenience form of eddy_command_argv with C-string arguments and no format
 * string: eddy_command(ctx, "SET", "key", "value", (char *)NULL). The list must end
 * with a NULL pointer and hold at least one argument; at most 256 arguments. */
struct eddy_reply *eddy_command(eddy_ctx *ctx, const char *arg, ...);

/* Queues one command (arguments as for eddy_command_argv) without sending it.
 * Returns EDDY_OK; EDDY_ERR_INVAL (argc < 1, argv NULL, or a NULL argument when argvlen
 * is NULL); EDDY_ERR_NOMEM (nothing was queued and the handle stays usable); or the
 * sticky error. The arguments are copied. */
int eddy_append_argv(eddy_ctx *ctx, int argc, const char **argv, const size_t *argvlen);

/* Writes every queued command to the socket, waiting as needed. Returns EDDY_OK, or
 * EDDY_ERR_IO / EDDY_ERR_TIMEOUT / the sticky error. Large pipelines are safe: the
 * replies queue up in the server's output and in the kernel, and are read later
 * with eddy_get_reply (very large pipelines of large replies should be flushed and
 * read in batches, as with any Redis client, to bound the server's memory). */
int eddy_flush(eddy_ctx *ctx);

/* Takes the next reply, in the order the commands were sent. Flushes queued
 * commands first if there are any, then reads until one whole reply has arrived.
 * On EDDY_OK, *out is the reply, owned by the caller (free with eddy_reply_free).
 * On failure *out is NULL and the code is EDDY_ERR_IO, EDDY_ERR_EOF,
 * EDDY_ERR_PROTOCOL, EDDY_ERR_TIMEOUT, EDDY_ERR_NOMEM or EDDY_ERR_INVAL (out NULL).
 * RESP3 push messages are returned like any other reply (type EDDY_REPLY_PUSH), so
 * with client-side caching or pub/sub over RESP3, read with eddy_get_reply and check
 * the type. A RESP3 attribute that precedes a whole reply is skipped (it is
 * metadata about that reply, not a reply); inside an aggregate it stays, as an
 * element of type EDDY_REPLY_ATTR before the element it describes. */
int eddy_get_reply(eddy_ctx *ctx, struct eddy_reply **out);

/* Sends "HELLO proto" (2 or 3) and checks that the server accepted it. After
 * HELLO 3 the server answers with RESP3 types, which the reader always understands.
 * Returns EDDY_OK, EDDY_ERR_INVAL (proto not 2 or 3), EDDY_ERR_REPLY (the server
 * refused; its message is in eddy_errstr), or a connection failure. */
int eddy_hello(eddy_ctx *ctx, int proto);

/* Runs MAPREDUCE map reduce [arg ...] on the server: the function map runs over every
 * partition of the keyspace next to the data and reduce (a registered function, or
 * "@sum" / "@list") combines the partial results there; one reply comes back.
 * args are argc binary-safe strings (argvlen NULL: C strings). Returns the reply
 * (owned, eddy_reply_free; an error reply for a failed map or reduce) or NULL on a
 * connection error (eddy_err). */
struct eddy_reply *eddy_mapreduce(eddy_ctx *ctx, const char *map, const char *reduce, int argc,
                                  const char **argv, const size_t *argvlen);

/* ---- Cluster mode (client/cluster.c) ----------------------------------------------------
 * An eddy_cluster routes each command to the node owning the slot of its first key
 * (FCALL/EVAL: the key after numkeys; PING, INFO, SCAN, FUNCTION, MAPREDUCE and other
 * keyless commands go to the first node), from a slot map read with CLUSTER SLOTS. It
 * follows "-MOVED slot host:port" (updating the map, up to 5 hops) and "-ASK" (ASKING,
 * then the command) like Redis Cluster clients, and sends a command answered
 * "-TRYAGAIN" (a slot move's write fence) again after 2, 4, 8 ... ms, up to 12 times
 * (about 1.5 s), before returning that reply. Connections to nodes open on first use
 * and are replaced when they break. Not thread-safe: one handle per thread. */
typedef struct eddy_cluster eddy_cluster;

/* Connects to one node and reads the slot map. Returns NULL with errbuf (EDDY_ERRLEN
 * bytes, may be NULL) set on failure. password may be NULL. */
eddy_cluster *eddy_cluster_connect(const char *host, int port, int timeout_ms,
                                   const char *password, char *errbuf);
/* Frees the handle and its connections. NULL is a no-op. */
void eddy_cluster_free(eddy_cluster *cl);
/* Sends a command to the right node. Returns the reply (owned, eddy_reply_free; an
 * error reply other than a redirection is returned as is), or NULL when no node could
 * answer (eddy_cluster_errstr says why). argvlen NULL: C strings. */
struct eddy_reply *eddy_cluster_command_argv(eddy_cluster *cl, int argc, const char **argv,
                                             const size_t *argvlen);
/* The last failure's message; borrowed, valid until the next call. */
const char *eddy_cluster_errstr(const eddy_cluster *cl);

#ifdef __cplusplus
}
#endif

#endif
