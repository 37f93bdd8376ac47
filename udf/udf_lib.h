/* udf_lib.h - C libraries that udf/ gives to user Lua code, internal to udf/.
 *
 * Provides eddy.vec (dense float64 vectors, udf/vec.c), SHA-1 (now common/sha1.c, used
 * for library versions and the Lua-visible sha1hex) and budgeted replacements for
 * Lua's string pattern functions (udf/match.c). Uses the public Lua 5.4 API only.
 * The user-visible API and the binary formats are specified in docs/VEC.md.
 */
#ifndef EDDY_UDF_LIB_H
#define EDDY_UDF_LIB_H

#include <stddef.h>

#include <lua.h>

/* ---- eddy.vec ------------------------------------------------------------------------ */

/* Largest vector length (2^27 elements, 1 GiB of doubles); also the largest index a
 * sparse (index, value) list may hold. */
#define UDF_VEC_MAX ((size_t)1 << 27)

/* Name of the vector metatable in the registry (luaL_checkudata). */
#define UDF_VEC_META "eddy.vec"

/* A vector: a full userdata of exactly sizeof(struct udf_vec) + n * sizeof(double)
 * bytes, owned by Lua (no __gc; the memory is the userdata). */
struct udf_vec {
    size_t n;
    double v[];
};

/* Pushes the eddy.vec library table (new, zeros, from, decode, encode_sparse,
 * decode_sparse, isvec) and registers the vector metatable if needed. Returns 1 (the
 * number of pushed values), so it can also serve as a luaL_requiref open function.
 * May raise a memory error. */
int udf__open_vec(lua_State *L);

/* Returns the vector at stack index idx, or raises a Lua argument error ("eddy.vec
 * expected, got ...") if it is not one. The pointer is borrowed: valid while the
 * value stays reachable from Lua (e.g. while it is on the stack). */
struct udf_vec *udf__checkvec(lua_State *L, int idx);

/* Like udf__checkvec, but returns NULL instead of raising. Never raises. */
struct udf_vec *udf__testvec(lua_State *L, int idx);

/* Pushes a new vector of n zeros and returns it (borrowed, as for udf__checkvec).
 * Raises a Lua error if n > UDF_VEC_MAX, or a memory error. */
struct udf_vec *udf__pushvec(lua_State *L, size_t n);

/* ---- SHA-1 (FIPS 180-4) --------------------------------------------------------------- */



/* ---- Budgeted string patterns -------------------------------------------------------- */

/* Called by the pattern functions every 4096 matcher steps. It may raise a Lua error
 * (lua_error or luaL_error) to stop a runaway match, e.g. past the call's time limit
 * or after a kill; the matcher holds no memory of its own, so the longjmp leaks
 * nothing. It must not yield and must leave the stack as it found it. */
typedef void (*udf_tick_fn)(lua_State *L);

/* Replaces find, match, gmatch and gsub in the table at the top of the stack (the
 * sandbox's string library) with budgeted versions that behave like Lua 5.4's
 * (results and error messages): every 4096 matcher steps (a step is one character
 * test, one backtrack or one recursive call) they call tick(L), which may raise a
 * Lua error to stop the match. With tick NULL, a fixed limit of 100 million steps per
 * call raises "pattern matching too complex". The matcher's recursion depth is
 * limited to 200 ("pattern too complex"), as in Lua. Leaves the stack unchanged; may
 * raise a memory error. */
void udf__open_patterns(lua_State *L, udf_tick_fn tick);
/* The tick vector and matrix operations (udf__open_vec) call every 4 million elements
 * they handle (it may raise to end the call); NULL (the default): none. */
void udf__vec_set_tick(udf_tick_fn tick);

#endif
