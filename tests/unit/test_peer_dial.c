/* test_peer_dial: peer/dial.c, the connection ladder, through dial_start
 * and dial_cancel.  alice dials bob by name: the fake tracker's lookup
 * answer decides what the ladder meets (a dead endpoint before bob's live
 * one, an offline or unknown user, only dead endpoints with the relay
 * refused, a key that does not match, no tracker at all), and the dial is
 * cancelled while it looks up and while its attempt is in the handshake. */
#include "dial.h"
#include "peer_fixture.h"
#include "test.h"

#include <sodium.h>
#include <unistd.h>

static fx_world W;
static fx_link out; /* the link the dial delivered, handed over to this */
static int dead_fd[2] = {-1, -1};
static char dead_ep[2][32];

typedef struct dial_rec {
    int calls;
    int got_link;
    char reason[1000];
    int reason_null;
} dial_rec;

static dial_rec rec;

static void on_dial(void *data, chatlink *l, int status, const char *reason) {
    dial_rec *r = data;
    ASSERT(r == &rec);
    r->calls++;
    r->got_link = l != NULL;
    r->reason_null = reason == NULL;
    snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    if (l) { /* the callee takes the link over */
        ASSERT(link_is_up(l));
        memset(&out, 0, sizeof out);
        out.l = l;
        link_set_handler(l, &fx_link_handler, &out);
    }
}

static void setup(void) {
    fx_world_open(&W);
    memset(&rec, 0, sizeof rec);
    memset(&out, 0, sizeof out);
    for (int i = 0; i < 2; i++)
        snprintf(dead_ep[i], sizeof dead_ep[i], "127.0.0.1:%d", fx_dead_port(&dead_fd[i]));
}

static dialer *dial(const char *name) {
    dialer *d = NULL;
    ASSERT_EQ(dial_start(&W.a.ctx, name, on_dial, &rec, &d), 0);
    ASSERT(d != NULL);
    ASSERT_EQ(rec.calls, 0); /* never inside dial_start */
    return d;
}

/* Closes everything; the dial callback fired `calls` times in all. */
static void finish(int calls) {
    if (out.l)
        link_close(out.l);
    fx_world_close(&W);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(close(dead_fd[i]), 0);
    ASSERT_EQ(rec.calls, calls);
    for (int i = 0; i < W.b.n_in; i++)
        ASSERT_EQ(W.b.in[i].closed, 1);
}

/* bob's record lists a dead endpoint first, then his live one: the dead
 * attempt fails and the next one starts; the dial delivers an up link to
 * bob's live endpoint, which carries a message. */
static void dead_then_live(void) {
    setup();
    W.a.ctx.relay_after_ms = 600000; /* no relay however slow the machine */
    ft_user_ep(W.ub, dead_ep[0]);
    ft_user_ep(W.ub, W.b.ep);
    dial("Bob");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(rec.got_link);
    ASSERT(rec.reason_null);
    ASSERT(link_is_up(out.l));
    ASSERT_STR(link_name(out.l), "bob");
    ASSERT_STR(link_addr(out.l), W.b.ep);
    ASSERT_EQ(link_dialed(out.l), 1);
    ASSERT_EQ(W.b.n_in, 1);
    FX_WAIT(&W.loop, W.b.in[0].up == 1);
    ASSERT_EQ(link_send_msg(out.l, 42, 1, "via the ladder", 14), 0);
    FX_WAIT(&W.loop, W.b.in[0].msgs == 1);
    ASSERT_STR(W.b.in[0].text, "via the ladder");
    ASSERT_EQ(W.ft.relay_requests, 0);
    finish(1);
}

/* An offline user: the callback says so, later, and nothing is dialed. */
static void offline_user(void) {
    setup();
    unsigned char key[IDENT_PK];
    randombytes_buf(key, sizeof key);
    ft_user_ep(ft_user_add(&W.ft, "carol", key, 0), W.b.ep);
    dial("carol");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "carol is offline") != NULL);
    ASSERT_EQ(W.b.n_in, 0);
    ASSERT_EQ(W.ft.connect_requests + W.ft.relay_requests, 0);
    finish(1);
}

static void unknown_user(void) {
    setup();
    dial("nobody");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "no user named nobody") != NULL);
    ASSERT_EQ(W.ft.connect_requests + W.ft.relay_requests, 0);
    finish(1);
}

/* Every endpoint dead, --relay-after 50: the dial asks for a reverse
 * connection, then for a relay; the tracker refuses the relay (limit) and
 * the dial reports the failure with the tracker's words. */
static void relay_refused(void) {
    setup();
    W.a.ctx.relay_after_ms = 50;
    ft_user_ep(W.ub, dead_ep[0]);
    ft_user_ep(W.ub, dead_ep[1]);
    dial("bob");
    FX_WAIT(&W.loop, W.ft.relay_requests == 1);
    ASSERT_STR(W.ft.relay_to, "bob");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "no endpoint answered (tried 2)") != NULL);
    ASSERT(strstr(rec.reason, "the relay refused: fake tracker: too many relay sessions") != NULL);
    ASSERT_EQ(W.ft.connect_requests, 1);
    ASSERT_EQ(W.ft.relay_requests, 1);
    ASSERT_EQ(W.b.n_in, 0);
    finish(1);
}

/* The tracker's key for bob is not his: the attempt fails authentication
 * and, once the relay is refused too, the dial reports the key. */
static void auth_failure_reported(void) {
    setup();
    W.a.ctx.relay_after_ms = 50;
    randombytes_buf(W.ub->key, IDENT_PK);
    ft_user_ep(W.ub, W.b.ep);
    dial("bob");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "authentication failed") != NULL);
    ASSERT(strstr(rec.reason, "key of bob") != NULL);
    ASSERT_EQ(W.ft.relay_requests, 1);
    FX_WAIT(&W.loop, W.b.n_in == 1 && W.b.in[0].closed == 1);
    ASSERT_EQ(W.b.in[0].up, 0);
    finish(1);
}

/* No tracker and nothing cached: the address is unknown. */
static void tracker_unreachable(void) {
    setup();
    ft_close(&W.ft);
    FX_WAIT(&W.loop, W.a.ev.tracker_lost >= 1);
    dial("bob");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "tracker is unreachable") != NULL);
    finish(1);
}

/* Cancelled while the lookup is out: the answer comes and nothing fires
 * (a lookup after it, on the same connection, proves it was handled). */
static void cancel_during_lookup(void) {
    setup();
    ft_user_ep(W.ub, W.b.ep);
    W.ft.hold_lookups = 1;
    dialer *d = dial("bob");
    FX_WAIT(&W.loop, W.ft.n_held == 1);
    dial_cancel(d);
    dial_cancel(NULL); /* a no-op */
    W.ft.hold_lookups = 0;
    ft_release(&W.ft);
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(W.a.ctx.ctl, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&W.loop, r.calls == 1);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(W.b.n_in, 0);
    ASSERT_EQ(rec.calls, 0);
    finish(0);
}

/* Cancelled while its attempt is in the handshake (bob's key check is
 * held): the attempt is closed, nothing fires, bob's side ends once his
 * check is answered. */
static void cancel_during_handshake(void) {
    setup();
    ft_user_ep(W.ub, W.b.ep);
    W.ft.hold_lookups = 1;
    W.ft.hold_name = "alice"; /* bob's question about alice only */
    dialer *d = dial("bob");
    FX_WAIT(&W.loop, W.ft.n_held == 1 && W.b.n_in == 1);
    dial_cancel(d);
    ASSERT_EQ(rec.calls, 0);
    ft_release(&W.ft);
    FX_WAIT(&W.loop, W.b.in[0].closed == 1);
    ASSERT_EQ(rec.calls, 0);
    ASSERT_EQ(W.ft.relay_requests, 0);
    finish(0);
}

/* Cancelled in the same turn it started: nothing fires, ever. */
static void cancel_at_once(void) {
    setup();
    ft_user_ep(W.ub, W.b.ep);
    dial_cancel(dial("bob"));
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(W.a.ctx.ctl, "bob", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&W.loop, r.calls == 1);
    ASSERT_EQ(W.b.n_in, 0);
    finish(0);
}

/* The tracker refuses the reverse request (bob "offline" to it): with
 * every direct attempt over too, the relay is asked for at once, not
 * after --relay-after (here 10 minutes). */
static int refuse_connect(fake_tracker *ft, conn *c, const msg_in *m) {
    uint64_t id;
    if (strcmp(m->type, "connect_request") != 0)
        return 0;
    ft->connect_requests++;
    ASSERT_EQ(msg_uint(m, "id", &id), 0);
    ft_send_error(c, "offline", "fake tracker: bob is not online", id);
    return 1;
}

static void reverse_refused_relays_at_once(void) {
    setup();
    W.a.ctx.relay_after_ms = 600000;
    W.ft.hook = refuse_connect;
    ft_user_ep(W.ub, dead_ep[0]);
    dial("bob");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT_EQ(W.ft.connect_requests, 1);
    ASSERT_EQ(W.ft.relay_requests, 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "no endpoint answered (tried 1); the relay refused") != NULL);
    finish(1);
}

/* A dial to bob's one dead endpoint, --relay-after 10 minutes, until it
 * has asked for the reverse connection (its direct attempt failed). */
static dialer *dial_until_reverse(void) {
    setup();
    W.a.ctx.relay_after_ms = 600000;
    ft_user_ep(W.ub, dead_ep[0]);
    dialer *d = dial("bob");
    FX_WAIT(&W.loop, W.ft.connect_requests == 1);
    ASSERT_EQ(W.ft.relay_requests, 0);
    ASSERT_EQ(rec.calls, 0);
    return d;
}

/* bob reports (dial_reverse_failed) that his dial back failed: the relay
 * starts now instead of after --relay-after. */
static void reverse_failed_relays_at_once(void) {
    dialer *d = dial_until_reverse();
    ASSERT(W.ft.connect_tag != 0);
    dial_reverse_failed(d, W.ft.connect_tag, "no endpoint answered (tried 1)");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT_EQ(W.ft.relay_requests, 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "the relay refused") != NULL);
    dial_reverse_failed(NULL, 0, "ignored"); /* a no-op */
    finish(1);
}

/* A connect_failed whose tag is not our request's answers an earlier
 * dial's (it came late): the dial does not move to the relay for it, but
 * does for its own answer, and for one from a peer that sends no tag. */
static void stale_reverse_failed_ignored(int tagged) {
    dialer *d = dial_until_reverse();
    dial_reverse_failed(d, W.ft.connect_tag ^ 2, "an earlier dial's answer");
    for (int i = 0; i < 20; i++) /* whatever it would start, it would start now */
        uv_run(&W.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(W.ft.relay_requests, 0);
    ASSERT_EQ(rec.calls, 0);
    dial_reverse_failed(d, tagged ? W.ft.connect_tag : 0, "no endpoint answered (tried 1)");
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT_EQ(W.ft.relay_requests, 1);
    finish(1);
}
static void stale_reverse_failed_then_own(void) { stale_reverse_failed_ignored(1); }
static void stale_reverse_failed_then_untagged(void) { stale_reverse_failed_ignored(0); }

/* A link from bob came up meanwhile (dial_inbound): no relay any more;
 * with the direct attempts over, the dial ends at once (not after
 * --relay-after) with a reason chat ignores. */
static void inbound_ends_dial(void) {
    dialer *d = dial_until_reverse();
    dial_inbound(d);
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT(!rec.got_link);
    ASSERT(strstr(rec.reason, "the other side connected to us") != NULL);
    ASSERT_EQ(W.ft.relay_requests, 0);
    dial_inbound(NULL); /* a no-op */
    finish(1);
}

/* dial_reverse (answering bob's connect_request): direct attempts only,
 * to the endpoints it was given, no lookup, no reverse, no relay. */
static void reverse_dial(int live) {
    setup();
    ctl_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "bob");
    memcpy(u.key, W.b.ctx.id.pk, IDENT_PK);
    u.n_endpoints = 2;
    snprintf(u.endpoints[0], ADDR_STRLEN, "%s", dead_ep[0]);
    snprintf(u.endpoints[1], ADDR_STRLEN, "%s", live ? W.b.ep : dead_ep[1]);
    W.a.ctx.relay_after_ms = 0; /* would relay at once, were it allowed to */
    dialer *d = NULL;
    ASSERT_EQ(dial_reverse(&W.a.ctx, &u, on_dial, &rec, &d), 0);
    ASSERT(d != NULL);
    ASSERT_EQ(rec.calls, 0);
    FX_WAIT(&W.loop, rec.calls == 1);
    ASSERT_EQ(rec.got_link, live);
    if (live) {
        ASSERT_STR(link_addr(out.l), W.b.ep);
        ASSERT_EQ(W.ft.lookups, 1); /* bob's check of alice; alice asked nothing */
    } else {
        ASSERT(strstr(rec.reason, "no endpoint answered (tried 2)") != NULL);
        ASSERT_EQ(W.ft.lookups, 0);
    }
    ASSERT_EQ(W.ft.connect_requests + W.ft.relay_requests, 0);
    finish(1);
}

static void reverse_dial_reaches(void) { reverse_dial(1); }
static void reverse_dial_fails(void) { reverse_dial(0); }

TEST_MAIN(T(dead_then_live), T(offline_user), T(unknown_user), T(relay_refused),
          T(auth_failure_reported), T(tracker_unreachable), T(cancel_during_lookup),
          T(cancel_during_handshake), T(cancel_at_once),
          T(reverse_refused_relays_at_once), T(reverse_failed_relays_at_once), T(inbound_ends_dial),
          T(stale_reverse_failed_then_own), T(stale_reverse_failed_then_untagged),
          T(reverse_dial_reaches), T(reverse_dial_fails))
