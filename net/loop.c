/* loop.c - the only file that sees libev: a small event-loop API (net_int.h) of
 * loops, fd watchers, timers and cross-thread wake-ups, in the manner of Redis's ae. */
#include "net_int.h"

#include <ev.h>
#include <stddef.h>

struct loop {
    struct ev_loop *ev;
    ev_prepare prep;           /* runs batch_end before the loop blocks */
    loop_timer_fn batch_end;   /* NULL: no batch hook */
    void *batch_ud;
};

struct loop_io {
    ev_io w;
    struct loop *l;
    loop_io_fn fn;
    void *ud;
    int events;
    bool batched;              /* may leave work for batch_end (loop_io_batched) */
};

/* Every callback but a batched fd watcher's first ends the batch, so it never sees
 * half-done work (held key stripes, unapplied writes, unsent replies). */
static void end_batch(struct loop *l)
{
    if (l->batch_end != NULL)
        l->batch_end(l->batch_ud);
}

struct loop_timer {
    ev_timer w;
    struct loop *l;
    loop_timer_fn fn;
    void *ud;
};

struct loop_async {
    ev_async w;
    struct loop *l;
    loop_timer_fn fn;
    void *ud;
};

struct loop *loop_new(bool is_default)
{
    struct loop *l = cm_calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->ev = is_default ? ev_default_loop(EVFLAG_AUTO) : ev_loop_new(EVFLAG_AUTO);
    if (l->ev == NULL) {
        cm_free(l);
        return NULL;
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    if (l->batch_end != NULL) {
        ev_ref(l->ev);
        ev_prepare_stop(l->ev, &l->prep);
    }
    if (!ev_is_default_loop(l->ev))
        ev_loop_destroy(l->ev);
    cm_free(l);
}

void loop_run(struct loop *l)
{
    ev_run(l->ev, 0);
}

void loop_stop(struct loop *l)
{
    ev_break(l->ev, EVBREAK_ALL);
}

static void prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    end_batch((struct loop *)((char *)w - offsetof(struct loop, prep)));
}

void loop_set_batch_end(struct loop *l, loop_timer_fn fn, void *ud)
{
    l->batch_end = fn;
    l->batch_ud = ud;
    ev_prepare_init(&l->prep, prepare_cb);
    ev_prepare_start(l->ev, &l->prep);
    ev_unref(l->ev); /* the hook alone does not keep the loop alive */
}

static void io_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    struct loop_io *io = (struct loop_io *)w;
    if (!io->batched)
        end_batch(io->l);
    int ev_mask = (revents & EV_READ ? LOOP_READ : 0) | (revents & EV_WRITE ? LOOP_WRITE : 0);
    io->fn(io->ud, ev_mask);
}

struct loop_io *loop_io_new(struct loop *l, int fd, loop_io_fn fn, void *ud)
{
    struct loop_io *io = cm_calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    ev_io_init(&io->w, io_cb, fd, 0);
    io->l = l;
    io->fn = fn;
    io->ud = ud;
    return io;
}

void loop_io_set(struct loop_io *io, int events)
{
    if (io->events == events)
        return;
    ev_io_stop(io->l->ev, &io->w);
    io->events = events;
    if (events == 0)
        return;
    ev_io_set(&io->w, io->w.fd, (events & LOOP_READ ? EV_READ : 0) |
                                    (events & LOOP_WRITE ? EV_WRITE : 0));
    ev_io_start(io->l->ev, &io->w);
}

void loop_io_batched(struct loop_io *io)
{
    io->batched = true;
}

int loop_io_events(const struct loop_io *io)
{
    return io->events;
}

void loop_io_free(struct loop_io *io)
{
    if (io == NULL)
        return;
    ev_io_stop(io->l->ev, &io->w);
    cm_free(io);
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct loop_timer *t = (struct loop_timer *)w;
    end_batch(t->l);
    t->fn(t->ud);
}

struct loop_timer *loop_timer_new(struct loop *l, double after, double repeat, loop_timer_fn fn,
                                  void *ud)
{
    struct loop_timer *t = cm_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    ev_timer_init(&t->w, timer_cb, after, repeat);
    t->l = l;
    t->fn = fn;
    t->ud = ud;
    ev_timer_start(l->ev, &t->w);
    return t;
}

void loop_timer_free(struct loop_timer *t)
{
    if (t == NULL)
        return;
    ev_timer_stop(t->l->ev, &t->w);
    cm_free(t);
}

static void async_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    struct loop_async *a = (struct loop_async *)w;
    end_batch(a->l);
    a->fn(a->ud);
}

struct loop_async *loop_async_new(struct loop *l, loop_timer_fn fn, void *ud)
{
    struct loop_async *a = cm_calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    ev_async_init(&a->w, async_cb);
    a->l = l;
    a->fn = fn;
    a->ud = ud;
    ev_async_start(l->ev, &a->w);
    return a;
}

void loop_async_send(struct loop_async *a)
{
    ev_async_send(a->l->ev, &a->w);
}

void loop_async_free(struct loop_async *a)
{
    if (a == NULL)
        return;
    ev_async_stop(a->l->ev, &a->w);
    cm_free(a);
}

static void sig_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    struct loop_async *a = w->data;
    end_batch(a->l);
    a->fn(a->ud);
}

int loop_on_signal(struct loop *l, int signum, loop_timer_fn fn, void *ud)
{
    ev_signal *s = cm_calloc(1, sizeof(*s));
    struct loop_async *holder = cm_calloc(1, sizeof(*holder));
    if (s == NULL || holder == NULL) {
        cm_free(s);
        cm_free(holder);
        return CM_ENOMEM;
    }
    holder->l = l;
    holder->fn = fn;
    holder->ud = ud;
    ev_signal_init(s, sig_cb, signum);
    s->data = holder;
    ev_signal_start(l->ev, s);
    ev_unref(l->ev); /* a signal watcher alone does not keep the loop alive */
    return 0;
}

double loop_now(struct loop *l)
{
    return ev_now(l->ev);
}
