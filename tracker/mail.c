/* mail: the mailbox frames of the control connection (mail.h).  mail_put
 * is checked here, stored by mailbox.c in the pass's batch and answered
 * from the commit's callback; mail_ack and receipt_ack are batched writes
 * without an answer.  Pushes follow commits: a write queues a kick for
 * each user it concerns, and the registry's batch end (mail_flush) refills
 * their windows, so nothing is pushed that a crash could take back and no
 * connection ever holds more than MAIL_WINDOW of each unacknowledged. */
#include "mail.h"

#include "handlers.h"
#include "mailbox.h"
#include "remote.h"

#include "grow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOUR_MS 3600000u
#define SWEEP_MAX_MS 60000u

typedef struct kick {
    char folded[NAME_BUFLEN]; /* whose windows to refill */
    int here_only;            /* from another tracker: not passed on */
} kick;

/* One sender's --mail-rate bucket, in units of 1/HOUR_MS of a put, so that
 * mail_rate puts an hour refill mail_rate units a millisecond. */
typedef struct sender_rate {
    rate_bucket b;
    char folded[NAME_BUFLEN];
} sender_rate;

struct mail_srv {
    tracker_ctx *ctx;
    uv_timer_t sweep;
    kick *kicks;          /* this pass's */
    size_t nkicks, capkicks;
    uint64_t pass;        /* batches flushed, so each user is filled once a batch */
    namemap *rates;       /* folded sender -> sender_rate */
};

/* ---- pushes ---- */

static void queue_kick(tracker_ctx *ctx, const char *folded, int here_only) {
    struct mail_srv *ms = ctx->mail;
    if (!ms) /* stopping: nobody is online to push to */
        return;
    kick *nk = grow(ms->kicks, &ms->capkicks, ms->nkicks + 1, sizeof *nk, 16);
    if (!nk) {
        log_error(&ctx->lg, "out of memory queueing a mail push; it goes out at the next "
                  "registration");
        return;
    }
    ms->kicks = nk;
    nk[ms->nkicks].here_only = here_only;
    snprintf(nk[ms->nkicks++].folded, NAME_BUFLEN, "%s", folded);
}

static void kick_user(tracker_ctx *ctx, const char *folded) { queue_kick(ctx, folded, 0); }

void mail_kick(tracker_ctx *ctx, const char *folded) { queue_kick(ctx, folded, 1); }

/* A kick for a user not online here: with a shared registry the user may
 * be online at another tracker, which refills the windows from the same
 * tables once it hears of it. */
typedef struct kick_req {
    tracker_ctx *ctx;
    char folded[NAME_BUFLEN];
    reg_user u;
} kick_req;

static void kick_found(tracker_ctx *ctx, const char *folded, int r, const reg_user *u) {
    if (r || !reg_elsewhere(ctx->reg, u))
        return;
    msg_out out;
    msg_out_init(&out, "mail_kick", 0);
    int e = rmt_send(ctx, u->home, RMT_MAIL, folded, &out);
    if (e)
        log_warn(&ctx->lg, "cannot tell the tracker of %s that mail waits (%s); it is "
                 "pushed at the next registration", u->name, uv_strerror(e));
}

static void on_kick_found(int status, void *arg) {
    kick_req *k = arg;
    kick_found(k->ctx, k->folded, status, &k->u);
    free(k);
}

/* The registry is asked where the user is without the loop waiting: the
 * read joins the next batch. */
static void kick_elsewhere(tracker_ctx *ctx, const char *folded) {
    if (!reg_shared(ctx->reg))
        return;
    kick_req *k = malloc(sizeof *k);
    if (!k) {
        log_warn(&ctx->lg, "out of memory telling another tracker that mail waits for %s; it "
                 "is pushed at the next registration", folded);
        return;
    }
    k->ctx = ctx;
    snprintf(k->folded, sizeof k->folded, "%s", folded);
    int r = reg_lookup_start(ctx->reg, k->folded, &k->u, on_kick_found, k);
    if (r != REG_PENDING) {
        kick_found(ctx, k->folded, r, &k->u);
        free(k);
    }
}

static int push_mail(const mbox_mail *m, void *arg) {
    session *s = arg;
    msg_out out;
    msg_out_init(&out, "mail", 5);
    msg_put_uint(&out, "mid", m->mid);
    msg_put_str(&out, "from", m->from);
    msg_put_bin(&out, "key", m->key, IDENT_PK);
    msg_put_int(&out, "ts", m->stored);
    msg_put_bin(&out, "box", m->box, m->size);
    sess_send_msg(s, &out);
    return !sess_listening(s);
}

static int push_receipt(const mbox_receipt *r, void *arg) {
    session *s = arg;
    msg_out out;
    msg_out_init(&out, "receipt", 4);
    msg_put_uint(&out, "rid", r->rid);
    msg_put_str(&out, "to", r->to);
    msg_put_uint(&out, "id", r->msg_id);
    msg_put_str(&out, "status", r->status);
    sess_send_msg(s, &out);
    return !sess_listening(s);
}

static void fill(session *s);

static void fill_failed(session *s) {
    log_warn(&s->ctx->lg, "could not read the mailbox of %s; the rest follows its next "
             "acknowledgement or registration", s->name);
}

static void on_filled(int status, void *arg) {
    session *s = arg;
    s->mail_filling = 0;
    if (status && sess_listening(s))
        fill_failed(s);
    if (s->mail_refill) { /* asked for while this one was out: from the new cursors */
        s->mail_refill = 0;
        fill(s);
    }
    sess_release(s);
}

/* Tops up both of s's windows from what is stored.  With a shared
 * registry the reads are answered later, one fill at a time (a second
 * from the same cursors would hand out the same mail twice): one asked
 * for meanwhile runs once it is answered. */
static void fill(session *s) {
    if (!s->hears_mailbox || !sess_listening(s))
        return;
    if (s->mail_filling) {
        s->mail_refill = 1;
        return;
    }
    int r = mbox_fill_start(s->ctx->mbox, s->folded, &s->mail_cursor, &s->receipt_cursor,
                            MAIL_WINDOW, push_mail, push_receipt, s, on_filled, s);
    if (r == MBOX_PENDING) {
        s->mail_filling = 1;
        sess_hold(s);
    } else if (r) {
        fill_failed(s);
    }
}

void mail_registered(session *s) { fill(s); }

void mail_flush(void *arg) {
    tracker_ctx *ctx = arg;
    struct mail_srv *ms = ctx->mail;
    if (!ms)
        return;
    /* 32 acks from one recipient in a pass are 32 kicks and one refill. */
    ms->pass++;
    for (size_t i = 0; i < ms->nkicks; i++) {
        session *o = namemap_get(ctx->online, ms->kicks[i].folded);
        if (o && o->mail_pass != ms->pass) {
            o->mail_pass = ms->pass;
            fill(o); /* reads only: queues no kick */
        } else if (!o && !ms->kicks[i].here_only) {
            kick_elsewhere(ctx, ms->kicks[i].folded);
        }
    }
    ms->nkicks = 0;
}

/* ---- mail_put ---- */

typedef struct put_req {
    uint64_t id;
    const char *to;
    size_t tn;
    const unsigned char *box;
    size_t size;
} put_req;

/* 0, or UV_EPROTO after failing the connection with bad_message. */
static int put_fields(session *s, const msg_in *m, put_req *q) {
    if (sess_uint(s, m, "id", &q->id) || sess_str(s, m, "to", &q->to, &q->tn) ||
        sess_bin_range(s, m, "box", &q->box, &q->size, 1, MBOX_BOX_MAX))
        return UV_EPROTO;
    if (q->id == 0) { /* its answers could not say which put they answer */
        s->ctx->stats.rejected[STAT_REJ_BAD_MESSAGE]++;
        conn_fail(s->c, "bad_message", "mail_put needs a nonzero id", 0);
        return UV_EPROTO;
    }
    return 0;
}

void mail_put_unregistered(void *owner, const msg_in *m) {
    session *s = owner;
    put_req q;
    if (put_fields(s, m, &q) == 0)
        sess_send_error(s, "not_registered", "register before sending mail", q.id);
}

/* A mail_put waiting for the commit of its pass. */
typedef struct stored_answer {
    session *s;                /* held */
    uint64_t id;
    char to[NAME_BUFLEN];      /* the recipient as stored */
    char folded[NAME_BUFLEN];  /* the recipient, when the put stored something new; else "" */
} stored_answer;

static void on_stored(int status, void *arg) {
    stored_answer *a = arg;
    session *s = a->s;
    if (status) {
        sess_send_error(s, "internal", "the tracker could not save the mail; send it again later",
                        a->id);
    } else {
        msg_out out;
        msg_out_init(&out, "mail_stored", 2);
        msg_put_uint(&out, "id", a->id);
        msg_put_str(&out, "to", a->to);
        sess_send_msg(s, &out);
        if (a->folded[0])
            kick_user(s->ctx, a->folded);
    }
    sess_release(s);
    free(a);
}

/* Answers mail_stored once this pass's batch is on disk: the put's own
 * write, or the one of an earlier copy in the same batch. */
static void answer_stored(session *s, uint64_t id, const char *to, const char *folded) {
    stored_answer *a = malloc(sizeof *a);
    if (!a || mbox_wait(s->ctx->mbox, on_stored, a)) {
        free(a);
        sess_send_error(s, "internal", "the tracker is out of memory; send the mail again later",
                        id);
        return;
    }
    a->s = s;
    a->id = id;
    snprintf(a->to, sizeof a->to, "%s", to);
    snprintf(a->folded, sizeof a->folded, "%s", folded ? folded : "");
    sess_hold(s);
}

static void refuse_full(session *s, uint64_t id, const char *to, mbox_full full) {
    const tracker_config *cfg = &s->ctx->cfg;
    char text[400];
    if (full == MBOX_FULL_MSGS)
        snprintf(text, sizeof text, "the mailbox of %s is full: it holds %" PRIu64 " message%s "
                 "(limit: messages per recipient)", to, cfg->mail_max,
                 cfg->mail_max == 1 ? "" : "s");
    else if (full == MBOX_FULL_BYTES)
        snprintf(text, sizeof text, "the mailbox of %s is full: this message would pass its %"
                 PRIu64 " bytes (limit: bytes per recipient)", to, cfg->mail_bytes);
    else if (full == MBOX_FULL_SENDER)
        snprintf(text, sizeof text, "the mailbox of %s holds %" PRIu64 " message%s from you "
                 "already (limit: messages per sender)", to, cfg->mail_per_sender,
                 cfg->mail_per_sender == 1 ? "" : "s");
    else
        snprintf(text, sizeof text, "the tracker's mail storage is full (%" PRIu64 " bytes); "
                 "%s cannot get mail now (limit: bytes in all)", cfg->mail_total, to);
    s->ctx->stats.mail_refused_limit[STAT_MAIL_FULL]++;
    sess_send_error(s, "mailbox_full", text, id);
}

/* Takes one put from folded's bucket: 1 when it may go on. */
static int rate_ok(tracker_ctx *ctx, const char *folded) {
    uint64_t n = ctx->cfg.mail_rate, cap = n * HOUR_MS, now = uv_now(ctx->loop);
    struct mail_srv *ms = ctx->mail;
    if (!n || !ms)
        return 1;
    sender_rate *r = namemap_get(ms->rates, folded);
    if (!r) {
        if (!(r = malloc(sizeof *r))) /* no memory for a bucket: let this one through */
            return 1;
        snprintf(r->folded, sizeof r->folded, "%s", folded);
        rate_bucket_init(&r->b, cap, now);
        if (namemap_put(ms->rates, r->folded, r)) {
            free(r);
            return 1;
        }
    }
    return rate_take(&r->b, n, HOUR_MS, cap, now);
}

static void internal(session *s, uint64_t id) {
    sess_send_error(s, "internal", "the tracker's database failed; try again later", id);
}

void mail_put(void *owner, const msg_in *m) {
    session *s = owner;
    tracker_ctx *ctx = s->ctx;
    const tracker_config *cfg = &ctx->cfg;
    put_req q;
    if (put_fields(s, m, &q))
        return;
    char fold[NAME_BUFLEN], text[300];
    if (name_fold(q.to, q.tn, fold)) {
        sess_send_error(s, "bad_name", "invalid name in to", q.id);
        return;
    }
    if (strcmp(fold, s->folded) == 0) {
        sess_send_error(s, "bad_name", "that is your own name; mail someone else", q.id);
        return;
    }
    reg_user to, me;
    int r = reg_lookup(ctx->reg, fold, &to);
    if (r == UV_ENOENT) {
        snprintf(text, sizeof text, "no user named %.*s", (int)q.tn, q.to);
        sess_send_error(s, "not_found", text, q.id);
        return;
    }
    if (r || sess_self_user(s, &me)) {
        internal(s, q.id);
        return;
    }
    /* A resend (the sender restarted before it heard mail_stored) is
     * answered again and stores nothing: no limit applies to it. */
    if ((r = mbox_known(ctx->mbox, s->folded, fold, to.name, q.id)) != 0) {
        if (r < 0)
            internal(s, q.id);
        else
            answer_stored(s, q.id, to.name, NULL);
        return;
    }
    mbox_limits lim = {cfg->mail_max, cfg->mail_bytes, cfg->mail_per_sender, cfg->mail_total};
    mbox_full full;
    if (mbox_room(ctx->mbox, fold, s->folded, q.size, &lim, &full)) {
        internal(s, q.id);
        return;
    }
    if (full != MBOX_ROOM) {
        refuse_full(s, q.id, to.name, full);
        return;
    }
    if (!rate_ok(ctx, s->folded)) {
        snprintf(text, sizeof text, "more than %" PRIu64 " mail_put an hour; send the rest later",
                 cfg->mail_rate);
        ctx->stats.mail_refused_limit[STAT_MAIL_RATE]++;
        sess_send_error(s, "mail_rate_limited", text, q.id);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    mbox_new nm = {fold, to.name, s->folded, s->name, me.key, q.id, q.box, q.size,
                   now, now + (int64_t)cfg->mail_ttl};
    r = mbox_put(ctx->mbox, &nm);
    if (r && r != UV_EEXIST) {
        internal(s, q.id);
        return;
    }
    if (r == 0)
        ctx->stats.mail_stored++;
    answer_stored(s, q.id, to.name, r == 0 ? fold : NULL);
}

/* ---- the acknowledgements ---- */

/* An acknowledgement has no id to answer, so the refusal closes. */
static void ack_unregistered(session *s) {
    conn_fail(s->c, "not_registered", "register before acknowledging mail or receipts", 0);
}

/* 0, or UV_EPROTO after failing the connection with bad_message. */
static int ack_fields(session *s, const msg_in *m, uint64_t *mid, bool *ok) {
    *ok = true;
    return sess_uint(s, m, "mid", mid) || sess_opt_bool(s, m, "ok", ok) ? UV_EPROTO : 0;
}

void mail_ack_unregistered(void *owner, const msg_in *m) {
    uint64_t mid;
    bool ok;
    if (ack_fields(owner, m, &mid, &ok) == 0)
        ack_unregistered(owner);
}

void mail_receipt_ack_unregistered(void *owner, const msg_in *m) {
    uint64_t rid;
    if (sess_uint(owner, m, "rid", &rid) == 0)
        ack_unregistered(owner);
}

/* An acknowledgement on its way into the mailbox (a shared registry
 * answers it once its batch committed; it holds its session until then). */
typedef struct ack_req {
    session *s;
    uint64_t id;  /* the mid, or the rid of a receipt_ack */
    int receipt;
    bool ok;      /* mail_ack's */
    char sender[NAME_BUFLEN];
} ack_req;

/* The mailbox said r about a->s's acknowledgement. */
static void acked(ack_req *a, int r) {
    session *s = a->s;
    tracker_ctx *ctx = s->ctx;
    if (r == UV_ENOENT) /* not this user's, or acknowledged already */
        return;
    if (r) {
        if (a->receipt)
            log_warn(&ctx->lg, "could not record that %s acknowledged receipt %" PRIu64,
                     s->name, a->id);
        else
            log_warn(&ctx->lg, "could not record that %s acknowledged mail %" PRIu64 "; it "
                     "will be pushed again", s->name, a->id);
        return;
    }
    /* The tracker set this pace (one push per ack): a recipient emptying a
     * large mailbox must not run into the frame rate. */
    rate_refund(s);
    if (!a->receipt) {
        if (a->ok)
            ctx->stats.mail_delivered++;
        else
            ctx->stats.mail_rejected++;
        kick_user(ctx, a->sender);
    }
    kick_user(ctx, s->folded); /* its window has room for the next */
}

static void on_acked(int status, void *arg) {
    ack_req *a = arg;
    acked(a, status);
    sess_release(a->s);
    free(a);
}

static void ack(session *s, uint64_t id, int receipt, bool ok) {
    tracker_ctx *ctx = s->ctx;
    ack_req here, *a = reg_shared(ctx->reg) ? malloc(sizeof *a) : &here; /* answered later */
    if (!a) {
        log_warn(&ctx->lg, "out of memory taking an acknowledgement of %s; it comes again",
                 s->name);
        return;
    }
    *a = (ack_req){.s = s, .id = id, .receipt = receipt, .ok = ok};
    int r = receipt ? mbox_receipt_ack_start(ctx->mbox, s->folded, id, on_acked, a)
                    : mbox_ack_start(ctx->mbox, s->folded, s->name, id,
                                     ok ? "delivered" : "refused",
                                     (int64_t)time(NULL) + (int64_t)ctx->cfg.mail_ttl, a->sender,
                                     on_acked, a);
    if (r == MBOX_PENDING) {
        sess_hold(s);
        return;
    }
    acked(a, r);
    if (a != &here)
        free(a);
}

/* The recipient has the message (it committed it, or refused it): the
 * sender's receipt replaces it, and the window has room for the next. */
void mail_ack(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t mid;
    bool ok;
    if (ack_fields(s, m, &mid, &ok) == 0)
        ack(s, mid, 0, ok);
}

void mail_receipt_ack(void *owner, const msg_in *m) {
    session *s = owner;
    uint64_t rid;
    if (sess_uint(s, m, "rid", &rid) == 0)
        ack(s, rid, 1, false);
}

/* ---- the sweep ---- */

static void kick_sender(const char *folded, void *arg) { kick_user(arg, folded); }

typedef struct full_rates {
    sender_rate **r;
    size_t n, cap;
    uint64_t per_ms, units, now;
} full_rates;

static void find_full(void *val, void *arg) {
    full_rates *f = arg;
    sender_rate *r = val;
    if (!rate_full(&r->b, f->per_ms, f->units, f->now))
        return;
    sender_rate **nr = grow(f->r, &f->cap, f->n + 1, sizeof *nr, 64);
    if (nr) {
        f->r = nr;
        f->r[f->n++] = r;
    }
}

/* A bucket that has refilled is no different from a new one: dropping it
 * keeps the table to the senders of the last hour. */
static void prune_rates(struct mail_srv *ms) {
    tracker_ctx *ctx = ms->ctx;
    full_rates f = {NULL, 0, 0, ctx->cfg.mail_rate, ctx->cfg.mail_rate * HOUR_MS,
                    uv_now(ctx->loop)};
    namemap_each(ms->rates, find_full, &f);
    for (size_t i = 0; i < f.n; i++) {
        namemap_del(ms->rates, f.r[i]->folded, f.r[i]);
        free(f.r[i]);
    }
    free(f.r);
}

static void on_sweep(uv_timer_t *t) {
    struct mail_srv *ms = t->data;
    tracker_ctx *ctx = ms->ctx;
    int64_t now = (int64_t)time(NULL);
    uint64_t n;
    int e = mbox_expire(ctx->mbox, now, now + (int64_t)ctx->cfg.mail_ttl, kick_sender, ctx, &n);
    if (e) {
        log_warn(&ctx->lg, "the mailbox sweep failed (%s); it runs again soon", uv_strerror(e));
    } else if (n) {
        ctx->stats.mail_expired += n;
        log_info(&ctx->lg, "%" PRIu64 " message%s expired unread", n, n == 1 ? "" : "s");
    }
    prune_rates(ms);
}

int mail_open(tracker_ctx *ctx) {
    struct mail_srv *ms = calloc(1, sizeof *ms);
    if (!ms || !(ms->rates = namemap_new())) {
        free(ms);
        return UV_ENOMEM;
    }
    ms->ctx = ctx;
    uv_timer_init(ctx->loop, &ms->sweep);
    ms->sweep.data = ms;
    /* At least twice per ttl, so nothing waits much longer than it. */
    uint64_t period = (uint64_t)ctx->cfg.mail_ttl * 500;
    uv_timer_start(&ms->sweep, on_sweep, 0, period < SWEEP_MAX_MS ? period : SWEEP_MAX_MS);
    ctx->mail = ms;
    return 0;
}

static void free_rate(void *val, void *arg) { free(val); }

static void on_sweep_closed(uv_handle_t *h) {
    struct mail_srv *ms = h->data;
    namemap_each(ms->rates, free_rate, NULL);
    namemap_free(ms->rates);
    free(ms->kicks);
    free(ms);
}

void mail_stop(tracker_ctx *ctx) {
    struct mail_srv *ms = ctx->mail;
    if (!ms)
        return;
    ctx->mail = NULL;
    uv_close((uv_handle_t *)&ms->sweep, on_sweep_closed);
}
