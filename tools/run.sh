#!/usr/bin/env bash
# make run: your own peer in the foreground, with a demo tracker on
# 127.0.0.1:5960 and a peer named echo that repeats what you send it.
#
# The demo tracker and echo belong to every `make run` of this tree, not to
# the one that happened to start them: the first starts them, each one
# holds a file in build/run/users/ while it runs (its pid and the start time
# of that pid, so a reused pid does not count), and the last one to leave
# stops them.  Every change to that state (starting, joining, leaving)
# happens under flock on build/run/lock, so two make runs starting or
# quitting at the same moment cannot both start a tracker or stop one the
# other still uses.  A make run killed with SIGKILL leaves its file; the
# next one drops it (its pid is gone), and `make stop` (tools/run.sh
# --stop) stops the demo tracker and echo at once whatever is left.
#
# A parley tracker that this tree did not start, already on the port, is
# joined (no echo peer); anything else listening there is an error that
# names it.  The peer gets its own process group in the terminal, so
# Ctrl-C reaches only it: it says bye and exits 0, and so does make run.
#
#   tools/run.sh [NAME]   make run [NAME=...]
#   tools/run.sh --stop   make stop
# PARLEY_RUN_PORT: another port than 5960 (the tests use a free one).
set -u
cd "$(dirname "$0")/.."
root=$(pwd -P)
port=${PARLEY_RUN_PORT:-5960}
addr=127.0.0.1:$port
state=build/run
users=$state/users
mkdir -p "$users"
exec 9>>"$state/lock"

say() { echo "make run: $*"; }

lock() {
    flock -w 30 9 && return
    say "$state/lock is still held after 30 s (another make run starting or stopping?); try again"
    exit 1
}

# The start time of process $1 (field 22 of /proc/PID/stat), or fail.
started() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) } # the name in parentheses may hold spaces
    set -- $s
    echo "${20}"
}

# Drops the files of make runs that are gone; prints how many remain.
live_users() {
    local f n=0
    for f in "$users"/*; do
        [ -e "$f" ] || continue
        if [ "$(started "${f##*/}")" = "$(cat "$f" 2>/dev/null)" ]; then
            n=$((n + 1))
        else
            rm -f "$f"
        fi
    done
    echo "$n"
}

# The pid in pid file $1 if that process still runs $2 in this tree.
demo_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$root" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
    echo "$pid"
}

# 0 once process $1 is gone (or a zombie: exited, not reaped yet).
gone() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    [ "${s%% *}" = Z ]
}

stop_one() { # PIDFILE PROGRAM
    local pid
    if pid=$(demo_pid "$1" "$2"); then
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
        gone "$pid" || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null # reaps it if this shell started it
    fi
    rm -f "$1"
}

stop_demo() {
    stop_one "$state/echo.pid" "parley --user echo"
    stop_one "$state/tracker.pid" parley-tracker
    rm -f "$state/echo.in"
}

# Starts "$@" in a session of its own (no signal from this terminal
# reaches it) with its pid in pid file $1; stdin, stdout and stderr as
# the caller redirects them (0<&0: without it bash gives an asynchronous
# command /dev/null).
spawn() {
    local pidfile=$1
    shift
    rm -f "$pidfile"
    setsid sh -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec "$@"' "$pidfile" "$@" 0<&0 9>&- &
    for _ in $(seq 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
    return 1
}

# What answers on $addr: 0 a parley tracker (it answers hello with
# welcome), 1 nothing listens, 2 something else.
probe() {
    local reply='' LC_ALL=C
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    # hello {t:"hello", v:1, role:"peer"}, after its 4-byte length
    printf '\000\000\000\026\203\241t\245hello\241v\001\244role\244peer' >&3
    IFS= read -r -t 3 -N 64 -u 3 reply 2>/dev/null
    exec 3<&-
    case $reply in *welcome*) return 0 ;; esac
    return 2
}

# Names whatever listens on $port (ss from iproute2), or says how to find it.
listener() {
    local who
    who=$(ss -Hltnp "sport = :$port" 2>/dev/null |
        sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)
    if [ -n "$who" ]; then
        echo "$who"
    else
        echo "a program ss does not name (another user's? sudo ss -ltnp 'sport = :$port' names it)"
    fi
}

if [ "${1:-}" = --stop ]; then
    lock
    n=$(live_users)
    if demo_pid "$state/tracker.pid" parley-tracker >/dev/null ||
        demo_pid "$state/echo.pid" "parley --user echo" >/dev/null; then
        stop_demo
        say "stopped the demo tracker and the echo peer"
        [ "$n" -gt 0 ] && say "$n make run still open: it reconnects until a new make run starts a tracker"
    else
        stop_demo
        say "no demo tracker or echo peer was running"
    fi
    exit 0
fi

name=${1:-${USER:-$(id -un)}}
me=$users/$$
leave() {
    [ -e "$me" ] || return 0
    lock
    rm -f "$me"
    if [ "$(live_users)" = 0 ]; then
        if demo_pid "$state/tracker.pid" parley-tracker >/dev/null; then
            say "the last make run is leaving: stopping the demo tracker and the echo peer"
        fi
        stop_demo
    fi
    flock -u 9
}
trap leave EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

lock
started $$ >"$me"
n=$(($(live_users) - 1))
if demo_pid "$state/tracker.pid" parley-tracker >/dev/null; then
    [ "$n" = 1 ] && others="1 other make run" || others="$n other make runs"
    say "joining the demo tracker on $addr (started by an earlier make run; $others open)"
    ours=1
else
    rm -f "$state/tracker.pid"
    probe
    case $? in
    0)
        say "a parley tracker already answers on $addr (not this tree's make run); joining it as $name"
        ours=0
        ;;
    2)
        say "$addr is taken by $(listener), which is not a parley tracker (it did not answer hello);" \
            "stop it and run make run again, or run the demo on another port: PARLEY_RUN_PORT=5961 make run" >&2
        exit 1
        ;;
    *)
        say "starting a tracker on $addr (database $state/tracker.db, log $state/tracker.log)"
        spawn "$state/tracker.pid" build/parley-tracker --listen "$addr" --db "$state/tracker.db" \
            </dev/null >/dev/null 2>"$state/tracker.log"
        up=0
        for _ in $(seq 100); do
            grep -q 'listening on' "$state/tracker.log" 2>/dev/null && { up=1; break; }
            demo_pid "$state/tracker.pid" parley-tracker >/dev/null || break
            sleep 0.1
        done
        if [ "$up" = 0 ]; then
            cat "$state/tracker.log" >&2
            say "the tracker did not start (its log is above)" >&2
            stop_demo
            exit 1
        fi
        ours=1
        ;;
    esac
fi
# echo runs beside our own tracker (started again if it died); its stdin
# is a fifo it holds open itself, so it never reads end of input.
if [ "$ours" = 1 ] && ! demo_pid "$state/echo.pid" "parley --user echo" >/dev/null; then
    fifo=$state/echo.in
    rm -f "$fifo" && mkfifo "$fifo"
    spawn "$state/echo.pid" build/parley --user echo --echo --tracker "$addr" \
        --home "$state/echo-home" --ui line 0<>"$fifo" >"$state/echo.log" 2>&1
    for _ in $(seq 50); do
        grep -q '^registered echo ' "$state/echo.log" 2>/dev/null && break
        sleep 0.1
    done
    say "started an echo peer named 'echo' (try: /dial echo, then type a line)"
fi
flock -u 9
say "the demo tracker and echo stay up while any make run is open (make stop stops them now)"

# Your own name keeps its identity in ~/.parley; another NAME (a second
# demo user on this machine) gets its own, so the two are two keys and do
# not share one known_peers file.
home_args=()
if [ "$name" != "${USER:-$(id -un)}" ]; then
    home_args=(--home "$state/home-$name")
    say "'$name' keeps its identity in $state/home-$name (yours stays in ~/.parley)"
fi
say "you are '$name'; /help lists the commands, /quit or Ctrl-C leaves"
# Job control gives the peer a process group of its own, in the terminal's
# foreground: Ctrl-C goes to it alone (not to make or this script).
[ -t 0 ] && set -m
build/parley --user "$name" --tracker "$addr" "${home_args[@]}" 9>&-
status=$?
set +m
exit "$status"
