/* control_impl: what the files of the tracker client share and nobody else
 * sees.  control.c runs the connection (ctl_step), control_requests.c
 * holds the requests waiting for answers, control_frames.c reads what the
 * tracker sends; the lookup cache is keycache.c's. */
#ifndef PARLEY_CONTROL_IMPL_H
#define PARLEY_CONTROL_IMPL_H

#include "control.h"

#include "conn.h"
#include "keycache.h"
#include "msg.h"

#include <stddef.h>
#include <stdint.h>

/* The states below 32 so control_frames.c's table can name them with
 * DISP_IN. */
enum ctl_state {
    CTL_IDLE,       /* created, first attempt not started */
    CTL_RESOLVING,  /* uv_getaddrinfo in flight */
    CTL_CONNECTING, /* TCP connect to one resolved address */
    CTL_HELLO,      /* hello sent, waiting for welcome */
    CTL_REGISTER,   /* register sent, waiting for registered */
    CTL_READY,      /* registered: requests flow, pings every ttl/3 */
    CTL_BACKOFF,    /* waiting before the next attempt */
    CTL_STOPPED,    /* the tracker refused us for good */
    CTL_CLOSED,     /* ctl_close: waiting for handles */
};

enum ctl_event {
    CTL_EV_START,      /* first attempt, or the backoff timer fired */
    CTL_EV_RESOLVED,   /* status: getaddrinfo result */
    CTL_EV_CONNECTED,  /* TCP up */
    CTL_EV_WELCOME,    /* welcome parsed into t->nonce / t->ttl */
    CTL_EV_REGISTERED, /* registered parsed */
    CTL_EV_LOST,       /* status: why the connection (or resolve) ended */
    CTL_EV_CLOSE,      /* ctl_close */
};

typedef struct ctl_request ctl_request; /* control_requests.c's */

struct ctl {
    peer_ctx *ctx;
    const ctl_handler *h;
    void *hdata;
    const logger *lg;
    enum ctl_state state;
    char host[ADDR_STRLEN];   /* of ctx->trackers[cur] */
    char port[8];
    int cur;                  /* the --tracker in use now */
    uv_getaddrinfo_t gai;
    int gai_pending;
    struct addrinfo *ai;      /* result of the last resolve */
    struct addrinfo *ai_next; /* next address to try */
    char trying[ADDR_STRLEN]; /* address of the current attempt */
    conn *c;
    uv_connect_t creq;
    uv_timer_t retry, ping, defer;
    int pending; /* open handles + in-flight requests to libuv */
    unsigned backoff_ms;
    unsigned ttl;
    unsigned char nonce[IDENT_NONCE];
    char registered_name[NAME_BUFLEN];
    char observed[ADDR_STRLEN];
    char why[512];      /* set by an error frame from the tracker */
    char lost[700];     /* the loss last reported in this outage; "" after registering */
    int ever_registered; /* registered once since ctl_open: a failure is a loss, not a bad --tracker */
    int tracker_connect_failed; /* the tracker's welcome listed the feature */
    int tracker_mailbox;        /* ... and this one */
    int tracker_punch;          /* ... and punch_request */
    int tracker_subscribe;      /* ... and subscribe: presence by subscription */
    char (*watch)[NAME_BUFLEN]; /* control_subs.c: the folded names we subscribe to */
    size_t nwatch, watchcap;
    uint64_t sub_seq;           /* control_subs.c: the last subscribe id's counter */
    const char *refusal; /* fatal error code, when the tracker refused us */
    char refusal_text[400];
    uint64_t next_id;
    ctl_request *sent;    /* sent to the tracker, waiting for an answer */
    ctl_request *done;    /* answered locally, waiting for the defer timer */
    ctl_request *waiting; /* asked while a connection attempt is under way */
    keycache *keys;
};

/* ---- control.c ---- */

/* The one transition function of the tracker connection. */
void ctl_step(ctl *t, enum ctl_event ev, int status);

/* ---- control_frames.c ---- */

/* The conn_frame_cb of the tracker connection. */
void ctl_on_frame(conn *c, const char *payload, size_t len);

/* A malformed frame of type what: bad_message, and the connection ends. */
void ctl_bad(ctl *t, const char *what);

/* The string field key copied into out: 0; UV_ENOENT when absent;
 * UV_EINVAL when it is no string or does not fit. */
int ctl_str_field(const msg_in *m, const char *key, char *out, size_t outlen);

/* ---- control_requests.c ---- */

/* Registered: sends the requests that waited, in the order they were
 * asked. */
void ctl_reqs_send_waiting(ctl *t);

/* The connection ended: requests sent on it fail with UV_ECONNRESET, and
 * those waiting for a registration with UV_ENOTCONN unless another address
 * is tried next (retrying).  Their callbacks may close t: the caller looks
 * at t->state afterwards. */
void ctl_reqs_lost(ctl *t, int retrying);

/* Frees every request without a callback (t is going away). */
void ctl_reqs_free(ctl *t);

/* Answers from the tracker to request id; an id nobody waits for any more
 * (cancelled meanwhile) is ignored.  Callbacks fire inside these calls,
 * which run from frame callbacks. */
void ctl_req_found(ctl *t, uint64_t id, const ctl_user *u);
/* One page of a list answer: names (strings; others are skipped), and the
 * cursor of the next page when next_len > 0, which is asked for at once. */
void ctl_req_listed(ctl *t, uint64_t id, const msgpack_object_array *names, const char *next,
                    size_t next_len);
/* connect_result (relay NULL) or relay_result. */
void ctl_req_reached(ctl *t, uint64_t id, const ctl_relay *relay);
void ctl_req_punched(ctl *t, uint64_t id, const char *addr, unsigned delay_ms);
/* An error frame with this id: code picks the status, text is kept as the
 * reason.  1 when a request waited for it, else 0 (it may answer a
 * mail_put: see control_mail.c). */
int ctl_req_refused(ctl *t, uint64_t id, const char *code, const char *text);

/* ---- control_subs.c ---- */

#define CTL_WATCH_MAX 500       /* names we subscribe to (the tracker takes 1000) */
#define CTL_WATCH_PER_FRAME 200 /* names per subscribe frame */

/* Registered: asks for all mode, then sends the whole set again. */
void ctl_subs_registered(ctl *t);
/* An error with id: 1 when it answers one of our subscribes (logged). */
int ctl_subs_refused(ctl *t, uint64_t id, const char *code, const char *text);
/* The subscribed and unsubscribed answers (control_frames.c's table). */
void ctl_on_subscribed(void *owner, const msg_in *m);
/* The presence_mode push: all mode ended (the tracker grew). */
void ctl_on_presence_mode(void *owner, const msg_in *m);
void ctl_subs_free(ctl *t);

/* ---- control_mail.c ---- */

/* The mailbox frames from the tracker (control_frames.c's table). */
void ctl_on_mail_stored(void *owner, const msg_in *m);
void ctl_on_mail(void *owner, const msg_in *m);
void ctl_on_receipt(void *owner, const msg_in *m);
/* An error with an id no request waits for: the answer to a mail_put. */
void ctl_mail_refused(ctl *t, uint64_t id, const char *code, const char *text);

#endif
