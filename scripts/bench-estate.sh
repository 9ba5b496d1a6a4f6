#!/usr/bin/env bash
# The "estate" comparison with the real binaries: scripts/bench-estate.sh [SIZES...]
# (default 1000 10000). For each size N it starts `loopgate serve` as a child process on its
# embedded default (SQLite and an embedded kfake cluster persisted to a temp data dir; a config
# file with free 127.0.0.1 ports, resync 10s, team growth's limits raised so N loops fit and the
# per-identity mutation rate limit off; dev credentials under a temp HOME where loopctl finds
# them), writes N loops of team growth (one 6-partition stream, its own producer, consumer and
# group each: 8 admin resources per loop, 1 topic, 5 ACLs, 2 quotas) into a directory of files of
# up to 1,000 loops (loopctl refuses a file over 4 MiB), and times with the real `loopctl`:
# `apply -f DIR --wait` until all READY, a no-op `plan -f DIR`, a no-op `apply -f DIR`;
# it reads one drift pass over all N loops from `loopctl clusters -o json`
# (lastDriftPass.duration), loopgate's idle CPU (utime+stime from /proc/PID/stat over 3 resync
# intervals without requests, % of one core) and RSS (VmRSS), and how long a topic deleted behind
# loopgate's back with an independent franz-go client takes to reappear (metadata polled every
# 50 ms). Then the floor, same run: a fresh embedded cluster (embedded.Start, persisted data dir)
# and raw batched admin calls for the same N topics + 2 ACLs each (apply: one CreateTopics + one
# CreateACLs; no-op diff: one Metadata + DescribeConfigs + DescribeACLs). It prints a markdown
# table (loopgate, floor, ratio per size, with date, go version, CPU, cores and load average) and
# the raw figures as one JSON line. The Go side is internal/estatebench; progress goes to stderr.
# Needs only Go and Linux (/proc); all traffic stays on 127.0.0.1; temp dirs are removed at the
# end, and every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
  sizes=(1000 10000)
fi
for n in "${sizes[@]}"; do
  if ! [[ $n =~ ^[1-9][0-9]{0,4}$ ]]; then
    echo "usage: scripts/bench-estate.sh [SIZES...]   (numbers of loops, 1-99999; default 1000 10000)" >&2
    exit 2
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/loopgate-estate.XXXXXX")
bench_pid=""
cleanup() {
  # estatebench stops its loopgate on SIGTERM (and the kernel stops loopgate if estatebench dies).
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$bench_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building loopgate, loopctl and estatebench into $work/bin" >&2
go build -o "$work/bin/loopgate" ./cmd/loopgate
go build -o "$work/bin/loopctl" ./cmd/loopctl
go build -o "$work/bin/estatebench" ./internal/estatebench

"$work/bin/estatebench" -loopgate "$work/bin/loopgate" -loopctl "$work/bin/loopctl" \
  -work "$work/run" -resync 10s -idle-intervals 3 "${sizes[@]}" &
bench_pid=$!
wait "$bench_pid"
