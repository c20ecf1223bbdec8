"""harness: the old single module of the integration tests, kept as a facade.

Everything it offered now lives in a module of tests/integration/ named for
its job; this file only re-exports those names, so `import harness` and
`from harness import ...` keep working.  New code imports from the module
that holds the name:

- procs.py      ROOT, BUILD, SANITIZER_MARKS, SKIP_STATUS, Skip, TestFailure,
                fail, on_cleanup, tempdir (the cleanup registry); Proc,
                LISTEN_RE, Tracker, Peer, start_peers, connect, shown; sqlite
- natlab.py     NETLAB, NetLab (a tools/netlab NAT lab for one test)
- sodium.py     sodium() (libsodium through ctypes), Key, auth_input,
                verify_chat (the signed bytes)
- wire.py       FRAME_MAX, RawStr, pack_map, frame, msg, Closed, Raw,
                ADDR_RE, check_welcome, registered_client, assert_serving,
                have_ipv6_loopback, wait_closed, peer_port
- handshake.py  CHAT_VERSION, ChatSession, chat_handshake, SealedLink,
                FakePeer (the chat link played by the test)
- runner.py     run_test, main (how a test file runs)
"""
# The registry lists themselves (not copies): tools/bench/dial.py clears
# harness._cleanups and harness._procs between its runs.
from procs import (BUILD, LISTEN_RE, ROOT, SANITIZER_MARKS, SKIP_STATUS, Peer, Proc, Skip,  # noqa: F401
                   TestFailure, Tracker, _cleanups, _lock, _procs, connect, fail, on_cleanup,
                   shown, sqlite, start_peers, tempdir)
from natlab import NETLAB, NetLab  # noqa: F401
from sodium import Key, auth_input, sodium, verify_chat  # noqa: F401
from wire import (ADDR_RE, FRAME_MAX, Closed, Raw, RawStr, assert_serving, check_welcome,  # noqa: F401
                  frame, have_ipv6_loopback, msg, pack_map, peer_port, registered_client,
                  wait_closed)
from handshake import CHAT_VERSION, ChatSession, FakePeer, SealedLink, chat_handshake  # noqa: F401
from runner import main, run_test  # noqa: F401
