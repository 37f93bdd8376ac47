/* store.c - the slot map's store in the engine's metadata column family: the node id
 * under "cluster:myid" and the map under "cluster:map" as "<epoch>\n<payload>". The
 * engine writes metadata synchronously, so a saved map survives a crash. */
#include "cluster.h"

#include <stdlib.h>
#include <string.h>

#define KEY_ID "cluster:myid"
#define KEY_MAP "cluster:map"

static int meta_load_map(void *ud, struct clu_map **out, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = eng_meta_get(ud, KEY_MAP, strlen(KEY_MAP), &b, err);
    if (rc != 0)
        goto out;
    const char *nl = b.len > 0 ? memchr(b.p, '\n', b.len) : NULL;
    long long epoch;
    if (nl == NULL || cm_str_to_ll(b.p, (size_t)(nl - b.p), &epoch) != 0 || epoch < 0) {
        rc = cm_err_set(err, CM_EINVAL, "corrupt stored slot map");
        goto out;
    }
    size_t off = (size_t)(nl - b.p) + 1;
    rc = clu_map_parse(b.p + off, b.len - off, (unsigned long long)epoch, out, err);
out:
    cm_buf_deinit(&b);
    return rc;
}

static int meta_save_map(void *ud, const struct clu_map *m, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = cm_buf_appendf(&b, "%llu\n", m->epoch);
    if (rc == 0)
        rc = clu_map_format(m, &b);
    if (rc != 0)
        rc = cm_err_set(err, CM_ENOMEM, "out of memory");
    else
        rc = eng_meta_put(ud, KEY_MAP, strlen(KEY_MAP), b.p, b.len, err);
    cm_buf_deinit(&b);
    return rc;
}

static int meta_load_id(void *ud, char id[CLU_ID_LEN + 1], struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b);
    int rc = eng_meta_get(ud, KEY_ID, strlen(KEY_ID), &b, err);
    if (rc == 0 && !clu_id_valid(b.p, b.len))
        rc = cm_err_set(err, CM_EINVAL, "corrupt stored node id");
    if (rc == 0) {
        memcpy(id, b.p, CLU_ID_LEN);
        id[CLU_ID_LEN] = '\0';
    }
    cm_buf_deinit(&b);
    return rc;
}

static int meta_save_id(void *ud, const char *id, struct cm_err *err)
{
    return eng_meta_put(ud, KEY_ID, strlen(KEY_ID), id, strlen(id), err);
}

void clu_store_meta_init(struct clu_store *st, struct eng *e)
{
    *st = (struct clu_store){
        .ud = e,
        .load_map = meta_load_map,
        .save_map = meta_save_map,
        .load_id = meta_load_id,
        .save_id = meta_save_id,
        .free = NULL,
    };
}
