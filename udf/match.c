/* match.c - Lua 5.4 string patterns with a step budget, for the UDF sandbox.
 *
 * Lua's own matcher runs in C, where the count hook that bounds a call never fires, so
 * one pathological pattern could hold a server thread for hours. This is a separate
 * implementation of the patterns of the Lua 5.4 manual (6.4.1) and of string.find,
 * match, gmatch and gsub (6.4) that counts its steps and calls a tick function every
 * 4096 of them; the tick may raise an error to stop the match. Results and error
 * messages follow Lua 5.4.4. Uses the public Lua API only; declared in udf/udf_lib.h.
 */
#include "udf_lib.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 200      /* nested matcher calls, as Lua's MAXCCALLS */
#define MAX_CAPTURES 32    /* as Lua's LUA_MAXCAPTURES */
#define TICK_EVERY 4096    /* steps between two ticks */
#define DEFAULT_LIMIT 100000000ULL /* steps per call when there is no tick */
#define ESC '%'
#define SPECIALS "^$*+?.([%-"

/* Capture lengths that are not lengths. */
enum { CAP_OPEN = -1, CAP_POSITION = -2 };

/* The tick, kept in a userdata upvalue of every function (a function pointer cannot
 * portably travel as a light userdata). */
struct tickbox {
    udf_tick_fn tick;
};

struct capture {
    const char *at;
    ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
};

/* State of one call of find, match, gsub or of one gmatch step. Subject and pattern
 * are Lua strings that stay on the stack (or in upvalues) during the call. */
struct mstate {
    lua_State *L;
    const char *src, *src_end; /* subject */
    const char *pat_end;       /* end of the pattern */
    int ncap;                  /* captures started */
    int depth;                 /* nested match() calls */
    size_t steps;              /* steps since the last tick */
    unsigned long long total;  /* steps of this call before the current window */
    udf_tick_fn tick;
    struct capture cap[MAX_CAPTURES];
};

static const char *match(struct mstate *m, const char *s, const char *p);

/* ---- Budget -------------------------------------------------------------------------- */

/* Called when at least TICK_EVERY steps are pending: ticks once per full window. */
static void settle(struct mstate *m)
{
    while (m->steps >= TICK_EVERY) {
        m->steps -= TICK_EVERY;
        m->total += TICK_EVERY;
        if (m->tick != NULL)
            m->tick(m->L);
        else if (m->total >= DEFAULT_LIMIT)
            luaL_error(m->L, "pattern matching too complex");
    }
}

static inline void charge(struct mstate *m, size_t k)
{
    m->steps += k;
    if (m->steps >= TICK_EVERY)
        settle(m);
}

/* ---- Character classes (C locale, which is what Lua sees in eddy) --------------------- */

static bool is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_alpha(int c) { return is_upper(c) || is_lower(c); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static bool is_graph(int c) { return c > ' ' && c < 127; }

/* Does byte c belong to class %cl? Unknown letters and non-letters stand for
 * themselves (so "%Z" is a literal 'Z', not the complement of anything). */
static bool in_class(int c, int cl)
{
    bool r;
    switch (is_upper(cl) ? cl + ('a' - 'A') : cl) {
    case 'a': r = is_alpha(c); break;
    case 'c': r = c < ' ' || c == 127; break;
    case 'd': r = is_digit(c); break;
    case 'g': r = is_graph(c); break;
    case 'l': r = is_lower(c); break;
    case 'p': r = is_graph(c) && !is_alnum(c); break;
    case 's': r = c == ' ' || (c >= '\t' && c <= '\r'); break;
    case 'u': r = is_upper(c); break;
    case 'w': r = is_alnum(c); break;
    case 'x': r = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); break;
    case 'z': r = c == 0; break; /* undocumented but still in Lua 5.4 */
    default: return cl == c;
    }
    return is_upper(cl) ? !r : r;
}

/* Does c belong to the set whose '[' is at p and whose closing ']' is at close? */
static bool in_set(int c, const char *p, const char *close)
{
    bool want = true;
    if (p[1] == '^') {
        want = false;
        p++;
    }
    for (p++; p < close; p++) {
        int a = (unsigned char)*p;
        if (a == ESC) {
            p++;
            if (in_class(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < close) {
            int z = (unsigned char)p[2];
            p += 2;
            if (a <= c && c <= z)
                return want;
        } else if (a == c) {
            return want;
        }
    }
    return !want;
}

/* Returns the end of the single-character class that starts at p (< pat_end):
 * one byte, "%x" or a whole "[...]". Raises on a malformed class. */
static const char *class_end(struct mstate *m, const char *p)
{
    const char *q = p + 1;
    if (*p == ESC) {
        if (q == m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return q + 1;
    }
    if (*p != '[')
        return q;
    if (q < m->pat_end && *q == '^')
        q++;
    /* The first byte of a set is never its end, so "[]]" and "[^]]" hold ']'. */
    do {
        if (q == m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        if (*q++ == ESC && q < m->pat_end)
            q++;
    } while (q == m->pat_end || *q != ']');
    charge(m, (size_t)(q - p));
    return q + 1;
}

/* Does the class [p, ep) match the byte at s? */
static bool single(struct mstate *m, const char *s, const char *p, const char *ep)
{
    charge(m, 1);
    if (s >= m->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case ESC: return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ---- Pattern items -------------------------------------------------------------------- */

/* %bxy at p (p points at x). Returns the end of the balanced run at s or NULL. */
static const char *balance(struct mstate *m, const char *s, const char *p)
{
    if (m->pat_end - p < 2)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    char open = p[0], close = p[1];
    int level = 1;
    const char *start = s;
    while (++s < m->src_end) {
        if (*s == close) {
            if (--level == 0) {
                charge(m, (size_t)(s - start));
                return s + 1;
            }
        } else if (*s == open) {
            level++;
        }
    }
    charge(m, (size_t)(s - start));
    return NULL;
}

/* %f[set] with p at '['. Returns the end of the set if s is at a frontier. */
static const char *frontier(struct mstate *m, const char *s, const char *p)
{
    if (p == m->pat_end || *p != '[')
        luaL_error(m->L, "missing '[' after '%%f' in pattern");
    const char *ep = class_end(m, p);
    int before = s == m->src ? 0 : (unsigned char)s[-1];
    int here = s < m->src_end ? (unsigned char)*s : 0;
    charge(m, 1);
    if (!in_set(before, p, ep - 1) && in_set(here, p, ep - 1))
        return ep;
    return NULL;
}

/* Back-reference %1-%9 (digit d, '0'-'9'). Returns the end of the repeat or NULL. */
static const char *backref(struct mstate *m, const char *s, int d)
{
    int i = d - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_POSITION) /* a position capture never matches as text */
        return NULL;
    charge(m, (size_t)len + 1);
    if (m->src_end - s >= len && memcmp(m->cap[i].at, s, (size_t)len) == 0)
        return s + len;
    return NULL;
}

static const char *open_capture(struct mstate *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->ncap--;
    return r;
}

static const char *close_capture(struct mstate *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* x* (and x+ after its first byte): longest run first, then shorter ones. */
static const char *greedy(struct mstate *m, const char *s, const char *p, const char *ep)
{
    size_t n = 0;
    while (single(m, s + n, p, ep))
        n++;
    for (;;) {
        const char *r = match(m, s + n, ep + 1);
        if (r != NULL || n == 0)
            return r;
        n--;
    }
}

/* x-: shortest run first. */
static const char *lazy(struct mstate *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

/* Matches the pattern from p on against the subject from s. Returns the end of the
 * match or NULL. Items that need no backtracking loop here instead of recursing, so
 * the depth counts the same nested calls as Lua's matcher does. */
static const char *match_items(struct mstate *m, const char *s, const char *p)
{
    for (;;) {
        charge(m, 1);
        if (p == m->pat_end)
            return s;
        bool has_next = p + 1 < m->pat_end;
        switch (*p) {
        case '(':
            if (has_next && p[1] == ')')
                return open_capture(m, s, p + 2, CAP_POSITION);
            return open_capture(m, s, p + 1, CAP_OPEN);
        case ')':
            return close_capture(m, s, p + 1);
        case '$':
            if (!has_next)
                return s == m->src_end ? s : NULL;
            break;
        case ESC:
            if (!has_next)
                break;
            if (p[1] == 'b') {
                s = balance(m, s, p + 2);
                if (s == NULL)
                    return NULL;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                const char *ep = frontier(m, s, p + 2);
                if (ep == NULL)
                    return NULL;
                p = ep;
                continue;
            }
            if (is_digit((unsigned char)p[1])) {
                s = backref(m, s, (unsigned char)p[1]);
                if (s == NULL)
                    return NULL;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }

        /* A single-character class with an optional quantifier. */
        const char *ep = class_end(m, p);
        int q = ep < m->pat_end ? *ep : 0;
        if (!single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1;
                continue;
            }
            return NULL;
        }
        switch (q) {
        case '?': {
            const char *r = match(m, s + 1, ep + 1);
            if (r != NULL)
                return r;
            p = ep + 1;
            continue;
        }
        case '+': return greedy(m, s + 1, p, ep);
        case '*': return greedy(m, s, p, ep);
        case '-': return lazy(m, s, p, ep);
        default:
            s++;
            p = ep;
            continue;
        }
    }
}

static const char *match(struct mstate *m, const char *s, const char *p)
{
    if (m->depth >= MAX_DEPTH)
        luaL_error(m->L, "pattern too complex");
    m->depth++;
    s = match_items(m, s, p);
    m->depth--;
    return s;
}

/* ---- Glue ------------------------------------------------------------------------------ */

/* The tick stored in the tickbox at upvalue index up of the running function. */
static udf_tick_fn upvalue_tick(lua_State *L, int up)
{
    const struct tickbox *tb = lua_touserdata(L, lua_upvalueindex(up));
    return tb->tick;
}

static void mstate_init(struct mstate *m, lua_State *L, const char *s, size_t ls, const char *p,
                        size_t lp, udf_tick_fn tick)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->ncap = 0;
    m->depth = 0;
    m->steps = 0;
    m->total = 0;
    m->tick = tick;
}

/* Before each match attempt. */
static void mstate_reset(struct mstate *m)
{
    m->ncap = 0;
    m->depth = 0;
}

/* Pushes capture i of a match [s, e); i == 0 without captures is the whole match. */
static void push_capture(struct mstate *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    const struct capture *c = &m->cap[i];
    if (c->len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (c->len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(c->at - m->src) + 1);
    else
        lua_pushlstring(m->L, c->at, (size_t)c->len);
}

/* Pushes all captures, or the whole match [s, e) if there are none and s is not
 * NULL. Returns how many values it pushed. */
static int push_captures(struct mstate *m, const char *s, const char *e)
{
    int n = m->ncap == 0 && s != NULL ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* Lua's relative start position (1-based, negative from the end) as a 0-based
 * offset; may exceed len. */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len - (size_t)(-pos);
}

static bool has_specials(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL)
            return true;
    return false;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* Plain search; glibc's memmem is linear, so it needs no budget. */
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        if (hit == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }

    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp, upvalue_tick(L, 1));
    bool anchor = lp > 0 && *p == '^';
    if (anchor)
        p++;
    for (const char *at = s + init;; at++) {
        mstate_reset(&m);
        const char *e = match(&m, at, p);
        if (e != NULL) {
            if (!find)
                return push_captures(&m, at, e);
            lua_pushinteger(L, (lua_Integer)(at - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_captures(&m, NULL, NULL) + 2;
        }
        if (anchor || at >= m.src_end)
            break;
    }
    luaL_pushfail(L);
    return 1;
}

/* string.find(s, pattern [, init [, plain]]) */
static int udflib_find(lua_State *L)
{
    return find_or_match(L, true);
}

/* string.match(s, pattern [, init]) */
static int udflib_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* ---- gmatch ----------------------------------------------------------------------------- */

struct gmatch_state {
    size_t pos;      /* where the next attempt starts (0-based, may be len + 1) */
    ptrdiff_t last;  /* end offset of the last match, -1 before the first */
};

/* The iterator: upvalues subject, pattern, gmatch_state, tickbox. */
static int udflib_gmatch_step(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp, upvalue_tick(L, 4));
    /* No anchor here: a leading '^' is an ordinary byte, as in Lua 5.4. */
    for (size_t at = g->pos; at <= ls; at++) {
        mstate_reset(&m);
        const char *e = match(&m, s + at, p);
        if (e != NULL && e - s != g->last) {
            g->pos = (size_t)(e - s);
            g->last = e - s;
            return push_captures(&m, s + at, e);
        }
    }
    g->pos = ls + 1;
    return 0;
}

/* string.gmatch(s, pattern [, init]) */
static int udflib_gmatch(lua_State *L)
{
    size_t ls, lp;
    luaL_checklstring(L, 1, &ls);
    luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2); /* subject and pattern become upvalues, so they stay alive */
    struct gmatch_state *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->pos = init > ls ? ls + 1 : init;
    g->last = -1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, udflib_gmatch_step, 4);
    return 1;
}

/* ---- gsub ------------------------------------------------------------------------------- */

/* Appends the string replacement (argument 3) for the match [s, e). */
static void add_string_repl(struct mstate *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t n;
    const char *r = lua_tolstring(L, 3, &n);
    const char *end = r + n;
    for (;;) {
        const char *esc = memchr(r, ESC, (size_t)(end - r));
        if (esc == NULL)
            break;
        luaL_addlstring(b, r, (size_t)(esc - r));
        int c = esc + 1 < end ? (unsigned char)esc[1] : 0;
        if (c == ESC) {
            luaL_addchar(b, ESC);
        } else if (c == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (is_digit(c)) {
            push_capture(m, c - '1', s, e); /* a string, or a position (integer) */
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        r = esc + 2;
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

/* Appends the replacement of the match [s, e). Returns whether it differs from the
 * matched text (false when a function or table gave nil or false). */
static bool add_repl(struct mstate *m, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string_repl(m, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

/* string.gsub(s, pattern, repl [, n]) */
static int udflib_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                            kind == LUA_TTABLE,
                     3, "string/function/table");

    struct mstate m;
    mstate_init(&m, L, s, ls, p, lp, upvalue_tick(L, 1));
    bool anchor = lp > 0 && *p == '^';
    if (anchor)
        p++;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *at = s, *last = NULL;
    lua_Integer count = 0;
    bool changed = false;
    while (count < max) {
        mstate_reset(&m);
        const char *e = match(&m, at, p);
        if (e != NULL && e != last) {
            count++;
            changed = add_repl(&m, &b, at, e, kind) || changed;
            at = last = e;
        } else if (at < m.src_end) {
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (changed) {
        luaL_addlstring(&b, at, (size_t)(m.src_end - at));
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, 1);
    }
    lua_pushinteger(L, count);
    return 2;
}

/* ---- Registration ----------------------------------------------------------------------- */

void udf__open_patterns(lua_State *L, udf_tick_fn tick)
{
    static const luaL_Reg fns[] = {
        {"find", udflib_find},
        {"match", udflib_match},
        {"gmatch", udflib_gmatch},
        {"gsub", udflib_gsub},
        {NULL, NULL},
    };
    struct tickbox *tb = lua_newuserdatauv(L, sizeof(*tb), 0);
    tb->tick = tick;
    luaL_setfuncs(L, fns, 1); /* each function gets the tickbox; pops it */
}
