/* route.c - eddy-bench's cluster routing: parsing MOVED/ASK error replies, and the
 * slot -> node map, filled from CLUSTER SLOTS and updated by MOVED. Does no I/O:
 * run.c owns the connections. */
#include "bench.h"

#include "../client/eddy.h"

#include <stdlib.h>
#include <string.h>

static bool word_is(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n >= wl && memcmp(s, w, wl) == 0 && (n == wl || s[wl] == ' ');
}

int eb_redirect_parse(const char *s, size_t n, struct eb_redirect *out)
{
    memset(out, 0, sizeof(*out));
    size_t i;
    if (word_is(s, n, "MOVED")) {
        out->kind = EB_REDIR_MOVED;
        i = 5;
    } else if (word_is(s, n, "ASK")) {
        out->kind = EB_REDIR_ASK;
        i = 3;
    } else {
        return EB_REDIR_NONE;
    }
    if (i >= n || s[i] != ' ')
        return -1;
    i++;
    /* The slot: 1-5 digits, < 16384. */
    unsigned slot = 0;
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 6) {
        slot = slot * 10 + (unsigned)(s[i] - '0');
        i++, digits++;
    }
    if (digits == 0 || digits > 5 || slot >= 16384 || i >= n || s[i] != ' ')
        return -1;
    out->slot = slot;
    i++;
    /* host:port, the port after the last colon; the host may be "[v6]", bare v6 or "". */
    const char *ep = s + i;
    size_t el = n - i;
    while (el > 0 && (ep[el - 1] == '\r' || ep[el - 1] == '\n' || ep[el - 1] == ' '))
        el--;
    const char *colon = NULL;
    for (size_t j = 0; j < el; j++)
        if (ep[j] == ':')
            colon = ep + j;
    if (colon == NULL)
        return -1;
    size_t hl = (size_t)(colon - ep);
    size_t pl = el - hl - 1;
    if (pl == 0 || pl > 5)
        return -1;
    int port = 0;
    for (size_t j = 0; j < pl; j++) {
        char c = colon[1 + j];
        if (c < '0' || c > '9')
            return -1;
        port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    out->port = port;
    const char *h = ep;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= sizeof(out->host) || memchr(h, ' ', hl))
        return -1;
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    return out->kind;
}

void eb_slotmap_init(struct eb_slotmap *m, const char *host, int port)
{
    memset(m, 0, sizeof(*m));
    eb_slotmap_node(m, host, port);
}

int eb_slotmap_node(struct eb_slotmap *m, const char *host, int port)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->node[i].port == port && strcmp(m->node[i].host, host) == 0)
            return i;
    if (m->nnodes >= EB_MAX_NODES || strlen(host) >= sizeof(m->node[0].host))
        return -1;
    strcpy(m->node[m->nnodes].host, host);
    m->node[m->nnodes].port = port;
    return m->nnodes++;
}

int eb_slotmap_from_reply(struct eb_slotmap *m, const struct eddy_reply *r)
{
    if (r == NULL || r->type != EDDY_REPLY_ARRAY)
        return -1;
    int used = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const struct eddy_reply *e = r->element[i];
        if (e->type != EDDY_REPLY_ARRAY || e->elements < 3)
            return -1;
        const struct eddy_reply *lo = e->element[0], *hi = e->element[1], *nd = e->element[2];
        if (lo->type != EDDY_REPLY_INTEGER || hi->type != EDDY_REPLY_INTEGER ||
            nd->type != EDDY_REPLY_ARRAY || nd->elements < 2 ||
            nd->element[0]->type != EDDY_REPLY_STRING ||
            nd->element[1]->type != EDDY_REPLY_INTEGER)
            return -1;
        if (lo->integer < 0 || hi->integer >= 16384 || lo->integer > hi->integer)
            return -1;
        const char *host = nd->element[0]->str;
        /* An empty or "?" endpoint means "the address you reached me on": node 0's. */
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = m->node[0].host;
        int idx = eb_slotmap_node(m, host, (int)nd->element[1]->integer);
        if (idx < 0)
            return -1;
        for (long long s = lo->integer; s <= hi->integer; s++)
            m->slot_node[s] = (uint8_t)idx;
        used++;
    }
    return used;
}
