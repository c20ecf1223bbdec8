/* control: the peer's one connection to its tracker (PROTOCOL.md, "Control
 * connection").  It resolves the tracker, says hello, registers, pings every
 * ttl/3, answers list and lookup requests through callbacks, reports
 * presence pushes, and when the tracker goes away reconnects with
 * exponential backoff and jitter, then registers again.  Keys learned from
 * lookups are cached so chat links can be verified while the tracker is
 * briefly down. */
#ifndef PARLEY_CONTROL_H
#define PARLEY_CONTROL_H

#include "addr.h"
#include "identity.h"
#include "name.h"
#include "peer.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ctl ctl;

/* One user as the tracker knows it (a plain value). */
typedef struct ctl_user {
    char name[NAME_BUFLEN]; /* as stored by the tracker */
    unsigned char key[IDENT_PK];
    bool online;
    int n_endpoints;
    char endpoints[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    char observed[ADDR_STRLEN]; /* "" when offline */
    int64_t last_seen;
} ctl_user;

/* status: 0 with u set; UV_ENOENT for an unknown name; UV_EINVAL for a name
 * the tracker refused; UV_ENOTCONN when the tracker is unreachable and the
 * cache does not know the name; UV_ECONNRESET when the connection dropped
 * before the answer.  u is valid only during the call. */
typedef void (*ctl_lookup_cb)(void *data, int status, const ctl_user *u);
/* status 0 with every page's names (folded order, as the tracker sent them),
 * valid only during the call; or UV_ENOTCONN / UV_ECONNRESET. */
typedef void (*ctl_list_cb)(void *data, int status, char **names, size_t n);

/* Where a relay session waits: its token, and the tracker holding it
 * (numeric HOST:PORT; "" for ours: a user of another tracker on a shared
 * registry is relayed at that user's tracker). */
typedef struct ctl_relay {
    unsigned char token[IDENT_SESSION];
    char at[ADDR_STRLEN];
} ctl_relay;

/* connect_request / relay_request answers: status 0 (relay: the relay
 * session, NULL for connect); UV_ENOENT no such user, UV_EHOSTUNREACH
 * offline, UV_EBUSY a relay limit, UV_ENOTCONN / UV_ECONNRESET no tracker,
 * another error otherwise.  why: the tracker's words, or NULL. */
typedef void (*ctl_reach_cb)(void *data, int status, const ctl_relay *relay, const char *why);
/* punch_request answers: status 0 with addr (the other side's public
 * HOST:PORT) and delay_ms (when to start); otherwise as ctl_reach_cb
 * (UV_ENOTSUP: the other side's peer cannot punch). */
typedef void (*ctl_punch_cb)(void *data, int status, const char *addr, unsigned delay_ms,
                             const char *why);

/* News from the tracker for the layers above, which own what to do with
 * it (main.c wires them).  Every entry fires from a frame or timer
 * callback of the tracker connection, never inside a ctl_ call; strings
 * and u are valid during the call only.  An entry may be NULL. */
typedef struct ctl_handler {
    /* registered with the tracker (the first time and after a reconnect) */
    void (*registered)(void *data);
    /* a presence push about another user */
    void (*presence)(void *data, const char *name, int online);
    /* u asks us to dial it back (a reverse connection); u's key is the
     * tracker's */
    void (*connect_request)(void *data, const ctl_user *u, uint64_t tag);
    /* from could not dial us back (its answer to our connect_request) */
    void (*connect_failed)(void *data, const char *from, uint64_t tag, const char *why);
    /* u (name and key as the tracker has them) wants a hole punch: connect
     * to addr from the chat port after delay_ms */
    void (*punch)(void *data, const ctl_user *u, const char *addr, unsigned delay_ms);
    /* from set up a relay session for the two of us */
    void (*relay_offer)(void *data, const char *from, const unsigned char token[IDENT_SESSION]);
    /* the tracker refused us for good (name taken, bad name or signature,
     * another protocol version); the user was told why, with code */
    void (*refused)(void *data, const char *code);
    /* The mailbox (PROTOCOL.md, "Mailbox").  mail_stored: the tracker
     * committed our letter with message id `id` for `to`; mail_refused: it
     * did not (code "mailbox_full", "rate_limited", "not_found", ...; text
     * the tracker's words).  mail: a letter kept for us (box borrowed for
     * the call; key is the key the tracker had bound to from); answer it
     * with ctl_mail_ack once it is stored.  receipt: what became of a
     * letter we left; answer with ctl_receipt_ack once that is recorded
     * (a NULL receipt entry acknowledges at once). */
    void (*mail_stored)(void *data, const char *to, uint64_t id);
    void (*mail_refused)(void *data, uint64_t id, const char *code, const char *text);
    void (*mail)(void *data, uint64_t mid, const char *from, const unsigned char key[IDENT_PK],
                 int64_t ts, const unsigned char *box, size_t n);
    void (*receipt)(void *data, uint64_t rid, const char *to, uint64_t id, int status);
} ctl_handler;

/* What a receipt says of a letter we left. */
enum ctl_receipt {
    CTL_RECEIPT_DELIVERED, /* the recipient stored it */
    CTL_RECEIPT_EXPIRED,   /* nobody fetched it within the tracker's --mail-ttl */
    CTL_RECEIPT_REFUSED,   /* the recipient could not verify it */
    CTL_RECEIPT_UNKNOWN,   /* a status newer than this peer */
};

/* Allocates the control client and starts connecting to ctx->trackers[0],
 * moving on to the next of ctx->trackers whenever one is lost (the
 * first event happens from the loop).  h (borrowed for the client's life)
 * gets the tracker's news.  0 with *out set, or a uv error. */
int ctl_open(peer_ctx *ctx, const ctl_handler *h, void *data, ctl **out);

/* Looks a user up.  fresh: ask the tracker when it is connected (dialing
 * wants current endpoints); otherwise a cached answer is used first (keys
 * never change without the owner's proof).  The callback always fires later
 * from the loop, exactly once, unless ctl_cancel(data) comes first.  0 or
 * UV_ENOMEM / UV_EINVAL (bad name; no callback then). */
int ctl_lookup(ctl *t, const char *name, int fresh, ctl_lookup_cb cb, void *data);

/* Lists the online users whose folded name starts with prefix (NULL or ""
 * for all), fetching every page.  Callback as for ctl_lookup. */
int ctl_list(ctl *t, const char *prefix, ctl_list_cb cb, void *data);

/* Asks the tracker to tell name to dial us (a reverse connection; tag,
 * nonzero, comes back in name's connect_failed), or to set up a relay
 * session with name.  Callback as for ctl_lookup. */
int ctl_connect_request(ctl *t, const char *name, uint64_t tag, ctl_reach_cb cb, void *data);
int ctl_relay_request(ctl *t, const char *name, ctl_reach_cb cb, void *data);

/* Asks the tracker to time a hole punch with name (PROTOCOL.md,
 * "punch_request").  UV_ENOTSUP when not registered now or the tracker
 * does not punch (no callback then); else callback as for ctl_lookup. */
int ctl_punch_request(ctl *t, const char *name, ctl_punch_cb cb, void *data);

/* Adds names (as typed or as stored) to the users whose presence we want
 * pushed (PROTOCOL.md, "subscribe"), sent at once when registered and
 * again after every registration.  At most CTL_WATCH_MAX names in all:
 * past that, names are dropped; invalid ones and our own are skipped.
 * Lookups and lists add their names by themselves.  0 or UV_ENOMEM. */
int ctl_watch(ctl *t, const char *const *names, size_t n);

/* Tells the tracker that our dial back to `to` (answering its
 * connect_request, whose tag we echo; 0: it had none) failed, why in a
 * few words; the tracker passes it on so
 * `to` relays at once.  No answer.  0, or UV_ENOTCONN when not registered. */
int ctl_connect_failed(ctl *t, const char *to, uint64_t tag, const char *why);

/* The mailbox, once registered with a tracker that keeps one (its welcome
 * lists "mailbox"; ctl_mailbox says whether it does).  mail_put hands the
 * tracker a sealed letter (mail.h) for `to`, id being our message id (the
 * answer comes through mail_stored or mail_refused); mail_ack answers a
 * letter (ok 0: we refused it as forged or unreadable); receipt_ack a
 * receipt.  Each 0, UV_ENOTCONN (not registered), UV_ENOTSUP (the tracker
 * has no mailbox), or a send error. */
int ctl_mailbox(const ctl *t);
int ctl_mail_put(ctl *t, const char *to, uint64_t id, const unsigned char *box, size_t n);
int ctl_mail_ack(ctl *t, uint64_t mid, int ok);
int ctl_receipt_ack(ctl *t, uint64_t rid);

/* The address of the tracker we are registered with (relay connections go
 * there).  0, or UV_ENOTCONN when not registered. */
int ctl_tracker_addr(const ctl *t, struct sockaddr_storage *ss);

/* Drops every pending request made with this data pointer; their callbacks
 * will not fire. */
void ctl_cancel(ctl *t, void *data);

/* 1 when registered with the tracker. */
int ctl_ready(const ctl *t);

/* Closes the connection and timers; pending requests are dropped without
 * callbacks.  t is freed once its handles are closed.  NULL is a no-op. */
void ctl_close(ctl *t);

#endif
