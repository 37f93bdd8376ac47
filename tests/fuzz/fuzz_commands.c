/* fuzz_commands.c - libFuzzer target for the command layer: arbitrary argv against a
 * real engine in a temporary directory, through net/testhook.c (the real connection,
 * parser, dispatcher and reply path, in process).
 *
 * Input: up to 32 commands, one per line; arguments separated by single spaces;
 * inside an argument \n \r \s (space) \\ and \xHH escape bytes. A FUNCTION RESTORE
 * payload that starts with "EDDYFN01" gets its SHA-1 trailer appended, so the
 * fuzzer reaches the parser behind the checksum. Every reply must be valid RESP and
 * come before 10 s of CPU time (or 10 minutes of wall time) pass (th_exec);
 * afterwards the server must still answer PING. Before each input
 * the keyspace is flushed and the configuration restored; the functions are reset
 * after inputs that touched them, and a fixed library (lib "fz") is loaded so that
 * FCALL has something to call; functions get 20 ms. Leaks are checked every
 * FZ_LEAK_EVERY inputs, not after each, and the engine is compacted every
 * FZ_COMPACT_EVERY (fz_upkeep, fuzz_util.h). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../udf/udf_lib.h"
#include "fuzz_util.h"
#include "testhook.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct th *hook;
static bool funcs_dirty = true;
static unsigned long runs;

static const char base_lib[] =
    "#!lua name=fz\n"
    "redis.register_function('incr2', function(keys, args)\n"
    "  return redis.call('INCRBY', keys[1], 2) end)\n"
    "redis.register_function('getset', function(keys, args)\n"
    "  local old = redis.call('GET', keys[1]); redis.call('SET', keys[1], args[1] or 'x')\n"
    "  return old end)\n"
    "redis.register_function('spin', function(keys, args)\n"
    "  local n = math.min(tonumber(args[1]) or 0, 1e6); local i = 0\n"
    "  while i < n do i = i + 1 end; return i end)\n"
    "redis.register_function{function_name='ro', callback=function(keys)\n"
    "  return redis.call('GET', keys[1]) end, flags={'no-writes'}}\n"
    "redis.register_function('fail', function(keys, args)\n"
    "  redis.call('SET', keys[1], 'partial'); error('boom') end)\n"
    "redis.register_function('map', function(keys, args, part)\n"
    "  return {part.index, eddy.vec.from({1, 2}), 'x'} end)\n";

static int exec_or_die(int argc, const char **argv, const size_t *lens, struct resp_value **out)
{
    char why[256];
    struct resp_value *r = NULL;
    int rc = th_exec(hook, argc, argv, lens, 10000, &r, why);
    if (rc == TH_BADREPLY && !fz_known_bad_reply(why)) {
        fprintf(stderr, "server sent invalid RESP for %.*s: %s\n", (int)lens[0], argv[0], why);
        abort();
    }
    if (rc == TH_TIMEOUT) {
        fprintf(stderr, "no reply for %.*s (%s)\n", (int)lens[0], argv[0], why);
        abort();
    }
    if (out != NULL)
        *out = r;
    else
        resp_value_free(r);
    return rc;
}

static void cmd(const char *a, const char *b, const char *c, const char *d)
{
    const char *argv[4] = {a, b, c, d};
    size_t lens[4];
    int argc = 0;
    while (argc < 4 && argv[argc] != NULL) {
        lens[argc] = strlen(argv[argc]);
        argc++;
    }
    exec_or_die(argc, argv, lens, NULL);
}

static void setup(void)
{
    fz_quiet();
    const char *args[] = {"--udf-time-limit", "20", "--udf-memory-limit", "16mb",
                          "--loglevel",       "warning", "--appendfsync", "no",
                          "--memtable-size", "8mb", "--block-cache-size", "8mb",
                          "--value-cache-size", "1mb",
                          "--proto-max-bulk-len", "1mb", NULL};
    struct cm_err err = {0};
    hook = th_open(fz_tmpdir(), args, &err);
    if (hook == NULL) {
        fprintf(stderr, "th_open: %s\n", err.msg);
        abort();
    }
}

static int unhex(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Unescapes an argument in place; returns its length. */
static size_t unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n')
            s[o++] = '\n';
        else if (c == 'r')
            s[o++] = '\r';
        else if (c == 's')
            s[o++] = ' ';
        else if (c == 'x' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
                 isxdigit((unsigned char)s[i + 2])) {
            s[o++] = (char)(unhex((unsigned char)s[i + 1]) * 16 + unhex((unsigned char)s[i + 2]));
            i += 2;
        } else
            s[o++] = c;
    }
    return o;
}

static bool is_word(const char *p, size_t n, const char *w)
{
    return cm_streq_ci(p, n, w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_server_flags(argc, argv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hook == NULL)
        setup();
    if (size > 64 * 1024)
        return 0;
    fz_upkeep(hook, &runs);
    th_reset_config(hook);
    cmd("FLUSHALL", NULL, NULL, NULL);
    if (funcs_dirty) {
        cmd("FUNCTION", "FLUSH", NULL, NULL);
        cmd("FUNCTION", "LOAD", base_lib, NULL);
        cmd("SCRIPT", "FLUSH", NULL, NULL);
        funcs_dirty = false;
    }
    cmd("HELLO", "2", NULL, NULL);

    char *text = malloc(size + 20 + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t ncmd = 0;
    for (size_t pos = 0; pos < size && ncmd < 32; ncmd++) {
        char *line = text + pos;
        char *nl = memchr(line, '\n', size - pos);
        size_t ll = nl ? (size_t)(nl - line) : size - pos;
        pos += ll + 1;
        const char *argv[64];
        size_t lens[64];
        int argc = 0;
        for (size_t i = 0; i <= ll && argc < 64;) {
            char *sp = memchr(line + i, ' ', ll - i);
            size_t al = sp ? (size_t)(sp - (line + i)) : ll - i;
            argv[argc] = line + i;
            lens[argc] = unescape(line + i, al);
            argc++;
            i += al + 1;
            if (sp == NULL)
                break;
        }
        if (argc == 0 || lens[0] == 0)
            continue;
        if (is_word(argv[0], lens[0], "FUNCTION") || is_word(argv[0], lens[0], "SCRIPT") ||
            is_word(argv[0], lens[0], "EVAL"))
            funcs_dirty = true;
        /* SHUTDOWN would only stop the hook's loop; the hook handles it, but skip the
         * cost of a reconnect. DEBUG answers its "not allowed" error here (the hook's
         * server runs without --enable-debug-command), so it cannot inject faults. */
        if (is_word(argv[0], lens[0], "SHUTDOWN") ||
            (fz_ignore_known() && is_word(argv[0], lens[0], "MAPREDUCE")))
            continue;
        /* A bad verbatim format breaks the reply's framing (reported): the reader
         * then waits for bytes that never come. */
        if (fz_ignore_known() && memmem(line, ll, "verbatim", 8) != NULL)
            continue;
        char *fixed = NULL;
        if (argc >= 3 && is_word(argv[0], lens[0], "FUNCTION") &&
            is_word(argv[1], lens[1], "RESTORE") && lens[2] >= 8 &&
            memcmp(argv[2], "EDDYFN01", 8) == 0) {
            fixed = malloc(lens[2] + 20);
            memcpy(fixed, argv[2], lens[2]);
            cm_sha1(fixed, lens[2], (unsigned char *)fixed + lens[2]);
            argv[2] = fixed;
            lens[2] += 20;
        }
        exec_or_die(argc, argv, lens, NULL);
        free(fixed);
    }
    free(text);
    /* Still serving. */
    struct resp_value *r = NULL;
    th_reset_config(hook);
    const char *ping[] = {"PING"};
    size_t pl[] = {4};
    int rc = exec_or_die(1, ping, pl, &r);
    if (rc == TH_CLOSED)
        rc = exec_or_die(1, ping, pl, &r);
    if (rc != 0 || r == NULL || r->type != RESP_T_STATUS || strcmp(r->str, "PONG") != 0) {
        fprintf(stderr, "PING after the input: rc %d\n", rc);
        abort();
    }
    resp_value_free(r);
    return 0;
}
