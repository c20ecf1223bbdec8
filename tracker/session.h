/* session: one control connection of the tracker, as the server's files
 * see it (server.c dispatches its frames, accept.c opens it, the handlers
 * in registration.c, queries.c, reach.c and mail.c answer it, presence.c
 * and mail.c push to it, ratelimit.c meters it).  Nothing outside those files includes this:
 * main.c, listen.c and the fuzz harness know the server only through
 * server.h, and the relay gets a connection, never a session.
 *
 * A session is freed by its connection's close callback, except while its
 * registration is in the registry's group commit (the commit's callback in
 * registration.c then frees it), while an answer holds it (sess_hold) and
 * once relay_join handed its connection to the relay (sess_handover frees
 * it then). */
#ifndef PARLEY_SESSION_H
#define PARLEY_SESSION_H

#include "tracker.h"

#include "addr.h"
#include "conn.h"
#include "identity.h"
#include "msg.h"
#include "name.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stdint.h>

/* hello -> ready -> registering -> registered, or hello -> relay (a relay
 * connection, handed to relay.c by relay_join).  Only sess_set moves it;
 * the dispatch table's states column says what each state accepts. */
typedef enum { SS_HELLO, SS_READY, SS_REGISTERING, SS_REGISTERED, SS_RELAY } sess_state;

/* The record a session registers with (its key and endpoints), kept with
 * it: the requests of a user online here read their own record from here,
 * not from the registry (a round trip each on a shared one). */
typedef struct sess_self {
    unsigned char key[IDENT_PK];
    uint32_t n;  /* endpoints */
    char eps[];  /* n NUL-terminated strings, one after another */
} sess_self;

typedef struct session {
    struct session *prev, *next;  /* ctx->sessions */
    tracker_ctx *ctx;
    conn *c;                      /* NULL once the connection closed */
    sess_state state;
    unsigned char nonce[IDENT_NONCE];
    int hears_connect_failed;     /* its register listed the feature: it takes the push */
    int hears_mailbox;            /* the same for mail and receipt pushes */
    int hears_punch;              /* ... for punch pushes and our pings */
    int pres_subscribes;          /* its register listed "subscribe": presence by subscription */
    int pres_all;                 /* presence.c: takes every presence push (an older peer, or
                                   * subscribe all) */
    struct session *all_prev, *all_next; /* presence.c: the sessions with pres_all */
    int pres_in_all;              /* linked there */
    size_t pres_from;             /* presence.c: the first of the pass's queued pushes for it */
    struct pres_sub *subs;        /* presence.c: the names it subscribed to */
    unsigned nsubs;
    char *pres_buf;               /* presence.c: this pass's pushes for it, or NULL */
    size_t pres_len, pres_cap;
    struct session *dirty_prev, *dirty_next; /* presence.c: sessions with pres_buf */
    uint64_t ping_sent;           /* reach.c: uv_hrtime of our ping in flight, 0 none */
    uint64_t rtt_us;              /* reach.c: its last round trip, 0 unknown */
    uint64_t mail_cursor;         /* mail.c: the highest mid pushed on this connection */
    uint64_t receipt_cursor;      /* mail.c: the highest rid pushed on this connection */
    uint64_t mail_pass;           /* mail.c: the batch whose kicks last filled it */
    int mail_filling;             /* mail.c: a fill of its windows is out (mbox_fill_start) */
    int mail_refill;              /* mail.c: and another was asked for meanwhile */
    unsigned holds;               /* answers waiting for a commit (sess_hold) */
    sess_self *self;              /* what it registered with (sess_set_self), or NULL */
    char observed[ADDR_STRLEN];
    char name[NAME_BUFLEN];       /* as stored (first registered spelling) */
    char folded[NAME_BUFLEN];
    int64_t last_frame;           /* unix seconds */
    struct sockaddr_storage addr; /* the remote end, for the per-address limit */
    char host_key[ADDR_HOSTKEY_LEN]; /* counted in ctx->hosts under this, or "" */
    rate_bucket bucket;           /* ratelimit.c: in thousandths of a frame */
    unsigned refused;             /* ratelimit.c: requests refused in a row */
} session;

/* A session on a new connection, linked into ctx->sessions, in SS_HELLO,
 * or NULL when out of memory.  on_frame and on_closed are the
 * connection's callbacks (server.c's: the dispatcher sits above the
 * session).  The caller accepts on conn_tcp(s->c) and starts it; from
 * then on on_closed must free the session (after sess_unlink). */
session *sess_new(tracker_ctx *ctx, conn_frame_cb on_frame, conn_close_cb on_closed);

/* Frees s and what it owns (not its connection). */
void sess_free(session *s);

/* Keeps key and eps[0..n) as what s registers with (registration.c, once
 * the signature holds).  0, or UV_ENOMEM (nothing kept). */
int sess_set_self(session *s, const unsigned char key[IDENT_PK], const char *const *eps,
                  uint32_t n);

/* s's record as it registered it (name, key, endpoints; online, no home)
 * into u.  0, or UV_ENOENT when s has not asked to register yet. */
int sess_self_user(const session *s, reg_user *u);

/* Takes s out of ctx->sessions (and out of its host's count). */
void sess_unlink(session *s);

/* Counts s under the host of s->addr in ctx->hosts (--max-conns-per-addr),
 * once; *others gets how many other connections that host has.  0, or
 * UV_ENOMEM (s is then not counted, *others 0). */
int sess_count_host(session *s, unsigned *others);

/* The one transition. */
void sess_set(session *s, sess_state to);

/* An answer waits for a commit (mail.c's mail_stored): s outlives its
 * connection until the matching sess_release, which frees it once the
 * connection has closed.  Without holds (and outside SS_REGISTERING), the
 * close callback frees it. */
void sess_hold(session *s);
void sess_release(session *s);
/* 1 while something still needs s after its connection closed. */
int sess_held(const session *s);

/* A registered user still connected: pushes go only to such a session. */
int sess_listening(const session *s);

/* relay.c took the connection over (rly_join): the session is unlinked and
 * freed without touching the connection. */
void sess_handover(session *s);

/* Sending.  All of them are no-ops on a closed or closing connection, and
 * drop a client that stopped reading (more than TRACKER_MAX_QUEUED
 * unsent). */
void sess_send_buf(session *s, char *buf, size_t len); /* takes buf */
void sess_send_msg(session *s, msg_out *m);
/* An error answering request id that leaves the connection open (id 0: no
 * id; the caller closes). */
void sess_send_error(session *s, const char *code, const char *text, uint64_t id);

/* The answer to a request whose registry read failed with e: db_unavailable
 * while the shared registry cannot be reached (REG_EUNAVAIL), else
 * internal. */
#define DB_UNAVAILABLE_TEXT "the tracker cannot reach its registry database right now; try again soon"
void sess_send_db_error(session *s, int e, uint64_t id);

/* The fields of m, read for its handler: 0, or UV_EPROTO after failing the
 * connection with bad_message naming m's type, the field and the type it
 * needs.  An absent field is an error, except for the _opt forms, which
 * then leave *v as it was. */
int sess_str(session *s, const msg_in *m, const char *field, const char **v, size_t *n);
int sess_opt_str(session *s, const msg_in *m, const char *field, const char **v, size_t *n);
int sess_uint(session *s, const msg_in *m, const char *field, uint64_t *v);
int sess_opt_uint(session *s, const msg_in *m, const char *field, uint64_t *v);
int sess_bin(session *s, const msg_in *m, const char *field, const unsigned char **v, size_t n);
/* A bin of min to max bytes. */
int sess_bin_range(session *s, const msg_in *m, const char *field, const unsigned char **v,
                   size_t *n, size_t min, size_t max);
int sess_opt_bool(session *s, const msg_in *m, const char *field, bool *v);
int sess_array(session *s, const msg_in *m, const char *field, const msgpack_object_array **v,
               const char *want);
/* A request naming one user (lookup's name, connect_request's and
 * relay_request's to): its id, then that field. */
int sess_request(session *s, const msg_in *m, const char *field, uint64_t *id, const char **v,
                 size_t *n);
/* Such a request from a connection that has not registered: read as
 * above, then answered with not_registered and text. */
void sess_request_unregistered(session *s, const msg_in *m, const char *field, const char *text);

#endif
