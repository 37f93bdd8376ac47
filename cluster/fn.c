/* fn.c - library versions for cluster-wide functions (the SHA-1 of a library's code)
 * in the FUNCTION LIST reply with a "library_version" field per library, made from a
 * FUNCTION LIST WITHCODE reply with the RESP codec. */
#include "cluster.h"

#include <stdio.h>
#include <string.h>

/* ---- FUNCTION LIST with versions ------------------------------------------------------------ */

/* Re-encodes v for protocol resp. Returns 0, CM_EPROTO for a type a listing never has,
 * or CM_ENOMEM. */
static int emit(const struct resp_value *v, struct cm_buf *out, int resp)
{
    int rc;
    switch (v->type) {
    case RESP_T_STRING: return resp_add_bulk(out, v->str, v->len);
    case RESP_T_STATUS: return resp_add_simple(out, v->str);
    case RESP_T_INTEGER: return resp_add_int(out, v->integer);
    case RESP_T_NIL: return resp_add_null(out, resp);
    case RESP_T_ARRAY: rc = resp_add_array(out, v->elements); break;
    case RESP_T_SET: rc = resp_add_set(out, v->elements, resp); break;
    case RESP_T_MAP: rc = resp_add_map(out, v->elements / 2, resp); break;
    default: return CM_EPROTO;
    }
    for (size_t i = 0; i < v->elements && rc == 0; i++)
        rc = emit(v->element[i], out, resp);
    return rc;
}

static bool is_key(const struct resp_value *k, const char *name)
{
    return k->type == RESP_T_STRING && strcmp(k->str, name) == 0;
}

static int emit_library(const struct resp_value *lib, bool withcode, struct cm_buf *out, int resp)
{
    const struct resp_value *code = NULL;
    if (lib->type != RESP_T_MAP)
        return CM_EPROTO;
    for (size_t i = 0; i + 1 < lib->elements; i += 2)
        if (is_key(lib->element[i], "library_code"))
            code = lib->element[i + 1];
    if (code == NULL || code->type != RESP_T_STRING)
        return CM_EPROTO;
    char hex[41];
    cm_sha1_hex(code->str, code->len, hex);
    int rc = resp_add_map(out, lib->elements / 2 + (withcode ? 1 : 0), resp);
    for (size_t i = 0; i + 1 < lib->elements && rc == 0; i += 2) {
        if (is_key(lib->element[i], "library_code"))
            continue;
        rc = emit(lib->element[i], out, resp);
        if (rc == 0)
            rc = emit(lib->element[i + 1], out, resp);
    }
    if (rc == 0)
        rc = resp_add_cstr(out, "library_version");
    if (rc == 0)
        rc = resp_add_cstr(out, hex);
    if (rc == 0 && withcode) {
        rc = resp_add_cstr(out, "library_code");
        if (rc == 0)
            rc = resp_add_bulk(out, code->str, code->len);
    }
    return rc;
}

int clu_fn_list_versions(const char *listing, size_t n, bool withcode, struct cm_buf *out,
                         int resp)
{
    struct resp_reader rd;
    struct resp_value *v = NULL;
    resp_reader_init(&rd);
    int rc = resp_reader_feed(&rd, listing, n);
    if (rc == 0 && resp_reader_get(&rd, &v) != RESP_DONE)
        rc = CM_EPROTO;
    if (rc == 0 && v->type != RESP_T_ARRAY)
        rc = CM_EPROTO;
    size_t mark = out->len;
    if (rc == 0)
        rc = resp_add_array(out, v->elements);
    for (size_t i = 0; rc == 0 && i < v->elements; i++)
        rc = emit_library(v->element[i], withcode, out, resp);
    if (rc != 0)
        out->len = mark;
    resp_value_free(v);
    resp_reader_deinit(&rd);
    return rc;
}
