#!/bin/bash
# restore_script for redis_rdb_backup.sh: places the restored RDB where a
# Redis server loads it.
#
#   restore_script = bash /etc/ubackup/scripts/redis_rdb_restore.sh /var/lib/redis-restored
#
# Unpacks BACKUP_FILES (one .rdb.gz) into DIR/dump.rdb (DIR default
# $BACKUP_DIR/data, created; an existing dump.rdb there is never
# overwritten), checks it with redis-check-rdb when that is installed, and
# chowns DIR to OWNER when set. Start a server on it with
#   redis-server --dir DIR --dbfilename dump.rdb --appendonly no --port ...
# (with appendonly yes Redis would load the AOF instead of the RDB).
set -eu -o pipefail

DIR=${1:-${BACKUP_DIR:?BACKUP_DIR not set}/data}
: "${BACKUP_FILES:?BACKUP_FILES not set (run from ubackup-client restore --run-hook)}"
read -r -a files <<< "$BACKUP_FILES"
die() { echo "redis_rdb_restore: $*" >&2; exit 1; }
[ "${#files[@]}" = 1 ] || die "expected one RDB file, got ${#files[@]}"
mkdir -p "$DIR" || die "cannot create $DIR"
[ -e "$DIR/dump.rdb" ] && die "$DIR/dump.rdb exists; give a new directory"
tmp="$DIR/.dump.rdb.$$"
trap 'rm -f "$tmp"' EXIT
gzip -dc "${files[0]}" > "$tmp" || die "cannot unpack ${files[0]}"
if command -v redis-check-rdb >/dev/null; then
    redis-check-rdb "$tmp" > "$tmp.check" 2>&1 || { cat "$tmp.check" >&2; rm -f "$tmp.check"; die "redis-check-rdb rejects the file"; }
    rm -f "$tmp.check"
fi
mv "$tmp" "$DIR/dump.rdb"
[ -n "${OWNER:-}" ] && chown -R "$OWNER" "$DIR"
echo "redis_rdb_restore: $DIR/dump.rdb is ready"
