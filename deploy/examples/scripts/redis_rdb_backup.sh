#!/bin/bash
# Redis full backups with `redis-cli --rdb`, for ubackup-client.
#
#   script = bash /etc/ubackup/scripts/redis_rdb_backup.sh
#
# Every run is a full: the server's RDB snapshot, fetched over the
# replication protocol (the server forks a BGSAVE-like child: memory
# copy-on-write, no file written on the server), gzip'd into
# redis_<port>_<date>_<time>.rdb.gz, written as .<name>.part and renamed
# when complete.
#
# Environment: REDIS_HOST (127.0.0.1), REDIS_PORT (UBACKUP_INSTANCE, else
# 6379), REDISCLI_AUTH (the password, read by redis-cli itself; never on
# the command line), REDIS_USER (ACL user, with --user), REDIS_CLI
# (redis-cli). The user needs the SYNC/PSYNC commands (ACL +sync +psync).
#
# Log contract: back_log gets "ok\n<file>\n", or "wrong\n<reason>\n" (exit 0).
set -u -o pipefail

BACK_DIR=${UBACKUP_BACK_DIR:?UBACKUP_BACK_DIR not set (run from ubackup-client, or export it)}
BACK_LOG=${UBACKUP_BACK_LOG:?UBACKUP_BACK_LOG not set}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-${UBACKUP_INSTANCE:-6379}}
REDIS_CLI=${REDIS_CLI:-redis-cli}

part=""
fail() {
    printf 'wrong\n%s\n' "$*" > "$BACK_LOG"
    [ -n "$part" ] && rm -f "$part" "$part.rdb"
    echo "redis_rdb_backup: $*" >&2
    exit 0
}

mkdir -p "$BACK_DIR" "$(dirname "$BACK_LOG")" || fail "cannot create $BACK_DIR or $(dirname "$BACK_LOG")"
command -v "$REDIS_CLI" >/dev/null || fail "$REDIS_CLI not found (install redis-tools, or set REDIS_CLI)"
name="redis_${REDIS_PORT}_$(date +%Y%m%d_%H%M%S)_$$.rdb.gz"
[ -e "$BACK_DIR/$name" ] && fail "$BACK_DIR/$name exists already"
part="$BACK_DIR/.$name.part"
args=(-h "$REDIS_HOST" -p "$REDIS_PORT")
[ -n "${REDIS_USER:-}" ] && args+=(--user "$REDIS_USER")
out=$("$REDIS_CLI" "${args[@]}" --rdb "$part.rdb" 2>&1)
rc=$?
[ "$rc" = 0 ] && printf '%s' "$out" | grep -q "Transfer finished with success" \
    || fail "redis-cli --rdb from $REDIS_HOST:$REDIS_PORT failed (exit $rc): $(printf '%s' "$out" | tail -n 1)"
head -c 5 "$part.rdb" | grep -q REDIS || fail "what redis-cli fetched is not an RDB file"
gzip -1 -c "$part.rdb" > "$part" || fail "cannot compress into $part"
rm -f "$part.rdb"
sync "$part" 2>/dev/null
mv "$part" "$BACK_DIR/$name" || fail "cannot rename into $BACK_DIR/$name"
part=""
printf 'ok\n%s\n' "$name" > "$BACK_LOG"
echo "redis_rdb_backup: wrote $BACK_DIR/$name"
