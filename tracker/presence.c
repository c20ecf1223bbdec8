/* presence: who is told of a user's comings and goings.  Two sets hold
 * the recipients: an index from folded name to the subscriptions to it
 * (one node per session and name, linked both into the name's list and
 * into the session's, so a close frees its nodes in O(its subscriptions)),
 * and the list of the sessions in all mode (older peers, and subscribe
 * all on a small tracker).  A change appends the push to each subscriber's
 * buffer for the pass, and once to the pass's queue for the all mode
 * sessions; at the registry's batch end each of them gets one buffer of
 * exactly its size and one write.  (A buffer per all mode session, grown
 * push by push through a login storm, left the heap of 10,000 peers at
 * 2.5 times its size.)  Nothing here walks ctx->online, so a login costs
 * O(its subscribers) plus one queued push, not O(online). */
#include "presence.h"

#include "frame.h"
#include "grow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pres_sub {
    struct pres_sub *nprev, *nnext; /* the name's subscribers */
    struct pres_sub *snext;         /* the session's subscriptions */
    session *s;
    uint64_t told;                  /* the subscribed answer that last listed it online */
    char folded[];
} pres_sub;

/* One push of the pass for the all mode sessions, at off in the queue.
 * about: the session it is about (not told), NULL for a user of another
 * tracker (never online here: pres_push_remote). */
typedef struct pres_ev {
    size_t off, len;
    const session *about;
} pres_ev;

typedef struct pres_index {
    namemap *names;   /* folded name -> its first pres_sub */
    session *all;     /* the sessions in all mode */
    char *q;          /* the pass's pushes for them, back to back */
    size_t qlen, qcap;
    pres_ev *ev;
    size_t nev, evcap;
    session *dirty;   /* the sessions with pushes waiting for the batch end */
    size_t nsubs, nall; /* for the metrics */
    uint64_t answers;   /* subscribed answers so far, to list each name once */
    int granted_all;    /* subscribe all was granted since all mode last ended */
} pres_index;

int pres_open(tracker_ctx *ctx) {
    pres_index *x = calloc(1, sizeof *x);
    if (!x || !(x->names = namemap_new())) {
        free(x);
        return UV_ENOMEM;
    }
    ctx->presence = x;
    return 0;
}

/* ---- the session's sets ---- */

static void deliver(session *s, const char *buf, size_t len);

static void all_join(session *s) {
    pres_index *x = s->ctx->presence;
    if (s->pres_in_all || !x)
        return;
    s->all_prev = NULL;
    s->all_next = x->all;
    if (x->all)
        x->all->all_prev = s;
    x->all = s;
    s->pres_in_all = 1;
    s->pres_from = x->nev; /* what was queued before it joined is not for it */
    x->nall++;
}

/* Moves the pass's queued pushes for s to its own buffer, in order: for
 * a session leaving all mode, and for each before a push the queue had no
 * room for goes to their own buffers. */
static void spill(session *s) {
    pres_index *x = s->ctx->presence;
    for (size_t i = s->pres_from; i < x->nev; i++)
        if (x->ev[i].about != s)
            deliver(s, x->q + x->ev[i].off, x->ev[i].len);
    s->pres_from = x->nev;
}

static void all_leave(session *s) {
    pres_index *x = s->ctx->presence;
    if (!s->pres_in_all)
        return;
    spill(s);
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        x->all = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    s->pres_in_all = 0;
    x->nall--;
}

static void dirty_leave(session *s) {
    pres_index *x = s->ctx->presence;
    if (!s->pres_buf)
        return;
    if (s->dirty_prev)
        s->dirty_prev->dirty_next = s->dirty_next;
    else
        x->dirty = s->dirty_next;
    if (s->dirty_next)
        s->dirty_next->dirty_prev = s->dirty_prev;
    s->pres_buf = NULL;
    s->pres_len = s->pres_cap = 0;
}

/* Unlinks one node from its name's list (the index entry goes with the
 * last subscriber); the caller unlinks it from the session's list. */
static void name_unlink(pres_index *x, pres_sub *n) {
    x->nsubs--;
    if (n->nnext)
        n->nnext->nprev = n->nprev;
    if (n->nprev)
        n->nprev->nnext = n->nnext;
    else if (n->nnext)
        namemap_put(x->names, n->folded, n->nnext); /* replaces: cannot fail */
    else
        namemap_del(x->names, n->folded, n);
}

static pres_sub *find_sub(const session *s, const char *folded) {
    for (pres_sub *n = s->subs; n; n = n->snext)
        if (strcmp(n->folded, folded) == 0)
            return n;
    return NULL;
}

/* 0 (also when s had it already), or UV_ENOMEM. */
static int sub_add(session *s, const char *folded) {
    pres_index *x = s->ctx->presence;
    if (find_sub(s, folded))
        return 0;
    size_t len = strlen(folded) + 1;
    pres_sub *n = malloc(sizeof *n + len);
    if (!n)
        return UV_ENOMEM;
    memcpy(n->folded, folded, len);
    n->s = s;
    n->told = 0;
    n->nprev = NULL;
    n->nnext = namemap_get(x->names, folded);
    if (namemap_put(x->names, folded, n)) {
        free(n);
        return UV_ENOMEM;
    }
    if (n->nnext)
        n->nnext->nprev = n;
    n->snext = s->subs;
    s->subs = n;
    s->nsubs++;
    x->nsubs++;
    return 0;
}

/* Removes the first k nodes of s's list (a refused subscribe's own), or
 * all of them when k is s->nsubs. */
static void subs_drop_first(session *s, unsigned k) {
    pres_index *x = s->ctx->presence;
    while (k-- && s->subs) {
        pres_sub *n = s->subs;
        s->subs = n->snext;
        s->nsubs--;
        name_unlink(x, n);
        free(n);
    }
}

static void sub_del(session *s, const char *folded) {
    for (pres_sub **p = &s->subs; *p; p = &(*p)->snext) {
        if (strcmp((*p)->folded, folded) == 0) {
            pres_sub *n = *p;
            *p = n->snext;
            s->nsubs--;
            name_unlink(s->ctx->presence, n);
            free(n);
            return;
        }
    }
}

/* The tracker outgrew all mode: the sessions that asked for it (not the
 * older peers, which cannot be told) leave it and hear so, once, so a
 * storm of logins after a restart costs each login O(subscribers) again
 * instead of one push to each of the first PRES_ALL_MAX_ONLINE peers. */
static void all_mode_ends(tracker_ctx *ctx) {
    pres_index *x = ctx->presence;
    for (session *s = x->all, *next; s; s = next) {
        next = s->all_next;
        if (!s->pres_subscribes)
            continue;
        s->pres_all = 0;
        all_leave(s);
        if (!sess_listening(s))
            continue;
        msg_out out;
        msg_out_init(&out, "presence_mode", 1);
        msg_put_bool(&out, "all", false);
        sess_send_msg(s, &out);
    }
    x->granted_all = 0;
}

void pres_registered(session *s) {
    tracker_ctx *ctx = s->ctx;
    if (s->pres_all)
        all_join(s);
    if (ctx->presence && ctx->presence->granted_all &&
        namemap_count(ctx->online) > PRES_ALL_MAX_ONLINE)
        all_mode_ends(ctx);
}

void pres_drop(session *s) {
    if (!s->ctx->presence)
        return;
    all_leave(s);
    subs_drop_first(s, s->nsubs);
    char *buf = s->pres_buf;
    dirty_leave(s);
    free(buf);
}

/* ---- pushing ---- */

/* Appends the frame to s's buffer for the pass; out of memory, it goes
 * out alone now. */
static void deliver(session *s, const char *buf, size_t len) {
    pres_index *x = s->ctx->presence;
    if (!sess_listening(s))
        return;
    char *nb = grow(s->pres_buf, &s->pres_cap, s->pres_len + len, 1, 256);
    if (!nb) {
        char *copy = malloc(len);
        if (!copy) {
            log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
            return;
        }
        memcpy(copy, buf, len);
        sess_send_buf(s, copy, len);
        return;
    }
    if (!s->pres_buf) {
        s->dirty_prev = NULL;
        s->dirty_next = x->dirty;
        if (x->dirty)
            x->dirty->dirty_prev = s;
        x->dirty = s;
    }
    s->pres_buf = nb;
    memcpy(s->pres_buf + s->pres_len, buf, len);
    s->pres_len += len;
}

/* Appends one push to the pass's queue for the all mode sessions: 0, or
 * UV_ENOMEM with the queue as it was. */
static int queue(pres_index *x, const session *about, const char *buf, size_t len) {
    char *nq = grow(x->q, &x->qcap, x->qlen + len, 1, 4096);
    if (!nq)
        return UV_ENOMEM;
    x->q = nq;
    pres_ev *ne = grow(x->ev, &x->evcap, x->nev + 1, sizeof *ne, 64);
    if (!ne)
        return UV_ENOMEM;
    x->ev = ne;
    pres_ev *e = &x->ev[x->nev++];
    e->about = about;
    e->off = x->qlen;
    e->len = len;
    memcpy(x->q + x->qlen, buf, len);
    x->qlen += len;
    return 0;
}

/* The queued pushes from s's join on, but for those about s, in one
 * buffer of their size. */
static void send_queued(session *s) {
    pres_index *x = s->ctx->presence;
    size_t total = 0;
    for (size_t i = s->pres_from; i < x->nev; i++)
        if (x->ev[i].about != s)
            total += x->ev[i].len;
    if (!total || !sess_listening(s))
        return;
    char *out = malloc(total);
    if (!out) {
        log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
        return;
    }
    size_t o = 0;
    for (size_t i = s->pres_from; i < x->nev; i++) {
        if (x->ev[i].about != s) {
            memcpy(out + o, x->q + x->ev[i].off, x->ev[i].len);
            o += x->ev[i].len;
        }
    }
    sess_send_buf(s, out, total);
}

/* Sends s's own buffer for the pass, if any. */
static void send_own(session *s) {
    char *buf = s->pres_buf;
    size_t len = s->pres_len;
    if (!buf)
        return;
    dirty_leave(s);
    if (s->ctx->stopping)
        free(buf);
    else
        sess_send_buf(s, buf, len);
}

/* folded: whom it is about, never told of itself; about: that session, or
 * NULL for a user of another tracker. */
static void push(tracker_ctx *ctx, const session *about, const char *folded, const char *name,
                 bool is_online) {
    pres_index *x = ctx->presence;
    if (!x)
        return;
    msg_out m;
    msg_out_init(&m, "presence", 2);
    msg_put_str(&m, "name", name);
    msg_put_bool(&m, "online", is_online);
    const char *buf;
    size_t len;
    if (msg_out_view(&m, FRAME_MAX_DEFAULT, &buf, &len)) {
        msg_out_discard(&m);
        return;
    }
    for (pres_sub *n = namemap_get(x->names, folded); n; n = n->nnext)
        if (!n->s->pres_all) /* those hear it below */
            deliver(n->s, buf, len);
    if (x->all && queue(x, about, buf, len) != 0) {
        log_error(&ctx->lg, "out of memory queueing presence of %s: pushed to each alone", name);
        for (session *s = x->all; s; s = s->all_next) {
            spill(s);
            if (s != about)
                deliver(s, buf, len);
        }
    }
    msg_out_discard(&m);
}

void pres_push(tracker_ctx *ctx, const session *except, const char *name, bool is_online) {
    push(ctx, except, except->folded, name, is_online);
}

void pres_push_remote(void *arg, const char *name, const char *folded, int is_online) {
    tracker_ctx *ctx = arg;
    if (ctx->stopping || namemap_get(ctx->online, folded))
        return;
    push(ctx, NULL, folded, name, is_online != 0);
}

void pres_flush(void *arg) {
    tracker_ctx *ctx = arg;
    pres_index *x = ctx->presence;
    if (!x)
        return;
    /* A session in all mode can have a buffer of its own only from a
     * stint outside it earlier in the pass, or from a spill when the queue
     * was out of memory: that goes first, for order.
     * Sending may start closing s, which leaves it linked until its close
     * callback, a later pass. */
    if (x->nev) {
        for (session *s = x->all; s; s = s->all_next) {
            send_own(s);
            if (!ctx->stopping)
                send_queued(s);
            s->pres_from = 0;
        }
    }
    x->nev = x->qlen = 0;
    if (x->qcap > 65536 || x->evcap > 1024) { /* a storm's queue is not kept for the quiet after it */
        free(x->q);
        free(x->ev);
        x->q = NULL;
        x->ev = NULL;
        x->qcap = x->evcap = 0;
    }
    while (x->dirty)
        send_own(x->dirty);
}

void pres_close(tracker_ctx *ctx) {
    pres_index *x = ctx->presence;
    if (!x)
        return;
    for (session *s = ctx->sessions; s; s = s->next) /* the closed ones dropped theirs */
        pres_drop(s);
    namemap_free(x->names);
    free(x->q);
    free(x->ev);
    free(x);
    ctx->presence = NULL;
}

void pres_counts(const tracker_ctx *ctx, size_t *subs, size_t *names, size_t *all) {
    const pres_index *x = ctx->presence;
    *subs = x ? x->nsubs : 0;
    *names = x ? namemap_count(x->names) : 0;
    *all = x ? x->nall : 0;
}

/* ---- subscribe / unsubscribe ---- */

typedef struct sub_req {
    uint64_t id;
    const msgpack_object_array *names; /* NULL when absent */
    bool all, has_all;
} sub_req;

/* id, then names (an array of str) and all, both optional.  0, or
 * UV_EPROTO after failing the connection with bad_message. */
static int sub_fields(session *s, const msg_in *m, sub_req *q) {
    *q = (sub_req){0};
    if (sess_uint(s, m, "id", &q->id))
        return UV_EPROTO;
    const msgpack_object *o;
    if (msg_get(m, "names", &o) == 0) {
        if (sess_array(s, m, "names", &q->names, "[str]"))
            return UV_EPROTO;
        for (uint32_t i = 0; i < q->names->size; i++) {
            if (q->names->ptr[i].type != MSGPACK_OBJECT_STR) {
                char text[120];
                snprintf(text, sizeof text, "%s names entry %u is not a str", m->type,
                         (unsigned)i + 1);
                s->ctx->stats.rejected[STAT_REJ_BAD_MESSAGE]++;
                conn_fail(s->c, "bad_message", text, 0);
                return UV_EPROTO;
            }
        }
    }
    q->has_all = msg_get(m, "all", &o) == 0;
    return sess_opt_bool(s, m, "all", &q->all);
}

static const char *entry_str(const sub_req *q, uint32_t i, size_t *n) {
    *n = q->names->ptr[i].via.str.size;
    return q->names->ptr[i].via.str.ptr;
}

/* subscribed{id, count, online}: online lists which of the names just
 * subscribed (fold[0..n), each once) are online now, so the peer needs no
 * lookup to start from: those with a session here, and those another
 * tracker of the shared registry holds (remote[i] their stored name, ""
 * otherwise; NULL: none). */
static void send_subscribed(session *s, uint64_t id, const char (*fold)[NAME_BUFLEN],
                            const char (*remote)[NAME_BUFLEN], uint32_t n) {
    tracker_ctx *ctx = s->ctx;
    const char **on = n ? malloc(n * sizeof *on) : NULL;
    if (n && !on) {
        sess_send_error(s, "internal", "the tracker is out of memory; try again later", id);
        return;
    }
    uint32_t k = 0;
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        session *o = namemap_get(ctx->online, fold[i]);
        const char *name = o ? o->name : remote && remote[i][0] ? remote[i] : NULL;
        if (!name)
            continue;
        size_t b = strlen(name) + 5;
        if (bytes + b > FRAME_MAX_DEFAULT - 256)
            break; /* cannot happen with names from one frame; stay in bounds anyway */
        bytes += b;
        on[k++] = name;
    }
    msg_out out;
    msg_out_init(&out, "subscribed", 3);
    msg_put_uint(&out, "id", id);
    msg_put_uint(&out, "count", s->nsubs);
    msg_put_key(&out, "online");
    msgpack_pack_array(&out.pk, k);
    for (uint32_t i = 0; i < k; i++)
        msg_pack_str(&out, on[i], strlen(on[i]));
    free(on);
    sess_send_msg(s, &out);
}

/* A subscribe waiting for the shared registry to say which of its names
 * other trackers hold online; it holds its session until then. */
typedef struct sub_answer {
    session *s;
    uint64_t id;
    uint32_t n;
    char (*fold)[NAME_BUFLEN];   /* the request's names, each once, in its order */
    char (*remote)[NAME_BUFLEN];
    const char **sorted;         /* fold's entries in byte order, for remote_online */
} sub_answer;

static int fold_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void remote_online(void *arg, const char *name, const char *folded) {
    sub_answer *a = arg;
    const char **f = bsearch(&folded, a->sorted, a->n, sizeof *a->sorted, fold_cmp);
    if (f)
        snprintf(a->remote[(const char(*)[NAME_BUFLEN])*f - (const char(*)[NAME_BUFLEN])a->fold],
                 NAME_BUFLEN, "%s", name);
}

static void free_answer(sub_answer *a) {
    free(a->fold);
    free(a->remote);
    free(a->sorted);
    free(a);
}

static void remote_done(int status, void *arg) {
    sub_answer *a = arg; /* a failure (logged with its batch) leaves the others' out */
    send_subscribed(a->s, a->id, (const char(*)[NAME_BUFLEN])a->fold,
                    (const char(*)[NAME_BUFLEN])a->remote, a->n); /* a no-op once it closed */
    sess_release(a->s);
    free_answer(a);
}

/* Answers a subscribe: at once, or, on a shared registry with names not
 * online here, once the registry said which of them other trackers hold
 * (one statement for all of them, not a round trip each). */
static void answer_subscribed(session *s, const sub_req *q) {
    tracker_ctx *ctx = s->ctx;
    uint32_t n = q->names ? q->names->size : 0;
    char (*fold)[NAME_BUFLEN] = n ? malloc(n * sizeof *fold) : NULL;
    if (n && !fold) {
        sess_send_error(s, "internal", "the tracker is out of memory; try again later", q->id);
        return;
    }
    uint32_t k = 0, away = 0;
    uint64_t answer = ++ctx->presence->answers;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = entry_str(q, i, &len);
        pres_sub *sub;
        if (name_fold(name, len, fold[k]) || !(sub = find_sub(s, fold[k])) ||
            sub->told == answer)
            continue; /* twice in the request (in any spelling): listed once */
        sub->told = answer;
        away += !namemap_get(ctx->online, fold[k]);
        k++;
    }
    sub_answer *a = reg_shared(ctx->reg) && away ? calloc(1, sizeof *a) : NULL;
    if (a && (a->remote = calloc(k, sizeof *a->remote)) != NULL &&
        (a->sorted = malloc(k * sizeof *a->sorted)) != NULL) {
        a->s = s;
        a->id = q->id;
        a->n = k;
        a->fold = fold;
        for (uint32_t i = 0; i < k; i++)
            a->sorted[i] = fold[i];
        if (reg_online_start(ctx->reg, a->sorted, k, remote_online, remote_done, a) == 0) {
            qsort(a->sorted, k, sizeof *a->sorted, fold_cmp); /* for remote_online's bsearch */
            sess_hold(s);
            return;
        }
        a->fold = NULL; /* still ours */
    }
    if (a)
        free_answer(a);
    /* Not shared, or it cannot ask now: those online here. */
    send_subscribed(s, q->id, (const char(*)[NAME_BUFLEN])fold, NULL, k);
    free(fold);
}

void pres_subscribe(void *owner, const msg_in *m) {
    session *s = owner;
    tracker_ctx *ctx = s->ctx;
    sub_req q;
    if (sub_fields(s, m, &q))
        return;
    char text[256];
    if (q.all && !s->pres_all && namemap_count(ctx->online) > PRES_ALL_MAX_ONLINE) {
        snprintf(text, sizeof text,
                 "subscribe all is only taken while at most %d users are online here (%zu are); "
                 "subscribe to the names you need", PRES_ALL_MAX_ONLINE,
                 namemap_count(ctx->online));
        sess_send_error(s, "too_many_subscriptions", text, q.id);
        return;
    }
    uint32_t n = q.names ? q.names->size : 0;
    if (n > PRES_SUBS_MAX) { /* bounds the work of one request too */
        snprintf(text, sizeof text, "a connection may subscribe to at most %d names; this "
                 "request names %u; nothing was subscribed", PRES_SUBS_MAX, (unsigned)n);
        sess_send_error(s, "too_many_subscriptions", text, q.id);
        return;
    }
    for (uint32_t i = 0; i < n; i++) { /* all or nothing: check every name first */
        size_t len;
        const char *name = entry_str(&q, i, &len), *why;
        if (name_check(name, len, &why)) {
            snprintf(text, sizeof text, "subscribe names entry %u is not a valid name: %s; "
                     "nothing was subscribed", (unsigned)i + 1, why);
            sess_send_error(s, "bad_name", text, q.id);
            return;
        }
    }
    unsigned before = s->nsubs, added = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = entry_str(&q, i, &len);
        char folded[NAME_BUFLEN];
        name_fold(name, len, folded);
        unsigned had = s->nsubs;
        int r = sub_add(s, folded);
        added += s->nsubs - had;
        if (r || s->nsubs > PRES_SUBS_MAX) {
            subs_drop_first(s, added); /* new nodes sit at the head of s->subs */
            if (r)
                snprintf(text, sizeof text, "the tracker is out of memory; nothing was "
                         "subscribed");
            else
                snprintf(text, sizeof text,
                         "a connection may subscribe to at most %d names (%u now, this request "
                         "adds more); unsubscribe some first; nothing was subscribed",
                         PRES_SUBS_MAX, before);
            sess_send_error(s, r ? "internal" : "too_many_subscriptions", text, q.id);
            return;
        }
    }
    if (q.all) {
        s->pres_all = 1;
        all_join(s);
        ctx->presence->granted_all = 1;
    }
    answer_subscribed(s, &q);
}

void pres_unsubscribe(void *owner, const msg_in *m) {
    session *s = owner;
    sub_req q;
    if (sub_fields(s, m, &q))
        return;
    uint32_t n = q.names ? q.names->size : 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = entry_str(&q, i, &len);
        char folded[NAME_BUFLEN];
        if (name_fold(name, len, folded) == 0)
            sub_del(s, folded);
    }
    if (q.has_all && q.all) {
        s->pres_all = 0;
        all_leave(s);
    }
    msg_out out;
    msg_out_init(&out, "unsubscribed", 2);
    msg_put_uint(&out, "id", q.id);
    msg_put_uint(&out, "count", s->nsubs);
    sess_send_msg(s, &out);
}

void pres_subscribe_unregistered(void *owner, const msg_in *m) {
    session *s = owner;
    sub_req q;
    if (sub_fields(s, m, &q) == 0)
        sess_send_error(s, "not_registered", "register before subscribing to presence", q.id);
}
