/* chat: conversations on top of links.  A conversation outlives its links:
 * a lost link leaves the queue in place, and the next link to that peer
 * (dialed or accepted) gets every unacknowledged message again, in order;
 * the receiver drops what it has (history.db, or the seen set with
 * --no-history), so the resend is invisible.  The same carries a relayed
 * chat over to a direct link when one comes up (chat_upgrade.c): the
 * relay is retired, not closed, so the other side never takes it for a
 * lost link.  What outlives the process
 * (history, outbox, mailbox) is chat_mail.c's. */
#include "chat_impl.h"

#include "control.h"
#include "events.h"
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const link_handler chat_handler;

/* A message typed while its conversation has no link (after /bye, or to
 * someone not dialed yet) is held a moment before it is shown as sent: the
 * dial it starts usually brings the link up within that time, and the
 * conversation then reads "connected", then the message, not the other
 * way round.  It is shown when the link is up, when the dial fails, or
 * after CHAT_HOLD_MS, whichever comes first; it is committed and queued
 * all the same. */
#define CHAT_HOLD_MS 500
#define CHAT_RETIRE_MS 3000 /* a replaced relay lingers this long (link_retire) */

static void show_held(chat *ch, conv *cv) {
    for (outmsg *m = cv->q; m; m = m->next) {
        if (m->held) {
            m->held = 0;
            ev_sent(ch->ctx, cv->name, m->seq, m->ts, m->text, m->len);
        }
    }
}

static void on_hold(uv_timer_t *h) {
    chat *ch = h->data;
    for (conv *cv = ch->convs; cv; cv = cv->next)
        show_held(ch, cv);
}

/* ---- conversations ---- */

conv *chat_conv_find(chat *ch, const char *fold) {
    for (conv *cv = ch->convs; cv; cv = cv->next)
        if (strcmp(cv->fold, fold) == 0)
            return cv;
    return NULL;
}

conv *chat_conv_get(chat *ch, const char *name) {
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        return NULL;
    conv *cv = chat_conv_find(ch, fold);
    if (cv)
        return cv;
    cv = calloc(1, sizeof *cv);
    if (cv && seen_open(&cv->shown)) {
        free(cv);
        cv = NULL;
    }
    if (!cv) {
        ev_error(ch->ctx, "out_of_memory", "out of memory; close some conversations");
        return NULL;
    }
    cv->ch = ch;
    snprintf(cv->name, sizeof cv->name, "%s", name);
    strcpy(cv->fold, fold);
    cv->qtail = &cv->q;
    cv->next = ch->convs;
    ch->convs = cv;
    chat_mail_load(ch, cv);
    return cv;
}

static void drop_link(chatlink *l) {
    link_set_handler(l, NULL, NULL);
    link_close(l);
}

/* Ends a conversation.  ended says why, for the report of messages never
 * acknowledged; NULL: report nothing. */
static void conv_free(chat *ch, conv *cv, const char *ended) {
    for (conv **p = &ch->convs; *p; p = &(*p)->next) {
        if (*p == cv) {
            *p = cv->next;
            break;
        }
    }
    if (ch->current == cv)
        ch->current = NULL;
    if (ended)
        show_held(ch, cv); /* what the report counts was shown */
    if (cv->qn && ended && ch->durable)
        ev_error(ch->ctx, "undelivered", "%zu message%s to %s %s not delivered yet (%s); %s in "
                 "your outbox and go%s out with the next link to %s", cv->qn,
                 cv->qn == 1 ? "" : "s", cv->name, cv->qn == 1 ? "is" : "are", ended,
                 cv->qn == 1 ? "it stays" : "they stay", cv->qn == 1 ? "es" : "", cv->name);
    else if (cv->qn && ended)
        ev_error(ch->ctx, "undelivered", "%zu message%s to %s %s not delivered (%s)", cv->qn,
                 cv->qn == 1 ? "" : "s", cv->name, cv->qn == 1 ? "was" : "were", ended);
    ctl_cancel(ch->ctx->ctl, cv); /* the mailbox's key lookup */
    while (cv->q) {
        outmsg *m = cv->q;
        cv->q = m->next;
        free(m);
    }
    dial_cancel(cv->dial);
    dial_cancel(cv->upgrade);
    if (cv->link)
        drop_link(cv->link);
    seen_close(cv->shown);
    free(cv);
}

/* A conversation we said bye to gets a new life: let the old link finish
 * closing on its own. */
static void revive(conv *cv) {
    if (!cv->said_bye)
        return;
    cv->said_bye = 0;
    if (cv->link)
        drop_link(cv->link);
    cv->link = NULL;
}

static void set_current(chat *ch, conv *cv) {
    ch->current = cv;
    ev_current(ch->ctx, cv->name);
}

/* Only committed messages: the others go out from their commit. */
static void flush_queue(conv *cv) {
    for (outmsg *m = cv->q; m && cv->link; m = m->next)
        if (m->committed)
            link_send_msg(cv->link, m->id, m->ts, m->text, m->len);
}

/* ---- links ---- */

static void on_dialed(void *data, chatlink *l, int status, const char *reason);

void chat_start_dial(chat *ch, conv *cv) {
    if (cv->dial || (cv->link && link_is_up(cv->link)))
        return;
    int r = dial_start(ch->ctx, cv->name, on_dialed, cv, &cv->dial);
    if (r)
        ev_unreachable(ch->ctx, cv->name, uv_strerror(r));
}

/* With two links to one peer, both sides keep a direct one over a relayed
 * one, else the one dialed by the peer whose folded name sorts first
 * (PROTOCOL.md); two links in the same direction mean the older one is
 * stale. */
static int keep_new(chat *ch, chatlink *old, chatlink *nl) {
    if (link_relayed(old) != link_relayed(nl))
        return !link_relayed(nl);
    if (link_dialed(old) == link_dialed(nl))
        return 1;
    int i_sort_first = strcmp(ch->ctx->user_fold, link_fold(nl)) < 0;
    return link_dialed(nl) == i_sort_first;
}

/* For the connected event: an accepted link is the other side's dial, its
 * dial back when ours asked for one, or its punch when it comes from the
 * address ours punches at. */
static const char *how_of(const conv *cv, chatlink *l, int incoming) {
    switch (link_how(l)) {
    case LINK_HOW_RELAYED:
        return "relay";
    case LINK_HOW_PUNCHED:
        return "punched";
    case LINK_HOW_REVERSE:
        return "reverse";
    case LINK_HOW_ACCEPTED:
        if (cv->dial && dial_punches_to(cv->dial, link_peer_sa(l)))
            return "punched";
        return cv->dial && dial_asked_reverse(cv->dial) ? "reverse" : "dialed";
    default:
        return "dialed";
    }
}

/* incoming: the other side started it (accepted, a relay it asked for, or
 * our reverse dial answering its request). */
void chat_attach(chat *ch, chatlink *l, int incoming) {
    conv *cv = chat_conv_get(ch, link_name(l));
    if (!cv) {
        drop_link(l);
        return;
    }
    revive(cv);
    cv->redial = 0;
    link_set_handler(l, &chat_handler, ch);
    if (cv->link && cv->link != l) {
        if (!keep_new(ch, cv->link, l)) {
            drop_link(l);
            return;
        }
        chatlink *old = cv->link;
        cv->link = l;
        if (link_relayed(old) && !link_relayed(l)) {
            /* The upgrade: what the relay still carries is not acked,
             * so it comes again, in order, on this link. */
            link_retire(old, CHAT_RETIRE_MS);
            log_info(&ch->ctx->lg, "chat with %s moved from the relay to a direct link (%s)",
                     cv->name, link_addr(l));
            ev_connected(ch->ctx, cv->name, EV_PATH_DIRECT, how_of(cv, l, incoming));
        } else {
            drop_link(old);
        }
        chat_upgrade_linked(ch, cv);
        show_held(ch, cv);
        flush_queue(cv);
        return;
    }
    cv->link = l;
    snprintf(cv->name, sizeof cv->name, "%s", link_name(l));
    ev_connected(ch->ctx, cv->name, link_relayed(l) ? EV_PATH_RELAY : EV_PATH_DIRECT,
                 how_of(cv, l, incoming));
    chat_upgrade_linked(ch, cv);
    show_held(ch, cv); /* after "connected" */
    if (!ch->current && incoming) /* /dial set it already; /msg must not */
        set_current(ch, cv);
    /* If the other side sorts first, its link is the keeper: our own dial
     * would only be closed again.  Otherwise our dial may still win, but it
     * must not go on to a relay. */
    if (cv->dial && !link_dialed(l) && strcmp(link_fold(l), ch->ctx->user_fold) < 0) {
        dial_cancel(cv->dial);
        cv->dial = NULL;
    } else if (cv->dial && incoming) {
        dial_inbound(cv->dial);
    }
    flush_queue(cv);
}

/* A user the tracker does not know cannot ever get these messages: they
 * are given up now, said once, rather than kept in the outbox for good. */
static void give_up(chat *ch, conv *cv) {
    size_t n = cv->qn;
    if (n)
        ev_error(ch->ctx, "unknown_user", "no user %s; %zu message%s to %s not sent", cv->name, n,
                 n == 1 ? "" : "s", cv->name);
    else
        ev_error(ch->ctx, "unknown_user", "no user %s", cv->name);
    while (cv->q) {
        outmsg *m = chat_out_take(cv, cv->q->id);
        if (ch->ctx->hist && m->committed)
            hist_set_state(ch->ctx->hist, m->id, HIST_EXPIRED);
        free(m);
    }
    if (!cv->link)
        conv_free(ch, cv, NULL);
}

static void on_dialed(void *data, chatlink *l, int status, const char *reason) {
    conv *cv = data;
    chat *ch = cv->ch;
    cv->dial = NULL;
    if (l) {
        chat_attach(ch, l, 0);
        return;
    }
    if ((cv->link && link_is_up(cv->link)) || status == UV_EALREADY)
        return; /* the other side reached us meanwhile (that link may have
                 * gone again since: its close said so, and dialed again) */
    if (status == UV_ENOENT)
        return give_up(ch, cv);
    if (cv->want_current) { /* the tracker could not say: current all the same */
        cv->want_current = 0;
        set_current(ch, cv);
    }
    show_held(ch, cv); /* before what becomes of them */
    /* The mailbox is for a user who cannot be reached: not for one who
     * answered and failed authentication (a changed key). */
    if ((status == UV_EHOSTDOWN || status == UV_EHOSTUNREACH) && chat_mail_leave(ch, cv, reason))
        return; /* "stored NAME #N" tells the user */
    ev_unreachable(ch->ctx, cv->name, reason);
}

static conv *conv_of(chat *ch, chatlink *l) {
    conv *cv = chat_conv_find(ch, link_fold(l));
    return cv && cv->link == l ? cv : NULL;
}


static void queue_msg(chat *ch, conv *cv, const char *text, size_t len);

void chat_in_show(chat *ch, conv *cv, const char *name, uint64_t id, int64_t ts,
                  const char *text, size_t len) {
    ev_msg(ch->ctx, name, id, ts, text, len);
    if (ch->ctx->echo && cv)
        queue_msg(ch, cv, text, len);
}

static void on_link_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    if (ch->ctx->hist) {
        /* Acked once on disk.  On a link that is not (or no longer) the
         * conversation's, not at all: the sender resends it on the one
         * that is. */
        if (cv)
            chat_mail_add_in(ch, cv, l, id, ts, text, len);
        return;
    }
    link_send_ack(l, id); /* duplicates too: the sender may have missed our ack */
    if (!cv || seen_check(cv->shown, id))
        return;
    chat_in_show(ch, cv, cv->name, id, ts, text, len);
}

outmsg *chat_out_take(conv *cv, uint64_t id) {
    for (outmsg **p = &cv->q; *p; p = &(*p)->next) {
        outmsg *m = *p;
        if (m->id != id)
            continue;
        *p = m->next;
        if (cv->qtail == &m->next)
            cv->qtail = p;
        cv->qn--;
        return m;
    }
    return NULL;
}

static void on_link_ack(chatlink *l, uint64_t id, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    outmsg *m = cv ? chat_out_take(cv, id) : NULL;
    if (!m)
        return; /* an ack for a resent message that was acked already */
    if (ch->ctx->hist)
        hist_set_state(ch->ctx->hist, id, HIST_DELIVERED);
    ev_delivered(ch->ctx, cv->name, m->seq);
    free(m);
}

static void on_link_bye(chatlink *l, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    if (!cv) {
        drop_link(l);
        return;
    }
    ev_closed(ch->ctx, cv->name, EV_CLOSED_BYE);
    conv_free(ch, cv, "the other side said bye");
}

static void on_link_closed(chatlink *l, int reason, const char *why, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    if (!cv)
        return; /* replaced by another link to the same peer */
    cv->link = NULL;
    if (cv->said_bye) {
        conv_free(ch, cv, "you said bye");
        return;
    }
    log_info(&ch->ctx->lg, "chat link with %s closed: %s", cv->name,
             reason ? uv_strerror(reason) : "closed");
    ev_closed(ch->ctx, cv->name, EV_CLOSED_LOST);
    /* Never silent about what the other side may not have got. */
    if (cv->qn)
        ev_error(ch->ctx, "undelivered", "%zu message%s to %s not delivered (connection lost); %s sent again "
                 "with the next link to %s (/dial %s)", cv->qn, cv->qn == 1 ? "" : "s",
                 cv->name, cv->qn == 1 ? "it is" : "they are", cv->name, cv->name);
    /* A relay dies with its tracker.  The side with something to deliver,
     * or the one that set the link up, sets it up again (now if the
     * tracker is still there, else once we are registered again); the
     * other side answers.  A direct link that dies with messages on it is
     * dialed again too: the ladder finds what works now (the relay, if
     * the direct path is gone; the upgrade moves back later).  Resent
     * messages are deduplicated. */
    if (cv->qn || (link_relayed(l) && link_dialed(l))) {
        cv->redial = 1;
        if (ctl_ready(ch->ctx->ctl))
            chat_start_dial(ch, cv);
    }
}

/* 1 when cv holds a committed message the mailbox does not: worth a dial
 * of its own (the mailbox delivers the others). */
static int has_unstored(const conv *cv) {
    for (const outmsg *m = cv->q; m; m = m->next)
        if (m->committed && !m->stored)
            return 1;
    return 0;
}

void chat_tracker_ready(chat *ch) {
    if (ch) {
        chat_mail_tracker_ready(ch);
        chat_upgrade_soon(ch, NULL);
    }
    for (conv *cv = ch ? ch->convs : NULL; cv; cv = cv->next)
        if (!cv->link && (cv->redial || has_unstored(cv)))
            chat_start_dial(ch, cv);
}

/* Someone we owe messages (or a relayed chat that dropped) is back:
 * deliver, nobody has to type anything. */
void chat_peer_online(chat *ch, const char *name) {
    char fold[NAME_BUFLEN];
    if (!ch || name_fold(name, strlen(name), fold))
        return;
    conv *cv = chat_conv_find(ch, fold);
    if (cv && !cv->link && (cv->redial || has_unstored(cv)))
        chat_start_dial(ch, cv);
    if (cv)
        chat_upgrade_soon(ch, cv);
}

void chat_connect_failed(chat *ch, const char *from, uint64_t tag, const char *why) {
    char fold[NAME_BUFLEN];
    if (!ch || name_fold(from, strlen(from), fold))
        return;
    conv *cv = chat_conv_find(ch, fold);
    log_info(&ch->ctx->lg, "%s could not dial us back: %s", from, why);
    if (cv) { /* the tag says which of the two asked */
        dial_reverse_failed(cv->dial, tag, why);
        dial_reverse_failed(cv->upgrade, tag, why);
    }
}

static const link_handler chat_handler = {
    .msg = on_link_msg, .ack = on_link_ack, .bye = on_link_bye, .closed = on_link_closed,
};

void chat_incoming(chat *ch, chatlink *l) { chat_attach(ch, l, 1); }

int chat_linked(const chat *ch, const char *fold) {
    const conv *cv = chat_conv_find((chat *)ch, fold);
    return cv && cv->link && link_is_up(cv->link) && !link_relayed(cv->link);
}

/* ---- commands ---- */

static int check_peer_name(chat *ch, const char *name) {
    const char *why;
    char fold[NAME_BUFLEN];
    if (name_check(name, strlen(name), &why)) {
        ev_error(ch->ctx, "bad_name", "invalid user name \"%s\": %s", name, why);
        return -1;
    }
    name_fold(name, strlen(name), fold);
    if (strcmp(fold, ch->ctx->user_fold) == 0) {
        ev_error(ch->ctx, "self", "%s is you; name someone else", name);
        return -1;
    }
    return 0;
}

static int check_text(chat *ch, size_t len) {
    if (len <= CHAT_TEXT_MAX)
        return 0;
    ev_error(ch->ctx, "too_long", "message too long (%zu bytes; the limit is %d); split it into "
             "shorter lines", len, CHAT_TEXT_MAX);
    return -1;
}

outmsg *chat_out_new(uint64_t id, uint64_t seq, int64_t ts, const char *text, size_t len) {
    outmsg *m = calloc(1, sizeof *m + len);
    if (!m)
        return NULL;
    m->id = id;
    m->seq = seq;
    m->ts = ts;
    m->len = len;
    memcpy(m->text, text, len);
    return m;
}

void chat_enqueue(conv *cv, outmsg *m) {
    m->next = NULL;
    *cv->qtail = m;
    cv->qtail = &m->next;
    cv->qn++;
}

void chat_out_ready(chat *ch, conv *cv, outmsg *m) {
    m->committed = 1;
    if (cv->link && link_is_up(cv->link)) {
        ev_sent(ch->ctx, cv->name, m->seq, m->ts, m->text, m->len);
        link_send_msg(cv->link, m->id, m->ts, m->text, m->len);
        return;
    }
    chat_start_dial(ch, cv);
    /* Held while the dial runs (not while a mailbox lookup is out: that
     * may store the message, which is shown first). */
    if (cv->dial && !cv->keying && ch->hold) {
        m->held = 1;
        if (!uv_is_active((uv_handle_t *)ch->hold))
            uv_timer_start(ch->hold, on_hold, CHAT_HOLD_MS, 0);
        return;
    }
    ev_sent(ch->ctx, cv->name, m->seq, m->ts, m->text, m->len);
}

static void queue_msg(chat *ch, conv *cv, const char *text, size_t len) {
    revive(cv);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    outmsg *m = chat_out_new(ch->ctx->id_base + ++ch->ctx->id_seq, cv->seq + 1, ts, text, len);
    if (!m) {
        ev_error(ch->ctx, "out_of_memory", "out of memory; message to %s not sent", cv->name);
        return;
    }
    cv->seq++;
    chat_enqueue(cv, m);
    if (!ch->ctx->hist)
        chat_out_ready(ch, cv, m);
    else if (chat_mail_add_out(ch, cv, m))
        free(chat_out_take(cv, m->id));
}

/* /dial makes the user current only once the tracker knows the name, so
 * an unknown one is an error at once and the current conversation stays;
 * while the tracker cannot answer, it becomes current anyway (lines typed
 * then wait for the link). */
static void on_dial_found(void *data) {
    conv *cv = data;
    if (cv->want_current) {
        cv->want_current = 0;
        set_current(cv->ch, cv);
    }
}

void chat_dial(chat *ch, const char *name) {
    if (check_peer_name(ch, name))
        return;
    conv *cv = chat_conv_get(ch, name);
    if (!cv)
        return;
    revive(cv);
    if ((cv->link && link_is_up(cv->link)) || cv->dial) {
        set_current(ch, cv);
        return;
    }
    chat_start_dial(ch, cv);
    if (!cv->dial) {
        set_current(ch, cv); /* the dial could not start: said why */
        return;
    }
    cv->want_current = 1;
    dial_on_found(cv->dial, on_dial_found);
}

void chat_send_to(chat *ch, const char *name, const char *text, size_t len) {
    if (check_peer_name(ch, name) || check_text(ch, len))
        return;
    conv *cv = chat_conv_get(ch, name);
    if (cv)
        queue_msg(ch, cv, text, len);
}

void chat_send_current(chat *ch, const char *text, size_t len) {
    if (!ch->current) {
        ev_error(ch->ctx, "no_conversation", "no current conversation; use /dial NAME or /msg NAME TEXT");
        return;
    }
    if (check_text(ch, len) == 0)
        queue_msg(ch, ch->current, text, len);
}

void chat_bye(chat *ch) {
    conv *cv = ch->current;
    if (!cv) {
        ev_error(ch->ctx, "no_conversation", "no current conversation to end; /dial NAME starts one");
        return;
    }
    ev_closed(ch->ctx, cv->name, EV_CLOSED_YOU_BYE);
    if (cv->link && link_is_up(cv->link)) {
        link_send_bye(cv->link);
        cv->said_bye = 1;
        ch->current = NULL;
        dial_cancel(cv->dial);
        cv->dial = NULL;
        return; /* acks may still arrive; the link's close ends it */
    }
    conv_free(ch, cv, "you said bye");
}

void chat_leave(chat *ch) {
    for (conv *cv = ch ? ch->convs : NULL; cv; cv = cv->next) {
        if (cv->link && link_is_up(cv->link) && !cv->said_bye) {
            link_send_bye(cv->link);
            cv->said_bye = 1;
        }
    }
}

int chat_open(peer_ctx *ctx, chat **out) {
    chat *ch = calloc(1, sizeof *ch);
    if (!ch)
        return UV_ENOMEM;
    ch->ctx = ctx;
    ch->durable = ctx->hist != NULL;
    ch->hold = malloc(sizeof *ch->hold);
    ch->mail_retry = malloc(sizeof *ch->mail_retry);
    ch->upgrade = malloc(sizeof *ch->upgrade);
    if (!ch->hold || !ch->mail_retry || !ch->upgrade) {
        free(ch->hold);
        free(ch->mail_retry);
        free(ch->upgrade);
        free(ch);
        return UV_ENOMEM;
    }
    uv_timer_init(ctx->loop, ch->hold); /* cannot fail for a timer */
    uv_timer_init(ctx->loop, ch->mail_retry);
    uv_timer_init(ctx->loop, ch->upgrade);
    ch->hold->data = ch->mail_retry->data = ch->upgrade->data = ch;
    *out = ch;
    chat_mail_open_outbox(ch);
    return 0;
}

size_t chat_unsent(const chat *ch) {
    size_t n = 0;
    for (const conv *cv = ch ? ch->convs : NULL; cv; cv = cv->next)
        if (cv->dial || (cv->link && (link_is_up(cv->link) || cv->said_bye)))
            n += cv->qn;
    return n;
}

static void free_handle(uv_handle_t *h) { free(h); }

void chat_close(chat *ch) {
    if (!ch)
        return;
    while (ch->convs)
        conv_free(ch, ch->convs, "quitting");
    /* Both outlive ch until the loop closes them. */
    uv_close((uv_handle_t *)ch->hold, free_handle);
    uv_close((uv_handle_t *)ch->mail_retry, free_handle);
    uv_close((uv_handle_t *)ch->upgrade, free_handle);
    free(ch);
}
