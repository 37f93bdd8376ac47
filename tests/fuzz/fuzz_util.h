/* fuzz_util.h - helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): a
 * temporary directory removed at exit, quiet server logs, a byte reader over the
 * fuzzer's input, and a stable hash of a RESP reply tree for differential checks. */
#ifndef EDDY_FUZZ_UTIL_H
#define EDDY_FUZZ_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/lsan_interface.h>

#include "../../common/common.h"
#include "../../net/resp.h"
#include "testhook.h"

/* EDDY_FUZZ_IGNORE_KNOWN=1 lets a run go past the bugs already reported (see
 * tests/fuzz/README.md): invalid-RESP findings of those kinds are not fatal and
 * MAPREDUCE is not sent. Without it every finding stops the run. */
static inline bool fz_ignore_known(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("EDDY_FUZZ_IGNORE_KNOWN") != NULL && *getenv("EDDY_FUZZ_IGNORE_KNOWN") == '1';
    return v == 1;
}

static inline bool fz_known_bad_reply(const char *why)
{
    static const char *known[] = {"bad double value", "bytes after the whole reply",
                                  "bad bulk string terminator", "bad verbatim string",
                                  "nesting too deep", NULL};
    for (int i = 0; fz_ignore_known() && known[i] != NULL; i++)
        if (strstr(why, known[i]) != NULL)
            return true;
    return false;
}

static char fz_dir[64];

static inline int fz_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void fz_rm_dir(void)
{
    if (fz_dir[0] != '\0')
        nftw(fz_dir, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates eddy-fuzz.XXXXXX (removed at exit) in /dev/shm when there is one (a
 * tmpfs: RocksDB's fsyncs cost nothing there), else in /tmp, and returns it. */
static inline const char *fz_tmpdir(void)
{
    snprintf(fz_dir, sizeof(fz_dir), "%s/eddy-fuzz.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(fz_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_rm_dir);
    return fz_dir;
}

/* Sends the server's log lines to /dev/null unless EDDY_FUZZ_LOG is set. */
static inline void fz_quiet(void)
{
    if (getenv("EDDY_FUZZ_LOG") != NULL)
        return;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        cm_log_set_file(fd);
}

/* Flags for the targets that hold an in-process server (fuzz_commands, fuzz_lua),
 * added by fz_server_flags (from LLVMFuzzerInitialize) unless the command line sets
 * them:
 * -detect_leaks=0: libFuzzer checks for leaks after every input that allocated more
 *   than it freed: with a server (RocksDB's memtable and caches, Lua states) that is
 *   nearly every input, and each check runs the input a second time and scans the
 *   whole heap, 3/4 of the time of fuzz_commands. These targets call fz_leak_check
 *   every FZ_LEAK_EVERY inputs instead: a leak is still found, among the inputs since
 *   the last check, and at exit.
 * -entropic=0: the entropic schedule updates a frequency per feature of each input;
 *   an input of fuzz_commands has thousands (the corpus ~48,000 in all), and that update
 *   was 28% of fuzz_commands' time (252 -> 365 inputs/s without it). The classic
 *   schedule is used instead. */
#define FZ_LEAK_EVERY 1000

static inline void fz_server_flags(int *argc, char ***argv)
{
    static char *args[256];
    static char *flags[] = {"-detect_leaks=0", "-entropic=0"};
    enum { NFLAGS = sizeof(flags) / sizeof(flags[0]) };
    if (*argc < 1 || *argc > 256 - NFLAGS - 1)
        return;
    /* After the program name: flags come before the corpus directories. */
    int n = 0;
    args[n++] = (*argv)[0];
    for (int f = 0; f < NFLAGS; f++) {
        size_t eq = (size_t)(strchr(flags[f], '=') - flags[f]) + 1;
        bool given = false;
        for (int i = 1; i < *argc && !given; i++)
            given = strncmp((*argv)[i], flags[f], eq) == 0;
        if (!given)
            args[n++] = flags[f];
    }
    for (int i = 1; i < *argc; i++)
        args[n++] = (*argv)[i];
    args[n] = NULL;
    *argc = n;
    *argv = args;
}

/* Aborts with LSan's report when memory leaked since the last check. */
static inline void fz_leak_check(void)
{
    if (__lsan_do_recoverable_leak_check() != 0) {
        fprintf(stderr,
                "memory leaked in the last %d inputs (this one included): rerun them "
                "with -detect_leaks=1 to find which\n",
                FZ_LEAK_EVERY);
        abort();
    }
}

/* Every this many inputs the targets that hold a server compact its engine: each
 * FLUSHALL (and FUNCTION FLUSH) leaves deletions in the memtable, and every read and
 * each of a scan's 16384 slot seeks had to step over all of them, so the rate fell as a
 * run went on. */
#define FZ_COMPACT_EVERY 256

/* What those targets do before each input: count it, check for leaks and compact on
 * schedule. Aborts when either fails. */
static inline void fz_upkeep(struct th *h, unsigned long *runs)
{
    ++*runs;
    if (*runs % FZ_LEAK_EVERY == 0)
        fz_leak_check();
    struct cm_err err = {0};
    if (*runs % FZ_COMPACT_EVERY == 0 && th_compact(h, &err) != 0) {
        fprintf(stderr, "compaction failed: %s\n", err.msg);
        abort();
    }
}

/* FNV-1a over bytes, chained. */
static inline uint64_t fz_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

/* A hash of a reply tree: type, text, integer and every element. */
static inline uint64_t fz_hash_value(uint64_t h, const struct resp_value *v)
{
    int t = (int)v->type;
    h = fz_hash(h, &t, sizeof(t));
    if (v->str != NULL) {
        h = fz_hash(h, &v->len, sizeof(v->len));
        h = fz_hash(h, v->str, v->len);
        if (v->str[v->len] != '\0')
            abort(); /* str must be NUL-terminated */
    }
    if (v->type == RESP_T_INTEGER || v->type == RESP_T_BOOL)
        h = fz_hash(h, &v->integer, sizeof(v->integer));
    if (v->type == RESP_T_VERB)
        h = fz_hash(h, v->vtype, 3);
    h = fz_hash(h, &v->elements, sizeof(v->elements));
    for (size_t i = 0; i < v->elements; i++)
        h = fz_hash_value(h, v->element[i]);
    return h;
}

#endif
