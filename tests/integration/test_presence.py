"""test_presence: presence by subscription (PROTOCOL.md, "subscribe").  Raw
clients that list "subscribe" hear only of the names they subscribed to;
one that does not (a protocol-1 peer) still hears of everyone; all mode;
unsubscribe and close free the subscriptions (seen in the tracker's
metrics); the per-connection limit and bad names are refused with their
codes, the connection staying open; real peers subscribe by themselves.

"Gets no push" is shown without waiting out a timeout: the tracker sends a
pass's pushes to all their recipients together, before it reads the next
frame, so once one recipient has the push, a ping from a non-recipient is
answered with a pong that no presence can precede."""
import time

import runner
from procs import Peer, Tracker, fail, start_peers
from sodium import Key
from test_metrics import scrape
from wire import Raw

SUB = ['connect_failed', 'mailbox', 'subscribe']  # not punch: the tracker would ping


def sub_client(t, name, label=None):
    c = Raw(t.addr, label=label or name)
    w = c.hello()
    if 'subscribe' not in w.get('features', []):
        fail('welcome does not list subscribe: %r' % w)
    c.must_register(name, features=SUB)
    return c


def old_client(t, name):
    c = Raw(t.addr, label='old ' + name)
    c.must_register(name)  # no features: a protocol-1 peer
    return c


def subscribe(c, names=None, all=None):
    d = {'t': 'subscribe'}
    if names is not None:
        d['names'] = names
    if all is not None:
        d['all'] = all
    return c.request(d)


def nothing_pending(c):
    """The next frame on c is the pong to a ping sent now: no push waited."""
    c.send({'t': 'ping'})
    f = c.recv()
    if f.get('t') != 'pong':
        fail('%s: expected no push before the pong, got %r' % (c.label, f))


def presence_of(c, name, online):
    p = c.recv_type('presence')
    if p != {'t': 'presence', 'name': name, 'online': online}:
        fail('%s: got %r, want %s %s' % (c.label, p, name, 'online' if online else 'offline'))


def metrics_tracker():
    t = Tracker(extra_args=('--metrics', '127.0.0.1:0'))
    m, _ = t.proc.wait_stderr(r'metrics on (127\.0\.0\.1:\d+)', timeout=15)
    return t, m.group(1)


def wait_metric(maddr, name, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        v = scrape(maddr).get(name)
        if v == want:
            return
        if time.monotonic() > deadline:
            fail('%s is %r, want %r' % (name, v, want))
        time.sleep(0.05)  # polling an outside counter: no event to await


def test_subscriber_gets_push_others_do_not():
    t = Tracker()
    alice = sub_client(t, 'alice')
    carol = sub_client(t, 'carol')
    old = old_client(t, 'old')
    r = subscribe(alice, ['Bob', 'dave'])
    if r != {'t': 'subscribed', 'id': r['id'], 'count': 2, 'online': []}:
        fail('subscribe answered %r' % r)
    r = subscribe(carol, ['dave'])
    if r.get('count') != 1:
        fail('carol subscribe answered %r' % r)
    bob = sub_client(t, 'bob')
    presence_of(alice, 'bob', True)
    presence_of(old, 'bob', True)  # an older peer hears of everyone, as before
    nothing_pending(carol)
    nothing_pending(bob)           # bob subscribed to nobody: not told of anyone
    bob.close()
    presence_of(alice, 'bob', False)
    presence_of(old, 'bob', False)
    nothing_pending(carol)
    t.stop()


def test_subscribed_lists_who_is_online():
    t = Tracker()
    bob = sub_client(t, 'bob')
    alice = sub_client(t, 'alice')
    r = subscribe(alice, ['BOB', 'carol', 'bob'])
    if r.get('t') != 'subscribed' or r.get('online') != ['bob'] or r.get('count') != 2:
        fail('subscribe answered %r (want online [bob], count 2)' % r)
    r = subscribe(alice, [])
    if r.get('count') != 2 or r.get('online') != []:
        fail('an empty subscribe answered %r' % r)
    bob.close()
    presence_of(alice, 'bob', False)
    t.stop()


def test_unsubscribe_stops_pushes():
    t = Tracker()
    alice = sub_client(t, 'alice')
    old = old_client(t, 'old')
    subscribe(alice, ['bob', 'carol'])
    r = alice.request({'t': 'unsubscribe', 'names': ['BOB', 'nobody']})
    if r != {'t': 'unsubscribed', 'id': r['id'], 'count': 1}:
        fail('unsubscribe answered %r' % r)
    bob = sub_client(t, 'bob')
    presence_of(old, 'bob', True)
    nothing_pending(alice)
    carol = sub_client(t, 'carol')
    presence_of(alice, 'carol', True)
    bob.close()
    carol.close()
    t.stop()


def test_all_mode():
    t = Tracker()
    alice = sub_client(t, 'alice')
    r = subscribe(alice, all=True)
    if r.get('t') != 'subscribed' or r.get('count') != 0:
        fail('subscribe all answered %r' % r)
    bob = sub_client(t, 'bob')
    presence_of(alice, 'bob', True)
    r = alice.request({'t': 'unsubscribe', 'all': True})
    if r.get('t') != 'unsubscribed':
        fail('unsubscribe all answered %r' % r)
    carol = sub_client(t, 'carol')
    nothing_pending(alice)
    bob.close()
    carol.close()
    t.stop()


def test_old_peer_can_leave_all_mode():
    t = Tracker()
    old = old_client(t, 'old')
    old.request({'t': 'unsubscribe', 'all': True})
    subscribe(old, ['carol'])
    bob = sub_client(t, 'bob')
    carol = sub_client(t, 'carol')
    presence_of(old, 'carol', True)  # carol's push came after bob's, which old no longer gets
    nothing_pending(old)
    bob.close()
    carol.close()
    t.stop()


def test_close_frees_subscriptions():
    t, maddr = metrics_tracker()
    alice = sub_client(t, 'alice')
    old = old_client(t, 'old')
    subscribe(alice, ['bob', 'carol', 'dave'])
    wait_metric(maddr, 'parley_presence_subscriptions', 3)
    wait_metric(maddr, 'parley_presence_subscribed_names', 3)
    wait_metric(maddr, 'parley_presence_all_sessions', 1)
    other = sub_client(t, 'erin')
    subscribe(other, ['bob'])
    wait_metric(maddr, 'parley_presence_subscriptions', 4)
    alice.close()
    wait_metric(maddr, 'parley_presence_subscriptions', 1)
    wait_metric(maddr, 'parley_presence_subscribed_names', 1)
    old.close()
    wait_metric(maddr, 'parley_presence_all_sessions', 0)
    # the index still works for the subscriber that stayed
    bob = sub_client(t, 'bob')
    presence_of(other, 'bob', True)
    bob.close()
    presence_of(other, 'bob', False)
    other.close()
    wait_metric(maddr, 'parley_presence_subscriptions', 0)
    wait_metric(maddr, 'parley_presence_subscribed_names', 0)
    t.stop()


def test_limit_refused_whole_with_clear_error():
    t = Tracker()
    alice = sub_client(t, 'alice')
    r = subscribe(alice, ['u%d' % i for i in range(600)])
    if r.get('count') != 600:
        fail('600 names answered %r' % r)
    r = subscribe(alice, ['u%d' % i for i in range(590, 1001)])  # 401 new: 1001 in all
    if r.get('t') != 'error' or r.get('code') != 'too_many_subscriptions':
        fail('past the limit answered %r' % r)
    if 'at most 1000' not in r.get('msg', ''):
        fail('the limit error does not say the limit: %r' % r)
    r = subscribe(alice, ['u%d' % i for i in range(590, 1000)])  # 400 new: exactly 1000
    if r.get('count') != 1000:
        fail('up to the limit answered %r (the refused request must have added nothing)' % r)
    r = subscribe(alice, ['u1', 'u2'])  # already held: nothing new
    if r.get('count') != 1000:
        fail('names already held answered %r' % r)
    r = subscribe(alice, ['zed'])
    if r.get('code') != 'too_many_subscriptions':
        fail('one past the limit answered %r' % r)
    u5 = sub_client(t, 'u5')
    presence_of(alice, 'u5', True)  # still subscribed, connection open
    u5.close()
    t.stop()


def test_bad_requests():
    t = Tracker()
    early = Raw(t.addr, label='early')
    early.hello()
    early.send({'t': 'subscribe', 'id': 1, 'names': ['bob']})
    e = early.expect_error('not_registered', closed=False, id=1)
    alice = sub_client(t, 'alice')
    r = subscribe(alice, ['bob', 'bad name'])
    if r.get('code') != 'bad_name' or 'entry 2' not in r.get('msg', ''):
        fail('a bad name answered %r' % r)
    r = subscribe(alice, ['carol'])
    if r.get('count') != 1:
        fail('after a refused bad name: %r (bob must not have been added)' % r)
    alice.send({'t': 'subscribe', 'id': 9, 'names': ['bob', 7]})
    alice.expect_error('bad_message')
    bob = sub_client(t, 'bob')
    bob.send({'t': 'subscribe', 'names': ['x']})
    bob.expect_error('bad_message')
    early.close()
    t.stop()


def register_many(t, prefix, n):
    """n older-style raw clients registered at once (pipelined: hellos,
    then registers, then the answers), so a thousand take a few commits."""
    cs = [Raw(t.addr, label='%s%d' % (prefix, i)) for i in range(n)]
    for c in cs:
        c.send({'t': 'hello', 'v': 1, 'role': 'peer'})
    for i, c in enumerate(cs):
        w = c.recv_type('welcome')
        c.key = Key()
        name = '%s%d' % (prefix, i)
        c.send({'t': 'register', 'name': name, 'key': c.key.pk,
                'sig': c.key.sign_register(w['nonce'], name.encode()), 'endpoints': []})
    for c in cs:
        r = c.recv_skip_presence()
        if r.get('t') != 'registered':
            fail('%s: register answered %r' % (c.label, r))
    return cs


def test_all_mode_ends_when_the_tracker_grows():
    """All mode is granted on a small tracker; the registration that takes
    it past 1000 online ends it for those that asked (presence_mode), and
    asking again is refused; older peers keep hearing of everyone."""
    t = Tracker(extra_args=('--max-conns-per-addr', '0', '--rate-limit', '0'))
    alice = sub_client(t, 'alice')
    r = subscribe(alice, ['carol'], all=True)
    if r.get('t') != 'subscribed':
        fail('subscribe all on a small tracker answered %r' % r)
    old = old_client(t, 'old')
    crowd = register_many(t, 'm', 998)  # 1000 online: all mode stays
    nothing = alice.request({'t': 'unsubscribe', 'names': []})  # skips the pushes so far
    if nothing.get('t') != 'unsubscribed':
        fail('unsubscribe answered %r' % nothing)
    one_more = register_many(t, 'n', 1)  # 1001
    f = alice.recv()
    while f.get('t') == 'presence':
        f = alice.recv()
    if f != {'t': 'presence_mode', 'all': False}:
        fail('alice past 1000 online got %r, want presence_mode all false' % f)
    r = subscribe(alice, all=True)
    if r.get('code') != 'too_many_subscriptions' or '1000' not in r.get('msg', ''):
        fail('subscribe all on a large tracker answered %r' % r)
    dave = sub_client(t, 'dave')
    carol = sub_client(t, 'carol')
    presence_of(alice, 'carol', True)  # her subscription stayed; dave's push did not come
    old_seen = [old.recv_type('presence')['name'] for _ in range(998 + 1 + 2)]
    if old_seen[-2:] != ['dave', 'carol']:
        fail('the older peer heard %r last, want dave and carol' % old_seen[-2:])
    for c in crowd + one_more + [alice, old, dave, carol]:
        c.close()
    t.stop()


def test_real_peers_subscribe():
    t, maddr = metrics_tracker()
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    alice.expect(r'^online bob$')  # a small tracker grants all mode
    wait_metric(maddr, 'parley_presence_all_sessions', 2)
    alice.send('/list')
    alice.expect(r'^users 2: alice bob$')
    wait_metric(maddr, 'parley_presence_subscriptions', 1)  # alice's list: bob (not herself)
    bob.quit()
    alice.expect(r'^offline bob$')
    alice.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())
