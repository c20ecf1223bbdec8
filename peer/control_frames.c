/* control_frames: what the tracker sends on the control connection.  The
 * dispatch table at the end says in which state of ctl_step each type is
 * legal; the handshake handlers feed ctl_step, the answers go to the
 * request lists, the pushes to the ctl_handler of the layers above. */
#include "control_impl.h"

#include "dispatch.h"
#include "events.h"

#include <stdio.h>
#include <string.h>

void ctl_bad(ctl *t, const char *what) {
    char text[200];
    snprintf(text, sizeof text, "malformed %s", what);
    conn_fail(t->c, "bad_message", text, 0);
}

int ctl_str_field(const msg_in *m, const char *key, char *out, size_t outlen) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    return r ? r : msg_obj_cstr(o, out, outlen);
}

/* ---- the handshake ---- */

static void on_welcome(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t v, ttl;
    const unsigned char *nonce;
    if (msg_uint(m, "v", &v) || msg_bin(m, "nonce", &nonce, IDENT_NONCE) ||
        msg_uint(m, "ttl", &ttl))
        return ctl_bad(t, "welcome");
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
    t->tracker_mailbox = msg_has_feature(m, "mailbox");
    t->tracker_punch = msg_has_feature(m, "punch");
    t->tracker_subscribe = msg_has_feature(m, "subscribe");
    ctl_step(t, CTL_EV_WELCOME, 0);
}

static void on_registered(void *owner, const msg_in *m) {
    ctl *t = owner;
    if (ctl_str_field(m, "name", t->registered_name, sizeof t->registered_name))
        return ctl_bad(t, "registered");
    t->observed[0] = '\0';
    if (ctl_str_field(m, "observed", t->observed, sizeof t->observed) == UV_EINVAL)
        return ctl_bad(t, "registered");
    ctl_step(t, CTL_EV_REGISTERED, 0);
}

/* ---- answers to our requests ---- */

/* The endpoints array of a user (wrong entries skipped, the rest cut at
 * PEER_MAX_ENDPOINTS) and its optional observed address. */
static int parse_addresses(const msg_in *m, const msgpack_object_array *a, ctl_user *u) {
    for (uint32_t i = 0; a && i < a->size && u->n_endpoints < PEER_MAX_ENDPOINTS; i++)
        if (msg_obj_cstr(&a->ptr[i], u->endpoints[u->n_endpoints], ADDR_STRLEN) == 0)
            u->n_endpoints++;
    if (ctl_str_field(m, "observed", u->observed, sizeof u->observed) == UV_EINVAL)
        return UV_EINVAL;
    return 0;
}

static int parse_user(const msg_in *m, ctl_user *u) {
    const unsigned char *key;
    const msgpack_object_array *a = NULL;
    bool online;
    memset(u, 0, sizeof *u);
    if (ctl_str_field(m, "name", u->name, sizeof u->name) || msg_bin(m, "key", &key, IDENT_PK) ||
        msg_bool(m, "online", &online) || msg_array(m, "endpoints", &a) == UV_EINVAL)
        return UV_EINVAL;
    memcpy(u->key, key, IDENT_PK);
    u->online = online;
    if (parse_addresses(m, a, u) || msg_int(m, "last_seen", &u->last_seen) == UV_EINVAL)
        return UV_EINVAL;
    return 0;
}

static void on_lookup_result(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id;
    ctl_user u;
    if (msg_uint(m, "id", &id) || parse_user(m, &u))
        return ctl_bad(t, "lookup_result");
    kc_put(t->keys, &u);
    ctl_req_found(t, id, &u);
}

static void on_list_result(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id;
    const msgpack_object_array *a;
    const char *next = NULL;
    size_t next_len = 0;
    if (msg_uint(m, "id", &id) || msg_array(m, "users", &a) ||
        msg_str(m, "next", &next, &next_len) == UV_EINVAL)
        return ctl_bad(t, "list_result");
    ctl_req_listed(t, id, a, next, next_len);
}

static void on_connect_result(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id;
    if (msg_uint(m, "id", &id))
        return ctl_bad(t, "connect_result");
    ctl_req_reached(t, id, NULL);
}

static void on_relay_result(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id;
    const unsigned char *token;
    ctl_relay relay = {{0}, ""};
    struct sockaddr_storage ss;
    int at = ctl_str_field(m, "relay", relay.at, sizeof relay.at);
    if (msg_uint(m, "id", &id) || msg_bin(m, "session", &token, IDENT_SESSION) ||
        (at != UV_ENOENT && (at || addr_parse_numeric(relay.at, &ss))))
        return ctl_bad(t, "relay_result");
    memcpy(relay.token, token, IDENT_SESSION);
    ctl_req_reached(t, id, &relay);
}

static void on_punch_result(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id, delay;
    char addr[ADDR_STRLEN];
    if (msg_uint(m, "id", &id) || ctl_str_field(m, "addr", addr, sizeof addr) ||
        msg_uint(m, "delay_ms", &delay))
        return ctl_bad(t, "punch_result");
    ctl_req_punched(t, id, addr, delay > PUNCH_DELAY_MAX_MS ? PUNCH_DELAY_MAX_MS : (unsigned)delay);
}

/* The tracker times its punches by our round trip: answer at once. */
static void on_ping(void *owner, const msg_in *m) {
    ctl *t = owner;
    msg_out out;
    msg_out_init(&out, "pong", 0);
    conn_send_msg(t->c, &out);
}

static void on_pong(void *owner, const msg_in *m) {
    /* Nothing to do: admit already re-armed the ttl. */
}

/* ---- pushes ---- */

static void on_presence(void *owner, const msg_in *m) {
    ctl *t = owner;
    char name[NAME_BUFLEN], fold[NAME_BUFLEN];
    bool online;
    if (ctl_str_field(m, "name", name, sizeof name) ||
        msg_bool(m, "online", &online) || name_fold(name, strlen(name), fold))
        return ctl_bad(t, "presence");
    kc_set_online(t->keys, name, online);
    if (strcmp(fold, t->ctx->user_fold) != 0) {
        ev_presence(t->ctx, name, online);
        if (t->h->presence)
            t->h->presence(t->hdata, name, online);
    }
}

/* Another user asks us to dial it (it cannot reach us directly). */
static void on_connect_request(void *owner, const msg_in *m) {
    ctl *t = owner;
    const unsigned char *key;
    const msgpack_object_array *a;
    ctl_user u;
    memset(&u, 0, sizeof u);
    if (ctl_str_field(m, "from", u.name, sizeof u.name) ||
        msg_bin(m, "key", &key, IDENT_PK) || msg_array(m, "endpoints", &a))
        return ctl_bad(t, "connect_request");
    memcpy(u.key, key, IDENT_PK);
    u.online = true;
    if (parse_addresses(m, a, &u))
        return ctl_bad(t, "connect_request");
    kc_put(t->keys, &u); /* the tracker vouches for this key */
    uint64_t tag = 0;
    if (msg_uint(m, "tag", &tag) == UV_EINVAL)
        return ctl_bad(t, "connect_request");
    if (t->h->connect_request)
        t->h->connect_request(t->hdata, &u, tag);
}

/* The user we asked for a reverse connection could not dial us.  A hint:
 * one we cannot read is dropped, never a reason to leave the tracker (its
 * text comes from another user). */
static void on_connect_failed(void *owner, const msg_in *m) {
    ctl *t = owner;
    const char *reason = "";
    size_t rlen = 0;
    char from[NAME_BUFLEN], why[256];
    if (ctl_str_field(m, "from", from, sizeof from)) {
        log_debug(t->lg, "tracker: dropping a connect_failed without a usable from");
        return;
    }
    msg_str(m, "reason", &reason, &rlen); /* absent or odd: no reason */
    utf8_clean(reason, rlen, why, sizeof why);
    uint64_t tag = 0;
    msg_uint(m, "tag", &tag); /* absent or odd: 0, as from an older peer */
    if (t->h->connect_failed)
        t->h->connect_failed(t->hdata, from, tag, why);
}

/* Another user dials us and asks us to punch back at the same moment. */
static void on_punch(void *owner, const msg_in *m) {
    ctl *t = owner;
    const unsigned char *key;
    uint64_t delay;
    char addr[ADDR_STRLEN];
    ctl_user u;
    memset(&u, 0, sizeof u);
    if (ctl_str_field(m, "from", u.name, sizeof u.name) || msg_bin(m, "key", &key, IDENT_PK) ||
        ctl_str_field(m, "addr", addr, sizeof addr) || msg_uint(m, "delay_ms", &delay))
        return ctl_bad(t, "punch");
    memcpy(u.key, key, IDENT_PK);
    u.online = true;
    if (t->h->punch)
        t->h->punch(t->hdata, &u, addr,
                    delay > PUNCH_DELAY_MAX_MS ? PUNCH_DELAY_MAX_MS : (unsigned)delay);
}

/* Another user set up a relay session for the two of us. */
static void on_relay_offer(void *owner, const msg_in *m) {
    ctl *t = owner;
    const unsigned char *token;
    char from[NAME_BUFLEN];
    if (ctl_str_field(m, "from", from, sizeof from) ||
        msg_bin(m, "session", &token, IDENT_SESSION))
        return ctl_bad(t, "relay_offer");
    if (t->h->relay_offer)
        t->h->relay_offer(t->hdata, from, token);
}

/* With an id: that request failed and the connection stays.  Without: the
 * tracker is closing on us; some codes mean trying again is pointless. */
static void on_error(void *owner, const msg_in *m) {
    ctl *t = owner;
    char code[32], text[400];
    uint64_t id = 0;
    msg_error_fields(m, code, sizeof code, text, sizeof text);
    if (msg_uint(m, "id", &id) == 0 && id) {
        if (!ctl_subs_refused(t, id, code, text) && !ctl_req_refused(t, id, code, text))
            ctl_mail_refused(t, id, code, text);
        return;
    }
    static const char *fatal[] = {"name_taken", "name_confusable", "bad_name", "bad_signature",
                                  "version", "replaced"};
    for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
        if (strcmp(code, fatal[i]) == 0)
            t->refusal = fatal[i];
    snprintf(t->why, sizeof t->why, "the tracker said: %s (%s)", text[0] ? text : "no reason given",
             code[0] ? code : "?");
    snprintf(t->refusal_text, sizeof t->refusal_text, "%s", text[0] ? text : code);
    log_info(t->lg, "tracker %s: %s", t->trying, t->why);
    conn_close(t->c, UV_EPROTO);
}

/* ---- the table ---- */

/* Every frame from a registered tracker shows it is alive. */
static int admit(void *owner, const msg_in *m) {
    ctl *t = owner;
    if (t->state == CTL_READY)
        conn_set_timeout(t->c, (uint64_t)t->ttl * 1000);
    return 0;
}

static void refuse(void *owner, const disp_refusal *r) {
    ctl *t = owner;
    conn_fail(t->c, r->code, r->text, 0);
}

#define READY DISP_IN(CTL_READY)
/* Every state in which the connection is up and frames can arrive. */
#define LINKED (DISP_IN(CTL_HELLO) | DISP_IN(CTL_REGISTER) | DISP_IN(CTL_READY))

static const disp_entry entries[] = {
    {"welcome",         DISP_IN(CTL_HELLO),    0, on_welcome},
    {"registered",      DISP_IN(CTL_REGISTER), 0, on_registered},
    {"lookup_result",   READY,                 0, on_lookup_result},
    {"list_result",     READY,                 0, on_list_result},
    {"connect_result",  READY,                 0, on_connect_result},
    {"relay_result",    READY,                 0, on_relay_result},
    {"punch_result",    READY,                 0, on_punch_result},
    {"ping",            READY,                 0, on_ping},
    {"pong",            READY,                 0, on_pong},
    {"punch",           READY,                 0, on_punch},
    {"presence",        READY,                 0, on_presence},
    {"connect_request", READY,                 0, on_connect_request},
    {"connect_failed",  READY,                 0, on_connect_failed},
    {"relay_offer",     READY,                 0, on_relay_offer},
    {"mail_stored",     READY,                 0, ctl_on_mail_stored},
    {"mail",            READY,                 0, ctl_on_mail},
    {"receipt",         READY,                 0, ctl_on_receipt},
    {"subscribed",      READY,                 0, ctl_on_subscribed},
    {"unsubscribed",    READY,                 0, ctl_on_subscribed},
    {"presence_mode",   READY,                 0, ctl_on_presence_mode},
    {"error",           LINKED,                0, on_error},
};

static const disp_table frames = DISP_TABLE(entries, "on the tracker connection at this point",
                                            admit, refuse);

void ctl_on_frame(conn *c, const char *payload, size_t len) {
    ctl *t = conn_data(c);
    disp_frame(&frames, t, t->state, 0, payload, len);
}
