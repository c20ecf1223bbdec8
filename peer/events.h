/* events: what the peer tells its user, as typed calls rather than text.
 * The modules (chat_, ctl_, cmd_, main) report through the ev_* functions;
 * each one dispatches to the active front end through a small table of
 * callbacks (ev_frontend).  The front ends live in ui/ and know nothing of
 * each other: line mode (ui/line.c) prints each event as one plain line,
 * --ui json (ui/json.c) as one JSON object, the terminal UI (ui/tui*.c)
 * draws them.  Another front end is one more table; neither this
 * interface nor the modules that report through it change.
 *
 * Every ev_* call is synchronous and returns nothing: a front end that
 * cannot show something drops it.  Strings are borrowed for the call. */
#ifndef PARLEY_EVENTS_H
#define PARLEY_EVENTS_H

#include "peer.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* How a chat link travels. */
typedef enum ev_path { EV_PATH_DIRECT, EV_PATH_RELAY } ev_path;

/* Why a conversation ended. */
typedef enum ev_close_why {
    EV_CLOSED_BYE,     /* the other side said bye */
    EV_CLOSED_LOST,    /* the link dropped (the conversation and its queue stay) */
    EV_CLOSED_YOU_BYE, /* we said bye */
} ev_close_why;

/* One message of a conversation's history (/history), a plain value. */
typedef struct ev_hist_row {
    int out;           /* 1: sent by us */
    uint64_t seq;      /* ours: the #N it was shown with */
    int64_t ts;        /* the sender's clock, unix ms */
    const char *state; /* ours: "sending", "stored", "delivered" or "expired"; theirs: NULL */
    const char *text;
    size_t len;
} ev_hist_row;

/* A front end.  fe is its own state (ctx->fe_data).  Any entry may be NULL:
 * the event is then not shown by that front end. */
typedef struct ev_frontend {
    const char *name; /* "line", "json", "tui" */
    void (*registered)(void *fe, const char *name, const char *tracker, const char *observed);
    /* tracker: --tracker as given; was_registered: 0 while the peer never
     * registered since it started (the tracker may be wrong, not gone) */
    void (*tracker_lost)(void *fe, const char *tracker, const char *why, unsigned delay_ms,
                         int repeat, int was_registered);
    void (*presence)(void *fe, const char *name, int online);
    void (*users)(void *fe, char **names, size_t n);
    /* how: "dialed", "reverse", "punched" (direct) or "relay"
     * (PROTOCOL.md, "Reaching a peer") */
    void (*connected)(void *fe, const char *name, ev_path path, const char *how);
    void (*current)(void *fe, const char *name);
    void (*msg)(void *fe, const char *name, uint64_t id, int64_t ts, const char *text, size_t len);
    void (*sent)(void *fe, const char *name, uint64_t seq, int64_t ts, const char *text,
                 size_t len);
    void (*delivered)(void *fe, const char *name, uint64_t seq);
    /* the tracker's mailbox took our message #seq for name (offline) */
    void (*stored)(void *fe, const char *name, uint64_t seq);
    /* /history: rows with name, oldest first (n may be 0) */
    void (*history)(void *fe, const char *name, const struct ev_hist_row *rows, size_t n);
    void (*closed)(void *fe, const char *name, ev_close_why why);
    void (*unreachable)(void *fe, const char *name, const char *reason);
    void (*error)(void *fe, const char *code, const char *text);
    void (*help)(void *fe, const char *const *lines, size_t n);
    void (*bye)(void *fe);
    /* /trust: name's key (fingerprint fp) is pinned now; was: the
     * fingerprint it replaced, or NULL for a first pin. */
    void (*trusted)(void *fe, const char *name, const char *fp, const char *was);
    /* /whois: fingerprints of the pinned key and of the tracker's (NULL:
     * none pinned / the tracker does not say). */
    void (*whois)(void *fe, const char *name, const char *pinned, const char *tracker);
    /* Input must stop now (peer_quit); the front end releases the terminal
     * and its handles (freeing itself from their close callbacks).  After
     * this, ev_* calls go to ctx->fe_base. */
    void (*close)(void *fe);
    /* What was shown leaves the process now (written to stdout): called
     * before anything acknowledges a message it showed, so a peer killed
     * after its ack cannot have taken a message without showing it. */
    void (*flush)(void *fe);
} ev_frontend;

/* Where events go: ctx->fe (with its state ctx->fe_data) while a front end
 * with state is open, else ctx->fe_base, a stateless one (its entries get
 * fe NULL) that main.c picks before anything can report; with neither, an
 * event is dropped. */

/* Makes fe (with state data) the active front end; NULL goes back to
 * ctx->fe_base. */
void ev_set_frontend(peer_ctx *ctx, const ev_frontend *fe, void *data);

/* Closes the active front end (its close entry) and falls back to
 * ctx->fe_base.  Idempotent. */
void ev_close_frontend(peer_ctx *ctx);

/* registered with the tracker (first time and after each reconnect);
 * observed may be "" when unknown. */
void ev_registered(peer_ctx *ctx, const char *name, const char *tracker, const char *observed);
/* the tracker connection dropped, or another attempt failed; the next
 * attempt is in delay_ms.  repeat: an attempt of the same outage failed for
 * the same reason as the last one reported (a front end for people says it
 * once).  was_registered: the peer registered at least once since it
 * started; 0 means --tracker (ctx->tracker, passed on to the front end) has
 * not been reached yet, which front ends say as such rather than as a
 * loss. */
void ev_tracker_lost(peer_ctx *ctx, const char *why, unsigned delay_ms, int repeat,
                     int was_registered);
/* a presence push about another user */
void ev_presence(peer_ctx *ctx, const char *name, int online);
/* the answer to /list: every page, folded order */
void ev_users(peer_ctx *ctx, char **names, size_t n);
/* a chat link is up (dialed or accepted) */
void ev_connected(peer_ctx *ctx, const char *name, ev_path path, const char *how);
/* the current conversation changed */
void ev_current(peer_ctx *ctx, const char *name);
/* a received message, shown once (text is raw: front ends escape it) */
void ev_msg(peer_ctx *ctx, const char *name, uint64_t id, int64_t ts, const char *text, size_t len);
/* we queued a message: seq is its per-conversation number (as in delivered) */
void ev_sent(peer_ctx *ctx, const char *name, uint64_t seq, int64_t ts, const char *text,
             size_t len);
/* our message number seq to name was acknowledged */
void ev_delivered(peer_ctx *ctx, const char *name, uint64_t seq);
void ev_stored(peer_ctx *ctx, const char *name, uint64_t seq);
void ev_history(peer_ctx *ctx, const char *name, const ev_hist_row *rows, size_t n);
/* a conversation ended (or, EV_CLOSED_LOST, its link did) */
void ev_closed(peer_ctx *ctx, const char *name, ev_close_why why);
/* a dial failed; reason completes "cannot reach NAME: ..." */
void ev_unreachable(peer_ctx *ctx, const char *name, const char *reason);
/* anything that went wrong: code is a stable word for its kind (the JSON
 * front end shows it; README lists them), fmt gives "WHAT WENT WRONG[; WHAT
 * TO DO]", no "error: " */
void ev_error(peer_ctx *ctx, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* the command list (lines start with "  /") */
void ev_help(peer_ctx *ctx, const char *const *lines, size_t n);
/* the peer is exiting */
void ev_bye(peer_ctx *ctx);
/* Before an acknowledgement: see ev_frontend.flush. */
void ev_flush(peer_ctx *ctx);
/* /trust NAME re-pinned a key (was: the old fingerprint, or NULL) */
void ev_trusted(peer_ctx *ctx, const char *name, const char *fp, const char *was);
/* /whois NAME: pinned and tracker fingerprints (NULL when absent) */
void ev_whois(peer_ctx *ctx, const char *name, const char *pinned, const char *tracker);

#endif
