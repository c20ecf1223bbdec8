/* chat_impl: what the two halves of the chat share and nobody else sees.
 * chat.c keeps the conversations and their links; chat_mail.c keeps what
 * outlives them: the history and durable outbox (history.h) and the
 * tracker's mailbox (mail.h, control.h). */
#ifndef PARLEY_CHAT_IMPL_H
#define PARLEY_CHAT_IMPL_H

#include "chat.h"

#include "dial.h"
#include "link.h"
#include "name.h"
#include "seen.h"

#include <stddef.h>
#include <stdint.h>

typedef struct outmsg {
    struct outmsg *next;
    uint64_t id;   /* on the wire */
    uint64_t seq;  /* shown in "delivered NAME #seq" */
    int64_t ts;
    int committed; /* in history.db (at once with --no-history): only then sent */
    int stored;    /* the tracker's mailbox holds it */
    int mailing;   /* a mail_put for it is out */
    int to_mail;   /* waits for room in the put window (chat_mail.c) */
    int refused;   /* the tracker would not take it: it waits for a link */
    int held;      /* not shown as sent yet: the dial it started may bring "connected" first */
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
    dialer *upgrade;        /* chat_upgrade.c: a relayed chat looking for a direct path */
    unsigned up_backoff;    /* ms until the next try after this one fails */
    uint64_t up_at;         /* loop time the next try is due */
    int said_bye;           /* we sent bye on link; the conversation ends when it closes */
    int redial;             /* a relayed link dropped: dial again once the tracker is back */
    int keying;             /* a lookup for the mailbox's key is out */
    int have_mail_key;      /* mail_key is the recipient's key, checked against the pin */
    unsigned char mail_key[32];
    int want_current;       /* /dial: current once the tracker knows the name */
    outmsg *q, **qtail;     /* unacknowledged, in send order */
    size_t qn;
    uint64_t seq;
    seen *shown;            /* ids shown (--no-history: history.db dedupes otherwise) */
} conv;

struct chat {
    peer_ctx *ctx;
    unsigned mail_puts;  /* mail_put frames out, waiting for their answer */
    int durable;    /* a history holds the outbox (it closes before the chat) */
    conv *convs;
    conv *current;
    uv_timer_t *hold; /* shows held messages after CHAT_HOLD_MS (chat.c) */
    uv_timer_t *mail_retry; /* puts again what the tracker found too fast (chat_mail.c) */
    uv_timer_t *upgrade;    /* the next relay -> direct try is due (chat_upgrade.c) */
};

/* ---- chat.c ---- */

conv *chat_conv_find(chat *ch, const char *fold);
/* The conversation with name, made (with its outbox loaded) if there is
 * none; NULL when out of memory (reported). */
conv *chat_conv_get(chat *ch, const char *name);
/* A committed message goes out: shown as sent, then on the link or by a
 * dial. */
void chat_out_ready(chat *ch, conv *cv, outmsg *m);
/* Appends m (malloc'd, text filled) to cv's queue. */
void chat_enqueue(conv *cv, outmsg *m);
outmsg *chat_out_new(uint64_t id, uint64_t seq, int64_t ts, const char *text, size_t len);
/* Takes the message with id off cv's queue: it is delivered (or given up).
 * Returns it (the caller frees) or NULL. */
outmsg *chat_out_take(conv *cv, uint64_t id);
/* A received message is safe on disk (or --no-history): shown unless dup,
 * and echoed with --echo. */
void chat_in_show(chat *ch, conv *cv, const char *name, uint64_t id, int64_t ts,
                  const char *text, size_t len);
void chat_start_dial(chat *ch, conv *cv);
/* A link is up (dialed or accepted): attach it to its conversation.
 * incoming: the other side started it. */
void chat_attach(chat *ch, chatlink *l, int incoming);

/* ---- chat_upgrade.c ---- */

/* cv got a new link: relayed, the first try for a direct path is due in a
 * second (when we asked for the relay); direct, any try stops. */
void chat_upgrade_linked(chat *ch, conv *cv);
/* An address may have changed (we registered again, or the user of only
 * came online again; only NULL: every conversation): relayed chats try
 * again soon, the backoff starts over. */
void chat_upgrade_soon(chat *ch, conv *only);

/* ---- chat_mail.c ---- */

/* Adds a typed message to cv: committed to the history first, then
 * chat_out_ready.  0, or a negative error (reported). */
int chat_mail_add_out(chat *ch, conv *cv, outmsg *m);
/* A msg arrived on cv's link: committed, then shown and acknowledged. */
void chat_mail_add_in(chat *ch, conv *cv, chatlink *l, uint64_t id, int64_t ts, const char *text,
                      size_t len);
/* Loads cv's unacknowledged messages from the history into its queue. */
void chat_mail_load(chat *ch, conv *cv);
/* The dial to cv failed: its messages go to the tracker's mailbox when it
 * has one.  1 when they do or are already on their way (the user hears
 * "stored"), else 0. */
int chat_mail_leave(chat *ch, conv *cv, const char *reason);
/* Registered with the tracker (again): the put window starts afresh. */
void chat_mail_tracker_ready(chat *ch);
/* Every conversation with messages to deliver (at start-up). */
void chat_mail_open_outbox(chat *ch);

#endif
