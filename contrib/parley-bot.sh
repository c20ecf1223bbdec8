#!/bin/sh
# parley-bot.sh: a parley bot in a shell loop and jq, the example of
# README.md's "Scripting with --ui json".  It answers every message with
# "you said: TEXT".  Its peer reads commands from a fifo that the loop
# writes; the loop reads the peer's events, one JSON object per line.
#
#   contrib/parley-bot.sh --user bot --tracker HOST:PORT [parley flags...]
#
# PEER names the parley binary (default: parley on $PATH).  Stop it with
# SIGTERM or Ctrl-C.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
trap 'exit 143' INT TERM
mkfifo "$dir/commands"
"${PEER:-parley}" --ui json "$@" <"$dir/commands" |
while IFS= read -r event; do
    [ "$(printf '%s\n' "$event" | jq -r .type)" = message ] || continue
    from=$(printf '%s\n' "$event" | jq -r .from)
    text=$(printf '%s\n' "$event" | jq -r '.text | gsub("[\\r\\n]"; " ")')
    printf '/msg %s you said: %s\n' "$from" "$text"
done >"$dir/commands"
