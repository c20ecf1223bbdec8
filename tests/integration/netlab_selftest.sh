#!/usr/bin/env bash
# tests/integration/netlab_selftest.sh: proves tools/netlab builds the NAT lab the
# relay/NAT integration tests rely on: NATed hosts reach the public
# network and are seen as their router, nothing reaches them from outside, the
# --drop-inbound routers stay silent, and every run leaves nothing behind (on
# success, failure, SIGINT and SIGTERM). Needs root; otherwise it says so loudly
# and exits 77 (skipped).
#
# Usage: tests/integration/netlab_selftest.sh        (the --inside mode is internal)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SELF=$ROOT/tests/integration/$(basename "$0")
NETLAB=$ROOT/tools/netlab
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
PORT=7000

# One probe for every network check, so results are words, not exit-code guesses.
#   listen PORT N SECS: print "ready", then "from IP" per accepted connection
#                       (up to N), exit 0; "timeout" and exit 3 after SECS.
#                       (with a 5th argument "ports": "from IP:PORT")
#   connect HOST PORT SECS [SRCPORT]: print connected | refused | timeout |
#                       error:ERRNO (from SRCPORT when given).
PROBE='
import errno, socket, sys, time
mode = sys.argv[1]
if mode == "listen":
    port, n, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(8)
    print("ready", flush=True)
    end = time.monotonic() + secs
    for _ in range(n):
        left = end - time.monotonic()
        if left <= 0:
            print("timeout", flush=True); sys.exit(3)
        s.settimeout(left)
        try:
            c, a = s.accept()
        except socket.timeout:
            print("timeout", flush=True); sys.exit(3)
        print("from", a[0] + (":%d" % a[1] if sys.argv[5:] == ["ports"] else ""), flush=True)
        c.close()
else:
    host, port, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    src = ("", int(sys.argv[5])) if len(sys.argv) > 5 else None
    try:
        socket.create_connection((host, port), timeout=secs, source_address=src).close()
        print("connected")
    except socket.timeout:
        print("timeout")
    except ConnectionRefusedError:
        print("refused")
    except OSError as e:
        print("error:" + errno.errorcode.get(e.errno, str(e.errno)))
'

RESULTS=${NETLAB_SELFTEST_RESULTS:-}

FAILED=0
pass() { echo "PASS: $*"; echo "PASS" >>"$RESULTS"; }
fail() { echo "FAIL: $*"; echo "FAIL" >>"$RESULTS"; FAILED=1; }
expect() { # NAME GOT WANT...   pass if GOT is one of WANT
    local name=$1 got=$2 w; shift 2
    for w in "$@"; do
        if [ "$got" = "$w" ]; then pass "$name ($got)"; return 0; fi
    done
    fail "$name: got '$got', want one of: $*"
    return 1
}

# wait_pid PID SECS: wait for a child of this shell, at most SECS; sets WAITED to
# its exit status, or "timeout" (the child is then left running for the caller).
# Not in $(...): a subshell cannot wait for its parent's children.
wait_pid() {
    local pid=$1 secs=$2 timer which st
    sleep "$secs" & timer=$!
    wait -n -p which "$pid" "$timer"; st=$?
    if [ "${which:-}" = "$pid" ]; then
        kill "$timer" 2>/dev/null; wait "$timer" 2>/dev/null
        WAITED=$st
    else
        WAITED=timeout
    fi
}

# ---------------------------------------------------------------- inside a lab
probe_connect() { # HOST DSTIP SECS [SRCPORT]
    "$NETLAB" exec "$NETLAB_PREFIX" "$1" -- "$PY" -c "$PROBE" connect "$2" "$PORT" "$3" ${4:-} 2>&1
}

# start_listener HOST N SECS [ports]: sets LFD (fd of its output) and LPID; waits
# for "ready".
start_listener() {
    local fifo line
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/netlab-selftest.XXXXXX")
    mkfifo "$fifo"
    "$NETLAB" exec "$NETLAB_PREFIX" "$1" -- "$PY" -c "$PROBE" listen "$PORT" "$2" "$3" ${4:-} >"$fifo" 2>&1 &
    LPID=$!
    exec {LFD}<"$fifo"
    rm -f "$fifo"
    if read -r -t 5 -u "$LFD" line && [ "$line" = ready ]; then
        return 0
    fi
    fail "listener in $1 did not start: '${line:-no output in 5 s}'"
    return 1
}

next_line() { # read the listener's next line, at most SECS seconds
    local line
    if read -r -t "$1" -u "$LFD" line; then echo "$line"; else echo "nothing within $1 s"; fi
}

stop_listener() { # sets LREST to every line the listener still had to say
    local line
    LREST=""
    kill "$LPID" 2>/dev/null
    wait_pid "$LPID" 5
    while read -r -t 5 -u "$LFD" line; do LREST+="$line"$'\n'; done
    exec {LFD}<&-
}

inside_common() {
    local h st
    for h in hub trk pub r1 r2 a b; do
        if ip -n "$NETLAB_PREFIX-$h" link show lo | grep -q '[<,]UP[,>]'; then st=up; else st=down; fi
        expect "lo is up in $h" "$st" up
    done
    expect "r1 forwards (net.ipv4.ip_forward)" \
        "$("$NETLAB" exec "$NETLAB_PREFIX" r1 -- cat /proc/sys/net/ipv4/ip_forward)" 1
    expect "a does not forward" \
        "$("$NETLAB" exec "$NETLAB_PREFIX" a -- cat /proc/sys/net/ipv4/ip_forward)" 0

    # NATed hosts reach the tracker host and are seen as their router.
    if start_listener trk 2 20; then
        expect "a connects to trk 203.0.113.10" "$(probe_connect a 203.0.113.10 3)" connected
        expect "trk sees a as 203.0.113.1 (r1's NAT)" "$(next_line 5)" "from 203.0.113.1"
        expect "b connects to trk 203.0.113.10" "$(probe_connect b 203.0.113.10 3)" connected
        expect "trk sees b as 203.0.113.2 (r2's NAT)" "$(next_line 5)" "from 203.0.113.2"
        stop_listener
    fi
    if start_listener pub 1 20; then
        expect "a connects to pub 203.0.113.20" "$(probe_connect a 203.0.113.20 3)" connected
        expect "pub sees a as 203.0.113.1" "$(next_line 5)" "from 203.0.113.1"
        stop_listener
    fi
}

inside_default() {
    inside_common
    # Nothing gets in to a, though a has a listener (so failure is the NAT's doing).
    if start_listener a 1 60; then
        expect "pub cannot connect to a's private 192.168.1.10" \
            "$(probe_connect pub 192.168.1.10 3)" error:ENETUNREACH error:EHOSTUNREACH
        expect "b cannot connect to a's private 192.168.1.10" \
            "$(probe_connect b 192.168.1.10 3)" error:ENETUNREACH error:EHOSTUNREACH
        expect "b cannot connect to a via r1's public 203.0.113.1 (RST)" \
            "$(probe_connect b 203.0.113.1 3)" refused
        expect "pub connecting to 203.0.113.1 is refused (no port forward)" \
            "$(probe_connect pub 203.0.113.1 3)" refused
        "$NETLAB" exec "$NETLAB_PREFIX" pub -- ip route add 192.168.1.0/24 via 203.0.113.1
        expect "pub with a route via r1 still cannot reach a (r1 rejects inbound)" \
            "$(probe_connect pub 192.168.1.10 3)" refused error:EHOSTUNREACH error:ENETUNREACH
        local heard
        stop_listener
        heard=$(grep '^from' <<<"$LREST" || true)
        expect "a's listener saw no connection" "${heard:-none}" none
    fi
}

inside_drop() {
    inside_common
    if start_listener a 1 60; then
        expect "pub -> 203.0.113.1 times out (DROP, no RST)" "$(probe_connect pub 203.0.113.1 2)" timeout
        expect "b -> 203.0.113.1 times out (DROP, no RST)" "$(probe_connect b 203.0.113.1 2)" timeout
        "$NETLAB" exec "$NETLAB_PREFIX" pub -- ip route add 192.168.1.0/24 via 203.0.113.1
        expect "pub with a route via r1 to a times out (DROP)" "$(probe_connect pub 192.168.1.10 2)" timeout
        local heard
        stop_listener
        heard=$(grep '^from' <<<"$LREST" || true)
        expect "a's listener saw no connection" "${heard:-none}" none
    fi
}

# --r1 pp-reject --r2 sym-drop: r1 keeps a's source port, r2 picks a random one
# for b (so two of b's connections from fixed ports both show other ports), r1
# refuses from outside and r2 stays silent.
inside_kinds() {
    expect "NETLAB_R1_KIND is passed on" "${NETLAB_R1_KIND:-unset}" pp-reject
    expect "NETLAB_R2_KIND is passed on" "${NETLAB_R2_KIND:-unset}" sym-drop
    if start_listener trk 4 20 ports; then
        expect "a connects to trk from port 40001" "$(probe_connect a 203.0.113.10 3 40001)" connected
        expect "trk sees a's port kept by r1 (pp)" "$(next_line 5)" "from 203.0.113.1:40001"
        expect "a connects to trk from port 40002" "$(probe_connect a 203.0.113.10 3 40002)" connected
        expect "trk sees a's second port kept by r1 (pp)" "$(next_line 5)" "from 203.0.113.1:40002"
        local i seen kept=0
        for i in 40001 40002; do
            expect "b connects to trk from port $i" "$(probe_connect b 203.0.113.10 3 "$i")" connected
            seen=$(next_line 5)
            case $seen in
                "from 203.0.113.2:$i") kept=$((kept + 1)) ;;
                "from 203.0.113.2:"*) ;;
                *) fail "trk saw b's connection as '$seen', want from 203.0.113.2:PORT" ;;
            esac
        done
        expect "r2 (sym) kept none of b's two source ports" "$kept" 0
        stop_listener
    fi
    expect "pub -> 203.0.113.1 is refused (r1 pp-reject)" "$(probe_connect pub 203.0.113.1 2)" refused
    expect "pub -> 203.0.113.2 times out (r2 sym-drop)" "$(probe_connect pub 203.0.113.2 2)" timeout
}

if [ "${1:-}" = --inside ]; then
    echo "$NETLAB_PREFIX" >"$3"
    case $2 in
        default) inside_default ;;
        drop) inside_drop ;;
        kinds) inside_kinds ;;
    esac
    exit "$FAILED"
fi

# ---------------------------------------------------------------- outside
why=$("$NETLAB" check 2>&1); st=$?
if [ "$st" -ne 0 ]; then
    echo "################################################################"
    echo "SKIP: netlab selftest NOT RUN: $why"
    echo "################################################################"
    [ "$st" -eq 77 ] && exit 77
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/netlab-selftest.XXXXXX")
trap 'rm -rf "$T"' EXIT
RESULTS=$T/results
export NETLAB_SELFTEST_RESULTS=$RESULTS
: >"$RESULTS"

root_snapshot() {
    ip route show table all
    ip -o link show | awk -F': ' '{print $2}'
    cat /proc/sys/net/ipv4/ip_forward
    if command -v nft >/dev/null 2>&1; then nft list ruleset; fi
}

lab_gone() { # PREFIX: pass if no namespace or root link carries it
    local p=$1 what=$2 ns links
    if [ -z "$p" ]; then fail "$what: no prefix recorded"; return; fi
    ns=$(ip netns list | awk '{print $1}' | grep -E "^$p-" | tr '\n' ' ')
    links=$(ip -o link show | awk -F': ' '{print $2}' | grep -E "^$p-" | tr '\n' ' ')
    expect "$what: no namespaces of $p left" "${ns:-none}" none
    expect "$what: no links of $p left in the root namespace" "${links:-none}" none
}

before=$(root_snapshot)

echo "== default lab"
"$NETLAB" run -- "$SELF" --inside default "$T/default.prefix"
expect "run (default lab) exits with the checks' status" "$?" 0
lab_gone "$(cat "$T/default.prefix" 2>/dev/null)" "after run"

echo "== --drop-inbound lab"
"$NETLAB" run --drop-inbound -- "$SELF" --inside drop "$T/drop.prefix"
expect "run --drop-inbound exits with the checks' status" "$?" 0
lab_gone "$(cat "$T/drop.prefix" 2>/dev/null)" "after run --drop-inbound"

echo "== --r1 pp-reject --r2 sym-drop lab"
"$NETLAB" run --r1 pp-reject --r2=sym-drop -- "$SELF" --inside kinds "$T/kinds.prefix"
expect "run --r1/--r2 exits with the checks' status" "$?" 0
lab_gone "$(cat "$T/kinds.prefix" 2>/dev/null)" "after run --r1/--r2"

"$NETLAB" up --r1 cone >/dev/null 2>&1
expect "up with an unknown router kind is a usage error" "$?" 2

echo "== run passes on the command's failure and still cleans up"
# shellcheck disable=SC2016 # expanded by the inner shell
"$NETLAB" run -- sh -c 'echo "$NETLAB_PREFIX" >"$1"; exit 7' sh "$T/fail.prefix" 2>/dev/null
expect "run exits with the command's status" "$?" 7
lab_gone "$(cat "$T/fail.prefix" 2>/dev/null)" "after a failing command"

echo "== up / down"
p=$("$NETLAB" up 2>/dev/null)
n=$(ip netns list | awk '{print $1}' | grep -cE "^$p-(hub|trk|pub|r1|r2|a|b)$")
expect "up makes 7 namespaces" "$n" 7
"$NETLAB" up --prefix "$p" >/dev/null 2>&1
expect "up with a prefix in use fails" "$?" 1
n=$(ip netns list | awk '{print $1}' | grep -cE "^$p-")
expect "the failed up left the existing lab alone" "$n" 7
"$NETLAB" down "$p" 2>/dev/null
expect "down exits 0" "$?" 0
lab_gone "$p" "after down"

# A run interrupted by a signal while its command runs. The command reports the
# prefix through a fifo (the event we wait for), then sleeps in a child, so the
# signal has to reach the whole tree. The subshell+exec gives netlab default
# SIGINT handling (a plain background job of a script starts with SIGINT ignored).
interrupt_run() { # SIGNAL WANT_STATUS
    local sig=$1 want=$2 fifo=$T/sig.fifo pid p="" st out=$T/sig.out
    rm -f "$fifo"; mkfifo "$fifo"
    # shellcheck disable=SC2016 # expanded by the inner shell
    ( exec "$NETLAB" run -- bash -c 'echo "$NETLAB_PREFIX" >"$1"; sleep 300; echo survived' \
        sh "$fifo" >"$out" 2>&1 ) &
    pid=$!
    exec {sfd}<"$fifo"
    read -r -t 30 -u "$sfd" p
    exec {sfd}<&-
    if [ -z "$p" ]; then
        fail "SIG$sig: the run did not start its command within 30 s"
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        return
    fi
    kill -"$sig" "$pid"
    wait_pid "$pid" 20; st=$WAITED
    expect "run stopped by SIG$sig exits $want" "$st" "$want"
    if [ "$st" = timeout ]; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    # The command's shell waits for `sleep`; only if the signal reached sleep too
    # does it end at once (otherwise netlab has to SIGKILL it after 5 s).
    if grep -qx survived "$out" || grep -q 'killing it' "$out"; then
        fail "SIG$sig did not stop the command's child: $(tr '\n' ' ' <"$out")"
    else
        pass "SIG$sig stopped the command and its child without SIGKILL"
    fi
    lab_gone "$p" "after SIG$sig"
}
echo "== run interrupted"
interrupt_run INT 130
interrupt_run TERM 143

after=$(root_snapshot)
if [ "$before" = "$after" ]; then
    pass "root namespace routes, links, ip_forward and nft ruleset unchanged"
else
    fail "root namespace changed:"; diff <(echo "$before") <(echo "$after") | sed 's/^/    /'
fi

np=$(grep -c PASS "$RESULTS"); nf=$(grep -c FAIL "$RESULTS")
echo "== netlab selftest: $np passed, $nf failed"
[ "$nf" -eq 0 ]
