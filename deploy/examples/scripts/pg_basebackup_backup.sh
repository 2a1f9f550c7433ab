#!/bin/bash
# PostgreSQL full backups with pg_basebackup, for ubackup-client.
#
#   script = bash /etc/ubackup/scripts/pg_basebackup_backup.sh
#
# Every run is a full: the whole cluster as pg_basebackup's tar format,
# compressed, with the WAL needed to make it consistent (streamed during
# the backup: no wal_keep_size or archive needed), plus its
# backup_manifest. The three files go into one uncompressed outer tar,
# pg_full_<date>_<time>.tar (base.tar.gz, pg_wal.tar.gz, backup_manifest),
# written as .<name>.part and renamed when complete.
#
# Connection: the libpq variables (PGHOST = the socket directory or host,
# PGPORT, PGUSER, PGPASSFILE). The user needs the REPLICATION attribute
# (or superuser) and a `replication` line in pg_hba.conf; the server needs
# max_wal_senders >= 2 (the default is 10).
#
# Environment (optional): PG_BASEBACKUP (the binary, default from PATH or
# /usr/lib/postgresql/*/bin), CHECKPOINT=fast|spread (default fast),
# MAX_RATE (pg_basebackup --max-rate, e.g. 50M), COMPRESS_LEVEL (1-9, 1).
#
# Log contract: back_log gets "ok\n<file>\n", or "wrong\n<reason>\n" (exit 0).
set -u -o pipefail

BACK_DIR=${UBACKUP_BACK_DIR:?UBACKUP_BACK_DIR not set (run from ubackup-client, or export it)}
BACK_LOG=${UBACKUP_BACK_LOG:?UBACKUP_BACK_LOG not set}
CHECKPOINT=${CHECKPOINT:-fast}
COMPRESS_LEVEL=${COMPRESS_LEVEL:-1}

tmp=""
fail() {
    printf 'wrong\n%s\n' "$*" > "$BACK_LOG"
    [ -n "$tmp" ] && rm -rf "$tmp"
    echo "pg_basebackup_backup: $*" >&2
    exit 0
}

mkdir -p "$BACK_DIR" "$(dirname "$BACK_LOG")" || fail "cannot create $BACK_DIR or $(dirname "$BACK_LOG")"
PG_BASEBACKUP=${PG_BASEBACKUP:-$(command -v pg_basebackup || ls -1 /usr/lib/postgresql/*/bin/pg_basebackup 2>/dev/null | sort -V | tail -n 1)}
[ -n "$PG_BASEBACKUP" ] && [ -x "$PG_BASEBACKUP" ] || fail "pg_basebackup not found (install postgresql-client, or set PG_BASEBACKUP)"

name="pg_full_$(date +%Y%m%d_%H%M%S)_$$.tar"
[ -e "$BACK_DIR/$name" ] && fail "$BACK_DIR/$name exists already"
# a hidden scratch directory in back_dir: same filesystem, never pulled
tmp="$BACK_DIR/.$name.tmp"
rm -rf "$tmp" && mkdir -p "$tmp/out" || fail "cannot create $tmp"
args=(-D "$tmp/out" -F tar -X stream -z -Z "$COMPRESS_LEVEL" -c "$CHECKPOINT" --no-password
    -l "ubackup $name")
[ -n "${MAX_RATE:-}" ] && args+=(--max-rate="$MAX_RATE")
if ! "$PG_BASEBACKUP" "${args[@]}" 2>"$tmp/err"; then
    fail "pg_basebackup failed: $(grep -v '^\s*$' "$tmp/err" | tail -n 1)"
fi
[ -s "$tmp/out/base.tar.gz" ] && [ -s "$tmp/out/backup_manifest" ] \
    || fail "pg_basebackup wrote no base.tar.gz/backup_manifest: $(tail -n 1 "$tmp/err")"
tar -cf "$tmp/part" -C "$tmp/out" . || fail "cannot write $tmp/part"
sync "$tmp/part" 2>/dev/null
mv "$tmp/part" "$BACK_DIR/$name" || fail "cannot rename into $BACK_DIR/$name"
rm -rf "$tmp"
tmp=""
printf 'ok\n%s\n' "$name" > "$BACK_LOG"
echo "pg_basebackup_backup: wrote $BACK_DIR/$name"
