/* cmd_udf.c - the function and script commands: FUNCTION (LOAD LIST DELETE FLUSH DUMP
 * RESTORE STATS KILL), FCALL, FCALL_RO, EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
 * (LOAD EXISTS FLUSH KILL). The work is in udf/; this file parses arguments and hands
 * calls to the connection (conn_run_call), which may be preempted. */
#include "net_int.h"

#include <string.h>

void cmd_function_local(struct cmd_ctx *x)
{
    struct udf *u = x->srv->udf;
    struct cm_err err = {0};
    if (arg_is(x, 1, "LOAD") && x->argc >= 3) {
        bool replace = false;
        size_t i = 2;
        if (x->argc == 4 && arg_is(x, 2, "REPLACE")) {
            replace = true;
            i = 3;
        } else if (x->argc != 3) {
            reply_errf(x, "ERR Unknown option given: %.*s", (int)x->argvlen[2], x->argv[2]);
            return;
        }
        struct cm_buf name;
        cm_buf_init(&name);
        if (udf_lib_load(u, x->argv[i], x->argvlen[i], replace, &name, &err) != 0)
            reply_err(x, err.msg);
        else
            resp_add_bulk(x->out, name.p, name.len);
        cm_buf_deinit(&name);
    } else if (arg_is(x, 1, "LIST")) {
        const char *pat = NULL;
        size_t plen = 0;
        bool withcode = false;
        for (size_t i = 2; i < x->argc; i++) {
            if (arg_is(x, i, "WITHCODE")) {
                withcode = true;
            } else if (arg_is(x, i, "LIBRARYNAME") && i + 1 < x->argc) {
                pat = x->argv[++i];
                plen = x->argvlen[i];
            } else {
                reply_errf(x, "ERR Unknown argument %.*s", (int)x->argvlen[i], x->argv[i]);
                return;
            }
        }
        if (x->srv->cluster != NULL)
            net_cluster_fn_list(x, pat, plen, withcode);
        else
            udf_lib_list(u, pat, plen, withcode, x->out, x->resp);
    } else if (arg_is(x, 1, "DELETE") && x->argc == 3) {
        if (udf_lib_delete(u, x->argv[2], x->argvlen[2], &err) != 0)
            reply_err(x, err.msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "FLUSH") && x->argc <= 3) {
        if (x->argc == 3 && !arg_is(x, 2, "ASYNC") && !arg_is(x, 2, "SYNC")) {
            reply_err(x, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
            return;
        }
        if (udf_lib_flush(u, &err) != 0)
            reply_err(x, err.msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "DUMP") && x->argc == 2) {
        struct cm_buf b;
        cm_buf_init(&b);
        if (udf_lib_dump(u, &b) != 0)
            reply_err(x, "OOM out of memory");
        else
            resp_add_bulk(x->out, b.p, b.len);
        cm_buf_deinit(&b);
    } else if (arg_is(x, 1, "RESTORE") && (x->argc == 3 || x->argc == 4)) {
        enum udf_restore policy = UDF_RESTORE_APPEND;
        if (x->argc == 4) {
            if (arg_is(x, 3, "FLUSH"))
                policy = UDF_RESTORE_FLUSH;
            else if (arg_is(x, 3, "REPLACE"))
                policy = UDF_RESTORE_REPLACE;
            else if (!arg_is(x, 3, "APPEND")) {
                reply_err(x, "ERR Wrong restore policy given, value should be either FLUSH, "
                             "APPEND or REPLACE.");
                return;
            }
        }
        if (udf_lib_restore(u, x->argv[2], x->argvlen[2], policy, &err) != 0)
            reply_err(x, err.msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "STATS") && x->argc == 2) {
        udf_stats(u, x->out, x->resp);
    } else if (arg_is(x, 1, "KILL") && x->argc == 2) {
        if (udf_kill(u, false) == 0)
            reply_err(x, "NOTBUSY No scripts in execution right now.");
        else
            reply_ok(x);
    } else {
        reply_errf(x, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try "
                      "FUNCTION HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

/* In cluster mode, LOAD DELETE FLUSH and RESTORE apply on every node before the reply,
 * in the order the coordinator gives them (docs/CLUSTER.md). LOAD and RESTORE store
 * libraries: below min-free-disk they are refused, as Redis's denyoom refuses them
 * above maxmemory (checked here, on the node the client asked). */
static void function_cmd(struct cmd_ctx *x)
{
    char msg[320];
    if ((arg_is(x, 1, "LOAD") || arg_is(x, 1, "RESTORE")) && x->argc >= 3 &&
        eng_space_refuses(x->srv->eng, NULL, NULL,
                          x->argvlen[arg_is(x, 1, "LOAD") ? x->argc - 1 : 2], msg, sizeof(msg))) {
        reply_errf(x, "ERR %s", msg);
        return;
    }
    if (net_cluster_fn_propagates(x))
        net_cluster_fn_change(x);
    else
        cmd_function_local(x);
}

/* FCALL name numkeys key... arg..., and the EVAL family with the same layout. */
static void call_generic(struct cmd_ctx *x, enum udf_kind kind, bool readonly)
{
    long long nkeys;
    if (cm_str_to_ll(x->argv[2], x->argvlen[2], &nkeys) != 0) {
        reply_err(x, kind == UDF_FCALL ? "ERR Bad number of keys provided"
                                       : "ERR value is not an integer or out of range");
        return;
    }
    if (nkeys < 0) {
        reply_err(x, "ERR Number of keys can't be negative");
        return;
    }
    if (nkeys > (long long)x->argc - 3) {
        reply_err(x, "ERR Number of keys can't be greater than number of args");
        return;
    }
    struct udf_call_req req = {
        .kind = kind,
        .name = x->argv[1],
        .name_len = x->argvlen[1],
        .nkeys = (int)nkeys,
        .keys = x->argv + 3,
        .keylens = x->argvlen + 3,
        .nargs = (int)(x->argc - 3 - (size_t)nkeys),
        .args = x->argv + 3 + nkeys,
        .arglens = x->argvlen + 3 + nkeys,
        .readonly = readonly,
        .resp = x->resp,
        .owner = x->c,
    };
    struct udf_call *call = udf_call_new(x->c->w->vm, &req, x->out);
    if (call == NULL) {
        x->failed = true;
        return;
    }
    conn_run_call(x->c, call);
}

static void fcall_cmd(struct cmd_ctx *x) { call_generic(x, UDF_FCALL, false); }
static void fcall_ro_cmd(struct cmd_ctx *x) { call_generic(x, UDF_FCALL, true); }
static void eval_cmd(struct cmd_ctx *x) { call_generic(x, UDF_EVAL, false); }
static void eval_ro_cmd(struct cmd_ctx *x) { call_generic(x, UDF_EVAL, true); }
static void evalsha_cmd(struct cmd_ctx *x) { call_generic(x, UDF_EVALSHA, false); }
static void evalsha_ro_cmd(struct cmd_ctx *x) { call_generic(x, UDF_EVALSHA, true); }

static void script_cmd(struct cmd_ctx *x)
{
    struct udf *u = x->srv->udf;
    struct cm_err err = {0};
    if (arg_is(x, 1, "LOAD") && x->argc == 3) {
        char sha[41];
        if (udf_script_load(u, x->argv[2], x->argvlen[2], sha, &err) != 0)
            reply_err(x, err.msg);
        else
            resp_add_bulk(x->out, sha, 40);
    } else if (arg_is(x, 1, "EXISTS") && x->argc >= 3) {
        resp_add_array(x->out, x->argc - 2);
        for (size_t i = 2; i < x->argc; i++)
            resp_add_int(x->out, udf_script_exists(u, x->argv[i], x->argvlen[i]) ? 1 : 0);
    } else if (arg_is(x, 1, "FLUSH") && x->argc <= 3) {
        if (udf_script_flush(u, &err) != 0)
            reply_err(x, err.msg);
        else
            reply_ok(x);
    } else if (arg_is(x, 1, "KILL") && x->argc == 2) {
        if (udf_kill(u, true) == 0)
            reply_err(x, "NOTBUSY No scripts in execution right now.");
        else
            reply_ok(x);
    } else {
        reply_errf(x, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try "
                      "SCRIPT HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
    }
}

#define NS CMD_NOSCRIPT
#define AS CMD_ANYSLOT
const struct cmd_def cmd_udf_table[] = {
    {"function", function_cmd, -2, NS, 0, 0, 0, "scripting"},
    {"fcall", fcall_cmd, -3, NS | AS | CMD_OWNTXN, 0, 0, 0, "scripting"},
    {"fcall_ro", fcall_ro_cmd, -3, NS | AS | CMD_OWNTXN | CMD_READONLY, 0, 0, 0, "scripting"},
    {"eval", eval_cmd, -3, NS | AS | CMD_OWNTXN, 0, 0, 0, "scripting"},
    {"eval_ro", eval_ro_cmd, -3, NS | AS | CMD_OWNTXN | CMD_READONLY, 0, 0, 0, "scripting"},
    {"evalsha", evalsha_cmd, -3, NS | AS | CMD_OWNTXN, 0, 0, 0, "scripting"},
    {"evalsha_ro", evalsha_ro_cmd, -3, NS | AS | CMD_OWNTXN | CMD_READONLY, 0, 0, 0, "scripting"},
    {"script", script_cmd, -2, NS, 0, 0, 0, "scripting"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
