/* cmd_debug.c - DEBUG, for tests: inject storage faults (engine.h eng_fault_set) and
 * hold a write in flight (eng_debug_hold_write). Off unless eddyd runs with
 * --enable-debug-command yes (or local: loopback clients only), as Redis's
 * enable-debug-command. */
#include "net_int.h"

#include <stdio.h>

static const char *const kinds[ENG_FAULT_KINDS] = {"write", "sync", "read"};

/* DEBUG FAULT: the pending count of every kind, as a map. */
static void fault_status(struct cmd_ctx *x)
{
    resp_add_map(x->out, ENG_FAULT_KINDS + 1, x->resp);
    for (int k = 0; k < ENG_FAULT_KINDS; k++) {
        resp_add_cstr(x->out, kinds[k]);
        resp_add_int(x->out, eng_fault_pending(x->eng, (enum eng_fault)k));
    }
    resp_add_cstr(x->out, "injected");
    resp_add_int(x->out, (long long)eng_fault_count(x->eng));
}

/* DEBUG FAULT <write|sync|read|all> <n>: the next n such operations fail with an
 * injected I/O error (-1: all until cleared, 0: clear). */
static void fault_cmd(struct cmd_ctx *x)
{
    if (x->argc == 2) {
        fault_status(x);
        return;
    }
    long long n;
    if (x->argc != 4) {
        reply_syntax(x);
        return;
    }
    if (!arg_ll(x, 3, &n))
        return;
    if (n < -1) {
        reply_err(x, "ERR count must be -1 (until cleared), 0 (clear) or positive");
        return;
    }
    bool all = arg_is(x, 2, "all");
    int hit = 0;
    for (int k = 0; k < ENG_FAULT_KINDS; k++)
        if (all || arg_is(x, 2, kinds[k])) {
            eng_fault_set(x->eng, (enum eng_fault)k, (long)n);
            hit++;
        }
    if (hit == 0) {
        reply_errf(x, "ERR unknown fault kind '%.*s' (write, sync, read or all)",
                   (int)(x->argvlen[2] > 32 ? 32 : x->argvlen[2]), x->argv[2]);
        return;
    }
    cm_log(CM_LOG_WARNING, "DEBUG FAULT %.*s %lld by client %s", (int)x->argvlen[2], x->argv[2],
           n, x->c->addr);
    reply_ok(x);
}

/* DEBUG HOLD-WRITE <ms>: the next write to storage waits <ms> after it is applied
 * and before it counts as written (eng_debug_hold_write). */
static void hold_write_cmd(struct cmd_ctx *x)
{
    long long ms;
    if (x->argc != 3) {
        reply_syntax(x);
        return;
    }
    if (!arg_ll(x, 2, &ms))
        return;
    if (ms < 0 || ms > 60000) {
        reply_err(x, "ERR milliseconds must be between 0 and 60000");
        return;
    }
    eng_debug_hold_write(x->eng, (int)ms);
    cm_log(CM_LOG_WARNING, "DEBUG HOLD-WRITE %lld by client %s", ms, x->c->addr);
    reply_ok(x);
}

static void help_cmd(struct cmd_ctx *x)
{
    static const char *const lines[] = {
        "DEBUG <subcommand> [<arg> ...]. Subcommands are:",
        "FAULT [<write|sync|read|all> <count>]",
        "    Make the next <count> storage operations of that kind fail with an injected",
        "    I/O error (-1: every one until cleared; 0: clear). Without arguments, show",
        "    the counts still pending and how many faults were injected.",
        "HOLD-WRITE <milliseconds>",
        "    Make the next write to storage wait that long after it is applied (visible",
        "    to readers) and before it counts as written (0: clear).",
        "HELP",
        "    Print this help.",
    };
    size_t n = sizeof(lines) / sizeof(lines[0]);
    resp_add_array(x->out, n);
    for (size_t i = 0; i < n; i++)
        resp_add_simple(x->out, lines[i]);
}

static void debug_cmd(struct cmd_ctx *x)
{
    int mode = x->srv->cfg->enable_debug;
    if (mode == 0 || (mode == 2 && !x->c->loopback)) {
        reply_err(x, "ERR DEBUG command not allowed. If the enable-debug-command option is set "
                     "to \"local\", you can run it from a local connection, otherwise you need "
                     "to set this option in the configuration file, and then restart the "
                     "server.");
        return;
    }
    if (arg_is(x, 1, "FAULT"))
        fault_cmd(x);
    else if (arg_is(x, 1, "HOLD-WRITE"))
        hold_write_cmd(x);
    else if (arg_is(x, 1, "HELP") && x->argc == 2)
        help_cmd(x);
    else
        reply_errf(x, "ERR unknown subcommand '%.*s'. Try DEBUG HELP.",
                   (int)(x->argvlen[1] > 64 ? 64 : x->argvlen[1]), x->argv[1]);
}

const struct cmd_def cmd_debug_table[] = {
    {"debug", debug_cmd, -2, CMD_ADMIN | CMD_NOSCRIPT, 0, 0, 0, "server"},
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};
