"""test_crash: processes killed with -9 mid-work.  The tracker
killed while 50 clients register in a loop loses no acknowledged
registration and leaves an intact database; a peer stopped and then killed
mid-chat is shown as gone to its partner (within the ttl), which reports
the messages it never acknowledged, and a peer killed outright is shown
offline at once.  What a restarted tracker keeps and how peers come back is
test_resilience's; limits and leaks under load are test_limits'."""
import signal
import threading
import time

import runner
from procs import Peer, TestFailure, Tracker, connect, fail, sqlite, start_peers
from sodium import Key
from wire import Closed, Raw, registered_client

CLIENTS = 50


def test_kill9_while_50_clients_register():
    # 50 clients on one address, hundreds of lookups on one connection: the
    # connection limits (test_limits tests them) are off here.
    t = Tracker(extra_args=['--rate-limit', '0', '--max-conns-per-addr', '0'])
    acked = {}                 # name -> Key, registrations the tracker answered
    lock = threading.Condition()
    stop = threading.Event()

    def client(i):
        n = 0
        while not stop.is_set():
            name = 'c%02d-%d' % (i, n)
            key = Key()
            try:
                r = Raw(t.addr, timeout=5, label=name)
                f = r.register(name, key, endpoints=['127.0.0.1:%d' % (1000 + i)])
                r.close()
            except (TestFailure, Closed, OSError):
                return         # the tracker is gone
            if f.get('t') != 'registered':
                with lock:
                    acked[name] = 'refused: %r' % f
                    lock.notify_all()
                return
            with lock:
                acked[name] = key
                lock.notify_all()
            n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for th in threads:
        th.start()
    # Kill once a good number are acknowledged and every client is mid-loop.
    deadline = time.monotonic() + 60
    with lock:
        while len(acked) < 300:
            if time.monotonic() > deadline:
                fail('only %d registrations acknowledged in 60 s' % len(acked))
            lock.wait(0.5)
    t.kill()
    stop.set()
    for th in threads:
        th.join(15)
    bad = {n: k for n, k in acked.items() if not isinstance(k, Key)}
    if bad:
        fail('registrations refused before the kill: %r' % list(bad.items())[:5])
    print('%d registrations acknowledged before kill -9' % len(acked))
    t.start()
    checker = registered_client(t, 'checker')
    for name, key in sorted(acked.items()):
        look = checker.lookup(name)
        if look.get('t') != 'lookup_result' or look.get('key') != key.pk:
            fail('acknowledged registration %s lost after kill -9: lookup gave %r' % (name, look))
        if look.get('online') is not False:
            fail('%s online after the restart: %r' % (name, look))
    t.stop()
    if sqlite(t.db, 'PRAGMA integrity_check') != ['ok']:
        fail('integrity_check after kill -9: %r' % sqlite(t.db, 'PRAGMA integrity_check'))
    rows = int(sqlite(t.db, 'SELECT count(*) FROM users')[0])
    if rows < len(acked) + 1:
        fail('%d rows in the database, fewer than the %d acknowledged' % (rows, len(acked) + 1))


def test_peer_kill9_mid_chat():
    ttl = 3
    t = Tracker(ttl=ttl)
    alice, bob = start_peers(t.addr, 'alice', 'bob')
    connect(alice, bob)
    alice.send('/msg bob one')
    bob.expect(r'^msg alice: one$')
    alice.expect(r'^delivered bob #1$')
    # bob's machine stops answering (no FIN, no ack): the tracker notices
    # by the ttl and tells alice bob is offline.
    bob.proc.signal(signal.SIGSTOP)
    start = time.monotonic()
    alice.send('/msg bob two')
    alice.send('/msg bob three')
    alice.expect(r'^offline bob$', timeout=ttl * 2 + 2)
    took = time.monotonic() - start
    if took > ttl + 2:
        fail('bob shown offline %.1fs after he stopped; ttl is %d s' % (took, ttl))
    # Then it dies for good: alice's link breaks and the two messages bob
    # never acknowledged are reported, not dropped silently.
    bob.proc.signal(signal.SIGKILL)
    bob.proc.wait_exit(10)
    alice.expect(r'^closed bob: connection lost$', timeout=ttl * 2)
    alice.expect(r'^error: 2 messages to bob not delivered \(connection lost\)', timeout=5)
    alice.assert_none(r'^delivered bob #[23]$')
    # A plain kill -9 with nothing pending: offline at once, no report.
    carol = Peer('carol', t.addr)
    carol.registered()
    connect(alice, carol)
    alice.send('/msg carol hi')
    carol.expect(r'^msg alice: hi$')
    alice.expect(r'^delivered carol #1$')
    start = time.monotonic()
    carol.proc.signal(signal.SIGKILL)
    alice.expect(r'^closed carol: connection lost$', timeout=ttl)
    alice.expect(r'^offline carol$', timeout=ttl)
    if time.monotonic() - start > ttl:
        fail('carol shown offline only after %.1fs' % (time.monotonic() - start))
    alice.assert_none(r'to carol not delivered')
    alice.quit()
    t.stop()


if __name__ == '__main__':
    runner.main(globals())
