#!/usr/bin/env bash
# memcheck.sh: valgrind memcheck on a short end-to-end scenario,
# behind `make memcheck` (tools/memcheck.mk) and tests/integration/
# test_memcheck.py.  A tracker and two line-mode peers run under memcheck;
# alice sends a few messages to bob, who echoes them; both quit, the tracker
# gets SIGTERM.  Any memcheck error or definite leak in any of the three,
# or a non-zero exit, fails the run and prints that process's valgrind log.
#
#   tools/memcheck.sh [BUILD_DIR]      (default build; not a sanitized build)
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
msgs=${MEMCHECK_MESSAGES:-3}
wait_s=${MEMCHECK_WAIT:-60}   # per step: valgrind is 20-50 times slower

die() { echo "memcheck: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is not installed; apt-get install valgrind (make deps does)"
for b in parley-tracker parley; do
    [ -x "$build/$b" ] || die "$build/$b is missing; build it first (make $build/$b)"
done
if grep -q -a __asan_init "$build/parley-tracker" "$build/parley"; then
    die "$build is a sanitized build; valgrind cannot run ASan binaries: use the normal build"
fi

dir=$(mktemp -d /tmp/parley-memcheck.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${keep:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
    --error-exitcode=1 --track-origins=yes --num-callers=30)

# wait_for FILE REGEX: the first line of FILE matching REGEX, within wait_s.
wait_for() {
    local i
    for ((i = 0; i < wait_s * 10; i++)); do
        if grep -q -E -- "$2" "$1" 2>/dev/null; then
            grep -m1 -E -- "$2" "$1"
            return 0
        fi
        sleep 0.1
    done
    echo "memcheck: no line matching /$2/ in $1 within ${wait_s}s" >&2
    failed=1
    report
    exit 1
}

report() {
    for f in "$dir"/*.vg "$dir"/*.err "$dir"/*.out; do
        [ -s "$f" ] || continue
        echo "---- $f"
        tail -n 60 "$f"
    done
}

"${vg[@]}" --log-file="$dir/tracker.vg" "$build/parley-tracker" --listen 127.0.0.1:0 \
    --db "$dir/tracker.db" 2>"$dir/tracker.err" &
tracker=$!
pids+=("$tracker")
addr=$(wait_for "$dir/tracker.err" 'listening on ' | sed 's/.*listening on //')
echo "memcheck: tracker (pid $tracker) on $addr"

# Each peer reads its stdin from a fifo we hold open.
start_peer() {   # NAME EXTRA...
    local name=$1
    shift
    mkfifo "$dir/$name.in"
    "${vg[@]}" --log-file="$dir/$name.vg" "$build/parley" --user "$name" --tracker "$addr" \
        --listen 127.0.0.1:0 --home "$dir/$name-home" --ui line "$@" \
        <"$dir/$name.in" >"$dir/$name.out" 2>"$dir/$name.err" &
    pids+=($!)
}
start_peer bob --echo
bob=$!
exec 4>"$dir/bob.in"
start_peer alice
alice=$!
exec 3>"$dir/alice.in"
wait_for "$dir/bob.out" '^registered bob' >/dev/null
wait_for "$dir/alice.out" '^registered alice' >/dev/null
echo "memcheck: alice (pid $alice) and bob (pid $bob) registered"

for ((i = 1; i <= msgs; i++)); do
    echo "/msg bob hello $i" >&3
done
wait_for "$dir/alice.out" "^delivered bob #$msgs\$" >/dev/null
wait_for "$dir/alice.out" "^msg bob: hello $msgs\$" >/dev/null
echo "/list" >&3
wait_for "$dir/alice.out" '^users 2: ' >/dev/null
echo "memcheck: $msgs messages delivered and echoed"

status=0
check_exit() {   # NAME PID
    local rc
    wait "$2"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "memcheck: $1 exited with status $rc (memcheck errors or a failure); its valgrind log:" >&2
        cat "$dir/$1.vg" >&2
        echo "---- $1 stderr" >&2
        tail -n 30 "$dir/$1.err" >&2
        status=1
    else
        echo "memcheck: $1 clean ($(grep -m1 -o 'ERROR SUMMARY: [0-9]* errors' "$dir/$1.vg"))"
    fi
}
echo "/quit" >&3
exec 3>&-
check_exit alice "$alice"
echo "/quit" >&4
exec 4>&-
check_exit bob "$bob"
kill -TERM "$tracker"
check_exit tracker "$tracker"
pids=()
if [ "$status" -ne 0 ]; then
    keep=1
    echo "memcheck: FAILED; logs kept in $dir" >&2
    exit 1
fi
echo "memcheck: all clean (tracker, alice, bob)"
