/* chat_mail: what outlives a conversation's links and the process.  Every
 * message typed is committed to HOME/history.db before it is shown as sent
 * or leaves (the durable outbox: what is not acknowledged is loaded again
 * at start-up and delivered without anyone typing); every message received
 * is committed before it is shown or acknowledged, and history.db's unique
 * (sender key, id) drops a repeat across restarts: exactly once.  A
 * message for someone who cannot be reached is sealed (mail.h) and left at
 * the tracker's mailbox; the letters it keeps for us arrive the same way
 * as link messages do.  With --no-history (ctx->hist NULL) none of this
 * runs and chat.c keeps its queues in memory only. */
#include "chat_impl.h"

#include "control.h"
#include "events.h"
#include "grow.h"
#include "history.h"
#include "mail.h"
#include "pins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A write waiting for its commit.  Names, not pointers: the conversation
 * may be gone (bye) by the time the batch commits. */
typedef struct pending {
    chat *ch;
    char fold[NAME_BUFLEN];
    char name[NAME_BUFLEN];
    uint64_t id;
    int64_t ts;
    uint64_t mid;   /* a letter: the tracker's id, acknowledged after the commit */
    size_t len;
    char text[];    /* received messages only */
} pending;

static pending *pending_new(chat *ch, const conv *cv, const char *name, uint64_t id, int64_t ts,
                            const char *text, size_t len) {
    pending *p = calloc(1, sizeof *p + len);
    if (!p)
        return NULL;
    p->ch = ch;
    snprintf(p->fold, sizeof p->fold, "%s", cv->fold);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->id = id;
    p->ts = ts;
    p->len = len;
    if (len)
        memcpy(p->text, text, len);
    return p;
}

static outmsg *find_out(conv *cv, uint64_t id) {
    for (outmsg *m = cv ? cv->q : NULL; m; m = m->next)
        if (m->id == id)
            return m;
    return NULL;
}

/* ---- our messages: committed, then sent ---- */

static void on_out_done(int status, int dup, void *arg) {
    pending *p = arg;
    chat *ch = p->ch;
    conv *cv = chat_conv_find(ch, p->fold);
    outmsg *m = find_out(cv, p->id);
    if (m && status) {
        ev_error(ch->ctx, "history", "cannot save your message to %s in %s/history.db (%s); it "
                 "was not sent: check the disk and send it again", p->name, ch->ctx->home,
                 uv_strerror(status));
        free(chat_out_take(cv, p->id));
    } else if (m && !m->committed) { /* a reloaded conversation may hold it already */
        chat_out_ready(ch, cv, m);
    }
    free(p);
}

int chat_mail_add_out(chat *ch, conv *cv, outmsg *m) {
    pending *p = pending_new(ch, cv, cv->name, m->id, m->ts, NULL, 0);
    int e = p ? hist_add_out(ch->ctx->hist, cv->fold, cv->name, m->id, m->seq, m->ts, m->text,
                             m->len, on_out_done, p)
              : UV_ENOMEM;
    if (e) {
        free(p);
        ev_error(ch->ctx, "history", "cannot save your message to %s in %s/history.db (%s); it "
                 "was not sent", cv->name, ch->ctx->home, uv_strerror(e));
    }
    return e;
}

/* ---- their messages: committed, then shown and acknowledged ---- */

static void on_in_done(int status, int dup, void *arg) {
    pending *p = arg;
    chat *ch = p->ch;
    if (status) {
        ev_error(ch->ctx, "history", "cannot save a message from %s in %s/history.db (%s); it "
                 "was not acknowledged, so it comes again", p->name, ch->ctx->home,
                 uv_strerror(status));
        free(p);
        return;
    }
    conv *cv = chat_conv_find(ch, p->fold);
    if (!dup)
        chat_in_show(ch, cv, p->name, p->id, p->ts, p->text, p->len);
    /* Acknowledged once on disk: a crash from here on loses nothing, and
     * the repeat a lost ack causes is dropped as dup.  The ack leaves only
     * after the batch's lines were written (main.c's batch end: ev_flush),
     * so a peer killed after acknowledging has shown what it took. */
    if (p->mid)
        ctl_mail_ack(ch->ctx->ctl, p->mid, 1);
    else if (cv && cv->link && link_is_up(cv->link))
        link_send_ack(cv->link, p->id);
    free(p);
}

static int add_in(chat *ch, conv *cv, const char *name, const unsigned char key[IDENT_PK],
                  uint64_t id, int64_t ts, const char *text, size_t len, uint64_t mid) {
    pending *p = pending_new(ch, cv, name, id, ts, text, len);
    if (!p)
        return UV_ENOMEM;
    p->mid = mid;
    int e = hist_add_in(ch->ctx->hist, cv->fold, name, key, id, ts, text, len, on_in_done, p);
    if (e)
        free(p);
    return e;
}

void chat_mail_add_in(chat *ch, conv *cv, chatlink *l, uint64_t id, int64_t ts, const char *text,
                      size_t len) {
    int e = add_in(ch, cv, cv->name, link_key(l), id, ts, text, len, 0);
    if (e)
        ev_error(ch->ctx, "history", "cannot save a message from %s in %s/history.db (%s); it "
                 "was not acknowledged, so it comes again", cv->name, ch->ctx->home,
                 uv_strerror(e));
}

/* ---- the outbox across restarts ---- */

typedef struct loader {
    conv *cv;
    int failed;
} loader;

static int load_row(const hist_row *r, void *arg) {
    loader *ld = arg;
    if (strcmp(r->peer, ld->cv->fold) != 0)
        return 0;
    outmsg *m = chat_out_new(r->msg_id, r->seq, r->ts, r->text, r->len);
    if (!m) {
        ld->failed = 1;
        return 1;
    }
    m->committed = 1;
    m->stored = r->state == HIST_STORED;
    chat_enqueue(ld->cv, m);
    return 0;
}

void chat_mail_load(chat *ch, conv *cv) {
    history *h = ch->ctx->hist;
    if (!h)
        return;
    if (hist_max_seq(h, cv->fold, &cv->seq))
        cv->seq = 0; /* the read below reports the failure */
    loader ld = {cv, 0};
    int e = hist_outbox(h, load_row, &ld);
    if (e || ld.failed)
        ev_error(ch->ctx, "history", "cannot read the outbox for %s from %s/history.db (%s); "
                 "its unsent messages wait for the next start", cv->name, ch->ctx->home,
                 uv_strerror(e ? e : UV_ENOMEM));
}

/* The conversations the outbox names, collected first: a conversation
 * loads its queue with a read of its own, which must not run inside this
 * one. */
typedef struct outbox_peer {
    char name[NAME_BUFLEN]; /* its spelling */
    char fold[NAME_BUFLEN];
} outbox_peer;

typedef struct names {
    outbox_peer *v;
    size_t n, cap;
} names;

static int collect_name(const hist_row *r, void *arg) {
    names *ns = arg;
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i].fold, r->peer) == 0)
            return 0;
    outbox_peer *v = grow(ns->v, &ns->cap, ns->n + 1, sizeof *v, 8);
    if (!v)
        return 1;
    ns->v = v;
    snprintf(v[ns->n].fold, NAME_BUFLEN, "%s", r->peer);
    snprintf(v[ns->n++].name, NAME_BUFLEN, "%s", r->name);
    return 0;
}

void chat_mail_open_outbox(chat *ch) {
    history *h = ch->ctx->hist;
    if (!h)
        return;
    /* New ids above every id of an earlier run, whatever the clock did:
     * the receiver dedupes on them. */
    uint64_t top = 0;
    hist_max_id(h, &top);
    if (ch->ctx->id_base < top)
        ch->ctx->id_base = top;
    names ns = {0};
    hist_outbox(h, collect_name, &ns); /* a failure shows when the conversation loads */
    for (size_t i = 0; i < ns.n; i++)
        chat_conv_get(ch, ns.v[i].name); /* loads its queue; the tracker's ready dials it */
    free(ns.v);
}

/* ---- leaving letters at the tracker ---- */

/* At most this many mail_put frames out at once: the tracker takes a
 * control connection's frames at a bounded rate (--rate-limit), and a
 * backlog of hundreds must not be refused for going too fast. */
#define MAIL_PUT_WINDOW 8
#define MAIL_RETRY_MS 1000 /* after "too fast": a second refills most token buckets */

/* Sends what waits for the put window, oldest conversation queue first. */
static void pump(chat *ch) {
    peer_ctx *ctx = ch->ctx;
    if (uv_is_active((uv_handle_t *)ch->mail_retry))
        return; /* the tracker said too fast: wait for the timer */
    for (conv *cv = ch->convs; cv && ch->mail_puts < MAIL_PUT_WINDOW; cv = cv->next) {
        for (outmsg *m = cv->q; m && ch->mail_puts < MAIL_PUT_WINDOW; m = m->next) {
            if (!m->to_mail)
                continue;
            m->to_mail = 0;
            if (m->stored || m->mailing || !cv->have_mail_key)
                continue;
            unsigned char *box;
            size_t n;
            int e = mail_seal(&ctx->id, ctx->user, cv->fold, cv->mail_key, m->id, m->ts, m->text,
                              m->len, &box, &n);
            if (!e) {
                e = ctl_mail_put(ctx->ctl, cv->name, m->id, box, n);
                free(box);
            }
            if (e) {
                ev_error(ctx, "mailbox", "cannot leave message #%llu for %s at the tracker (%s); "
                         "it stays in your outbox", (unsigned long long)m->seq, cv->name,
                         uv_strerror(e));
                continue;
            }
            m->mailing = 1;
            ch->mail_puts++;
        }
    }
}

static void on_mail_retry(uv_timer_t *t) { pump(t->data); }

/* An answer to one of our puts (stored or refused) frees its place. */
static void put_answered(chat *ch) {
    if (ch->mail_puts)
        ch->mail_puts--;
    pump(ch);
}

static void on_mail_key(void *data, int status, const ctl_user *u) {
    conv *cv = data;
    chat *ch = cv->ch;
    peer_ctx *ctx = ch->ctx;
    cv->keying = 0;
    if (status) {
        ev_error(ctx, "mailbox", "cannot leave your messages for %s at the tracker: %s; they stay "
                 "in your outbox", cv->name,
                 status == UV_ENOENT ? "the tracker knows no such user" : uv_strerror(status));
        return;
    }
    unsigned char pinned[IDENT_PK];
    if (pins_get(ctx->pins, cv->fold, pinned) == 0 && memcmp(pinned, u->key, IDENT_PK) != 0) {
        ev_error(ctx, "key_changed", "the tracker's key for %s is not the one you pinned, so your "
                 "messages were not left at the tracker; compare fingerprints with /whois %s",
                 cv->name, cv->name);
        return;
    }
    memcpy(cv->mail_key, u->key, IDENT_PK);
    cv->have_mail_key = 1;
    for (outmsg *m = cv->q; m; m = m->next)
        if (m->committed && !m->stored && !m->mailing && !m->refused)
            m->to_mail = 1;
    pump(ch);
}

int chat_mail_leave(chat *ch, conv *cv, const char *reason) {
    peer_ctx *ctx = ch->ctx;
    if (!ctx->hist || !ctl_mailbox(ctx->ctl))
        return 0;
    /* A dial started for a later message can fail while the earlier ones
     * are already on their way to the mailbox (the key lookup or the puts
     * are out, and take the later ones too): that is not news either. */
    if (cv->keying)
        return 1;
    int todo = 0, going = 0;
    for (outmsg *m = cv->q; m; m = m->next) {
        todo |= m->committed && !m->stored && !m->mailing && !m->refused && !m->to_mail;
        going |= m->mailing || m->to_mail;
    }
    if (!todo)
        return going;
    log_info(&ctx->lg, "cannot reach %s (%s): leaving its messages at the tracker", cv->name,
             reason);
    /* The key is looked up each time: it may have changed (and the pin
     * check with it) since the last time. */
    if (ctl_lookup(ctx->ctl, cv->name, 0, on_mail_key, cv))
        return 0;
    cv->keying = 1;
    return 1;
}

/* Registered (again): puts that were out on a lost connection get no
 * answer, and a new tracker connection may take what the old refused. */
void chat_mail_tracker_ready(chat *ch) {
    ch->mail_puts = 0;
    for (conv *cv = ch->convs; cv; cv = cv->next)
        for (outmsg *m = cv->q; m; m = m->next)
            m->mailing = m->refused = m->to_mail = 0;
}

/* ---- what the tracker says ---- */

static conv *conv_named(chat *ch, const char *name) {
    char fold[NAME_BUFLEN];
    return name_fold(name, strlen(name), fold) ? NULL : chat_conv_find(ch, fold);
}

/* A tracker may push mailbox frames to a peer that never asked (a hostile
 * one, or --no-history): without a history there is nowhere to keep them. */
/* As chat_peer_online: news for a chat that is gone (NULL) is dropped. */
static int mailbox_on(chat *ch, const char *what) {
    if (!ch)
        return 0;
    if (ch->ctx->hist)
        return 1;
    log_info(&ch->ctx->lg, "tracker: dropping %s: this peer keeps no history (--no-history)", what);
    return 0;
}

void chat_mail_stored(chat *ch, const char *to, uint64_t id) {
    if (!mailbox_on(ch, "a mail_stored"))
        return;
    conv *cv = conv_named(ch, to);
    outmsg *m = find_out(cv, id);
    put_answered(ch);
    if (!m)
        return; /* delivered meanwhile, or not ours to number */
    m->mailing = 0;
    if (m->stored)
        return;
    m->stored = 1;
    hist_set_state(ch->ctx->hist, id, HIST_STORED);
    ev_stored(ch->ctx, cv->name, m->seq);
}

void chat_mail_refused(chat *ch, uint64_t id, const char *code, const char *text) {
    if (!ch || !ch->ctx->hist)
        return; /* an error with an id nobody asked for: nothing to say */
    put_answered(ch);
    for (conv *cv = ch->convs; cv; cv = cv->next) {
        outmsg *m = find_out(cv, id);
        if (!m)
            continue;
        m->mailing = 0;
        if (strcmp(code, "rate_limited") == 0) {
            /* The connection's frame rate, not --mail-rate: slow down and
             * put it again (the window holds the rest back meanwhile). */
            m->to_mail = 1;
            if (!uv_is_active((uv_handle_t *)ch->mail_retry))
                uv_timer_start(ch->mail_retry, on_mail_retry, MAIL_RETRY_MS, 0);
            return;
        }
        m->refused = 1; /* not offered again: it waits for a link */
        ev_error(ch->ctx, code, "the tracker did not take message #%llu for %s (%s); it stays in "
                 "your outbox and goes out when %s is online", (unsigned long long)m->seq,
                 cv->name, text[0] ? text : code, cv->name);
        /* The user may be online by now: then a link takes it at once. */
        if (!cv->link && !cv->dial)
            chat_start_dial(ch, cv);
        return;
    }
}

void chat_mail_receipt(chat *ch, uint64_t rid, const char *to, uint64_t id, int status) {
    peer_ctx *ctx = ch->ctx;
    if (!mailbox_on(ch, "a receipt"))
        return;
    if (status == CTL_RECEIPT_UNKNOWN) { /* a newer tracker's news: the message stays */
        ctl_receipt_ack(ctx->ctl, rid);
        return;
    }
    conv *cv = conv_named(ch, to);
    outmsg *m = cv ? chat_out_take(cv, id) : NULL;
    int state = status == CTL_RECEIPT_DELIVERED ? HIST_DELIVERED : HIST_EXPIRED;
    hist_set_state(ctx->hist, id, state);
    if (m && status == CTL_RECEIPT_DELIVERED)
        ev_delivered(ctx, cv->name, m->seq);
    else if (m && status == CTL_RECEIPT_EXPIRED)
        ev_error(ctx, "expired", "message #%llu to %s expired undelivered at the tracker: %s did "
                 "not come online in time; send it again if it still matters",
                 (unsigned long long)m->seq, cv->name, cv->name);
    else if (m)
        ev_error(ctx, "refused", "%s could not verify message #%llu you left at the tracker, so "
                 "it was not shown; send it again", cv->name, (unsigned long long)m->seq);
    free(m);
    /* Recorded in this pass's batch; if we crash before it commits, the
     * message is resent and the recipient drops the repeat. */
    ctl_receipt_ack(ctx->ctl, rid);
}

void chat_mail_letter(chat *ch, uint64_t mid, const char *from, const unsigned char key[IDENT_PK],
                      int64_t ts, const unsigned char *box, size_t n) {
    peer_ctx *ctx = ch->ctx;
    if (!mailbox_on(ch, "a mail push"))
        return;
    unsigned char *work = malloc(n ? n : 1);
    if (!work) {
        ev_error(ctx, "out_of_memory", "out of memory reading a message %s left; it comes again "
                 "at the next start", from);
        return;
    }
    mail_letter L;
    const char *why = NULL;
    char fold[NAME_BUFLEN], lfold[NAME_BUFLEN];
    unsigned char pinned[IDENT_PK];
    if (mail_open(&ctx->id, ctx->user_fold, box, n, work, &L, &why) == 0) {
        if (name_fold(from, strlen(from), fold) || name_fold(L.from, strlen(L.from), lfold) ||
            strcmp(fold, lfold) != 0)
            why = "it names another sender than the one who left it";
        else if (memcmp(L.fkey, key, IDENT_PK) != 0)
            why = "it is signed by a key that is not the one the name is registered with";
        else if (pins_get(ctx->pins, fold, pinned) == 0 && memcmp(pinned, L.fkey, IDENT_PK) != 0)
            why = "it is signed by a key that is not the one you pinned for this name";
    }
    if (why) {
        ev_error(ctx, "bad_mail", "refused a message left at the tracker by %s: %s; it was not "
                 "shown", from, why);
        ctl_mail_ack(ctx->ctl, mid, 0);
        free(work);
        return;
    }
    conv *cv = chat_conv_get(ch, from);
    int e = cv ? add_in(ch, cv, from, L.fkey, L.id, L.ts, L.text, L.len, mid) : UV_ENOMEM;
    if (e)
        ev_error(ctx, "history", "cannot save the message %s left in %s/history.db (%s); it "
                 "comes again at the next start", from, ctx->home, uv_strerror(e));
    free(work);
}

/* ---- /history ---- */

typedef struct rows {
    ev_hist_row *v;
    size_t n, cap;
    int failed;
} rows;

static const char *state_name(int state) {
    switch (state) {
    case HIST_QUEUED: return "sending";
    case HIST_STORED: return "stored";
    case HIST_DELIVERED: return "delivered";
    default: return "expired";
    }
}

static int collect_row(const hist_row *r, void *arg) {
    rows *rs = arg;
    ev_hist_row *v = grow(rs->v, &rs->cap, rs->n + 1, sizeof *v, 32);
    if (!v) {
        rs->failed = 1;
        return 1;
    }
    rs->v = v;
    char *text = malloc(r->len ? r->len : 1);
    if (!text) {
        rs->failed = 1;
        return 1;
    }
    memcpy(text, r->text, r->len);
    rs->v[rs->n++] = (ev_hist_row){r->out, r->seq, r->ts, r->out ? state_name(r->state) : NULL,
                                   text, r->len};
    return 0;
}

void chat_history(chat *ch, const char *name, size_t n) {
    peer_ctx *ctx = ch->ctx;
    char fold[NAME_BUFLEN];
    const char *why;
    if (name_check(name, strlen(name), &why)) {
        ev_error(ctx, "bad_name", "invalid user name \"%s\": %s", name, why);
        return;
    }
    if (!ctx->hist) {
        ev_error(ctx, "no_history", "no history: this peer runs with --no-history");
        return;
    }
    name_fold(name, strlen(name), fold);
    rows rs = {0};
    int e = hist_last(ctx->hist, fold, n, collect_row, &rs);
    if (e || rs.failed)
        ev_error(ctx, "history", "cannot read the history with %s from %s/history.db: %s", name,
                 ctx->home, uv_strerror(e ? e : UV_ENOMEM));
    else
        ev_history(ctx, name, rs.v, rs.n);
    for (size_t i = 0; i < rs.n; i++)
        free((char *)rs.v[i].text);
    free(rs.v);
}
