#!/usr/bin/env bash
# Benchmark ubackup against raw rsync and write BENCHMARKS.md (not run by CI).
#
#   bench/run.sh                      # full run (~18-21 min on 2 cores, ~3 of them replication, ~4 wan, ~20 s restore), writes BENCHMARKS.md
#   bench/run.sh --runs 5             # more runs per figure
#   bench/run.sh --large-mib 128      # scale the large files down (disk or time short)
#   bench/run.sh --only small,indexer --out /tmp/b.md   # a subset, elsewhere
#   bench/run.sh --only wan --out /tmp/wan.md   # the WAN-like link (delay proxy, ~80 s a run)
#   bench/run.sh --only restore --out /tmp/r.md # restore a 3 × 256 MiB chain from one node (--restore-mib), ~20 s
#
# Needs: redis-server, rsync (3.x), stunnel4 and openssl (the security costs), about 4.5 GB free in --work-dir (/tmp) for
# the 4 × 512 MiB files and their copies. Every process it starts (one
# redis-server, rsync daemons, the release binaries) listens on 127.0.0.1
# ephemeral ports and is stopped by PID. Extra arguments go to
# `ubackup-bench` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "run.sh: redis-server is not installed" >&2; exit 2; }
command -v rsync >/dev/null || { echo "run.sh: rsync is not installed" >&2; exit 2; }
cargo build --release -p ubackup-server -p ubackup-indexer -p ubackup-client -p ubackup-transport -p ubackup-bench
target="${CARGO_TARGET_DIR:-target}"
out=BENCHMARKS.md
for a in "$@"; do [ "$a" = "--out" ] && out=""; done
if [ -n "$out" ]; then
  exec "$target/release/ubackup-bench" --out "$out" "$@"
else
  exec "$target/release/ubackup-bench" "$@"
fi
