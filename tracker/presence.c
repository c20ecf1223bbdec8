/* presence: pushes wait for the end of the loop pass (the registry's batch
 * end): each registered session then gets the pass's pushes in one buffer
 * and one write, instead of one allocation and one syscall per push.  With
 * many registrations per batch that is the difference between seconds and
 * minutes to bring 10,000 users online (every push still reaches everyone:
 * O(online) frames per event, as the protocol has no subscriptions). */
#include "presence.h"

#include "frame.h"
#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pres_ev {
    char folded[NAME_BUFLEN]; /* whom it is about: not sent to that user */
    size_t off, len;          /* the frame in pres_q.buf */
} pres_ev;

typedef struct pres_q {
    char *buf;
    size_t len, cap;
    pres_ev *ev;
    size_t n, evcap;
} pres_q;

void pres_free(tracker_ctx *ctx) {
    if (!ctx->presence)
        return;
    free(ctx->presence->buf);
    free(ctx->presence->ev);
    free(ctx->presence);
    ctx->presence = NULL;
}

static void pres_send_one(void *sess, void *arg) {
    session *s = sess;
    const pres_q *q = arg;
    if (!sess_listening(s))
        return;
    size_t total = 0;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->ev[i].folded, s->folded) != 0)
            total += q->ev[i].len;
    if (!total)
        return;
    char *out = malloc(total);
    if (!out) {
        log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->ev[i].folded, s->folded) != 0) {
            memcpy(out + o, q->buf + q->ev[i].off, q->ev[i].len);
            o += q->ev[i].len;
        }
    }
    sess_send_buf(s, out, total);
}

void pres_flush(void *arg) {
    tracker_ctx *ctx = arg;
    if (ctx->presence && ctx->presence->n && !ctx->stopping)
        namemap_each(ctx->online, pres_send_one, ctx->presence);
    pres_free(ctx);
}

/* Queues one framed push; 0, or UV_ENOMEM (the caller then sends at once). */
static int pres_queue(tracker_ctx *ctx, const char *folded, const char *buf, size_t len) {
    pres_q *q = ctx->presence;
    if (!q && !(q = ctx->presence = calloc(1, sizeof *q)))
        return UV_ENOMEM;
    char *nb = grow(q->buf, &q->cap, q->len + len, 1, 4096);
    if (!nb)
        return UV_ENOMEM;
    q->buf = nb;
    pres_ev *ne = grow(q->ev, &q->evcap, q->n + 1, sizeof *ne, 64);
    if (!ne)
        return UV_ENOMEM;
    q->ev = ne;
    pres_ev *e = &q->ev[q->n++];
    snprintf(e->folded, sizeof e->folded, "%s", folded);
    e->off = q->len;
    e->len = len;
    memcpy(q->buf + q->len, buf, len);
    q->len += len;
    return 0;
}

/* Out of memory for the queue: one copy per session, sent now. */
typedef struct bcast {
    const session *except;
    const char *buf;
    size_t len;
} bcast;

static void bcast_one(void *sess, void *arg) {
    session *s = sess;
    const bcast *b = arg;
    if (s == b->except || !sess_listening(s))
        return;
    char *copy = malloc(b->len);
    if (!copy) {
        log_error(&s->ctx->lg, "out of memory pushing presence to %s", s->name);
        return;
    }
    memcpy(copy, b->buf, b->len);
    sess_send_buf(s, copy, b->len);
}

/* except: the session the push is about (not told), or NULL for a user of
 * another tracker, whose folded name then keeps it from a session here. */
static void push(tracker_ctx *ctx, const session *except, const char *folded, const char *name,
                 bool is_online) {
    msg_out m;
    msg_out_init(&m, "presence", 2);
    msg_put_str(&m, "name", name);
    msg_put_bool(&m, "online", is_online);
    char *buf;
    size_t len;
    if (msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &len))
        return;
    if (pres_queue(ctx, folded, buf, len) == 0) {
        free(buf);
        return;
    }
    bcast b = {except, buf, len};
    namemap_each(ctx->online, bcast_one, &b);
    free(buf);
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
