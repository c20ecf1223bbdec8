/* test_peer_control: peer/control.c, the tracker client, through ctl_* and
 * its ctl_handler, against the fake tracker of peer_fixture.h on the same
 * loop: registering, lookups (answered, unknown, from the cache while the
 * tracker is down, cancelled), the tracker going away (pending requests
 * fail, backoff, a new hello and registration), a refusal for good, presence
 * pushes, malformed frames, and the reach requests. */
#include "chatport.h"
#include "peer_fixture.h"
#include "test.h"

#include <sodium.h>

static struct {
    uv_loop_t loop;
    fake_tracker ft;
    fx_peer p;
    unsigned char bob_key[IDENT_PK];
} F;

/* alice's peer with its tracker client connecting to the fake tracker,
 * which knows bob (online, one endpoint). */
static ctl *setup(void) {
    fx_begin(&F.loop);
    ft_open(&F.ft, &F.loop);
    randombytes_buf(F.bob_key, IDENT_PK);
    ft_user *bob = ft_user_add(&F.ft, "Bob", F.bob_key, 1);
    ft_user_ep(bob, "127.0.0.1:4242");
    fx_peer_init(&F.p, &F.loop, "alice", F.ft.addr);
    fx_peer_open(&F.p);
    return F.p.ctx.ctl;
}

static void wait_registered(ctl *t, int n) {
    FX_WAIT(&F.loop, F.p.news.registered == n);
    ASSERT(ctl_ready(t));
}

/* setup, with hook seeing the tracker's frames first (NULL: none), and
 * alice registered. */
static ctl *registered_with(ft_hook hook) {
    ctl *t = setup();
    F.ft.hook = hook;
    wait_registered(t, 1);
    return t;
}

static void teardown(void) {
    fx_peer_close(&F.p);
    ft_close(&F.ft);
    fx_finish(&F.loop);
}

/* The tracker's connection to alice (she is registered on it). */
static conn *alice_conn(void) {
    conn *c = ft_conn_of(&F.ft, "alice");
    ASSERT(c != NULL);
    return c;
}

static void registers_once(void) {
    ctl *t = setup();
    struct sockaddr_storage ss;
    ASSERT(!ctl_ready(t)); /* nothing happens inside ctl_open */
    ASSERT_EQ(ctl_tracker_addr(t, &ss), UV_ENOTCONN);
    ASSERT_EQ(F.ft.accepted, 0);
    wait_registered(t, 1);
    ASSERT_EQ(F.ft.hellos, 1);
    ASSERT_EQ(F.ft.registers, 1);
    ASSERT_EQ(F.ft.bad_sigs, 0); /* signed over the welcome's nonce */
    ASSERT_EQ(F.p.ev.registered, 1);
    ASSERT_EQ(ctl_tracker_addr(t, &ss), 0);
    ASSERT_EQ(ss.ss_family, AF_INET);
    ASSERT_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), F.ft.port);
    (void)alice_conn();
    /* a round trip later it has still registered once */
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "zed", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(F.p.news.registered, 1);
    ASSERT_EQ(F.ft.registers, 1);
    ASSERT_EQ(F.ft.accepted, 1);
    ASSERT_EQ(F.p.news.refused, 0);
    teardown();
}

/* A lookup answered by the tracker reaches its callback from the loop,
 * never inside ctl_lookup, with the tracker's record. */
static void lookup_answered_later(void) {
    ctl *t = registered_with(NULL);
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "BOB", 1, fx_lookup_cb, &r), 0);
    ASSERT_EQ(r.calls, 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, 0);
    ASSERT_STR(r.u.name, "Bob");
    ASSERT(memcmp(r.u.key, F.bob_key, IDENT_PK) == 0);
    ASSERT(r.u.online);
    ASSERT_EQ(r.u.n_endpoints, 1);
    ASSERT_STR(r.u.endpoints[0], "127.0.0.1:4242");
    ASSERT_STR(r.u.observed, "127.0.0.1:9");
    ASSERT_EQ(r.u.last_seen, 1700000000);
    ASSERT_EQ(F.ft.lookups, 1);
    ASSERT_STR(F.ft.lookup_name, "BOB");
    teardown();
}

/* Asked before the registration, a lookup waits for it instead of
 * failing, and is sent once registered. */
static void lookup_waits_for_registration(void) {
    ctl *t = setup();
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(F.p.news.registered, 1);
    ASSERT_EQ(F.ft.lookups, 1);
    teardown();
}

/* not_found -> UV_ENOENT (later, once), the connection stays; an invalid
 * name is refused at once, with no callback. */
static void lookup_unknown_user(void) {
    ctl *t = registered_with(NULL);
    fx_lookup r = {0}, bad = {0};
    ASSERT_EQ(ctl_lookup(t, "nobody", 1, fx_lookup_cb, &r), 0);
    ASSERT_EQ(ctl_lookup(t, "", 1, fx_lookup_cb, &bad), UV_EINVAL);
    ASSERT_EQ(ctl_lookup(t, "two words", 1, fx_lookup_cb, &bad), UV_EINVAL);
    ASSERT_EQ(r.calls, 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, UV_ENOENT);
    ASSERT_EQ(F.ft.lookups, 1);
    /* the connection stays: another lookup is answered on it */
    fx_lookup r2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r2), 0);
    FX_WAIT(&F.loop, r2.calls == 1);
    ASSERT_EQ(r2.status, 0);
    ASSERT_EQ(bad.calls, 0);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(F.ft.accepted, 1);
    ASSERT_EQ(F.ft.closed, 0);
    ASSERT(ctl_ready(t));
    teardown();
}

/* The tracker closes: the pending lookup fails with UV_ECONNRESET, and
 * after a backoff (500 ms +-20%) the client says hello again and
 * registers again. */
static void tracker_close_reconnects(void) {
    ctl *t = registered_with(NULL);
    F.ft.hold_lookups = 1;
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, F.ft.n_held == 1);
    ASSERT_EQ(r.calls, 0);
    uv_update_time(&F.loop);
    uint64_t dropped = uv_now(&F.loop);
    ft_drop(&F.ft);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, UV_ECONNRESET);
    ASSERT(!ctl_ready(t));
    ASSERT_EQ(F.p.ev.tracker_lost, 1);
    ASSERT_EQ(F.p.ev.lost_was_registered, 1); /* a loss: it was registered */
    ASSERT_EQ(F.ft.hellos, 1);
    FX_WAIT(&F.loop, F.ft.hellos == 2);
    ASSERT(F.ft.hello_at - dropped >= 400); /* not at once: the backoff */
    wait_registered(t, 2);
    ASSERT_EQ(F.ft.accepted, 2);
    ASSERT_EQ(F.ft.registers, 2);
    ASSERT_EQ(F.ft.bad_sigs, 0);
    ASSERT_EQ(F.p.ev.registered, 2);
    ASSERT_EQ(r.calls, 1);
    /* and requests flow again */
    F.ft.hold_lookups = 0;
    fx_lookup r2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r2), 0);
    FX_WAIT(&F.loop, r2.calls == 1);
    ASSERT_EQ(r2.status, 0);
    teardown();
}

static int guard_fired;
static void on_guard(uv_timer_t *h) {
    guard_fired = 1;
    ctl_close(F.p.ctx.ctl); /* stops the retries the test is about */
    F.p.ctx.ctl = NULL;
}

/* An error code in answer to register that is final: refused fires once
 * with the code, the user is told once (event ev_code, its text holding
 * word), and nothing is scheduled any more: with the tracker and the chat
 * port closed the loop runs dry at once (a pending reconnect would keep it
 * turning until the guard timer). */
static void refused_for_good(const char *code, const char *ev_code, const char *word) {
    ctl *t = setup();
    F.ft.register_error = code;
    FX_WAIT(&F.loop, F.p.news.refused == 1);
    ASSERT_STR(F.p.news.refused_code, code);
    ASSERT_EQ(F.p.news.registered, 0);
    ASSERT(!ctl_ready(t));
    ASSERT_EQ(F.p.ev.errors, 1);
    ASSERT_STR(F.p.ev.error_code, ev_code);
    ASSERT(strstr(F.p.ev.error_text, word) != NULL);
    ASSERT_EQ(F.ft.registers, 1);
    /* a request now fails (later) instead of waiting forever */
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r), 0);
    ASSERT_EQ(r.calls, 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, UV_ENOTCONN);
    port_close(F.p.ctx.port);
    F.p.ctx.port = NULL;
    ft_close(&F.ft);
    uv_timer_t guard;
    ASSERT_EQ(uv_timer_init(&F.loop, &guard), 0);
    ASSERT_EQ(uv_timer_start(&guard, on_guard, 5000, 0), 0);
    uv_unref((uv_handle_t *)&guard);
    ASSERT_EQ(uv_run(&F.loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(guard_fired, 0);
    ASSERT_EQ(F.ft.hellos, 1);
    ASSERT_EQ(F.ft.accepted, 1);
    ASSERT_EQ(F.ft.registers, 1);
    ASSERT_EQ(F.p.news.refused, 1);
    uv_close((uv_handle_t *)&guard, NULL);
    teardown();
}

static void name_taken_refused(void) { refused_for_good("name_taken", "name_taken", "alice"); }

/* The tracker's look-alike refusal is as final, told as name_refused with
 * the tracker's reason. */
static void name_confusable_refused(void) {
    refused_for_good("name_confusable", "name_refused", "fake tracker refuses the register");
}

/* presence pushes reach ctl_handler.presence (and the front end), except
 * one about ourselves. */
static void presence_push(void) {
    ctl *t = registered_with(NULL);
    ft_push_presence(alice_conn(), "Alice", 1); /* ourselves: not news */
    ft_push_presence(alice_conn(), "Bob", 1);
    FX_WAIT(&F.loop, F.p.news.presence == 1);
    ASSERT_STR(F.p.news.presence_name, "Bob");
    ASSERT_EQ(F.p.news.presence_online, 1);
    ft_push_presence(alice_conn(), "Bob", 0);
    FX_WAIT(&F.loop, F.p.news.presence == 2);
    ASSERT_STR(F.p.news.presence_name, "Bob");
    ASSERT_EQ(F.p.news.presence_online, 0);
    ASSERT_EQ(F.p.ev.presence, 2);
    ASSERT(ctl_ready(t));
    teardown();
}

/* A malformed frame from the tracker: the client answers with an error
 * frame of code `code`, a lookup waiting for an answer fails with
 * UV_ECONNRESET, and the client reconnects and registers again. */
static void malformed(void (*send)(conn *c, uint64_t lookup_id), const char *code) {
    ctl *t = registered_with(NULL);
    F.ft.hold_lookups = 1;
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, F.ft.n_held == 1);
    send(alice_conn(), F.ft.held[0].id);
    F.ft.n_held = 0;
    FX_WAIT(&F.loop, F.ft.errors == 1);
    ASSERT_STR(F.ft.error_code, code);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, UV_ECONNRESET);
    FX_WAIT(&F.loop, F.ft.hellos == 2);
    wait_registered(t, 2);
    ASSERT_EQ(F.ft.accepted, 2);
    ASSERT_EQ(F.p.news.refused, 0);
    ASSERT_EQ(F.ft.errors, 1);
    teardown();
}

static void send_not_msgpack(conn *c, uint64_t id) { ft_send_raw(c, "\xc1\xc1\xc1", 3); }

static void send_map_without_t(conn *c, uint64_t id) {
    ft_send_raw(c, "\x81\xa1x\x01", 4); /* {x: 1} */
}

static void send_lookup_result_without_key(conn *c, uint64_t id) {
    msg_out o;
    msg_out_init(&o, "lookup_result", 3);
    msg_put_uint(&o, "id", id);
    msg_put_str(&o, "name", "Bob");
    msg_put_bool(&o, "online", true);
    ft_send(c, &o);
}

static void send_presence_without_online(conn *c, uint64_t id) {
    msg_out o;
    msg_out_init(&o, "presence", 1);
    msg_put_str(&o, "name", "Bob");
    ft_send(c, &o);
}

static void send_second_welcome(conn *c, uint64_t id) {
    unsigned char nonce[IDENT_NONCE] = {0};
    msg_out o;
    msg_out_init(&o, "welcome", 3);
    msg_put_uint(&o, "v", PROTO_VERSION);
    msg_put_bin(&o, "nonce", nonce, IDENT_NONCE);
    msg_put_uint(&o, "ttl", 60);
    ft_send(c, &o);
}

static void send_unknown_type(conn *c, uint64_t id) {
    msg_out o;
    msg_out_init(&o, "surprise", 0);
    ft_send(c, &o);
}

static void malformed_not_msgpack(void) { malformed(send_not_msgpack, "bad_frame"); }
static void malformed_map_without_t(void) { malformed(send_map_without_t, "bad_frame"); }
static void malformed_lookup_result(void) {
    malformed(send_lookup_result_without_key, "bad_message");
}
static void malformed_presence(void) { malformed(send_presence_without_online, "bad_message"); }
static void unexpected_welcome(void) { malformed(send_second_welcome, "bad_message"); }
static void unknown_type(void) { malformed(send_unknown_type, "unknown_type"); }

/* Keys learned from lookups answer ctl_lookup(fresh=0) without asking the
 * tracker, and any lookup while the tracker is down; a name the cache
 * does not know fails with UV_ENOTCONN then. */
static void cache_while_tracker_down(void) {
    ctl *t = registered_with(NULL);
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(F.ft.lookups, 1);
    /* registered, fresh=0: the cache answers, later, and nothing is sent
     * (a fresh lookup after it is the tracker's second) */
    fx_lookup c1 = {0};
    ASSERT_EQ(ctl_lookup(t, "Bob", 0, fx_lookup_cb, &c1), 0);
    ASSERT_EQ(c1.calls, 0);
    FX_WAIT(&F.loop, c1.calls == 1);
    ASSERT_EQ(c1.status, 0);
    ASSERT(memcmp(c1.u.key, F.bob_key, IDENT_PK) == 0);
    fx_lookup f2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &f2), 0);
    FX_WAIT(&F.loop, f2.calls == 1);
    ASSERT_EQ(F.ft.lookups, 2);
    /* the tracker goes down for good */
    ft_close(&F.ft);
    FX_WAIT(&F.loop, F.p.ev.tracker_lost >= 1);
    ASSERT(!ctl_ready(t));
    fx_lookup c2 = {0}, c3 = {0}, miss = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 0, fx_lookup_cb, &c2), 0);
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &c3), 0);
    ASSERT_EQ(ctl_lookup(t, "carol", 0, fx_lookup_cb, &miss), 0);
    ASSERT_EQ(c2.calls + c3.calls + miss.calls, 0);
    FX_WAIT(&F.loop, c2.calls == 1 && c3.calls == 1);
    ASSERT_EQ(c2.status, 0);
    ASSERT_STR(c2.u.name, "Bob");
    ASSERT(memcmp(c2.u.key, F.bob_key, IDENT_PK) == 0);
    ASSERT_EQ(c3.status, 0);
    ASSERT(memcmp(c3.u.key, F.bob_key, IDENT_PK) == 0);
    FX_WAIT(&F.loop, miss.calls == 1);
    ASSERT_EQ(miss.status, UV_ENOTCONN);
    ASSERT_EQ(F.ft.lookups, 2);
    teardown();
}

/* ctl_cancel drops the requests made with its data pointer, on each of
 * the three lists: waiting for the registration, sent, and answered from
 * the cache; the others still fire (each awaited one proves the cancelled
 * one before it was passed over). */
static void cancel_stops_callback(void) {
    ctl *t = setup();
    fx_lookup w1 = {0}, w2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &w1), 0);
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &w2), 0);
    ctl_cancel(t, &w1);
    FX_WAIT(&F.loop, w2.calls == 1);
    ASSERT_EQ(F.ft.lookups, 1); /* the cancelled one was never sent */
    ASSERT_EQ(w1.calls, 0);

    F.ft.hold_lookups = 1;
    fx_lookup s1 = {0}, s2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &s1), 0);
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &s2), 0);
    FX_WAIT(&F.loop, F.ft.n_held == 2);
    ctl_cancel(t, &s1);
    ft_release(&F.ft);
    FX_WAIT(&F.loop, s2.calls == 1);
    ASSERT_EQ(s2.status, 0);
    ASSERT_EQ(s1.calls, 0);

    fx_lookup d1 = {0}, d2 = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 0, fx_lookup_cb, &d1), 0);
    ASSERT_EQ(ctl_lookup(t, "bob", 0, fx_lookup_cb, &d2), 0);
    ctl_cancel(t, &d1);
    FX_WAIT(&F.loop, d2.calls == 1);
    ASSERT_EQ(d1.calls, 0);
    ctl_cancel(t, NULL); /* no-ops */
    ctl_cancel(NULL, &d1);
    ASSERT_EQ(w1.calls + s1.calls + d1.calls, 0);
    teardown();
}

/* ---- connect_request, relay_request, list ---- */

typedef struct reach_rec {
    int calls, status, has_token;
    unsigned char token[IDENT_SESSION];
    char at[ADDR_STRLEN];
    char why[400];
} reach_rec;

static void on_reach(void *data, int status, const ctl_relay *relay, const char *why) {
    reach_rec *r = data;
    r->calls++;
    r->status = status;
    r->has_token = relay != NULL;
    if (relay) {
        memcpy(r->token, relay->token, IDENT_SESSION);
        snprintf(r->at, sizeof r->at, "%s", relay->at);
    }
    snprintf(r->why, sizeof r->why, "%s", why ? why : "");
}

static const unsigned char session[IDENT_SESSION] = "0123456789abcdef";

/* The second relay_request gets a relay_result with a session, the third
 * one naming another tracker (a shared registry's: relay); the first and
 * every other frame take the fake tracker's defaults. */
static int relay_seen;
static int relay_hook(fake_tracker *ft, conn *c, const msg_in *m) {
    uint64_t id;
    if (strcmp(m->type, "relay_request") != 0 || relay_seen++ == 0)
        return 0;
    ft->relay_requests++;
    ASSERT_EQ(msg_uint(m, "id", &id), 0);
    msg_out o;
    msg_out_init(&o, "relay_result", 2 + (relay_seen == 3));
    msg_put_uint(&o, "id", id);
    msg_put_bin(&o, "session", session, IDENT_SESSION);
    if (relay_seen == 3)
        msg_put_str(&o, "relay", "192.0.2.9:5961");
    ft_send(c, &o);
    return 1;
}

static void reach_requests(void) {
    ctl *t = registered_with(relay_hook);
    reach_rec cr = {0}, limit = {0}, ok = {0}, there = {0};
    ASSERT_EQ(ctl_connect_request(t, "bob", 12345, on_reach, &cr), 0);
    ASSERT_EQ(ctl_relay_request(t, "bob", on_reach, &limit), 0);
    ASSERT_EQ(cr.calls + limit.calls, 0);
    FX_WAIT(&F.loop, cr.calls == 1 && limit.calls == 1);
    ASSERT_EQ(F.ft.connect_requests, 1);
    ASSERT_EQ(F.ft.connect_tag, 12345); /* on the wire, for the connect_failed */
    ASSERT_EQ(cr.status, 0);
    ASSERT_EQ(cr.has_token, 0);
    ASSERT_EQ(limit.status, UV_EBUSY);
    ASSERT_EQ(limit.has_token, 0);
    ASSERT_STR(limit.why, "fake tracker: too many relay sessions");
    ASSERT_EQ(ctl_relay_request(t, "bob", on_reach, &ok), 0);
    FX_WAIT(&F.loop, ok.calls == 1);
    ASSERT_EQ(ok.status, 0);
    ASSERT(ok.has_token);
    ASSERT(memcmp(ok.token, session, IDENT_SESSION) == 0);
    ASSERT_STR(ok.at, ""); /* at our tracker */
    ASSERT_EQ(F.ft.relay_requests, 2);
    ASSERT_EQ(ctl_relay_request(t, "bob", on_reach, &there), 0);
    FX_WAIT(&F.loop, there.calls == 1);
    ASSERT_EQ(there.status, 0);
    ASSERT(memcmp(there.token, session, IDENT_SESSION) == 0);
    ASSERT_STR(there.at, "192.0.2.9:5961");
    ASSERT_EQ(ctl_connect_failed(t, "bob", 12345, "no endpoint answered"), 0);
    teardown();
}

typedef struct list_rec {
    int calls, status;
    size_t n;
    char names[8][NAME_BUFLEN];
} list_rec;

static void on_list(void *data, int status, char **names, size_t n) {
    list_rec *r = data;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(r->names[i], NAME_BUFLEN, "%s", names[i]);
}

/* Two pages: {a, b, next "b"} then {c}.  The second must carry cursor b. */
static int list_hook(fake_tracker *ft, conn *c, const msg_in *m) {
    uint64_t id;
    const char *cur;
    size_t n;
    if (strcmp(m->type, "list") != 0)
        return 0;
    ft->lists++;
    ASSERT_EQ(msg_uint(m, "id", &id), 0);
    int second = msg_str(m, "cursor", &cur, &n) == 0;
    if (second)
        ASSERT(n == 1 && cur[0] == 'b');
    msg_out o;
    msg_out_init(&o, "list_result", 2 + !second);
    msg_put_uint(&o, "id", id);
    msg_put_key(&o, "users");
    msgpack_pack_array(&o.pk, second ? 1 : 2);
    if (second) {
        msg_pack_str(&o, "c", 1);
    } else {
        msg_pack_str(&o, "a", 1);
        msg_pack_str(&o, "B", 1);
        msg_put_str(&o, "next", "b");
    }
    ft_send(c, &o);
    return 1;
}

static void list_every_page(void) {
    ctl *t = registered_with(list_hook);
    list_rec r = {0};
    ASSERT_EQ(ctl_list(t, NULL, on_list, &r), 0);
    ASSERT_EQ(r.calls, 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(F.ft.lists, 2);
    ASSERT_EQ(r.n, 3);
    ASSERT_STR(r.names[0], "a");
    ASSERT_STR(r.names[1], "B");
    ASSERT_STR(r.names[2], "c");
    teardown();
}

/* A lookup asked from inside the callback that reports the loss
 * (UV_ECONNRESET), for a name the cache does not know (as link.c's key
 * check does when the tracker drops its question): it must be answered
 * once, later, with UV_ENOTCONN (the tracker is unreachable and the cache
 * does not know the name), and the client must reconnect as usual. */
typedef struct nested {
    fx_lookup first, second;
    int asked;
} nested;

static void on_first_lookup(void *data, int status, const ctl_user *u) {
    nested *n = data;
    fx_lookup_cb(&n->first, status, u);
    if (status == UV_ECONNRESET) {
        ASSERT_EQ(ctl_lookup(F.p.ctx.ctl, "carol", 0, fx_lookup_cb, &n->second), 0);
        n->asked = 1;
    }
}

static void lookup_from_loss_callback(void) {
    ctl *t = registered_with(NULL);
    F.ft.hold_lookups = 1;
    static nested n;
    ASSERT_EQ(ctl_lookup(t, "carol", 1, on_first_lookup, &n), 0);
    FX_WAIT(&F.loop, F.ft.n_held == 1);
    F.ft.n_held = 0;
    ft_drop(&F.ft);
    FX_WAIT(&F.loop, n.first.calls == 1);
    ASSERT_EQ(n.first.status, UV_ECONNRESET);
    ASSERT(n.asked);
    FX_WAIT(&F.loop, n.second.calls == 1);
    ASSERT_EQ(n.second.status, UV_ENOTCONN);
    wait_registered(t, 2);
    ASSERT_EQ(n.first.calls, 1);
    ASSERT_EQ(n.second.calls, 1);
    teardown();
}

/* ctl_close drops what is pending (sent, answered from the cache, waiting)
 * without a callback, and frees everything (the loop closes). */
static void close_drops_pending(void) {
    ctl *t = registered_with(NULL);
    fx_lookup warm = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &warm), 0);
    FX_WAIT(&F.loop, warm.calls == 1);
    F.ft.hold_lookups = 1;
    fx_lookup sent = {0}, cached = {0};
    ASSERT_EQ(ctl_lookup(t, "bob", 1, fx_lookup_cb, &sent), 0);
    FX_WAIT(&F.loop, F.ft.n_held == 1);
    ASSERT_EQ(ctl_lookup(t, "bob", 0, fx_lookup_cb, &cached), 0);
    ctl_close(t);
    F.p.ctx.ctl = NULL;
    ft_release(&F.ft);
    teardown();
    ASSERT_EQ(sent.calls + cached.calls, 0);
}

/* error replaced (the same user registered from elsewhere): the user is
 * told, the client stops without asking to quit (open chats go on), and
 * it does not fight back by registering again. */
static void replaced_stops(void) {
    ctl *t = registered_with(NULL);
    ft_send_error(alice_conn(), "replaced", "registered again from another connection", 0);
    FX_WAIT(&F.loop, F.p.ev.errors == 1);
    ASSERT_STR(F.p.ev.error_code, "replaced");
    FX_WAIT(&F.loop, !ctl_ready(t));
    ASSERT_EQ(F.p.news.refused, 0);
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(t, "carol", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&F.loop, r.calls == 1);
    ASSERT_EQ(r.status, UV_ENOTCONN);
    ASSERT_EQ(F.ft.hellos, 1);
    teardown();
}

/* welcome with another protocol version: refused "version", no register. */
static int welcome_v2(fake_tracker *ft, conn *c, const msg_in *m) {
    if (strcmp(m->type, "hello") != 0)
        return 0;
    ft->hellos++;
    unsigned char nonce[IDENT_NONCE] = {0};
    msg_out o;
    msg_out_init(&o, "welcome", 3);
    msg_put_uint(&o, "v", PROTO_VERSION + 1);
    msg_put_bin(&o, "nonce", nonce, IDENT_NONCE);
    msg_put_uint(&o, "ttl", 60);
    ft_send(c, &o);
    return 1;
}

static void version_refused(void) {
    ctl *t = setup();
    F.ft.hook = welcome_v2;
    FX_WAIT(&F.loop, F.p.news.refused == 1);
    ASSERT_STR(F.p.news.refused_code, "version");
    ASSERT_STR(F.p.ev.error_code, "version_mismatch");
    ASSERT_EQ(F.ft.registers, 0);
    ASSERT(!ctl_ready(t));
    teardown();
}

/* A welcome ttl of 3 s: the client pings every second (ttl/3, at least
 * 1 s) and, the tracker answering, stays on the one connection. */
static int short_ttl(fake_tracker *ft, conn *c, const msg_in *m) {
    if (strcmp(m->type, "hello") != 0)
        return 0;
    ft->hellos++;
    int slot = ft_slot(ft, c);
    randombytes_buf(ft->nonce[slot], IDENT_NONCE);
    msg_out o;
    msg_out_init(&o, "welcome", 3);
    msg_put_uint(&o, "v", PROTO_VERSION);
    msg_put_bin(&o, "nonce", ft->nonce[slot], IDENT_NONCE);
    msg_put_uint(&o, "ttl", 3);
    ft_send(c, &o);
    return 1;
}

static void pings_every_third_of_ttl(void) {
    ctl *t = registered_with(short_ttl);
    uv_update_time(&F.loop);
    uint64_t start = uv_now(&F.loop);
    FX_WAIT(&F.loop, F.ft.pings == 2);
    uv_update_time(&F.loop);
    ASSERT(uv_now(&F.loop) - start >= 1000); /* about one a second, not faster */
    ASSERT(ctl_ready(t));
    ASSERT_EQ(F.ft.accepted, 1);
    teardown();
}

/* The same ttl, and a tracker that never answers a ping: after ttl
 * seconds without a frame the client gives up on it and reconnects. */
static int short_ttl_no_pong(fake_tracker *ft, conn *c, const msg_in *m) {
    if (strcmp(m->type, "ping") == 0) {
        ft->pings++;
        return 1; /* swallowed */
    }
    return short_ttl(ft, c, m);
}

static void silent_tracker_dropped(void) {
    ctl *t = registered_with(short_ttl_no_pong);
    uv_update_time(&F.loop);
    uint64_t start = uv_now(&F.loop);
    FX_WAIT(&F.loop, F.p.ev.tracker_lost == 1);
    uv_update_time(&F.loop);
    ASSERT(uv_now(&F.loop) - start >= 2000); /* about ttl, not at once */
    ASSERT(F.ft.pings >= 2);
    wait_registered(t, 2);
    ASSERT_EQ(F.ft.accepted, 2);
    teardown();
}

/* A tracker never reached since the start (nothing listens on --tracker):
 * each failure says so (was_registered 0, the front ends name --tracker),
 * and it keeps trying. */
static void unreachable_from_the_start(void) {
    fx_begin(&F.loop);
    ft_open(&F.ft, &F.loop); /* unused: teardown closes it */
    uv_tcp_t probe; /* a port nothing listens on: bound, then closed */
    struct sockaddr_in sin;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
    ASSERT_EQ(uv_tcp_init(&F.loop, &probe), 0);
    ASSERT_EQ(uv_tcp_bind(&probe, (const struct sockaddr *)&sin, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    ASSERT_EQ(uv_tcp_getsockname(&probe, (struct sockaddr *)&ss, &len), 0);
    static char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    uv_close((uv_handle_t *)&probe, NULL);
    fx_peer_init(&F.p, &F.loop, "alice", addr);
    fx_peer_open(&F.p);
    FX_WAIT(&F.loop, F.p.ev.tracker_lost >= 2); /* the first try and a retry */
    ASSERT_EQ(F.p.ev.lost_was_registered, 0);
    ASSERT(strstr(F.p.ev.lost_why, "cannot connect to") != NULL);
    ASSERT_EQ(F.p.news.registered, 0);
    teardown();
}

TEST_MAIN(T(registers_once), T(unreachable_from_the_start), T(lookup_answered_later), T(lookup_waits_for_registration),
          T(lookup_unknown_user), T(tracker_close_reconnects), T(name_taken_refused),
          T(name_confusable_refused),
          T(presence_push), T(malformed_not_msgpack), T(malformed_map_without_t),
          T(malformed_lookup_result), T(malformed_presence), T(unexpected_welcome),
          T(unknown_type), T(cache_while_tracker_down), T(cancel_stops_callback),
          T(reach_requests), T(list_every_page),
          T(lookup_from_loss_callback), T(close_drops_pending), T(replaced_stops),
          T(version_refused), T(pings_every_third_of_ttl), T(silent_tracker_dropped))
