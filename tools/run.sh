#!/usr/bin/env bash
# make run: a local tracker and an echo peer in the background (unless a
# tracker already answers on 127.0.0.1:5960), then your own peer in the
# foreground.  Whatever this script started, it stops when you quit.
set -u
cd "$(dirname "$0")/.."
name=${1:-${USER:-$(id -un)}}
state=build/run
mkdir -p "$state"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "${fifo:-}" ] && rm -f "$fifo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<>/dev/tcp/127.0.0.1/5960) 2>/dev/null; then
    echo "make run: a tracker already answers on 127.0.0.1:5960; joining it as $name"
else
    echo "make run: starting a tracker on 127.0.0.1:5960 (database $state/tracker.db, log $state/tracker.log)"
    build/parley-tracker --listen 127.0.0.1:5960 --db "$state/tracker.db" 2>"$state/tracker.log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q 'listening on' "$state/tracker.log" 2>/dev/null && break
        kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/tracker.log"; echo "make run: the tracker did not start (log above)"; exit 1; }
        sleep 0.1
    done
    # The echo peer reads commands from a fifo that stays open, so it runs
    # until we stop it rather than exiting on end of input.
    fifo=$state/echo.in
    rm -f "$fifo" && mkfifo "$fifo"
    build/parley --user echo --echo --home "$state/echo-home" <"$fifo" >"$state/echo.log" 2>&1 &
    pids+=($!)
    exec 4>"$fifo"
    echo "make run: started an echo peer named 'echo' (try: /dial echo, then type a line)"
fi
# Your own name keeps its identity in ~/.parley; another NAME (a second
# demo user on this machine) gets its own, so the two are two keys and do
# not share one known_peers file.
home_args=()
if [ "$name" != "${USER:-$(id -un)}" ]; then
    home_args=(--home "$state/home-$name")
    echo "make run: '$name' keeps its identity in $state/home-$name (yours stays in ~/.parley)"
fi
echo "make run: you are '$name'; /help lists the commands, /quit leaves"
build/parley --user "$name" "${home_args[@]}"
