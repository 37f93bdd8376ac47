/* registry.c - the process-wide registry of libraries (FUNCTION LOAD/DELETE/FLUSH/
 * LIST/DUMP/RESTORE/STATS/KILL) and scripts (EVAL, SCRIPT LOAD/EXISTS/FLUSH), kept in
 * memory and persisted in the engine's metadata column family ("lib:<name>" and
 * "script:<sha1>" -> source). Every change bumps a generation; each VM re-instantiates
 * the libraries when it sees a new one, before its next call. */
#include "udf_int.h"

#include <stdio.h>
#include <string.h>

static struct udf_lib *find_lib(struct udf *u, const char *name, size_t len)
{
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next)
        if (strlen(l->name) == len && memcmp(l->name, name, len) == 0)
            return l;
    return NULL;
}

static void free_lib(struct udf_lib *l)
{
    if (l == NULL)
        return;
    cm_free(l->name);
    cm_free(l->code);
    udf__free_funcs(l->funcs, l->nfuncs);
    cm_free(l);
}

static void unlink_lib(struct udf *u, struct udf_lib *lib)
{
    for (struct udf_lib **p = &u->libs; *p != NULL; p = &(*p)->next)
        if (*p == lib) {
            *p = lib->next;
            return;
        }
}

/* Validates a library in a scratch VM: runs its code and collects its functions.
 * stored: it was accepted before (loaded from the store), so the load gets
 * UDF_RELOAD_TIME_MS. Returns a new udf_lib (not linked) or NULL. */
static struct udf_lib *validate(struct udf *u, const char *code, size_t len, bool stored,
                                struct cm_err *err)
{
    struct udf_vm *vm = udf_vm_new(u, err);
    if (vm == NULL)
        return NULL;
    if (stored)
        vm->load_time_ms = UDF_RELOAD_TIME_MS;
    struct udf_lib *lib = cm_calloc(1, sizeof(*lib));
    char name[128];
    int flags;
    size_t off;
    if (lib == NULL || udf__parse_shebang(code, len, true, name, sizeof(name), &flags, &off, err) != 0 ||
        udf__load_lib(vm, NULL, code, len, &lib->funcs, &lib->nfuncs, err) != 0)
        goto fail;
    lib->name = cm_strdup(name);
    lib->code = cm_memdup(code, len);
    lib->len = len;
    if (lib->name == NULL || lib->code == NULL) {
        cm_err_set(err, CM_ENOMEM, "ERR out of memory");
        goto fail;
    }
    udf_vm_free(vm);
    return lib;
fail:
    free_lib(lib);
    udf_vm_free(vm);
    return NULL;
}

/* A function of lib whose name another library (other than `except`) has. */
static const char *clash(struct udf *u, const struct udf_lib *lib, const struct udf_lib *except)
{
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next) {
        if (l == except || strcmp(l->name, lib->name) == 0)
            continue;
        for (int i = 0; i < l->nfuncs; i++)
            for (int j = 0; j < lib->nfuncs; j++)
                if (strcmp(l->funcs[i].name, lib->funcs[j].name) == 0)
                    return lib->funcs[j].name;
    }
    return NULL;
}

/* A storage error as a reply: "ERR storage error: ..."; when the change was applied
 * but not synced (CM_ESYNC), the caller applies it in memory too, so that what runs is
 * what the store holds (and a restart loads), and the reply says so. */
static int storage_err(struct cm_err *err, int rc)
{
    if (err == NULL)
        return rc;
    if (rc == CM_ESYNC) /* cm_err_set formats aside: err->msg may be an argument */
        return cm_err_set(err, rc, "ERR storage error: %s (the change is applied up to "
                                   "this write, which may not survive a crash)", err->msg);
    return cm_err_set(err, rc, "ERR storage error: %s", err->msg);
}

static int persist_lib(struct udf *u, const struct udf_lib *lib, struct cm_err *err)
{
    struct cm_buf k;
    cm_buf_init(&k);
    if (cm_buf_appendf(&k, "lib:%s", lib->name) != 0)
        return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
    int rc = eng_meta_put(u->eng, k.p, k.len, lib->code, lib->len, err);
    cm_buf_deinit(&k);
    return rc != 0 ? storage_err(err, rc) : 0;
}

static int unpersist_lib(struct udf *u, const char *name, struct cm_err *err)
{
    char k[160];
    int n = snprintf(k, sizeof(k), "lib:%s", name);
    int rc = eng_meta_del(u->eng, k, (size_t)n, err);
    return rc != 0 ? storage_err(err, rc) : 0;
}

/* Library changes made by this thread (udf_lib_generation). */
static _Thread_local unsigned long long thread_lib_changes;

/* A library came, went or changed: the threads re-instantiate (generation), and a
 * cluster's coordinator sees a change to forward (thread_lib_changes: a SCRIPT FLUSH
 * moves generation only, and a change another thread applies at the same time, a
 * forwarded CLUSTER FUNCTION EPOCH, is not this command's). Lock held. */
static void libs_changed(struct udf *u)
{
    atomic_fetch_add(&u->generation, 1);
    thread_lib_changes++;
}

/* Links lib (validated) in place of any library of the same name. Caller holds lock. */
static int install(struct udf *u, struct udf_lib *lib, bool replace, struct cm_err *err)
{
    struct udf_lib *old = find_lib(u, lib->name, strlen(lib->name));
    if (old != NULL && !replace)
        return cm_err_set(err, CM_EINVAL, "ERR Library '%s' already exists", lib->name);
    const char *dup = clash(u, lib, old);
    if (dup != NULL)
        return cm_err_set(err, CM_EINVAL, "ERR Function %s already exists", dup);
    int rc = persist_lib(u, lib, err);
    if (rc != 0 && rc != CM_ESYNC)
        return rc;
    if (old != NULL) {
        unlink_lib(u, old);
        free_lib(old);
    }
    lib->next = u->libs;
    u->libs = lib;
    libs_changed(u);
    return rc;
}

int udf_lib_load(struct udf *u, const char *code, size_t len, bool replace, struct cm_buf *name,
                 struct cm_err *err)
{
    pthread_mutex_lock(&u->lock);
    struct udf_lib *lib = validate(u, code, len, false, err);
    int rc = lib == NULL ? CM_EINVAL : install(u, lib, replace, err);
    if (rc == 0 || rc == CM_ESYNC) { /* CM_ESYNC: installed, the reply is an error */
        name->len = 0;
        cm_buf_append(name, lib->name, strlen(lib->name));
        cm_log(CM_LOG_NOTICE, "Library %s loaded (%d functions)%s", lib->name, lib->nfuncs,
               rc == CM_ESYNC ? ", its WAL sync failed" : "");
    } else {
        free_lib(lib);
    }
    pthread_mutex_unlock(&u->lock);
    return rc;
}

int udf_lib_delete(struct udf *u, const char *name, size_t len, struct cm_err *err)
{
    pthread_mutex_lock(&u->lock);
    int rc = 0;
    struct udf_lib *lib = find_lib(u, name, len);
    if (lib == NULL) {
        rc = cm_err_set(err, CM_ENOTFOUND, "ERR Library not found");
    } else if ((rc = unpersist_lib(u, lib->name, err)) == 0 || rc == CM_ESYNC) {
        unlink_lib(u, lib);
        free_lib(lib);
        libs_changed(u);
    }
    pthread_mutex_unlock(&u->lock);
    return rc;
}

static int flush_locked(struct udf *u, struct cm_err *err)
{
    int rc = 0, removed = 0;
    while (u->libs != NULL && rc == 0) {
        struct udf_lib *l = u->libs;
        rc = unpersist_lib(u, l->name, err);
        if (rc != 0 && rc != CM_ESYNC)
            break;
        u->libs = l->next;
        free_lib(l);
        removed++;
    }
    /* Also after a failure: a library removed before it must stop running too (the
     * threads re-instantiate at a new generation). Not when nothing changed: a
     * cluster's coordinator forwards a change whenever udf_lib_generation moved. */
    if (removed > 0 || rc == 0)
        libs_changed(u);
    return rc;
}

unsigned long long udf_lib_generation(struct udf *u)
{
    (void)u;
    return thread_lib_changes;
}

int udf_lib_flush(struct udf *u, struct cm_err *err)
{
    pthread_mutex_lock(&u->lock);
    int rc = flush_locked(u, err);
    pthread_mutex_unlock(&u->lock);
    return rc;
}

static void add_flags(struct cm_buf *out, int flags, int resp)
{
    static const char *names[] = {"no-writes", "allow-oom", "allow-stale", "no-cluster",
                                  "allow-cross-slot-keys"};
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        n += (flags >> i) & 1;
    resp_add_set(out, n, resp);
    for (int i = 0; i < 5; i++)
        if ((flags >> i) & 1)
            resp_add_cstr(out, names[i]);
}

void udf_lib_list(struct udf *u, const char *pattern, size_t plen, bool withcode,
                  struct cm_buf *out, int resp)
{
    pthread_mutex_lock(&u->lock);
    size_t n = 0;
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next)
        n += pattern == NULL || cm_glob_match(pattern, plen, l->name, strlen(l->name), false);
    resp_add_array(out, n);
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next) {
        if (pattern != NULL && !cm_glob_match(pattern, plen, l->name, strlen(l->name), false))
            continue;
        resp_add_map(out, withcode ? 4 : 3, resp);
        resp_add_cstr(out, "library_name");
        resp_add_cstr(out, l->name);
        resp_add_cstr(out, "engine");
        resp_add_cstr(out, "LUA");
        resp_add_cstr(out, "functions");
        resp_add_array(out, (size_t)l->nfuncs);
        for (int i = 0; i < l->nfuncs; i++) {
            resp_add_map(out, 3, resp);
            resp_add_cstr(out, "name");
            resp_add_cstr(out, l->funcs[i].name);
            resp_add_cstr(out, "description");
            resp_add_null(out, resp);
            resp_add_cstr(out, "flags");
            add_flags(out, l->funcs[i].flags, resp);
        }
        if (withcode) {
            resp_add_cstr(out, "library_code");
            resp_add_bulk(out, l->code, l->len);
        }
    }
    pthread_mutex_unlock(&u->lock);
}

/* ---- DUMP and RESTORE -----------------------------------------------------------------------
 * Payload: "EDDYFN01", then per library a 4-byte little-endian length and the source,
 * then the SHA-1 of everything before it. */
#define DUMP_MAGIC "EDDYFN01"

int udf_lib_dump(struct udf *u, struct cm_buf *out)
{
    size_t start = out->len;
    pthread_mutex_lock(&u->lock);
    int rc = cm_buf_append(out, DUMP_MAGIC, 8);
    for (struct udf_lib *l = u->libs; l != NULL && rc == 0; l = l->next) {
        unsigned char h[4] = {(unsigned char)l->len, (unsigned char)(l->len >> 8),
                              (unsigned char)(l->len >> 16), (unsigned char)(l->len >> 24)};
        rc = cm_buf_append(out, h, 4);
        if (rc == 0)
            rc = cm_buf_append(out, l->code, l->len);
    }
    pthread_mutex_unlock(&u->lock);
    unsigned char sum[20];
    if (rc == 0) {
        cm_sha1(out->p + start, out->len - start, sum);
        rc = cm_buf_append(out, sum, 20);
    }
    return rc;
}

int udf_lib_restore(struct udf *u, const char *p, size_t n, enum udf_restore policy,
                    struct cm_err *err)
{
    unsigned char sum[20];
    if (n < 28 || memcmp(p, DUMP_MAGIC, 8) != 0)
        return cm_err_set(err, CM_EINVAL, "ERR DUMP payload version or checksum are wrong");
    cm_sha1(p, n - 20, sum);
    if (memcmp(sum, p + n - 20, 20) != 0)
        return cm_err_set(err, CM_EINVAL, "ERR DUMP payload version or checksum are wrong");
    pthread_mutex_lock(&u->lock);
    struct udf_lib *parsed = NULL;
    int rc = 0;
    for (size_t off = 8; off < n - 20 && rc == 0;) {
        if (n - 20 - off < 4) {
            rc = cm_err_set(err, CM_EINVAL, "ERR DUMP payload version or checksum are wrong");
            break;
        }
        const unsigned char *h = (const unsigned char *)p + off;
        size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
        off += 4;
        if (len > n - 20 - off) {
            rc = cm_err_set(err, CM_EINVAL, "ERR DUMP payload version or checksum are wrong");
            break;
        }
        struct udf_lib *lib = validate(u, p + off, len, false, err);
        if (lib == NULL) {
            rc = CM_EINVAL;
            break;
        }
        lib->next = parsed;
        parsed = lib;
        off += len;
    }
    /* Check every library against the final state before changing anything. */
    for (struct udf_lib *l = parsed; l != NULL && rc == 0; l = l->next) {
        struct udf_lib *old = find_lib(u, l->name, strlen(l->name));
        if (policy == UDF_RESTORE_APPEND && old != NULL)
            rc = cm_err_set(err, CM_EINVAL, "ERR Library %s already exists", l->name);
        for (struct udf_lib *m = l->next; m != NULL && rc == 0; m = m->next)
            if (strcmp(m->name, l->name) == 0)
                rc = cm_err_set(err, CM_EINVAL, "ERR Library %s already exists", l->name);
        if (rc == 0 && policy != UDF_RESTORE_FLUSH) {
            const char *dup = clash(u, l, policy == UDF_RESTORE_REPLACE ? old : NULL);
            if (dup != NULL)
                rc = cm_err_set(err, CM_EINVAL, "ERR Function %s already exists", dup);
        }
    }
    if (rc == 0 && policy == UDF_RESTORE_FLUSH)
        rc = flush_locked(u, err);
    while (parsed != NULL) {
        struct udf_lib *l = parsed;
        parsed = l->next;
        if (rc == 0) {
            rc = install(u, l, true, err);
            if (rc == 0 || rc == CM_ESYNC)
                continue; /* linked (CM_ESYNC: the rest is not installed) */
        }
        free_lib(l);
    }
    pthread_mutex_unlock(&u->lock);
    return rc;
}

/* ---- Running calls, STATS and KILL ------------------------------------------------------------- */

void udf__running_add(struct udf *u, struct udf_call *c)
{
    pthread_mutex_lock(&u->lock);
    c->rprev = NULL;
    c->rnext = u->running;
    if (u->running)
        u->running->rprev = c;
    u->running = c;
    pthread_mutex_unlock(&u->lock);
}

void udf__running_remove(struct udf *u, struct udf_call *c)
{
    pthread_mutex_lock(&u->lock);
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else if (u->running == c)
        u->running = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    c->rnext = c->rprev = NULL;
    pthread_mutex_unlock(&u->lock);
}

void udf_conflict_stats(struct udf *u, unsigned long long *conflicts, unsigned long long *holds)
{
    *conflicts = atomic_load_explicit(&u->conflicts, memory_order_relaxed);
    *holds = atomic_load_explicit(&u->holds, memory_order_relaxed);
}

void udf_stats(struct udf *u, struct cm_buf *out, int resp)
{
    pthread_mutex_lock(&u->lock);
    resp_add_map(out, 2, resp);
    resp_add_cstr(out, "running_script");
    struct udf_call *c = u->running;
    if (c == NULL) {
        resp_add_null(out, resp);
    } else {
        resp_add_map(out, 3, resp);
        resp_add_cstr(out, "name");
        resp_add_cstr(out, c->label);
        resp_add_cstr(out, "command");
        resp_add_array(out, 1);
        resp_add_cstr(out, c->kind == UDF_EVAL || c->kind == UDF_EVALSHA ? "eval"
                           : c->kind == UDF_MAP                        ? "mapreduce (map)"
                           : c->kind == UDF_REDUCE                     ? "mapreduce (reduce)"
                                                                       : "fcall");
        resp_add_cstr(out, "duration_ms");
        resp_add_int(out, (cm_mono_us() - c->start_us) / 1000);
    }
    int nlibs = 0, nfuncs = 0;
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next) {
        nlibs++;
        nfuncs += l->nfuncs;
    }
    resp_add_cstr(out, "engines");
    resp_add_map(out, 1, resp);
    resp_add_cstr(out, "LUA");
    resp_add_map(out, 2, resp);
    resp_add_cstr(out, "libraries_count");
    resp_add_int(out, nlibs);
    resp_add_cstr(out, "functions_count");
    resp_add_int(out, nfuncs);
    pthread_mutex_unlock(&u->lock);
}

int udf_kill(struct udf *u, bool scripts)
{
    int n = 0;
    pthread_mutex_lock(&u->lock);
    for (struct udf_call *c = u->running; c != NULL; c = c->rnext)
        if ((c->kind == UDF_EVAL || c->kind == UDF_EVALSHA) == scripts && c->started) {
            atomic_store(&c->kill, KILL_USER);
            n++;
        }
    pthread_mutex_unlock(&u->lock);
    return n;
}

/* ---- Scripts ------------------------------------------------------------------------------------ */

static unsigned bucket(const char *sha)
{
    unsigned v = 0;
    for (int i = 0; i < 2; i++) {
        char c = sha[i];
        v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v % SCRIPT_BUCKETS;
}

static struct udf_script *find_script(struct udf *u, const char *sha)
{
    for (struct udf_script *s = u->scripts[bucket(sha)]; s != NULL; s = s->next)
        if (strncasecmp(s->sha, sha, 40) == 0)
            return s;
    return NULL;
}

/* Stores s so that EVALSHA works after a restart (Redis forgets its scripts). A failure
 * (a full disk), or a disk below min-free-disk, leaves it cached until restart, as
 * Redis's: EVAL of a new script must not fail because the disk is full, nor add data
 * to it. Returns whether it is stored. */
static bool store_script(struct udf *u, const struct udf_script *s)
{
    char k[48];
    int n = snprintf(k, sizeof(k), "script:%s", s->sha);
    struct cm_err perr = {0};
    static struct cm_log_limit limit;
    long long unlogged;
    int rc = eng_space_margin(u->eng) < (long long)s->len
                 ? cm_err_set(&perr, CM_ELIMIT, "disk space below min-free-disk")
                 : eng_meta_put(u->eng, k, (size_t)n, s->code, s->len, &perr);
    if (rc != 0 && cm_log_allow(&limit, 1, &unlogged))
        cm_log(CM_LOG_WARNING, "Script %s is cached but not stored: %s%s", s->sha, perr.msg,
               unlogged > 0 ? " (more such lines not logged)" : "");
    return rc == 0;
}

/* Caches a script (persist: and stores it, also when it was cached before but could
 * not be stored then). Caller holds lock. */
static int add_script(struct udf *u, const char *code, size_t len, const char *sha, bool persist,
                      struct cm_err *err)
{
    struct udf_script *s = find_script(u, sha);
    if (s == NULL) {
        s = cm_calloc(1, sizeof(*s));
        if (s == NULL || (s->code = cm_memdup(code, len)) == NULL) {
            cm_free(s);
            return cm_err_set(err, CM_ENOMEM, "ERR out of memory");
        }
        memcpy(s->sha, sha, 41);
        s->len = len;
        s->stored = !persist; /* persist false: read from the store */
        s->next = u->scripts[bucket(sha)];
        u->scripts[bucket(sha)] = s;
    }
    if (persist && !s->stored)
        s->stored = store_script(u, s);
    return 0;
}

int udf_script_load(struct udf *u, const char *code, size_t len, char sha[41],
                    struct cm_err *err)
{
    cm_sha1_hex(code, len, sha);
    /* A script already cached compiled before: EVAL of it needs no new Lua state to
     * compile it in (a state per EVAL held eddy to 10,000 EVALs a second where Redis
     * ran 90,000; bench/RESULTS.md). Only its store is tried again if it failed. */
    pthread_mutex_lock(&u->lock);
    bool known = find_script(u, sha) != NULL;
    if (known)
        (void)add_script(u, code, len, sha, true, err); /* stores it if that failed before */
    pthread_mutex_unlock(&u->lock);
    if (known)
        return 0;
    /* Compile once to reject bad scripts as Redis does. */
    struct udf_vm *vm = udf_vm_new(u, err);
    if (vm == NULL)
        return CM_ENOMEM;
    char name[8];
    int flags;
    size_t off;
    int rc = udf__parse_shebang(code, len, false, name, sizeof(name), &flags, &off, err);
    if (rc == 0 && udf__load_script(vm->L, code, len, off) != LUA_OK)
        rc = cm_err_set(err, CM_EINVAL, "ERR Error compiling script (new function): %s",
                        lua_tostring(vm->L, -1));
    udf_vm_free(vm);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&u->lock);
    rc = add_script(u, code, len, sha, true, err);
    pthread_mutex_unlock(&u->lock);
    return rc;
}

bool udf_script_exists(struct udf *u, const char *sha, size_t len)
{
    if (len != 40)
        return false;
    pthread_mutex_lock(&u->lock);
    bool found = find_script(u, sha) != NULL;
    pthread_mutex_unlock(&u->lock);
    return found;
}

int udf__script_code(struct udf *u, const char *sha, struct cm_buf *out)
{
    pthread_mutex_lock(&u->lock);
    struct udf_script *s = find_script(u, sha);
    int rc = s == NULL ? CM_ENOTFOUND : cm_buf_append(out, s->code, s->len);
    pthread_mutex_unlock(&u->lock);
    return rc;
}

struct del_meta {
    struct udf *u;
    struct cm_err *err;
    bool unsynced; /* a delete applied without its WAL sync: go on, report it */
};

static int del_meta_fn(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct del_meta *d = ud;
    int rc = eng_meta_del(d->u->eng, key, klen, d->err);
    if (rc == CM_ESYNC) {
        d->unsynced = true;
        return 0;
    }
    return rc;
}

int udf_script_flush(struct udf *u, struct cm_err *err)
{
    pthread_mutex_lock(&u->lock);
    struct del_meta d = {u, err, false};
    int rc = eng_meta_scan(u->eng, "script:", 7, del_meta_fn, &d, err);
    if (rc != 0) {
        /* Nothing forgotten: the scripts deleted from the store so far stay cached
         * until restart; SCRIPT FLUSH again finishes it. Which of them are still in
         * the store is not known: the next SCRIPT LOAD or EVAL of each stores it again. */
        for (int i = 0; i < SCRIPT_BUCKETS; i++)
            for (struct udf_script *s = u->scripts[i]; s != NULL; s = s->next)
                s->stored = false;
        pthread_mutex_unlock(&u->lock);
        return storage_err(err, rc);
    }
    for (int i = 0; i < SCRIPT_BUCKETS; i++)
        while (u->scripts[i] != NULL) {
            struct udf_script *s = u->scripts[i];
            u->scripts[i] = s->next;
            cm_free(s->code);
            cm_free(s);
        }
    for (size_t i = 0; i < u->naccess; i++)
        cm_free(u->access[i].label);
    cm_free(u->access);
    u->access = NULL; /* they were left set: the next counted access used freed memory */
    u->naccess = u->access_cap = 0;
    atomic_fetch_add(&u->generation, 1);
    pthread_mutex_unlock(&u->lock);
    return d.unsynced ? storage_err(err, CM_ESYNC) : 0;
}

/* ---- Start-up and shutdown ---------------------------------------------------------------------- */

static int load_lib_fn(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct udf *u = ud;
    struct cm_err err = {0};
    struct udf_lib *lib = validate(u, val, vlen, true, &err);
    if (lib == NULL) {
        cm_log(CM_LOG_WARNING, "Stored library %.*s does not load: %s", (int)klen, key, err.msg);
        return 0;
    }
    lib->next = u->libs;
    u->libs = lib;
    return 0;
}

static int load_script_fn(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct udf *u = ud;
    if (klen != 7 + 40)
        return 0;
    char sha[41];
    memcpy(sha, key + 7, 40);
    sha[40] = '\0';
    return add_script(u, val, vlen, sha, false, NULL) == 0 ? 0 : CM_ENOMEM;
}

struct udf *udf_new(struct eng *e, udf_exec_fn exec, struct cm_err *err)
{
    struct udf *u = cm_calloc(1, sizeof(*u));
    if (u == NULL) {
        cm_err_set(err, CM_ENOMEM, "out of memory");
        return NULL;
    }
    u->eng = e;
    u->exec = exec;
    u->limits.memory = 64u << 20;
    u->limits.time_ms = 5000;
    u->limits.slice_us = 2000;
    u->limits.max_retries = 100;
    pthread_mutex_init(&u->lock, NULL);
    if (eng_meta_scan(e, "lib:", 4, load_lib_fn, u, err) < 0 ||
        eng_meta_scan(e, "script:", 7, load_script_fn, u, err) < 0) {
        udf_free(u);
        return NULL;
    }
    int nlibs = 0, nscripts = 0;
    for (struct udf_lib *l = u->libs; l != NULL; l = l->next)
        nlibs++;
    for (int i = 0; i < SCRIPT_BUCKETS; i++)
        for (struct udf_script *s = u->scripts[i]; s != NULL; s = s->next)
            nscripts++;
    cm_log(CM_LOG_NOTICE, "Functions: %d libraries and %d scripts loaded from the store", nlibs,
           nscripts);
    return u;
}

void udf_free(struct udf *u)
{
    if (u == NULL)
        return;
    while (u->libs != NULL) {
        struct udf_lib *l = u->libs;
        u->libs = l->next;
        free_lib(l);
    }
    for (int i = 0; i < SCRIPT_BUCKETS; i++)
        while (u->scripts[i] != NULL) {
            struct udf_script *s = u->scripts[i];
            u->scripts[i] = s->next;
            cm_free(s->code);
            cm_free(s);
        }
    pthread_mutex_destroy(&u->lock);
    cm_free(u);
}

void udf_set_limits(struct udf *u, const struct udf_limits *l)
{
    pthread_mutex_lock(&u->lock);
    u->limits = *l;
    pthread_mutex_unlock(&u->lock);
}

void udf_get_limits(struct udf *u, struct udf_limits *l)
{
    pthread_mutex_lock(&u->lock);
    *l = u->limits;
    pthread_mutex_unlock(&u->lock);
}
