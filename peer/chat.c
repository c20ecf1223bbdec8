/* chat: conversations on top of links.  A conversation outlives its links:
 * a lost link leaves the queue in place, and the next link to that peer
 * (dialed or accepted) gets every unacknowledged message again, in order;
 * the receiver's dedupe set makes the resend invisible. */
#include "chat.h"

#include "dial.h"
#include "link.h"
#include "name.h"
#include "ui_line.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct outmsg {
    struct outmsg *next;
    uint64_t id;  /* on the wire */
    uint64_t seq; /* shown in "delivered NAME #seq" */
    int64_t ts;
    size_t len;
    char text[];
} outmsg;

typedef struct conv {
    struct conv *next;
    chat *ch;
    char name[NAME_BUFLEN]; /* as the peer spells it (or as typed, until a link is up) */
    char fold[NAME_BUFLEN];
    chatlink *link;         /* the one attached link, up (or saying bye) */
    dialer *dial;
    int said_bye;           /* we sent bye on link; the conversation ends when it closes */
    outmsg *q, **qtail;     /* unacknowledged, in send order */
    size_t qn;
    uint64_t seq;
    uint64_t seen[CHAT_SEEN_IDS];
    size_t seen_n, seen_pos;
} conv;

typedef struct pending {
    struct pending *next;
    chatlink *link;
} pending;

struct chat {
    peer_ctx *ctx;
    conv *convs;
    conv *current;
    pending *handshaking; /* accepted links not up yet */
};

static const link_handler chat_handler;

/* ---- conversations ---- */

static conv *conv_find(chat *ch, const char *fold) {
    for (conv *cv = ch->convs; cv; cv = cv->next)
        if (strcmp(cv->fold, fold) == 0)
            return cv;
    return NULL;
}

static conv *conv_get(chat *ch, const char *name) {
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        return NULL;
    conv *cv = conv_find(ch, fold);
    if (cv)
        return cv;
    cv = calloc(1, sizeof *cv);
    if (!cv) {
        ui_event(ch->ctx->ui, "error: out of memory; close some conversations");
        return NULL;
    }
    cv->ch = ch;
    snprintf(cv->name, sizeof cv->name, "%s", name);
    strcpy(cv->fold, fold);
    cv->qtail = &cv->q;
    cv->next = ch->convs;
    ch->convs = cv;
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
    if (cv->qn && ended)
        ui_event(ch->ctx->ui, "error: %zu message%s to %s %s not delivered (%s)", cv->qn,
                 cv->qn == 1 ? "" : "s", cv->name, cv->qn == 1 ? "was" : "were", ended);
    while (cv->q) {
        outmsg *m = cv->q;
        cv->q = m->next;
        free(m);
    }
    dial_cancel(cv->dial);
    if (cv->link)
        drop_link(cv->link);
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
    ui_event(ch->ctx->ui, "current %s", cv->name);
}

static void flush_queue(conv *cv) {
    for (outmsg *m = cv->q; m && cv->link; m = m->next)
        link_send_msg(cv->link, m->id, m->ts, m->text, m->len);
}

/* ---- links ---- */

static void on_dialed(void *data, chatlink *l, const char *reason);

static void start_dial(chat *ch, conv *cv) {
    if (cv->dial || (cv->link && link_is_up(cv->link)))
        return;
    int r = dial_start(ch->ctx, cv->name, on_dialed, cv, &cv->dial);
    if (r)
        ui_event(ch->ctx->ui, "error: cannot reach %s: %s", cv->name, uv_strerror(r));
}

/* With two links to one peer, both sides keep the one dialed by the peer
 * whose folded name sorts first (PROTOCOL.md); two links in the same
 * direction mean the older one is stale. */
static int keep_new(chat *ch, chatlink *old, chatlink *nl) {
    if (link_dialed(old) == link_dialed(nl))
        return 1;
    int i_sort_first = strcmp(ch->ctx->user_fold, link_fold(nl)) < 0;
    return link_dialed(nl) == i_sort_first;
}

/* A link is up (dialed or accepted): attach it to its conversation. */
static void attach(chat *ch, chatlink *l) {
    conv *cv = conv_get(ch, link_name(l));
    if (!cv) {
        drop_link(l);
        return;
    }
    revive(cv);
    link_set_handler(l, &chat_handler, ch);
    if (cv->link && cv->link != l) {
        if (!keep_new(ch, cv->link, l)) {
            drop_link(l);
            return;
        }
        drop_link(cv->link);
        cv->link = l;
        flush_queue(cv);
        return;
    }
    cv->link = l;
    snprintf(cv->name, sizeof cv->name, "%s", link_name(l));
    ui_event(ch->ctx->ui, "connected %s direct", cv->name);
    if (!ch->current && !link_dialed(l)) /* /dial set it already; /msg must not */
        set_current(ch, cv);
    /* If the other side sorts first, its link is the keeper: our own dial
     * would only be closed again. */
    if (cv->dial && !link_dialed(l) && strcmp(link_fold(l), ch->ctx->user_fold) < 0) {
        dial_cancel(cv->dial);
        cv->dial = NULL;
    }
    flush_queue(cv);
}

static void on_dialed(void *data, chatlink *l, const char *reason) {
    conv *cv = data;
    chat *ch = cv->ch;
    cv->dial = NULL;
    if (l) {
        attach(ch, l);
        return;
    }
    if (cv->link && link_is_up(cv->link))
        return; /* the other side reached us meanwhile */
    ui_event(ch->ctx->ui, "error: cannot reach %s: %s", cv->name, reason);
}

static void forget_pending(chat *ch, chatlink *l) {
    for (pending **p = &ch->handshaking; *p; p = &(*p)->next) {
        if ((*p)->link == l) {
            pending *e = *p;
            *p = e->next;
            free(e);
            return;
        }
    }
}

static conv *conv_of(chat *ch, chatlink *l) {
    conv *cv = conv_find(ch, link_fold(l));
    return cv && cv->link == l ? cv : NULL;
}

static void h_up(chatlink *l, void *data) {
    chat *ch = data;
    forget_pending(ch, l);
    attach(ch, l);
}

static int seen_before(conv *cv, uint64_t id) {
    for (size_t i = 0; i < cv->seen_n; i++)
        if (cv->seen[i] == id)
            return 1;
    cv->seen[cv->seen_pos] = id;
    cv->seen_pos = (cv->seen_pos + 1) % CHAT_SEEN_IDS;
    if (cv->seen_n < CHAT_SEEN_IDS)
        cv->seen_n++;
    return 0;
}

/* Shows text exactly, but never lets it drive the terminal: control
 * characters other than tab (C0, DEL, and C1 in UTF-8) become \xNN and a
 * backslash becomes \\ so the escape stays unambiguous. */
static void escape_text(const char *text, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        int ctl = (c < 0x20 && c != '\t') || c == 0x7f;
        int c1 = c == 0xc2 && i + 1 < n && (unsigned char)text[i + 1] >= 0x80 &&
                 (unsigned char)text[i + 1] <= 0x9f;
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (ctl || c1) {
            for (int k = 0; k <= c1; k++) {
                unsigned char b = (unsigned char)text[i + (size_t)k];
                out[o++] = '\\';
                out[o++] = 'x';
                out[o++] = hex[b >> 4];
                out[o++] = hex[b & 15];
            }
            i += (size_t)c1;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static void queue_msg(chat *ch, conv *cv, const char *text, size_t len);

static void h_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    link_send_ack(l, id); /* duplicates too: the sender may have missed our ack */
    if (!cv || seen_before(cv, id))
        return;
    char shown[CHAT_TEXT_MAX * 4 + 1];
    escape_text(text, len, shown);
    ui_event(ch->ctx->ui, "msg %s: %s", cv->name, shown);
    if (ch->ctx->echo)
        queue_msg(ch, cv, text, len);
}

static void h_ack(chatlink *l, uint64_t id, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    if (!cv)
        return;
    for (outmsg **p = &cv->q; *p; p = &(*p)->next) {
        outmsg *m = *p;
        if (m->id != id)
            continue;
        *p = m->next;
        if (cv->qtail == &m->next)
            cv->qtail = p;
        cv->qn--;
        ui_event(ch->ctx->ui, "delivered %s #%llu", cv->name, (unsigned long long)m->seq);
        free(m);
        return;
    }
    /* an ack for a resent message that was acked already: nothing to do */
}

static void h_bye(chatlink *l, void *data) {
    chat *ch = data;
    conv *cv = conv_of(ch, l);
    if (!cv) {
        drop_link(l);
        return;
    }
    ui_event(ch->ctx->ui, "closed %s: bye", cv->name);
    conv_free(ch, cv, "the other side said bye");
}

static void h_closed(chatlink *l, int reason, const char *why, void *data) {
    chat *ch = data;
    forget_pending(ch, l);
    conv *cv = conv_of(ch, l);
    if (!cv)
        return; /* an accepted link that never came up */
    cv->link = NULL;
    if (cv->said_bye) {
        conv_free(ch, cv, "you said bye");
        return;
    }
    log_info(&ch->ctx->lg, "chat link with %s closed: %s", cv->name,
             reason ? uv_strerror(reason) : "closed");
    ui_event(ch->ctx->ui, "closed %s: connection lost", cv->name);
}

static const link_handler chat_handler = {h_up, h_msg, h_ack, h_bye, h_closed};

void chat_accept(chat *ch, uv_stream_t *server) {
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        log_warn(&ch->ctx->lg, "out of memory accepting a chat connection");
        return;
    }
    int r = link_accept(ch->ctx, server, &chat_handler, ch, &p->link);
    if (r) {
        log_warn(&ch->ctx->lg, "accepting a chat connection: %s", uv_strerror(r));
        free(p);
        return;
    }
    /* tracked until it is up or closed, so chat_close can silence it */
    p->next = ch->handshaking;
    ch->handshaking = p;
}

/* ---- commands ---- */

static int check_peer_name(chat *ch, const char *name) {
    const char *why;
    char fold[NAME_BUFLEN];
    if (name_check(name, strlen(name), &why)) {
        ui_event(ch->ctx->ui, "error: invalid user name \"%s\": %s", name, why);
        return -1;
    }
    name_fold(name, strlen(name), fold);
    if (strcmp(fold, ch->ctx->user_fold) == 0) {
        ui_event(ch->ctx->ui, "error: %s is you; name someone else", name);
        return -1;
    }
    return 0;
}

static int check_text(chat *ch, size_t len) {
    if (len <= CHAT_TEXT_MAX)
        return 0;
    ui_event(ch->ctx->ui, "error: message too long (%zu bytes; the limit is %d); split it into "
             "shorter lines", len, CHAT_TEXT_MAX);
    return -1;
}

static void queue_msg(chat *ch, conv *cv, const char *text, size_t len) {
    revive(cv);
    outmsg *m = malloc(sizeof *m + len);
    if (!m) {
        ui_event(ch->ctx->ui, "error: out of memory; message to %s not sent", cv->name);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->next = NULL;
    m->id = ch->ctx->id_base + ++ch->ctx->id_seq;
    m->seq = ++cv->seq;
    m->ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    m->len = len;
    memcpy(m->text, text, len);
    *cv->qtail = m;
    cv->qtail = &m->next;
    cv->qn++;
    if (cv->link && link_is_up(cv->link))
        link_send_msg(cv->link, m->id, m->ts, m->text, m->len);
    else
        start_dial(ch, cv);
}

void chat_dial(chat *ch, const char *name) {
    if (check_peer_name(ch, name))
        return;
    conv *cv = conv_get(ch, name);
    if (!cv)
        return;
    revive(cv);
    set_current(ch, cv);
    start_dial(ch, cv);
}

void chat_send_to(chat *ch, const char *name, const char *text, size_t len) {
    if (check_peer_name(ch, name) || check_text(ch, len))
        return;
    conv *cv = conv_get(ch, name);
    if (cv)
        queue_msg(ch, cv, text, len);
}

void chat_send_current(chat *ch, const char *text, size_t len) {
    if (!ch->current) {
        ui_event(ch->ctx->ui, "error: no current conversation; use /dial NAME or /msg NAME TEXT");
        return;
    }
    if (check_text(ch, len) == 0)
        queue_msg(ch, ch->current, text, len);
}

void chat_bye(chat *ch) {
    conv *cv = ch->current;
    if (!cv) {
        ui_event(ch->ctx->ui, "error: no current conversation to end; /dial NAME starts one");
        return;
    }
    ui_event(ch->ctx->ui, "closed %s: you said bye", cv->name);
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

int chat_open(peer_ctx *ctx, chat **out) {
    chat *ch = calloc(1, sizeof *ch);
    if (!ch)
        return UV_ENOMEM;
    ch->ctx = ctx;
    *out = ch;
    return 0;
}

size_t chat_unsent(const chat *ch) {
    size_t n = 0;
    for (const conv *cv = ch ? ch->convs : NULL; cv; cv = cv->next)
        if (cv->dial || (cv->link && (link_is_up(cv->link) || cv->said_bye)))
            n += cv->qn;
    return n;
}

void chat_close(chat *ch) {
    if (!ch)
        return;
    while (ch->convs)
        conv_free(ch, ch->convs, "quitting");
    while (ch->handshaking) {
        pending *p = ch->handshaking;
        ch->handshaking = p->next;
        drop_link(p->link);
        free(p);
    }
    free(ch);
}
