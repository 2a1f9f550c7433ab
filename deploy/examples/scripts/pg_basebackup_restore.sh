#!/bin/bash
# restore_script for pg_basebackup_backup.sh: lays out a PostgreSQL datadir
# from a restored full, ready to start.
#
#   restore_script = bash /etc/ubackup/scripts/pg_basebackup_restore.sh /var/lib/postgresql/15/restored
#
# `ubackup-client restore --run-hook` runs it with BACKUP_FILES (one file:
# the outer tar). It unpacks base.tar.gz into DATADIR (default
# $BACKUP_DIR/datadir, which must not exist yet) and pg_wal.tar.gz into
# DATADIR/pg_wal, checks the files against backup_manifest with
# pg_verifybackup when that is installed, sets mode 0700, and chowns to
# OWNER (default: leave as is; postgres must own it to start). The server
# then starts with crash recovery from the included WAL, e.g.
#   pg_ctl -D DATADIR start   (as the owner; adjust port/listen in
#   postgresql.auto.conf or on the command line first)
# Scratch space: the unpacked cluster plus the tar, next to DATADIR.
set -eu -o pipefail

DATADIR=${1:-${BACKUP_DIR:?BACKUP_DIR not set}/datadir}
: "${BACKUP_FILES:?BACKUP_FILES not set (run from ubackup-client restore --run-hook)}"
read -r -a files <<< "$BACKUP_FILES"
die() { echo "pg_basebackup_restore: $*" >&2; exit 1; }
[ "${#files[@]}" = 1 ] || die "expected one full backup file, got ${#files[@]}"
[ -e "$DATADIR" ] && die "$DATADIR exists; give a new directory"
work="$(dirname "$DATADIR")/.pg-restore.$$"
mkdir -p "$work/outer" "$work/data/pg_wal" || die "cannot create $work"
trap 'rm -rf "$work"' EXIT
tar -xf "${files[0]}" -C "$work/outer" || die "cannot unpack ${files[0]}"
tar -xzf "$work/outer/base.tar.gz" -C "$work/data" || die "cannot unpack base.tar.gz"
tar -xzf "$work/outer/pg_wal.tar.gz" -C "$work/data/pg_wal" || die "cannot unpack pg_wal.tar.gz"
verify=$(command -v pg_verifybackup || ls -1 /usr/lib/postgresql/*/bin/pg_verifybackup 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$verify" ]; then
    "$verify" -q -m "$work/outer/backup_manifest" "$work/data" || die "pg_verifybackup found the restored files wrong"
fi
chmod 700 "$work/data"
[ -n "${OWNER:-}" ] && chown -R "$OWNER" "$work/data"
mv "$work/data" "$DATADIR" || die "cannot rename the datadir to $DATADIR"
echo "pg_basebackup_restore: $DATADIR is ready"
