/* control_requests: the questions the peer asks its tracker (lookup, list,
 * connect_request, relay_request).  Each is a request object with an id,
 * on one of three lists: waiting (asked while a connection attempt is
 * under way, sent once registered), sent (on the wire, matched by id when
 * the answer comes) and done (answered without the tracker, from the
 * cache or "not connected", and called back from a zero timer so no
 * callback fires inside the call that asked). */
#include "control_impl.h"

#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 500

enum req_kind { REQ_LOOKUP, REQ_LIST, REQ_CONNECT, REQ_RELAY, REQ_PUNCH };

struct ctl_request {
    ctl_request *next;
    uint64_t id;
    enum req_kind kind;
    void *data;
    ctl_lookup_cb lookup_cb;
    ctl_list_cb list_cb;
    ctl_reach_cb reach_cb;
    ctl_punch_cb punch_cb;
    char addr[ADDR_STRLEN];             /* punch_result */
    unsigned delay_ms;
    uint64_t tag;                       /* connect_request */
    ctl_relay relay;                    /* relay_result */
    char why[400];                      /* the tracker's error text */
    char name[NAME_BUFLEN];
    char *prefix;
    char **names;
    size_t n, cap;
    int status;
    ctl_user user;
};

static ctl_request *req_new(enum req_kind kind, void *data) {
    ctl_request *r = calloc(1, sizeof *r);
    if (r) {
        r->kind = kind;
        r->data = data;
    }
    return r;
}

static void req_free(ctl_request *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    free(r->prefix);
    free(r);
}

static void req_complete(ctl_request *r) {
    if (r->kind == REQ_LOOKUP)
        r->lookup_cb(r->data, r->status, r->status ? NULL : &r->user);
    else if (r->kind == REQ_LIST)
        r->list_cb(r->data, r->status, r->names, r->n);
    else if (r->kind == REQ_PUNCH)
        r->punch_cb(r->data, r->status, r->status ? NULL : r->addr, r->delay_ms,
                    r->why[0] ? r->why : NULL);
    else
        r->reach_cb(r->data, r->status, r->status || r->kind != REQ_RELAY ? NULL : &r->relay,
                    r->why[0] ? r->why : NULL);
}

/* Calls r back with status and frees it. */
static void req_finish(ctl_request *r, int status) {
    r->status = status;
    req_complete(r);
    req_free(r);
}

static void append(ctl_request **list, ctl_request *r) {
    r->next = NULL;
    while (*list)
        list = &(*list)->next;
    *list = r;
}

static void on_defer(uv_timer_t *h) {
    ctl *t = h->data;
    while (t->done && t->state != CTL_CLOSED) {
        ctl_request *r = t->done;
        t->done = r->next;
        req_finish(r, r->status);
    }
}

static void defer(ctl *t, ctl_request *r, int status) {
    r->status = status;
    append(&t->done, r);
    uv_timer_start(&t->defer, on_defer, 0, 0);
}

static ctl_request *take_sent(ctl *t, uint64_t id) {
    for (ctl_request **p = &t->sent; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            ctl_request *r = *p;
            *p = r->next;
            return r;
        }
    }
    return NULL;
}

static void fail_list(ctl *t, ctl_request **list, int status) {
    while (*list) {
        ctl_request *r = *list;
        *list = r->next;
        req_finish(r, status);
        if (t->state == CTL_CLOSED)
            return;
    }
}

/* Frees the requests of list made with data, or all of them (data NULL). */
static void drop_list(ctl_request **p, void *data) {
    while (*p) {
        ctl_request *r = *p;
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

void ctl_reqs_free(ctl *t) {
    drop_list(&t->sent, NULL);
    drop_list(&t->done, NULL);
    drop_list(&t->waiting, NULL);
}

void ctl_reqs_lost(ctl *t, int retrying) {
    fail_list(t, &t->sent, UV_ECONNRESET);
    if (t->state != CTL_CLOSED && !retrying)
        fail_list(t, &t->waiting, UV_ENOTCONN); /* no more attempts for now */
}

/* ---- sending ---- */

static int send_lookup(ctl *t, ctl_request *r) {
    msg_out m;
    msg_out_init(&m, "lookup", 2);
    msg_put_uint(&m, "id", r->id);
    msg_put_str(&m, "name", r->name);
    return conn_send_msg(t->c, &m);
}

static int send_list(ctl *t, ctl_request *r, const char *cursor, size_t cursor_len) {
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

/* connect_request, relay_request and punch_request: {id, to}. */
static int send_reach(ctl *t, ctl_request *r) {
    msg_out m;
    msg_out_init(&m, r->kind == REQ_RELAY ? "relay_request"
                     : r->kind == REQ_PUNCH ? "punch_request" : "connect_request", 2 + (r->tag != 0));
    msg_put_uint(&m, "id", r->id);
    msg_put_str(&m, "to", r->name);
    if (r->tag)
        msg_put_uint(&m, "tag", r->tag);
    return conn_send_msg(t->c, &m);
}

static void add_sent(ctl *t, ctl_request *r) {
    r->next = t->sent;
    t->sent = r;
}

/* Gives r an id and puts it on the wire.  A send error needs no handling
 * here: it means the connection is going down, and its close fails r. */
static void send_request(ctl *t, ctl_request *r) {
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

void ctl_reqs_send_waiting(ctl *t) {
    while (t->waiting && t->c) {
        ctl_request *r = t->waiting;
        t->waiting = r->next;
        send_request(t, r);
    }
}

/* A connection attempt is under way: requests wait for it rather than
 * fail, so commands typed at start-up work. */
static int attempting(const ctl *t) {
    return t->state == CTL_IDLE || t->state == CTL_RESOLVING || t->state == CTL_CONNECTING ||
           t->state == CTL_HELLO || t->state == CTL_REGISTER;
}

/* Sends r now when registered; while a connection attempt is under way it
 * waits for the registration; otherwise it fails from the loop.  A request
 * made from the callback of one the lost connection failed finds the
 * state still CTL_READY but no connection: ctl_ready says no, and it
 * fails from the loop too. */
static void submit(ctl *t, ctl_request *r) {
    if (ctl_ready(t))
        send_request(t, r);
    else if (attempting(t))
        append(&t->waiting, r);
    else
        defer(t, r, UV_ENOTCONN);
}

int ctl_lookup(ctl *t, const char *name, int fresh, ctl_lookup_cb cb, void *data) {
    char fold[NAME_BUFLEN];
    if (name_fold(name, strlen(name), fold))
        return UV_EINVAL;
    ctl_request *r = req_new(REQ_LOOKUP, data);
    if (!r)
        return UV_ENOMEM;
    r->lookup_cb = cb;
    strcpy(r->name, name);
    const ctl_user *known = kc_find(t->keys, name);
    if (known && (!fresh || !ctl_ready(t))) {
        r->user = *known;
        defer(t, r, 0);
        return 0;
    }
    submit(t, r);
    return 0;
}

int ctl_list(ctl *t, const char *prefix, ctl_list_cb cb, void *data) {
    ctl_request *r = req_new(REQ_LIST, data);
    if (!r)
        return UV_ENOMEM;
    r->list_cb = cb;
    if (prefix && *prefix && !(r->prefix = strdup(prefix))) {
        free(r);
        return UV_ENOMEM;
    }
    submit(t, r);
    return 0;
}

static ctl_request *reach(ctl *t, enum req_kind kind, const char *name, void *data) {
    ctl_request *r = req_new(kind, data);
    if (r)
        snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

/* One of reach_cb or punch_cb, as kind wants. */
static int reach_submit(ctl *t, enum req_kind kind, const char *name, uint64_t tag,
                        ctl_reach_cb reach_cb, ctl_punch_cb punch_cb, void *data) {
    ctl_request *r = reach(t, kind, name, data);
    if (!r)
        return UV_ENOMEM;
    r->tag = tag;
    r->reach_cb = reach_cb;
    r->punch_cb = punch_cb;
    submit(t, r);
    return 0;
}

int ctl_connect_request(ctl *t, const char *name, uint64_t tag, ctl_reach_cb cb, void *data) {
    return reach_submit(t, REQ_CONNECT, name, tag, cb, NULL, data);
}

int ctl_relay_request(ctl *t, const char *name, ctl_reach_cb cb, void *data) {
    return reach_submit(t, REQ_RELAY, name, 0, cb, NULL, data);
}

int ctl_punch_request(ctl *t, const char *name, ctl_punch_cb cb, void *data) {
    if (!ctl_ready(t) || !t->tracker_punch)
        return UV_ENOTSUP; /* a punch is timed by a tracker that is there now */
    return reach_submit(t, REQ_PUNCH, name, 0, NULL, cb, data);
}

/* ---- answers ---- */

void ctl_req_found(ctl *t, uint64_t id, const ctl_user *u) {
    ctl_request *r = take_sent(t, id);
    if (!r)
        return;
    r->user = *u;
    const char *name = u->name;
    ctl_watch(t, &name, 1); /* looked up: its comings and goings matter now */
    req_finish(r, 0);
}

void ctl_req_listed(ctl *t, uint64_t id, const msgpack_object_array *names, const char *next,
                    size_t next_len) {
    ctl_request *r = take_sent(t, id);
    if (!r)
        return;
    for (uint32_t i = 0; i < names->size; i++) {
        char name[NAME_BUFLEN];
        if (msg_obj_cstr(&names->ptr[i], name, sizeof name))
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
    ctl_watch(t, (const char *const *)r->names, r->n); /* bounded: the first CTL_WATCH_MAX */
    req_finish(r, 0);
}

void ctl_req_reached(ctl *t, uint64_t id, const ctl_relay *relay) {
    ctl_request *r = take_sent(t, id);
    if (!r)
        return;
    if (relay)
        r->relay = *relay;
    req_finish(r, 0);
}

void ctl_req_punched(ctl *t, uint64_t id, const char *addr, unsigned delay_ms) {
    ctl_request *r = take_sent(t, id);
    if (!r)
        return;
    snprintf(r->addr, sizeof r->addr, "%s", addr);
    r->delay_ms = delay_ms;
    req_finish(r, 0);
}

int ctl_req_refused(ctl *t, uint64_t id, const char *code, const char *text) {
    ctl_request *r = take_sent(t, id);
    if (!r)
        return 0;
    snprintf(r->why, sizeof r->why, "%s", text);
    req_finish(r, strcmp(code, "not_found") == 0 ? UV_ENOENT
                  : strcmp(code, "bad_name") == 0 ? UV_EINVAL
                  : strcmp(code, "offline") == 0 ? UV_EHOSTUNREACH
                  : strcmp(code, "limit") == 0 ? UV_EBUSY : UV_EPROTO);
    return 1;
}
