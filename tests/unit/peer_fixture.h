/* peer_fixture: shared plumbing of the test_peer_* unit tests that run the
 * peer's real modules (control, chat port, link, dial) on one libuv loop
 * against a fake tracker served on the same loop.  The code is in
 * peer_fixture.c, linked into every test_peer_* binary (see the Makefile).
 *
 * - FX_WAIT(loop, cond): turns the loop until cond holds, bounded by
 *   FX_WAIT_MS of loop time (then the test aborts naming cond); a
 *   repeating wake timer keeps UV_RUN_ONCE from blocking forever.
 * - fake_tracker: a uv listener on 127.0.0.1:0 whose connections are
 *   shared/conn.c conns.  It speaks the control protocol (welcome,
 *   registered with a checked signature, lookup_result / not_found from a
 *   user table, list_result, pong, connect_result, relay_request answered
 *   by error limit), counts what each client sent and lets a test hold
 *   lookups, refuse the register, push frames or drop every connection.
 * - fx_peer: one peer context as peer/main.c fills it (identity made in
 *   memory, ev_* events recorded by a test front end, quit requests
 *   counted), with its chat port, tracker client and the links it accepts.
 * - fx_link: a link_handler that records every callback.
 * - fx_world: alice and bob registered with one fake tracker.
 * - fx_finish(loop): waits until every handle closed, then asserts
 *   uv_loop_close(loop) == 0.
 *
 * One loop at a time: the wake timer is the fixture's own (fx_begin opens
 * it, fx_finish closes it).  Every helper ASSERTs (aborts) on failure. */
#ifndef PARLEY_PEER_FIXTURE_H
#define PARLEY_PEER_FIXTURE_H

#include "addr.h"
#include "conn.h"
#include "control.h"
#include "identity.h"
#include "link.h"
#include "log.h"
#include "msg.h"
#include "name.h"
#include "peer.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FX_WAIT_MS 10000 /* generous: the machine running the tests may be loaded */

/* ---- loop ---- */

/* Ignores SIGPIPE, initialises libsodium and loop, opens the wake timer. */
void fx_begin(uv_loop_t *loop);

/* One turn of FX_WAIT: aborts naming what (at file:line) once FX_WAIT_MS
 * of loop time passed since start, else runs the loop once. */
void fx_turn(uv_loop_t *loop, uint64_t start, const char *what, const char *file, int line);
/* The end of FX_WAIT: stops the wake timer fx_turn started. */
void fx_wait_end(void);

#define FX_WAIT(loop, cond)                                                                  \
    do {                                                                                     \
        uv_update_time(loop);                                                                \
        uint64_t fx_start_ = uv_now(loop);                                                   \
        while (!(cond))                                                                      \
            fx_turn((loop), fx_start_, #cond, __FILE__, __LINE__);                           \
        fx_wait_end();                                                                       \
    } while (0)

/* Every handle but the wake timer must close by itself (the modules were
 * closed by the test); then the wake timer closes and the loop must close
 * cleanly. */
void fx_finish(uv_loop_t *loop);

/* ---- the fake tracker ---- */

#define FT_CONNS 8
#define FT_USERS 8
#define FT_HELD 8
#define FT_EPS 4

typedef struct ft_user {
    char name[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    int online;
    int n_eps;
    char eps[FT_EPS][ADDR_STRLEN];
} ft_user;

typedef struct fake_tracker fake_tracker;

/* Sees every parsed frame first (error frames are counted before it);
 * returns 1 when it answered it itself, 0 for the default answer. */
typedef int (*ft_hook)(fake_tracker *ft, conn *c, const msg_in *m);

struct fake_tracker {
    uv_loop_t *loop;
    logger lg;
    uv_tcp_t srv;
    int listening;
    int port;
    char addr[32]; /* "127.0.0.1:PORT", for ctx->tracker */
    conn *conns[FT_CONNS];
    unsigned char nonce[FT_CONNS][IDENT_NONCE];
    char who[FT_CONNS][NAME_BUFLEN]; /* the folded name registered on it, or "" */
    int accepted, closed;
    uint64_t hello_at; /* loop time of the last hello */
    /* what the clients sent */
    int hellos, registers, bad_sigs, lookups, lists, pings, connect_requests, relay_requests,
        errors;
    char error_code[32];           /* of the last error frame a client sent */
    char lookup_name[NAME_BUFLEN]; /* of the last lookup */
    char relay_to[NAME_BUFLEN];    /* of the last relay_request */
    uint64_t connect_tag;          /* of the last connect_request (0: none) */
    /* how it answers */
    ft_user users[FT_USERS];
    int n_users;
    int hold_lookups;      /* keep lookups unanswered until ft_release ... */
    const char *hold_name; /* ... only those of this name, when set */
    struct {
        conn *c;
        uint64_t id;
        char name[NAME_BUFLEN];
    } held[FT_HELD];
    int n_held;
    const char *register_error; /* answer register with this error code (then close) */
    ft_hook hook;
    void *hook_data;
};

/* Listens on 127.0.0.1:0 on loop (ft is zeroed first; ft->addr is set).
 * ft must stay put until ft_close's handles closed (fx_finish). */
void ft_open(fake_tracker *ft, uv_loop_t *loop);
/* The tracker goes away: every connection closes (the listener stays). */
void ft_drop(fake_tracker *ft);
/* Stops listening (the port then refuses connections). */
void ft_stop(fake_tracker *ft);
/* ft_stop and ft_drop. */
void ft_close(fake_tracker *ft);

/* The index of c in ft->conns (ft_slot(ft, NULL): a free one), or -1. */
int ft_slot(fake_tracker *ft, conn *c);
/* The connection the user registered on (folded name), or NULL. */
conn *ft_conn_of(fake_tracker *ft, const char *fold);

/* Sends m on c (m is released, as conn_send_msg does); send_error builds
 * an error frame (id echoed when nonzero). */
void ft_send(conn *c, msg_out *m);
void ft_send_error(conn *c, const char *code, const char *text, uint64_t id);
/* A frame whose payload is exactly these bytes (malformed ones too). */
void ft_send_raw(conn *c, const void *payload, size_t len);
void ft_push_presence(conn *c, const char *name, int online);

/* A user the tracker knows (copied; no endpoints yet).  The record lives
 * in ft->users: a test may change it before the next lookup. */
ft_user *ft_user_add(fake_tracker *ft, const char *name, const unsigned char key[IDENT_PK],
                     int online);
void ft_user_ep(ft_user *u, const char *ep);

/* Answers every held lookup (in the order they came) whose connection is
 * still open. */
void ft_release(fake_tracker *ft);

/* ---- what a peer's front end and tracker client reported ---- */

/* The test front end's ev_* calls, counted, not printed. */
typedef struct fx_events {
    int registered, tracker_lost, presence, errors;
    int lost_was_registered; /* of the last tracker_lost */
    char lost_why[700];
    char error_code[32]; /* of the last ev_error */
    char error_text[1400];
} fx_events;

/* The ctl_handler fx_peer_open gives the tracker client. */
typedef struct fx_news {
    int registered, presence, connect_requests, connect_failed, relay_offers, refused;
    char presence_name[NAME_BUFLEN];
    int presence_online;
    char refused_code[32];
} fx_news;

/* What fx_lookup_cb (a ctl_lookup_cb, data: an fx_lookup) got last; u is
 * a copy (zeroed when the callback had none). */
typedef struct fx_lookup {
    int calls;
    int status;
    ctl_user u;
} fx_lookup;

void fx_lookup_cb(void *data, int status, const ctl_user *u);

/* ---- a link_handler that records ---- */

/* data of fx_link_handler.  l: the link (link_dial's or link_accept's out
 * parameter, or set by hand when a test takes a link over); up and closed
 * assert they are for it, and closed sets it NULL (the link is freed when
 * closed returns).  Each callback counts and keeps its arguments. */
typedef struct fx_link {
    chatlink *l;
    int up, msgs, acks, byes, closed;
    uint64_t msg_id, ack_id;
    int64_t msg_ts;
    char text[128];
    int reason;
    char why[1400];
    int why_null;
    int ack_msgs; /* answer each msg with its ack */
    int answer;   /* then with a msg "re", its id + 1000 */
    int acks_at_msg; /* acks counted when the last msg came */
    int bye_back; /* answer bye with bye */
} fx_link;

extern const link_handler fx_link_handler;

/* ---- a peer context ---- */

#define FX_ACCEPTED 4

typedef struct fx_peer {
    peer_ctx ctx; /* first: on_quit gets &ctx */
    fx_events ev;
    fx_news news;
    int quits;
    char home[64];           /* the temp --home, "" when none */
    fx_link in[FX_ACCEPTED]; /* the links it accepted, in order */
    int n_in;
    char ep[ADDR_STRLEN];    /* its chat port's endpoint, "127.0.0.1:PORT" */
} fx_peer;

/* The context main.c builds, with a key made in memory (p is zeroed
 * first; tracker is kept, not copied).  Opens nothing. */
void fx_peer_init(fx_peer *p, uv_loop_t *loop, const char *user, const char *tracker);
/* The chat port (every connection goes to link_accept, recorded in
 * p->in), then the tracker client with p->news as its handler. */
void fx_peer_open(fx_peer *p);
/* A temp --home for known_peers, and the pins read from it.  pin_fold /
 * pin_key: a line to write first (NULL: none). */
void fx_peer_home(fx_peer *p, const char *pin_fold, const unsigned char *pin_key);
/* Closes what fx_peer_open and fx_peer_home opened (the handles close
 * from the loop: fx_finish waits for them) and removes the temp home. */
void fx_peer_close(fx_peer *p);
/* The links p accepted: each still open is closed (its closed fires). */
void fx_peer_close_links(fx_peer *p);

/* ---- addresses ---- */

/* 127.0.0.1:port as a sockaddr. */
struct sockaddr_in fx_sa(int port);
/* The port of "HOST:PORT". */
int fx_ep_port(const char *ep);
/* A port on 127.0.0.1 where nobody listens: a socket bound to it and never
 * listening (a connect gets a reset), held so no one else takes the port.
 * Close *fd at the end. */
int fx_dead_port(int *fd);

/* ---- two peers and their tracker ---- */

/* alice (a) and bob (b), each with its chat port and its tracker client,
 * registered with the fake tracker, which knows both keys (ua, ub: their
 * records, for a test to change). */
typedef struct fx_world {
    uv_loop_t loop;
    fake_tracker ft;
    fx_peer a, b;
    ft_user *ua, *ub;
} fx_world;

/* fx_begin, ft_open, both peers opened; returns once both registered. */
void fx_world_open(fx_world *w);
/* Closes every link the peers accepted, the peers, the tracker, and
 * checks the loop closes (fx_finish). */
void fx_world_close(fx_world *w);

#endif
