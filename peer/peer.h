/* peer: the one context of the peer process.  main.c owns it; every module
 * (ev_, line_in_, tui_, cmd_, chat_, inbound_, dial_, link_, rjoin_, ctl_,
 * port_) receives it explicitly and reaches the modules below it through
 * it (news goes up through the handler tables main.c wires).  Nothing else
 * in the peer is a mutable global. */
#ifndef PARLEY_PEER_H
#define PARLEY_PEER_H

#include "identity.h"
#include "log.h"
#include "name.h"

#include <stdint.h>
#include <uv.h>

#define PEER_MAX_ADVERTISE 16
#define PEER_MAX_TRACKERS 8 /* --tracker given this many times at most */
#define PEER_MAX_ENDPOINTS 16   /* the protocol's limit per register */
#define PEER_RELAY_AFTER_MS 1000 /* --relay-after default */
#define PEER_LINK_TIMEOUT_S 60   /* --link-timeout default */
#define CHAT_TEXT_MAX 4000      /* bytes of text per msg (PROTOCOL.md) */

struct line_in;
struct ev_frontend;
struct ctl;
struct chatport;
struct chat;
struct inbound;
struct pins;
struct history;

typedef struct peer_ctx {
    uv_loop_t *loop;
    logger lg;
    identity id;
    char user[NAME_BUFLEN];      /* as given with --user */
    char user_fold[NAME_BUFLEN]; /* name_fold(user) */
    char user_note[160];         /* how user was picked without --user, or "" */
    const char *home;            /* --home, expanded */
    int home_given;              /* --home was on the command line (else ~/.parley) */
    const char *tracker;         /* the tracker used now: one of trackers (control.c moves on) */
    const char *trackers[PEER_MAX_TRACKERS]; /* HOST:PORT as given (or HOME/parley.conf's), in order */
    int n_trackers;
    int tracker_given;           /* --tracker was on the command line */
    const char *listen;          /* NULL: [::]:0 dual-stack, else 0.0.0.0:0 */
    const char *advertise[PEER_MAX_ADVERTISE];
    int n_advertise;
    int echo;
    uint64_t relay_after_ms;     /* --relay-after: start the relay after this long */
    uint64_t link_timeout_ms;    /* --link-timeout: an up link silent this long is dead */
    uint64_t id_base;            /* message ids: id_base + ++id_seq */
    uint64_t id_seq;
    struct line_in *line_in;     /* stdin reader of line and JSON mode (NULL in the terminal UI) */
    const struct ev_frontend *fe; /* where ev_* events go; NULL: fe_base */
    void *fe_data;               /* the front end's state */
    const struct ev_frontend *fe_base; /* where events go when no front end is open
                                        * (stateless: line or JSON, main.c sets it) */
    int use_tui;                 /* the terminal UI runs (else line or JSON mode) */
    int no_bell;                 /* --no-bell */
    int no_history;              /* --no-history */
    struct ctl *ctl;
    struct chatport *port;
    struct chat *chat;
    struct inbound *inbound;     /* links the other side starts */
    struct pins *pins;           /* known_peers (NULL: pinning off, as in the fuzz harness) */
    struct history *hist;        /* HOME/history.db (NULL: --no-history) */
    uv_signal_t sigint, sigterm;
    uv_timer_t quit_timer;
    uv_prepare_t out_flush;      /* flushes stdout before the loop waits */
    int quitting;
    int exit_code;
    int say_bye;                 /* print "bye" on exit */
    int draining;                /* waiting for acks before closing */
    uint64_t drain_deadline;     /* uv_now() limit for draining */
    /* How a module below main asks the process to end (main.c sets it;
     * see peer_quit). */
    void (*on_quit)(struct peer_ctx *ctx, int code, int say_bye, int how);
} peer_ctx;

enum { QUIT_NOW = 0, QUIT_DRAIN = 1 };

/* Asks the process to shut down with exit status code.  The work happens on
 * the next loop turn, so any callback may call this.  say_bye: print the
 * "bye" event on the way out (quit, EOF, signals).  how: QUIT_DRAIN first
 * waits (at most PEER_DRAIN_MS) for sent messages to be acknowledged, so the
 * last lines of a script that ends its input are not lost (end of input
 * drains; /quit and signals leave at once).  Input stops at once either
 * way. */
static inline void peer_quit(peer_ctx *ctx, int code, int say_bye, int how) {
    ctx->on_quit(ctx, code, say_bye, how);
}

#define PEER_DRAIN_MS 5000

#endif
