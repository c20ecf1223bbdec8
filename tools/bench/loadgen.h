/* loadgen: the load generator behind `make bench` (tools/bench/bench.py runs
 * it).  One process, one libuv loop, a fixed array of slots; each slot is one
 * client connection that keeps one request in flight.  Every connection is
 * a shared/conn (slot.c), the transport parley itself runs on, for both
 * protocols: parley (parley_client.c) takes whole frames from it, RESP to
 * redis-server (resp_client.c) its raw bytes, so parley and its reference
 * pay the same client cost.  loadgen.c owns the phases: preload, setup,
 * measure (or hold), finish. */
#ifndef PARLEY_LOADGEN_H
#define PARLEY_LOADGEN_H

#include "conn.h"
#include "frame.h"
#include "identity.h"
#include "latency.h"
#include "log.h"
#include "name.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef enum { LG_PARLEY, LG_RESP } lg_proto_kind;

typedef enum {
    OP_NONE,     /* preload only */
    OP_LOOKUP,   /* parley: lookup of a preloaded name */
    OP_LIST,     /* parley: first list page (online users) */
    OP_REGISTER, /* parley: connect, hello, register a new name, registered, close */
    OP_HOLD,     /* parley: stay registered (pinging) until a signal or --duration */
    OP_GET,      /* resp: GET of a preloaded key */
    OP_SET,      /* resp: SET of a new key */
    OP_PUT,      /* parley: mail_put of a --value-size box to a preloaded user */
    OP_DRAIN,    /* parley: register NAMES0 with the mailbox feature, mail_ack every mail */
    OP_RPUSH,    /* resp: RPUSH of a --value-size value onto a preloaded key's list */
    OP_LDRAIN,   /* resp: LRANGE NAMES0 0 PAGE-1, then LTRIM NAMES0 N -1, until --count */
} lg_op;

/* What a slot is doing; only slot_set (slot.c) moves it. */
typedef enum {
    SL_IDLE,       /* no connection */
    SL_CONNECTING, /* uv_tcp_connect pending */
    SL_HANDSHAKE,  /* parley: hello/register (and --subscribe) exchange running */
    SL_READY,      /* connected (and registered); no request in flight */
    SL_BUSY,       /* one request in flight */
    SL_CLOSING,    /* uv_close pending */
} slot_state;

/* The work a connection does: a session stays open and serves many
 * requests; a cycle opens, registers (or first SETs) one thing and closes. */
typedef enum { JOB_SESSION, JOB_CYCLE } slot_job;

typedef struct lg_ctx lg_ctx;

typedef struct slot {
    conn *c;            /* NULL while SL_IDLE */
    uv_connect_t creq;
    lg_ctx *ctx;
    size_t idx;
    slot_state state;
    slot_job job;
    frame_reader tail;  /* RESP: the start of a reply that a read cut short */
    uint64_t t0;        /* hrtime when the pending operation started */
    uint64_t req_id;
    uint64_t key;       /* preload index or name counter of the current cycle */
    uint64_t last_mid;  /* drain: the newest mail taken (pushes come oldest first) */
    uint64_t page;      /* resp drain: elements of the page whose LTRIM is in flight */
    int trimming;       /* resp drain: LTRIM (1) or LRANGE (0) in flight */
    char name[NAME_BUFLEN];
    unsigned char nonce[IDENT_NONCE];
} slot;

/* A protocol: how a slot says hello and asks its questions.  Each function
 * runs from a loop callback; they report back through lg_ready / lg_reply /
 * lg_fail (loadgen.c), never from inside the call that started the slot. */
typedef struct lg_proto {
    const char *name;
    /* The TCP connection is up: start the handshake (parley) or call
     * lg_ready at once (RESP). */
    void (*connected)(slot *s);
    /* How replies come back, with the slot as conn_data: one of the two
     * is set, on_frame for whole frames, on_raw for conn's raw mode. */
    conn_frame_cb on_frame;
    conn_raw_cb on_raw;
    /* Send the measured request (lookup, list, GET, SET) or, when preload
     * is set, the preload write of s->key. 0 or a uv error. */
    int (*request)(slot *s, int preload);
    /* Hold mode heartbeat; NULL when the protocol has none. */
    int (*ping)(slot *s);
} lg_proto;

extern const lg_proto parley_proto;
extern const lg_proto resp_proto;

typedef struct lg_opts {
    lg_proto_kind proto;
    lg_op op;
    const char *target;
    size_t conns;          /* measured connections */
    double duration;       /* seconds of measurement (hold: 0 = until a signal) */
    double warmup;         /* seconds run but not recorded */
    uint64_t count;        /* stop after this many measured ops (0: by time) */
    uint64_t preload;      /* names/keys written before measuring */
    size_t preload_conns;  /* preload operations in flight */
    const char *names;     /* preload names/keys: NAMES0 .. NAMES(n-1) */
    uint64_t name_count;   /* lookup/GET targets drawn from [0, n) */
    const char *self;      /* prefix of the names this process registers itself */
    size_t value_size;     /* RESP SET/RPUSH value and mail_put box bytes */
    unsigned page;         /* resp drain: LRANGE page size */
    int key_seed_set;      /* the identity comes from key_seed, not a fresh key pair */
    uint64_t key_seed;
    int until_signal;      /* a signal while measuring ends the run with its figures */
    unsigned list_limit;
    unsigned subscribe;    /* hold/register: names each connection subscribes to */
    const char *sub_names; /* their prefix */
    uint64_t sub_count;    /* SUBNAMES0 .. SUBNAMES<n-1> */
    uint64_t sub_offset;   /* added to a connection's index */
    double timeout;        /* hard bound on the whole run, seconds */
    uint64_t seed;
} lg_opts;

typedef enum { PH_PRELOAD, PH_SETUP, PH_MEASURE, PH_HOLD, PH_DONE } lg_phase;

struct lg_ctx {
    uv_loop_t *loop;
    logger lg;
    lg_opts o;
    const lg_proto *proto;
    struct sockaddr_storage target;
    identity id;
    lg_phase phase;
    slot *slots;
    size_t nslots;
    size_t ready;           /* setup: slots registered so far */
    uint64_t next_key;      /* next preload index / register counter */
    uint64_t done_preload;
    uint64_t ops;           /* measured ops completed in the window (drain: messages taken) */
    uint64_t issued;        /* requests sent; with --count and no warm-up at most --count */
    uint64_t t_first;       /* drain: when the first message arrived */
    uint64_t errors;
    uint64_t t_preload0, t_preload1, t_begin, t_record, t_end, t_stop;
    lat *lat;
    uint64_t rng;
    unsigned ttl;           /* from welcome: hold mode pings every ttl/3 */
    char *value;            /* RESP SET payload ('v's); RPUSH value and mail box (random) */
    int exit_code;
    char fatal[256];
    uv_timer_t phase_timer, deadline, ping_timer;
    uv_signal_t sigint, sigterm;
};

/* ---- slot.c: the connections ---- */

/* Opens the slot's connection (slot must be SL_IDLE); requests go out with
 * conn_send* on s->c.  0 or a uv error; a failure after the start is
 * reported through lg_closed. */
int slot_connect(slot *s);
/* Closes the connection; lg_closed fires from the loop afterwards. */
void slot_close(slot *s);
void slot_set(slot *s, slot_state to);

/* ---- loadgen.c: what the protocols report ---- */

/* The slot is connected and (parley) registered. */
void lg_ready(slot *s);
/* The answer to the slot's request arrived; ok = 0 for an error answer. */
void lg_reply(slot *s, int ok);
/* Something went wrong that ends the run: logs why, closes everything. */
void lg_fail(slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The slot's connection is gone (after slot_close or a transport error). */
void lg_closed(slot *s, int reason);
/* Drain: n more messages were taken (the acknowledgement is out, or
 * being sent).  1 once --count are: the clock stopped, and the protocol
 * calls lg_finish when it is done (after the answer to that last
 * acknowledgement, if it has one). */
int lg_drained(slot *s, uint64_t n);
/* Drain: the clock starts (parley: register goes out; RESP: the first
 * LRANGE). */
void lg_drain_clock(lg_ctx *ctx);
/* Ends the run normally. */
void lg_finish(lg_ctx *ctx);
/* A uniformly drawn index in [0, n). */
uint64_t lg_rand(lg_ctx *ctx, uint64_t n);

#endif
