#!/bin/sh
# Example backup script for a full-only scheme (the way Redis RDB dumps are
# used with UBackup): every run ships one complete, compressed copy.
#
# Usage: redis_like_backup.sh DUMP_FILE [BACK_DIR [BACK_LOG]]
#   DUMP_FILE  the dump to back up (a real one: /var/lib/redis/dump.rdb after
#              BGSAVE); created with sample bytes if missing
#   BACK_DIR   where backup files go        (default: $UBACKUP_BACK_DIR)
#   BACK_LOG   the log ubackup-client reads (default: $UBACKUP_BACK_LOG)
#
# The log contract: "ok\n<file>\n" on success, "wrong\n<reason>\n" on failure.
set -u

DUMP_FILE=${1:?usage: redis_like_backup.sh DUMP_FILE [BACK_DIR [BACK_LOG]]}
BACK_DIR=${2:-${UBACKUP_BACK_DIR:?BACK_DIR not given and UBACKUP_BACK_DIR not set}}
BACK_LOG=${3:-${UBACKUP_BACK_LOG:?BACK_LOG not given and UBACKUP_BACK_LOG not set}}
INSTANCE=${UBACKUP_INSTANCE:-6379}

fail() {
    printf 'wrong\n%s\n' "$*" > "$BACK_LOG"
    echo "redis_like_backup: $*" >&2
    exit 0
}

mkdir -p "$BACK_DIR" "$(dirname "$BACK_LOG")" || fail "cannot create directories"
if [ ! -f "$DUMP_FILE" ]; then
    mkdir -p "$(dirname "$DUMP_FILE")" || fail "cannot create $(dirname "$DUMP_FILE")"
    head -c 131072 /dev/urandom > "$DUMP_FILE" || fail "cannot create sample dump $DUMP_FILE"
fi
# The "database" changes between runs.
head -c 4096 /dev/urandom >> "$DUMP_FILE" || fail "cannot write to $DUMP_FILE"

name="redis_${INSTANCE}_$(date +%Y%m%d_%H%M%S)_$$.rdb.gz"
gzip -c "$DUMP_FILE" > "$BACK_DIR/.$name.part" || fail "gzip of $DUMP_FILE failed"
mv "$BACK_DIR/.$name.part" "$BACK_DIR/$name" || fail "cannot rename the backup into $BACK_DIR"
printf 'ok\n%s\n' "$name" > "$BACK_LOG"
echo "redis_like_backup: wrote $BACK_DIR/$name"
