/* control: the tracker connection as one state machine (ctl_step).  Frames
 * from the tracker are dispatched through a table; request answers are
 * matched by id.  Callbacks that could be answered at once (from the cache,
 * or "not connected") are deferred to a zero timer so none fires inside the
 * call that asked. */
#include "control.h"

#include "conn.h"
#include "frame.h"
#include "grow.h"
#include "chatport.h"
#include "events.h"
#include "name.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define HANDSHAKE_MS 10000
#define LIST_PAGE 500

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
    EV_START,      /* first attempt, or the backoff timer fired */
    EV_RESOLVED,   /* status: getaddrinfo result */
    EV_CONNECTED,  /* TCP up */
    EV_WELCOME,    /* welcome parsed into t->nonce / t->ttl */
    EV_REGISTERED, /* registered parsed */
    EV_LOST,       /* status: why the connection (or resolve) ended */
    EV_CLOSE,      /* ctl_close */
};

enum { REQ_LOOKUP, REQ_LIST, REQ_CONNECT, REQ_RELAY };

typedef struct request {
    struct request *next;
    uint64_t id;
    int kind;
    void *data;
    ctl_lookup_cb lookup_cb;
    ctl_list_cb list_cb;
    ctl_reach_cb reach_cb;
    unsigned char token[IDENT_SESSION]; /* relay_result */
    char why[400];                      /* the tracker's error text */
    char name[NAME_BUFLEN];
    char *prefix;
    char **names;
    size_t n, cap;
    int status;
    ctl_user user;
} request;

typedef struct cache_entry {
    struct cache_entry *next;
    char fold[NAME_BUFLEN];
    ctl_user user;
} cache_entry;

struct ctl {
    peer_ctx *ctx;
    const ctl_handler *h;
    void *hdata;
    const logger *lg;
    enum ctl_state state;
    char host[ADDR_STRLEN];
    char port[8];
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
    int tracker_connect_failed; /* the tracker's welcome listed the feature */
    const char *refusal; /* fatal error code, when the tracker refused us */
    char refusal_text[400];
    uint64_t next_id;
    request *sent;     /* sent to the tracker, waiting for an answer */
    request *done;     /* answered locally, waiting for the defer timer */
    request *waiting;  /* asked while a connection attempt is under way */
    cache_entry *cache;
};

static void ctl_step(ctl *t, enum ctl_event ev, int status);

/* ---- requests ---- */

static void req_free(request *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    free(r->prefix);
    free(r);
}

static void req_complete(request *r) {
    if (r->kind == REQ_LOOKUP)
        r->lookup_cb(r->data, r->status, r->status ? NULL : &r->user);
    else if (r->kind == REQ_LIST)
        r->list_cb(r->data, r->status, r->names, r->n);
    else
        r->reach_cb(r->data, r->status, r->status || r->kind != REQ_RELAY ? NULL : r->token,
                    r->why[0] ? r->why : NULL);
}

static void on_defer(uv_timer_t *h) {
    ctl *t = h->data;
    while (t->done && t->state != CTL_CLOSED) {
        request *r = t->done;
        t->done = r->next;
        req_complete(r);
        req_free(r);
    }
}

static void defer(ctl *t, request *r, int status) {
    r->status = status;
    r->next = NULL;
    request **p = &t->done;
    while (*p)
        p = &(*p)->next;
    *p = r;
    uv_timer_start(&t->defer, on_defer, 0, 0);
}

static request *take_sent(ctl *t, uint64_t id) {
    for (request **p = &t->sent; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            request *r = *p;
            *p = r->next;
            return r;
        }
    }
    return NULL;
}

static void fail_list(ctl *t, request **list, int status) {
    while (*list) {
        request *r = *list;
        *list = r->next;
        r->status = status;
        req_complete(r);
        req_free(r);
        if (t->state == CTL_CLOSED)
            return;
    }
}

static void drop_list(request **p, void *data) {
    while (*p) {
        request *r = *p;
        if (!data || r->data == data) {
            *p = r->next;
            req_free(r);
        } else {
            p = &r->next;
        }
    }
}

void ctl_cancel(ctl *t, void *data) {
    if (!t || !data)
        return;
    drop_list(&t->sent, data);
    drop_list(&t->done, data);
    drop_list(&t->waiting, data);
}

/* ---- cache ---- */

static cache_entry *cache_find(ctl *t, const char *fold) {
    for (cache_entry *e = t->cache; e; e = e->next)
        if (strcmp(e->fold, fold) == 0)
            return e;
    return NULL;
}

static void cache_put(ctl *t, const ctl_user *u) {
    char fold[NAME_BUFLEN];
    if (name_fold(u->name, strlen(u->name), fold))
        return;
    cache_entry *e = cache_find(t, fold);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            return; /* the cache is an optimisation; a miss is harmless */
        strcpy(e->fold, fold);
        e->next = t->cache;
        t->cache = e;
    }
    e->user = *u;
}

/* ---- sending ---- */

static int send_lookup(ctl *t, request *r) {
    msg_out m;
    msg_out_init(&m, "lookup", 2);
    msg_put_uint(&m, "id", r->id);
    msg_put_str(&m, "name", r->name);
    return conn_send_msg(t->c, &m);
}

static int send_list(ctl *t, request *r, const char *cursor, size_t cursor_len) {
    msg_out m;
    int has_prefix = r->prefix && *r->prefix;
    msg_out_init(&m, "list", 2 + has_prefix + (cursor != NULL));
    msg_put_uint(&m, "id", r->id);
    msg_put_uint(&m, "limit", LIST_PAGE);
    if (has_prefix)
        msg_put_str(&m, "prefix", r->prefix);
    if (cursor)
        msg_put_strn(&m, "cursor", cursor, cursor_len);
    return conn_send_msg(t->c, &m);
}

/* connect_request and relay_request: {id, to}. */
static int send_reach(ctl *t, request *r) {
    msg_out m;
    msg_out_init(&m, r->kind == REQ_RELAY ? "relay_request" : "connect_request", 2);
    msg_put_uint(&m, "id", r->id);
    msg_put_str(&m, "to", r->name);
    return conn_send_msg(t->c, &m);
}

static void add_sent(ctl *t, request *r) {
    r->next = t->sent;
    t->sent = r;
}

/* A connection attempt is under way: requests wait for it rather than
 * fail, so commands typed at start-up work. */
static int attempting(const ctl *t) {
    return t->state == CTL_IDLE || t->state == CTL_RESOLVING || t->state == CTL_CONNECTING ||
           t->state == CTL_HELLO || t->state == CTL_REGISTER;
}

static void add_waiting(ctl *t, request *r) {
    r->next = NULL;
    request **p = &t->waiting;
    while (*p)
        p = &(*p)->next;
    *p = r;
}

/* Gives r an id and puts it on the wire.  A send error needs no handling
 * here: it means the connection is going down, and its close fails r. */
static void send_request(ctl *t, request *r) {
    r->id = ++t->next_id;
    add_sent(t, r);
    int err;
    if (r->kind == REQ_LOOKUP)
        err = send_lookup(t, r);
    else if (r->kind == REQ_LIST)
        err = send_list(t, r, NULL, 0);
    else
        err = send_reach(t, r);
    if (err)
        log_debug(t->lg, "tracker: sending request %llu: %s", (unsigned long long)r->id,
                  uv_strerror(err));
}

/* Registered: send what waited, in the order it was asked. */
static void send_waiting(ctl *t) {
    while (t->waiting && t->c) {
        request *r = t->waiting;
        t->waiting = r->next;
        send_request(t, r);
    }
}

/* Sends r now when registered; while a connection attempt is under way it
 * waits for the registration; otherwise it fails from the loop. */
static void submit(ctl *t, request *r) {
    if (t->state == CTL_READY)
        send_request(t, r);
    else if (attempting(t))
        add_waiting(t, r);
    else
        defer(t, r, UV_ENOTCONN);
}

int ctl_lookup(ctl *t, const char *name, int fresh, ctl_lookup_cb cb, void *data) {
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        return UV_EINVAL;
    request *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->kind = REQ_LOOKUP;
    r->lookup_cb = cb;
    r->data = data;
    strcpy(r->name, name);
    cache_entry *e = cache_find(t, fold);
    int ready = t->state == CTL_READY;
    if (e && (!fresh || !ready)) {
        r->user = e->user;
        defer(t, r, 0);
        return 0;
    }
    submit(t, r);
    return 0;
}

int ctl_list(ctl *t, const char *prefix, ctl_list_cb cb, void *data) {
    request *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->kind = REQ_LIST;
    r->list_cb = cb;
    r->data = data;
    if (prefix && *prefix && !(r->prefix = strdup(prefix))) {
        free(r);
        return UV_ENOMEM;
    }
    submit(t, r);
    return 0;
}

static int reach(ctl *t, int kind, const char *name, ctl_reach_cb cb, void *data) {
    request *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->kind = kind;
    r->reach_cb = cb;
    r->data = data;
    snprintf(r->name, sizeof r->name, "%s", name);
    submit(t, r);
    return 0;
}

int ctl_connect_request(ctl *t, const char *name, ctl_reach_cb cb, void *data) {
    return reach(t, REQ_CONNECT, name, cb, data);
}

int ctl_relay_request(ctl *t, const char *name, ctl_reach_cb cb, void *data) {
    return reach(t, REQ_RELAY, name, cb, data);
}

int ctl_connect_failed(ctl *t, const char *to, const char *why) {
    if (!t || t->state != CTL_READY || !t->c)
        return UV_ENOTCONN;
    if (!t->tracker_connect_failed)
        return UV_ENOTSUP; /* an older tracker would close on the unknown type */
    msg_out m;
    msg_out_init(&m, "connect_failed", 2);
    msg_put_str(&m, "to", to);
    msg_put_str(&m, "reason", why);
    return conn_send_msg(t->c, &m);
}

int ctl_tracker_addr(const ctl *t, struct sockaddr_storage *ss) {
    if (!t || t->state != CTL_READY || !t->c)
        return UV_ENOTCONN;
    int len = sizeof *ss;
    return uv_tcp_getpeername(conn_tcp(t->c), (struct sockaddr *)ss, &len);
}

int ctl_ready(const ctl *t) { return t && t->state == CTL_READY; }

/* ---- frames from the tracker ---- */

static void bad(ctl *t, const char *what) {
    char text[200];
    snprintf(text, sizeof text, "malformed %s", what);
    conn_fail(t->c, "bad_message", text, 0);
}

static int expect(ctl *t, const msg_in *m, enum ctl_state s) {
    if (t->state == s)
        return 1;
    char text[64];
    snprintf(text, sizeof text, "unexpected %s", m->type);
    conn_fail(t->c, "bad_message", text, 0);
    return 0;
}

static void on_welcome(ctl *t, const msg_in *m) {
    uint64_t v, ttl;
    const unsigned char *nonce;
    if (!expect(t, m, CTL_HELLO))
        return;
    if (msg_uint(m, "v", &v) || msg_bin(m, "nonce", &nonce, IDENT_NONCE) ||
        msg_uint(m, "ttl", &ttl))
        return bad(t, "welcome");
    if (v != PROTO_VERSION) {
        snprintf(t->why, sizeof t->why, "the tracker speaks protocol version %llu, we speak %d",
                 (unsigned long long)v, PROTO_VERSION);
        t->refusal = "version";
        conn_close(t->c, UV_EPROTO);
        return;
    }
    memcpy(t->nonce, nonce, IDENT_NONCE);
    t->ttl = ttl == 0 ? 60 : ttl > 86400 ? 86400 : (unsigned)ttl;
    t->tracker_connect_failed = msg_has_feature(m, "connect_failed");
    ctl_step(t, EV_WELCOME, 0);
}

static void on_registered(ctl *t, const msg_in *m) {
    const msgpack_object *o;
    if (!expect(t, m, CTL_REGISTER))
        return;
    if (msg_get(m, "name", &o) || msg_obj_cstr(o, t->registered_name, sizeof t->registered_name))
        return bad(t, "registered");
    t->observed[0] = '\0';
    if (msg_get(m, "observed", &o) == 0 && msg_obj_cstr(o, t->observed, sizeof t->observed))
        return bad(t, "registered");
    ctl_step(t, EV_REGISTERED, 0);
}

static int parse_user(const msg_in *m, ctl_user *u) {
    const msgpack_object *o;
    const unsigned char *key;
    const msgpack_object_array *a;
    bool online;
    memset(u, 0, sizeof *u);
    if (msg_get(m, "name", &o) || msg_obj_cstr(o, u->name, sizeof u->name) ||
        msg_bin(m, "key", &key, IDENT_PK) || msg_bool(m, "online", &online))
        return UV_EINVAL;
    memcpy(u->key, key, IDENT_PK);
    u->online = online;
    int r = msg_array(m, "endpoints", &a);
    if (r == UV_EINVAL)
        return r;
    for (uint32_t i = 0; r == 0 && i < a->size && u->n_endpoints < PEER_MAX_ENDPOINTS; i++)
        if (msg_obj_cstr(&a->ptr[i], u->endpoints[u->n_endpoints], ADDR_STRLEN) == 0)
            u->n_endpoints++;
    if (msg_get(m, "observed", &o) == 0 && msg_obj_cstr(o, u->observed, sizeof u->observed))
        return UV_EINVAL;
    if (msg_int(m, "last_seen", &u->last_seen) == UV_EINVAL)
        return UV_EINVAL;
    return 0;
}

static void on_lookup_result(ctl *t, const msg_in *m) {
    uint64_t id;
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_uint(m, "id", &id))
        return bad(t, "lookup_result");
    ctl_user u;
    if (parse_user(m, &u))
        return bad(t, "lookup_result");
    cache_put(t, &u);
    request *r = take_sent(t, id);
    if (!r)
        return; /* cancelled meanwhile */
    r->user = u;
    r->status = 0;
    req_complete(r);
    req_free(r);
}

static void on_list_result(ctl *t, const msg_in *m) {
    uint64_t id;
    const msgpack_object_array *a;
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_uint(m, "id", &id) || msg_array(m, "users", &a))
        return bad(t, "list_result");
    const char *next = NULL;
    size_t next_len = 0;
    if (msg_str(m, "next", &next, &next_len) == UV_EINVAL)
        return bad(t, "list_result");
    request *r = take_sent(t, id);
    if (!r)
        return;
    for (uint32_t i = 0; i < a->size; i++) {
        char name[NAME_BUFLEN];
        if (msg_obj_cstr(&a->ptr[i], name, sizeof name))
            continue;
        char **p = grow(r->names, &r->cap, r->n + 1, sizeof *p, 64);
        if (!p)
            break;
        r->names = p;
        if (!(r->names[r->n] = strdup(name)))
            break;
        r->n++;
    }
    if (next && next_len) {
        add_sent(t, r);
        send_list(t, r, next, next_len);
        return;
    }
    r->status = 0;
    req_complete(r);
    req_free(r);
}

static void on_presence(ctl *t, const msg_in *m) {
    const msgpack_object *o;
    char name[NAME_BUFLEN], fold[NAME_BUFLEN];
    bool online;
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_get(m, "name", &o) || msg_obj_cstr(o, name, sizeof name) ||
        msg_bool(m, "online", &online) || name_fold(name, strlen(name), fold))
        return bad(t, "presence");
    cache_entry *e = cache_find(t, fold);
    if (e)
        e->user.online = online;
    if (strcmp(fold, t->ctx->user_fold) != 0) {
        ev_presence(t->ctx, name, online);
        if (t->h->presence)
            t->h->presence(t->hdata, name, online);
    }
}

static void on_pong(ctl *t, const msg_in *m) {}

/* connect_result / relay_result: the request was accepted. */
static void on_reach_result(ctl *t, const msg_in *m) {
    uint64_t id;
    const unsigned char *token = NULL;
    if (!expect(t, m, CTL_READY))
        return;
    int relay = strcmp(m->type, "relay_result") == 0;
    if (msg_uint(m, "id", &id) || (relay && msg_bin(m, "session", &token, IDENT_SESSION)))
        return bad(t, m->type);
    request *r = take_sent(t, id);
    if (!r)
        return;
    if (token)
        memcpy(r->token, token, IDENT_SESSION);
    r->status = 0;
    req_complete(r);
    req_free(r);
}

/* Another user asks us to dial it (it cannot reach us directly). */
static void on_connect_push(ctl *t, const msg_in *m) {
    const msgpack_object *o;
    const unsigned char *key;
    const msgpack_object_array *a;
    ctl_user u;
    memset(&u, 0, sizeof u);
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_get(m, "from", &o) || msg_obj_cstr(o, u.name, sizeof u.name) ||
        msg_bin(m, "key", &key, IDENT_PK) || msg_array(m, "endpoints", &a))
        return bad(t, "connect_request");
    memcpy(u.key, key, IDENT_PK);
    u.online = true;
    for (uint32_t i = 0; i < a->size && u.n_endpoints < PEER_MAX_ENDPOINTS; i++)
        if (msg_obj_cstr(&a->ptr[i], u.endpoints[u.n_endpoints], ADDR_STRLEN) == 0)
            u.n_endpoints++;
    if (msg_get(m, "observed", &o) == 0 && msg_obj_cstr(o, u.observed, sizeof u.observed))
        return bad(t, "connect_request");
    cache_put(t, &u); /* the tracker vouches for this key */
    if (t->h->connect_request)
        t->h->connect_request(t->hdata, &u);
}

/* The user we asked for a reverse connection could not dial us.  A hint:
 * one we cannot read is dropped, never a reason to leave the tracker (its
 * text comes from another user). */
static void on_connect_failed_push(ctl *t, const msg_in *m) {
    const msgpack_object *o;
    const char *reason = "";
    size_t rlen = 0;
    char from[NAME_BUFLEN], why[256];
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_get(m, "from", &o) || msg_obj_cstr(o, from, sizeof from)) {
        log_debug(t->lg, "tracker: dropping a connect_failed without a usable from");
        return;
    }
    msg_str(m, "reason", &reason, &rlen); /* absent or odd: no reason */
    utf8_clean(reason, rlen, why, sizeof why);
    if (t->h->connect_failed)
        t->h->connect_failed(t->hdata, from, why);
}

/* Another user set up a relay session for the two of us. */
static void on_relay_offer(ctl *t, const msg_in *m) {
    const msgpack_object *o;
    const unsigned char *token;
    char from[NAME_BUFLEN];
    if (!expect(t, m, CTL_READY))
        return;
    if (msg_get(m, "from", &o) || msg_obj_cstr(o, from, sizeof from) ||
        msg_bin(m, "session", &token, IDENT_SESSION))
        return bad(t, "relay_offer");
    if (t->h->relay_offer)
        t->h->relay_offer(t->hdata, from, token);
}

static void on_error(ctl *t, const msg_in *m) {
    char code[32], text[400];
    uint64_t id = 0;
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    if (msg_uint(m, "id", &id) == 0 && id) {
        request *r = take_sent(t, id);
        if (r) {
            r->status = strcmp(code, "not_found") == 0 ? UV_ENOENT
                        : strcmp(code, "bad_name") == 0 ? UV_EINVAL
                        : strcmp(code, "offline") == 0 ? UV_EHOSTUNREACH
                        : strcmp(code, "limit") == 0 ? UV_EBUSY : UV_EPROTO;
            snprintf(r->why, sizeof r->why, "%s", text);
            req_complete(r);
            req_free(r);
        }
        return;
    }
    static const char *fatal[] = {"name_taken", "bad_name", "bad_signature", "version", "replaced"};
    for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
        if (strcmp(code, fatal[i]) == 0)
            t->refusal = fatal[i];
    snprintf(t->why, sizeof t->why, "the tracker said: %s (%s)", text[0] ? text : "no reason given",
             code[0] ? code : "?");
    snprintf(t->refusal_text, sizeof t->refusal_text, "%s", text[0] ? text : code);
    log_info(t->lg, "tracker %s: %s", t->trying, t->why);
    conn_close(t->c, UV_EPROTO);
}

static const struct {
    const char *type;
    void (*fn)(ctl *t, const msg_in *m);
} handlers[] = {
    {"welcome", on_welcome},         {"registered", on_registered},
    {"lookup_result", on_lookup_result}, {"list_result", on_list_result},
    {"presence", on_presence},       {"pong", on_pong},
    {"connect_result", on_reach_result}, {"relay_result", on_reach_result},
    {"connect_request", on_connect_push}, {"relay_offer", on_relay_offer},
    {"connect_failed", on_connect_failed_push},
    {"error", on_error},
};

static void on_frame(conn *c, const char *payload, size_t len) {
    ctl *t = conn_data(c);
    msg_in m;
    if (msg_parse(&m, payload, len)) {
        conn_fail(c, "bad_frame", "not a msgpack map with a string t", 0);
        return;
    }
    if (t->state == CTL_READY)
        conn_set_timeout(c, (uint64_t)t->ttl * 1000); /* the tracker is alive */
    size_t i;
    for (i = 0; i < sizeof handlers / sizeof *handlers; i++) {
        if (strcmp(m.type, handlers[i].type) == 0) {
            handlers[i].fn(t, &m);
            break;
        }
    }
    if (i == sizeof handlers / sizeof *handlers) {
        char text[64];
        snprintf(text, sizeof text, "unknown message type %s", m.type);
        conn_fail(c, "unknown_type", text, 0);
    }
    msg_in_free(&m);
}

/* ---- connection plumbing ---- */

static void maybe_free(ctl *t) {
    if (t->state != CTL_CLOSED || t->pending > 0)
        return;
    drop_list(&t->sent, NULL);
    drop_list(&t->done, NULL);
    drop_list(&t->waiting, NULL);
    while (t->cache) {
        cache_entry *e = t->cache;
        t->cache = e->next;
        free(e);
    }
    if (t->ai)
        uv_freeaddrinfo(t->ai);
    free(t);
}

static void on_handle_closed(uv_handle_t *h) {
    ctl *t = h->data;
    t->pending--;
    maybe_free(t);
}

static void on_conn_closed(conn *c, int reason) {
    ctl *t = conn_data(c);
    t->c = NULL;
    t->pending--;
    if (t->state == CTL_CLOSED) {
        maybe_free(t);
        return;
    }
    ctl_step(t, EV_LOST, reason);
}

static void on_connect(uv_connect_t *req, int status) {
    ctl *t = req->data;
    if (status == UV_ECANCELED || !t->c)
        return; /* closing: on_conn_closed reports */
    if (status == 0)
        status = conn_start(t->c);
    if (status) {
        conn_close(t->c, status);
        return;
    }
    ctl_step(t, EV_CONNECTED, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    ctl *t = req->data;
    t->gai_pending = 0;
    t->pending--;
    if (t->state == CTL_CLOSED) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(t);
        return;
    }
    if (t->ai)
        uv_freeaddrinfo(t->ai);
    t->ai = status ? NULL : res;
    t->ai_next = t->ai;
    ctl_step(t, EV_RESOLVED, status);
}

static void on_retry(uv_timer_t *h) { ctl_step(h->data, EV_START, 0); }

static void on_ping(uv_timer_t *h) {
    ctl *t = h->data;
    if (t->state != CTL_READY || !t->c)
        return;
    msg_out m;
    msg_out_init(&m, "ping", 0);
    conn_send_msg(t->c, &m);
}

/* Starts a connection to the next resolved address.  0, or UV_EOF when
 * none is left. */
static int connect_next(ctl *t) {
    while (t->ai_next) {
        struct addrinfo *ai = t->ai_next;
        t->ai_next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        addr_format(ai->ai_addr, t->trying, sizeof t->trying);
        conn *c = conn_new(t->ctx->loop, FRAME_MAX_DEFAULT, t->lg, on_frame, on_conn_closed, t);
        if (!c)
            return UV_ENOMEM;
        t->c = c;
        t->pending++;
        t->creq.data = t;
        conn_set_timeout(c, HANDSHAKE_MS);
        int r = uv_tcp_connect(&t->creq, conn_tcp(c), ai->ai_addr, on_connect);
        if (r)
            conn_close(c, r); /* reported from on_conn_closed */
        return 0;
    }
    return UV_EOF;
}

static int send_hello(ctl *t) {
    msg_out m;
    msg_out_init(&m, "hello", 2);
    msg_put_uint(&m, "v", PROTO_VERSION);
    msg_put_str(&m, "role", "peer");
    return conn_send_msg(t->c, &m);
}

static int send_register(ctl *t) {
    peer_ctx *ctx = t->ctx;
    char eps[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    int n = port_endpoints(ctx->port, eps, PEER_MAX_ENDPOINTS);
    unsigned char sig[IDENT_SIG];
    ident_sign_register(&ctx->id, t->nonce, ctx->user, strlen(ctx->user), sig);
    msg_out m;
    msg_out_init(&m, "register", 5);
    msg_put_key(&m, "features"); /* pushes newer than protocol 1 we understand */
    msgpack_pack_array(&m.pk, 1);
    msg_pack_str(&m, "connect_failed", 14);
    msg_put_str(&m, "name", ctx->user);
    msg_put_bin(&m, "key", ctx->id.pk, IDENT_PK);
    msg_put_bin(&m, "sig", sig, IDENT_SIG);
    msg_put_key(&m, "endpoints");
    msgpack_pack_array(&m.pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msg_pack_str(&m, eps[i], strlen(eps[i]));
    log_debug(t->lg, "registering as %s with %d endpoint(s)", ctx->user, n);
    return conn_send_msg(t->c, &m);
}

/* Why the last attempt ended, for "tracker lost: REASON". */
static void describe_loss(ctl *t, int was, int status, char *out, size_t outlen) {
    if (t->why[0])
        snprintf(out, outlen, "%s", t->why);
    else if (was == CTL_RESOLVING)
        snprintf(out, outlen, "cannot resolve %s: %s", t->host, uv_strerror(status));
    else if (was == CTL_CONNECTING)
        snprintf(out, outlen, "cannot connect to %s: %s", t->trying, uv_strerror(status));
    else if (status == UV_EOF)
        snprintf(out, outlen, "the tracker at %s closed the connection", t->trying);
    else if (status == UV_ETIMEDOUT)
        snprintf(out, outlen, "no answer from the tracker at %s for %u s", t->trying,
                 was == CTL_READY ? t->ttl : HANDSHAKE_MS / 1000);
    else
        snprintf(out, outlen, "connection to %s failed: %s", t->trying, uv_strerror(status));
}

static void refused(ctl *t) {
    peer_ctx *ctx = t->ctx;
    const char *code = t->refusal;
    if (strcmp(code, "name_taken") == 0)
        ev_error(ctx, "name_taken", "the name %s is taken by another key (tracker: %s); pick another "
                 "--user, or use the --home that holds this name's key", ctx->user, t->refusal_text);
    else if (strcmp(code, "bad_name") == 0)
        ev_error(ctx, "name_refused", "the tracker refused the name %s (%s); pick another --user",
                 ctx->user, t->refusal_text);
    else if (strcmp(code, "bad_signature") == 0)
        ev_error(ctx, "bad_signature", "the tracker rejected our signature (%s); check the key in --home",
                 t->refusal_text);
    else if (strcmp(code, "version") == 0)
        ev_error(ctx, "version_mismatch", "the tracker speaks another protocol version (%s); use matching "
                 "parley versions", t->refusal_text[0] ? t->refusal_text : t->why);
    else
        ev_error(ctx, "replaced", "%s registered again from another place, so this peer is no "
                 "longer registered (%s); chats already open keep working", ctx->user,
                 t->refusal_text);
    if (strcmp(code, "replaced") != 0 && t->h->refused)
        t->h->refused(t->hdata, code);
}

/* The one transition function of the tracker connection. */
static void ctl_step(ctl *t, enum ctl_event ev, int status) {
    enum ctl_state was = t->state;
    if (was == CTL_CLOSED)
        return;
    switch (ev) {
    case EV_START: {
        if (was != CTL_IDLE && was != CTL_BACKOFF)
            return;
        t->why[0] = '\0';
        t->refusal_text[0] = '\0';
        t->refusal = NULL;
        struct addrinfo hints = {0};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        t->gai.data = t;
        t->state = CTL_RESOLVING;
        int r = uv_getaddrinfo(t->ctx->loop, &t->gai, on_resolved, t->host, t->port, &hints);
        if (r) {
            ctl_step(t, EV_LOST, r);
            return;
        }
        t->gai_pending = 1;
        t->pending++;
        return;
    }
    case EV_RESOLVED:
        if (status) {
            ctl_step(t, EV_LOST, status);
            return;
        }
        t->state = CTL_CONNECTING;
        if (connect_next(t))
            ctl_step(t, EV_LOST, UV_EADDRNOTAVAIL);
        return;
    case EV_CONNECTED:
        log_debug(t->lg, "connected to tracker %s", t->trying);
        t->state = CTL_HELLO;
        send_hello(t);
        return;
    case EV_WELCOME:
        t->state = CTL_REGISTER;
        conn_set_timeout(t->c, HANDSHAKE_MS);
        send_register(t);
        return;
    case EV_REGISTERED: {
        t->state = CTL_READY;
        t->lost[0] = '\0'; /* the next loss is news again */
        t->backoff_ms = BACKOFF_MIN_MS;
        uint64_t every = (uint64_t)t->ttl * 1000 / 3;
        if (every < 1000)
            every = 1000;
        uv_timer_start(&t->ping, on_ping, every, every);
        conn_set_timeout(t->c, (uint64_t)t->ttl * 1000);
        ev_registered(t->ctx, t->registered_name, t->ctx->tracker, t->observed);
        send_waiting(t);
        if (t->h->registered)
            t->h->registered(t->hdata);
        return;
    }
    case EV_LOST: {
        uv_timer_stop(&t->ping);
        fail_list(t, &t->sent, UV_ECONNRESET);
        if (t->state != CTL_CLOSED && !(was == CTL_CONNECTING && !t->why[0] && t->ai_next))
            fail_list(t, &t->waiting, UV_ENOTCONN); /* no more attempts for now */
        if (t->state == CTL_CLOSED)
            return;
        if (t->refusal) {
            t->state = CTL_STOPPED;
            refused(t);
            return;
        }
        if (was == CTL_CONNECTING && !t->why[0] && connect_next(t) == 0) {
            log_debug(t->lg, "tracker: %s: %s; trying the next address", t->trying,
                      uv_strerror(status));
            return;
        }
        char why[700];
        describe_loss(t, was, status, why, sizeof why);
        unsigned base = t->backoff_ms;
        /* +-20% jitter so peers that lost the same tracker do not return in step */
        unsigned delay = base - base / 5 + randombytes_uniform(base * 2 / 5 + 1);
        t->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
        t->state = CTL_BACKOFF;
        uv_timer_start(&t->retry, on_retry, delay, 0);
        int repeat = strcmp(why, t->lost) == 0;
        if (repeat)
            log_info(t->lg, "tracker still unreachable (%s); retrying in %.1fs", why, delay / 1000.0);
        else
            snprintf(t->lost, sizeof t->lost, "%s", why);
        ev_tracker_lost(t->ctx, why, delay, repeat);
        return;
    }
    case EV_CLOSE:
        t->state = CTL_CLOSED;
        if (t->gai_pending)
            uv_cancel((uv_req_t *)&t->gai);
        if (t->c)
            conn_close(t->c, 0);
        uv_close((uv_handle_t *)&t->retry, on_handle_closed);
        uv_close((uv_handle_t *)&t->ping, on_handle_closed);
        uv_close((uv_handle_t *)&t->defer, on_handle_closed);
        return;
    }
}

static void on_first(uv_timer_t *h) { ctl_step(h->data, EV_START, 0); }

int ctl_open(peer_ctx *ctx, const ctl_handler *h, void *data, ctl **out) {
    ctl *t = calloc(1, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    t->ctx = ctx;
    t->h = h;
    t->hdata = data;
    t->lg = &ctx->lg;
    t->state = CTL_IDLE;
    t->backoff_ms = BACKOFF_MIN_MS;
    t->ttl = 60;
    if (addr_split(ctx->tracker, "5960", t->host, sizeof t->host, t->port, sizeof t->port)) {
        free(t);
        return UV_EINVAL;
    }
    snprintf(t->trying, sizeof t->trying, "%s", ctx->tracker);
    uv_timer_init(ctx->loop, &t->retry);
    uv_timer_init(ctx->loop, &t->ping);
    uv_timer_init(ctx->loop, &t->defer);
    t->retry.data = t->ping.data = t->defer.data = t;
    t->pending = 3;
    uv_timer_start(&t->retry, on_first, 0, 0);
    *out = t;
    return 0;
}

void ctl_close(ctl *t) {
    if (!t)
        return;
    ctl_step(t, EV_CLOSE, 0);
}
