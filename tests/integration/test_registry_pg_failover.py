"""test_registry_pg_failover: a real peer given several --tracker flags
(trackers sharing one PostgreSQL registry) moves to the next tracker when
the one it uses dies, registers there, and its open chats go on; users of
the other trackers then find it at its new home.  Real servers
(pgserver.py; skipped loudly without PostgreSQL)."""
import re

import runner
from pgserver import PgServer, free_port
from procs import Peer, connect, fail
from test_registry_pg import pg_tracker, stop_all
from wire import Raw


def registered_at(peer, tracker, timeout=15):
    peer.expect(r'^registered %s \(tracker %s, seen as \S+\)$' %
                (re.escape(peer.name), re.escape(tracker.addr)), timeout)


def test_pg_peer_moves_to_the_next_tracker_and_chats_go_on():
    pg = PgServer()
    t1, t2 = pg_tracker(pg, 'tracker1'), pg_tracker(pg, 'tracker2')
    alice = Peer('alice', t1.addr, extra_args=['--tracker', t2.addr])
    registered_at(alice, t1)
    bob = Peer('bob', t2.addr)
    registered_at(bob, t2)
    connect(bob, alice)
    bob.send('/msg alice before')
    alice.expect(r'^msg bob: before$')
    bob.expect(r'^delivered alice #1$')
    t1.kill()  # SIGKILL: nothing written for alice at tracker 1
    alice.expect(r'^tracker lost: .*; reconnecting in \d')
    registered_at(alice, t2)
    # The direct chat never needed tracker 1.
    alice.send('/msg bob after the move')
    bob.expect(r'^msg alice: after the move$')
    alice.expect(r'^delivered bob #1$')
    bob.send('/msg alice still here')
    alice.expect(r'^msg bob: still here$')
    bob.expect(r'^delivered alice #2$')
    alice.assert_none(r'^closed bob', 'the chat closed when the tracker died')
    # Looked up at tracker 2, alice is online there now (her row names it:
    # tracker 1's lease running out will not take her offline).
    carol = Raw(t2.addr, label='carol@t2')
    carol.must_register('carol')
    r = carol.lookup('alice')
    if r.get('t') != 'lookup_result' or r.get('online') is not True or not r.get('endpoints'):
        fail('alice moved to tracker 2, looked up there: %r' % r)
    home = pg.psql("SELECT tracker FROM parley_users WHERE folded = 'alice'")
    if home != pg.psql("SELECT tracker FROM parley_users WHERE folded = 'bob'"):
        fail('alice\'s row names tracker %r, not tracker 2' % home)
    # A new chat dialed from tracker 2's side reaches her through her new home.
    carol.send({'t': 'connect_request', 'id': 77, 'to': 'alice'})
    f = carol.recv_skip_presence()
    if f.get('t') != 'connect_result' or f.get('id') != 77:
        fail('connect_request for alice at tracker 2: %r' % f)
    alice.quit()
    bob.quit()
    stop_all((carol,), (t2,))


def test_pg_peer_skips_a_tracker_that_is_down_at_start():
    """The first --tracker does not answer: the peer says so once, then
    registers at the second."""
    pg = PgServer()
    t2 = pg_tracker(pg, 'tracker2')
    dead = '127.0.0.1:%d' % free_port()
    alice = Peer('alice', dead, extra_args=['--tracker', t2.addr])
    alice.expect(r'^error: cannot reach the tracker %s \(--tracker\): ' % re.escape(dead))
    registered_at(alice, t2)
    alice.quit()
    stop_all((), (t2,))


if __name__ == '__main__':
    runner.main(globals())
