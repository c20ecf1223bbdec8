/* test_peer_link: peer/link.c, the chat link state machine, through
 * link_dial / link_accept over loopback between two peer contexts on one
 * loop (alice dials, bob accepts), each with its own identity; bob's key
 * check goes to the fake tracker through his tracker client.  The
 * handshake reaching up on both sides, msg / ack / bye both ways, every
 * way authentication fails (the dialer expecting another key or user, the
 * tracker knowing another key for the dialer, a pinned key that differs on
 * either side), link_close at each step of the handshake, and the first
 * meeting pinning the key. */
#include "peer_fixture.h"
#include "pins.h"
#include "test.h"

#include <sodium.h>

static fx_world W;
static fx_link out; /* alice's dialed link */

static void dial_as(const char *name, const unsigned char key[IDENT_PK]) {
    struct sockaddr_in sa = fx_sa(fx_ep_port(W.b.ep));
    memset(&out, 0, sizeof out);
    ASSERT_EQ(link_dial(&W.a.ctx, (struct sockaddr *)&sa, name, key, &fx_link_handler, &out,
                        &out.l),
              0);
    ASSERT(out.l != NULL);
    ASSERT(!link_is_up(out.l));
    ASSERT_EQ(out.closed, 0); /* nothing fires inside link_dial */
}

static void dial_bob(void) { dial_as("bob", W.b.ctx.id.pk); }

static fx_link *bob_side(void) {
    FX_WAIT(&W.loop, W.b.n_in == 1);
    return &W.b.in[0];
}

static void wait_up(void) {
    FX_WAIT(&W.loop, out.up == 1 && W.b.n_in == 1 && W.b.in[0].up == 1);
}

/* Closes what is open; then each link was seen closed exactly once, and
 * up (alice's, bob's) as expected. */
static void finish2(int a_up, int b_up) {
    if (out.l)
        link_close(out.l);
    fx_world_close(&W);
    ASSERT_EQ(out.closed, 1);
    ASSERT_EQ(out.up, a_up);
    for (int i = 0; i < W.b.n_in; i++) {
        ASSERT_EQ(W.b.in[i].closed, 1);
        ASSERT_EQ(W.b.in[i].up, b_up);
    }
}

static void finish(int up) { finish2(up, up); }

static void both_sides_up(void) {
    fx_world_open(&W);
    dial_bob();
    ASSERT_EQ(link_send_msg(out.l, 1, 0, "early", 5), UV_ENOTCONN); /* only once up */
    ASSERT_EQ(link_send_ack(out.l, 1), UV_ENOTCONN);
    ASSERT_EQ(link_send_bye(out.l), UV_ENOTCONN);
    wait_up();
    chatlink *b = W.b.in[0].l;
    ASSERT(link_is_up(out.l) && link_is_up(b));
    ASSERT_STR(link_name(out.l), "bob");
    ASSERT_STR(link_name(b), "alice");
    ASSERT_STR(link_fold(b), "alice");
    ASSERT_EQ(link_dialed(out.l), 1);
    ASSERT_EQ(link_dialed(b), 0);
    ASSERT_EQ(link_relayed(out.l), 0);
    ASSERT_STR(link_addr(out.l), W.b.ep);
    ASSERT_EQ(link_peer_sa(b)->ss_family, AF_INET);
    /* bob checked alice's key with a fresh lookup; alice had it already */
    ASSERT_EQ(W.ft.lookups, 1);
    ASSERT_STR(W.ft.lookup_name, "alice");
    ASSERT_EQ(out.closed + W.b.in[0].closed, 0);
    ASSERT_EQ(W.a.ev.errors + W.b.ev.errors, 0);
    link_close(out.l);
    FX_WAIT(&W.loop, out.closed == 1 && W.b.in[0].closed == 1);
    ASSERT_EQ(out.reason, 0);
    ASSERT(out.why_null);
    ASSERT_EQ(W.b.in[0].reason, UV_EOF);
    ASSERT(W.b.in[0].why_null);
    finish(1);
}

/* msg and ack both ways, then bye: alice says it, bob's bye callback
 * answers with his, and both links close (alice's as a local close). */
static void msg_ack_bye(void) {
    fx_world_open(&W);
    dial_bob();
    wait_up();
    fx_link *b = &W.b.in[0];
    b->ack_msgs = 1;
    ASSERT_EQ(link_send_msg(out.l, 7, 1234, "hello bob", 9), 0);
    FX_WAIT(&W.loop, b->msgs == 1);
    ASSERT_EQ(b->msg_id, 7);
    ASSERT_EQ(b->msg_ts, 1234);
    ASSERT_STR(b->text, "hello bob");
    FX_WAIT(&W.loop, out.acks == 1);
    ASSERT_EQ(out.ack_id, 7);
    ASSERT_EQ(link_send_msg(b->l, 8, -5, "hi alice \xe2\x9c\x93", 12), 0);
    FX_WAIT(&W.loop, out.msgs == 1);
    ASSERT_EQ(out.msg_id, 8);
    ASSERT_EQ(out.msg_ts, -5);
    ASSERT_STR(out.text, "hi alice \xe2\x9c\x93");
    ASSERT_EQ(link_send_ack(out.l, 8), 0);
    FX_WAIT(&W.loop, b->acks == 1);
    ASSERT_EQ(b->ack_id, 8);
    b->bye_back = 1;
    ASSERT_EQ(link_send_bye(out.l), 0);
    ASSERT_EQ(link_send_msg(out.l, 9, 0, "late", 4), UV_ENOTCONN); /* said bye */
    FX_WAIT(&W.loop, b->byes == 1);
    FX_WAIT(&W.loop, out.closed == 1 && b->closed == 1);
    ASSERT_EQ(out.byes, 0); /* bye after ours closes; it is not news */
    ASSERT_EQ(out.reason, 0);
    ASSERT(out.why_null);
    ASSERT(b->why_null);
    ASSERT_EQ(out.msgs + b->msgs, 2);
    ASSERT_EQ(out.acks + b->acks, 2);
    finish(1);
}

/* An ack waits (up to 5 ms) for a frame to ride with: alone it comes
 * late, never at once; before an answer it comes in the same write, ahead
 * of it. */
static void acks_wait_then_ride(void) {
    fx_world_open(&W);
    dial_bob();
    wait_up();
    fx_link *b = &W.b.in[0];
    b->ack_msgs = 1;
    ASSERT_EQ(link_send_msg(out.l, 1, 0, "one", 3), 0);
    FX_WAIT(&W.loop, b->msgs == 1);
    uint64_t t0 = uv_hrtime();
    ASSERT_EQ(out.acks, 0);
    FX_WAIT(&W.loop, out.acks == 1);
    ASSERT(uv_hrtime() - t0 >= 4000000); /* held: the timer, not the msg, sent it */
    ASSERT_EQ(out.ack_id, 1);
    b->answer = 1;
    ASSERT_EQ(link_send_msg(out.l, 2, 0, "two", 3), 0);
    FX_WAIT(&W.loop, out.msgs == 1);
    ASSERT_EQ(out.msg_id, 1002);
    ASSERT_EQ(out.acks_at_msg, 2); /* the ack of 2 came first, with the answer */
    ASSERT_EQ(out.ack_id, 2);
    finish(1);
}

/* The dialer expects another key for bob: closed with a why about the
 * key, never up, on either side. */
static void dialer_expects_other_key(void) {
    fx_world_open(&W);
    unsigned char other[IDENT_PK];
    randombytes_buf(other, sizeof other);
    dial_as("bob", other);
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT(strstr(out.why, "key of bob") != NULL);
    ASSERT(strstr(out.why, "not the one the tracker has") != NULL);
    ASSERT_EQ(out.up, 0);
    FX_WAIT(&W.loop, bob_side()->closed == 1);
    ASSERT_EQ(W.b.in[0].up, 0);
    finish(0);
}

/* The handshake fails: alice's closed reports alice_why, bob's bob_why
 * (each side's own words, or what the other side said). */
static void refused_with(const char *alice_why, const char *bob_why) {
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT_STR(out.why, alice_why);
    FX_WAIT(&W.loop, bob_side()->closed == 1);
    ASSERT_STR(W.b.in[0].why, bob_why);
}

/* The dialer asks for carol at bob's address: bob says he is not, and
 * alice sees the other side is not carol. */
static void dialer_reaches_another_user(void) {
    fx_world_open(&W);
    dial_as("carol", W.b.ctx.id.pk);
    refused_with("the other side is not carol", "this is bob, not the user you dialed");
    finish(0);
}

/* The tracker knows another key for alice: bob refuses with
 * bad_signature, and alice's closed reports what bob said. */
static void tracker_knows_other_key(void) {
    fx_world_open(&W);
    randombytes_buf(W.ua->key, IDENT_PK);
    dial_bob();
    refused_with("bob said: the key sent for alice is not the one the tracker has (bad_signature)",
                 "the key sent for alice is not the one the tracker has");
    ASSERT_EQ(out.reason, UV_EPROTO);
    ASSERT_EQ(W.ft.lookups, 1);
    finish(0);
}

/* The tracker has never heard of alice: bob refuses with not_found. */
static void tracker_knows_no_dialer(void) {
    fx_world_open(&W);
    snprintf(W.ua->name, sizeof W.ua->name, "someone");
    dial_bob();
    refused_with("bob said: the tracker knows no user named alice (not_found)",
                 "the tracker knows no user named alice");
    finish(0);
}

/* link_close before the TCP connect completed: closed fires once. */
static void close_while_connecting(void) {
    fx_world_open(&W);
    dial_bob();
    link_close(out.l);
    link_close(out.l); /* idempotent */
    ASSERT_EQ(out.closed, 0); /* from the loop, not inside */
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT(out.l == NULL);
    ASSERT(out.why_null);
    finish(0);
}

/* alice dials bob (as name) and bob's key check is held at the tracker;
 * bob's side of the link. */
static fx_link *dial_into_key_check(const char *name) {
    W.ft.hold_lookups = 1;
    dial_as(name, W.b.ctx.id.pk);
    FX_WAIT(&W.loop, W.ft.n_held == 1);
    return bob_side();
}

/* bob closes his link while it waits for the tracker's answer about
 * alice's key: his closed fires once, the late answer is dropped, and
 * alice sees the link end (no why: nobody refused anyone). */
static void acceptor_close_during_key_check(void) {
    fx_world_open(&W);
    fx_link *b = dial_into_key_check("bob");
    ASSERT(b->l != NULL);
    link_close(b->l);
    FX_WAIT(&W.loop, b->closed == 1);
    ASSERT(b->why_null);
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT(out.why_null);
    W.ft.hold_lookups = 0;
    ft_release(&W.ft); /* the answer to a link that is gone */
    fx_lookup r = {0};
    ASSERT_EQ(ctl_lookup(W.b.ctx.ctl, "alice", 1, fx_lookup_cb, &r), 0);
    FX_WAIT(&W.loop, r.calls == 1); /* the released answer came before this one */
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(b->closed, 1);
    ASSERT_EQ(b->up, 0);
    finish(0);
}

/* alice closes once she has sent her auth, while bob's key check holds
 * his side (he reads nothing meanwhile): alice's closed fires once; bob's
 * link reads on when the check is answered: her auth (valid, so it comes
 * up), then the end of the stream (closed once, UV_EOF). */
static void dialer_close_during_key_check(void) {
    fx_world_open(&W);
    fx_link *b = dial_into_key_check("BOB");
    /* the name of bob's hello replaces the dialed spelling just before
     * alice sends her auth */
    FX_WAIT(&W.loop, strcmp(link_name(out.l), "bob") == 0);
    link_close(out.l);
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT_EQ(b->closed + b->up, 0);
    ft_release(&W.ft);
    FX_WAIT(&W.loop, b->closed == 1);
    ASSERT_EQ(b->up, 1);
    ASSERT_EQ(b->reason, UV_EOF);
    ASSERT(b->why_null);
    finish2(0, 1);
}

/* bob's known_peers pins another key for alice: he refuses with
 * key_changed (and tells his user, loudly), alice's closed reports it. */
static void pinned_key_differs_acceptor(void) {
    fx_world_open(&W);
    unsigned char other[IDENT_PK], still[IDENT_PK];
    randombytes_buf(other, sizeof other);
    fx_peer_home(&W.b, "alice", other);
    dial_bob();
    refused_with("bob said: your key is not the one this peer pinned for your name (key_changed)",
                 W.b.ev.error_text);
    ASSERT(strncmp(W.b.ev.error_text, "the key of alice changed", 24) == 0);
    ASSERT(strstr(W.b.ev.error_text, "/trust alice") != NULL);
    ASSERT_EQ(W.b.ev.errors, 1);
    ASSERT_STR(W.b.ev.error_code, "key_changed");
    ASSERT_EQ(pins_get(W.b.ctx.pins, "alice", still), 0); /* the pin stays */
    ASSERT(memcmp(still, other, IDENT_PK) == 0);
    finish(0);
}

/* alice's known_peers pins another key for bob: she refuses before
 * authenticating herself. */
static void pinned_key_differs_dialer(void) {
    fx_world_open(&W);
    unsigned char other[IDENT_PK];
    randombytes_buf(other, sizeof other);
    fx_peer_home(&W.a, "bob", other);
    dial_bob();
    FX_WAIT(&W.loop, out.closed == 1);
    ASSERT(strstr(out.why, "the key of bob changed") != NULL);
    ASSERT_EQ(W.a.ev.errors, 1);
    ASSERT_STR(W.a.ev.error_code, "key_changed");
    FX_WAIT(&W.loop, bob_side()->closed == 1);
    finish(0);
}

/* A first meeting pins the key in known_peers (on disk); a matching pin
 * lets the link up. */
static void first_meeting_pins(void) {
    fx_world_open(&W);
    fx_peer_home(&W.a, NULL, NULL);
    fx_peer_home(&W.b, "alice", W.a.ctx.id.pk);
    unsigned char key[IDENT_PK];
    ASSERT_EQ(pins_get(W.a.ctx.pins, "bob", key), UV_ENOENT);
    dial_bob();
    wait_up();
    ASSERT_EQ(pins_get(W.a.ctx.pins, "bob", key), 0);
    ASSERT(memcmp(key, W.b.ctx.id.pk, IDENT_PK) == 0);
    pins *again;
    char err[300];
    ASSERT_EQ(pins_open(W.a.home, &again, err, sizeof err), 0);
    ASSERT_EQ(pins_get(again, "bob", key), 0);
    ASSERT(memcmp(key, W.b.ctx.id.pk, IDENT_PK) == 0);
    pins_close(again);
    ASSERT_EQ(W.a.ev.errors + W.b.ev.errors, 0);
    finish(1);
}

/* The tracker drops bob's connection while his question about alice's
 * key is out.  Having looked alice up before, bob answers it from the
 * key last learned and the link comes up. */
static void tracker_lost_during_key_check_cached(void) {
    fx_world_open(&W);
    fx_lookup warm = {0};
    ASSERT_EQ(ctl_lookup(W.b.ctx.ctl, "alice", 1, fx_lookup_cb, &warm), 0);
    FX_WAIT(&W.loop, warm.calls == 1);
    dial_into_key_check("bob");
    W.ft.n_held = 0;
    ft_drop(&W.ft);
    wait_up();
    ASSERT_EQ(W.b.ev.errors, 0);
    finish(1);
}

/* bob learned a key for alice earlier (a lookup answered K1), and the
 * tracker's record has changed since: his check of alice's hello asks the
 * tracker again and goes by its current record, as a peer started after
 * the change would, instead of refusing her with the key he cached. */
static void tracker_record_beats_cached_key(void) {
    fx_world_open(&W);
    unsigned char real[IDENT_PK];
    memcpy(real, W.ua->key, IDENT_PK);
    randombytes_buf(W.ua->key, IDENT_PK);
    fx_lookup warm = {0};
    ASSERT_EQ(ctl_lookup(W.b.ctx.ctl, "alice", 1, fx_lookup_cb, &warm), 0);
    FX_WAIT(&W.loop, warm.calls == 1);
    ASSERT_EQ(warm.status, 0);
    memcpy(W.ua->key, real, IDENT_PK); /* the record now holds alice's real key */
    dial_bob();
    wait_up();
    ASSERT_EQ(W.ft.lookups, 2); /* the warm-up and bob's check: asked, not cached */
    ASSERT_EQ(W.a.ev.errors + W.b.ev.errors, 0);
    finish(1);
}

/* The same with alice unknown to bob's cache: he cannot verify her key
 * now, so he refuses (internal), and alice hears why. */
static void tracker_lost_during_key_check(void) {
    fx_world_open(&W);
    dial_into_key_check("bob");
    W.ft.n_held = 0;
    ft_drop(&W.ft);
    refused_with("bob said: cannot verify the key of alice now: the tracker is unreachable; try "
                 "again later (internal)",
                 "cannot verify the key of alice now: the tracker is unreachable; try again later");
    finish(0);
}

/* bob does not answer alice's bye: her link lingers 2 s and closes
 * (timed out); a msg bob sends meanwhile is not delivered (not acked: he
 * keeps it for a later conversation). */
static void bye_unanswered_lingers(void) {
    fx_world_open(&W);
    dial_bob();
    wait_up();
    fx_link *b = &W.b.in[0];
    uv_update_time(&W.loop);
    uint64_t start = uv_now(&W.loop);
    ASSERT_EQ(link_send_bye(out.l), 0);
    FX_WAIT(&W.loop, b->byes == 1);
    ASSERT_EQ(link_send_msg(b->l, 5, 0, "too late", 8), 0);
    FX_WAIT(&W.loop, out.closed == 1);
    uv_update_time(&W.loop);
    ASSERT(uv_now(&W.loop) - start >= 1500);
    ASSERT_EQ(out.reason, UV_ETIMEDOUT);
    ASSERT_EQ(out.msgs, 0);
    FX_WAIT(&W.loop, b->closed == 1);
    ASSERT_EQ(b->reason, UV_EOF);
    finish(1);
}

TEST_MAIN(T(both_sides_up), T(msg_ack_bye), T(acks_wait_then_ride), T(dialer_expects_other_key),
          T(dialer_reaches_another_user), T(tracker_knows_other_key), T(tracker_knows_no_dialer),
          T(close_while_connecting), T(acceptor_close_during_key_check),
          T(dialer_close_during_key_check), T(pinned_key_differs_acceptor),
          T(pinned_key_differs_dialer), T(first_meeting_pins),
          T(tracker_lost_during_key_check_cached), T(tracker_lost_during_key_check),
          T(tracker_record_beats_cached_key),
          T(bye_unanswered_lingers))
