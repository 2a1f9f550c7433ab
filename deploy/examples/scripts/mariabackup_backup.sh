#!/bin/bash
# MySQL / MariaDB full + incremental backups with mariabackup (or Percona
# xtrabackup: MARIABACKUP=xtrabackup, the same flags), for ubackup-client.
#
#   script = bash /etc/ubackup/scripts/mariabackup_backup.sh
#
# ubackup-client runs it with UBACKUP_BACK_DIR, UBACKUP_BACK_LOG and
# UBACKUP_LAST_ALL_LOG set from the instance section (back_dir, back_log,
# last_all_log: last_all_log is required, this is a full + incremental
# scheme).
#
# Each run writes one file into back_dir:
#   mysql_full_<date>_<time>.xbstream.gz   a full backup, or
#   mysql_incr_<date>_<time>.xbstream.gz   the changes since the previous
#                                          backup (full or incremental)
# It is written as .<name>.part and renamed when complete, so the pull
# node never sees half a file.
#
# Environment (all optional):
#   MARIABACKUP=mariabackup   the tool (xtrabackup for Percona Server/MySQL)
#   MYSQL_DEFAULTS_FILE=FILE  a my.cnf with [client]/[mariabackup] user,
#                             password and socket (passed as --defaults-file)
#   MYSQL_SOCKET=PATH         the server's socket, when not in the defaults
#   MYSQL_USER=NAME           the backup user (default: the OS user, through
#                             unix_socket authentication)
#   FULL_EVERY=24             a full every N runs (the others incremental)
#   FORCE_FULL=1              a full now
#   STATE_DIR=DIR             where the LSN of the last backup is kept
#                             (default: <back_log>.state); --extra-lsndir
#   COMPRESS=gzip             gzip | zstd | none
#   PARALLEL=1                mariabackup --parallel
#
# The next run is a full when: FORCE_FULL=1; FULL_EVERY-1 incrementals
# followed the last full; there is no LSN of a previous backup; the last
# full is not recorded as ok by ubackup-client (last_all_log has no line 3);
# or the previous run failed (a failed incremental forces a full, so no
# chain ever depends on a backup that was not taken).
#
# The log contract (what ubackup-client reads):
#   full:        back_log and last_all_log get "ok\n<file>\n"; the client
#                appends the unix time to last_all_log as line 3
#   incremental: back_log gets "ok\n<file>\n"; last_all_log is left alone
#   failure:     back_log gets "wrong\n<reason>\n"; the exit code is 0 (the
#                client reports the reason)
set -u -o pipefail

BACK_DIR=${UBACKUP_BACK_DIR:?UBACKUP_BACK_DIR not set (run from ubackup-client, or export it)}
BACK_LOG=${UBACKUP_BACK_LOG:?UBACKUP_BACK_LOG not set}
LAST_ALL_LOG=${UBACKUP_LAST_ALL_LOG:?UBACKUP_LAST_ALL_LOG not set (set last_all_log in the instance section)}
MARIABACKUP=${MARIABACKUP:-mariabackup}
FULL_EVERY=${FULL_EVERY:-24}
FORCE_FULL=${FORCE_FULL:-0}
STATE_DIR=${STATE_DIR:-$BACK_LOG.state}
COMPRESS=${COMPRESS:-gzip}
PARALLEL=${PARALLEL:-1}

part=""
new_lsn=""
fail() {
    printf 'wrong\n%s\n' "$*" > "$BACK_LOG"
    touch "$STATE_DIR/force_full" 2>/dev/null
    [ -n "$part" ] && rm -f "$part"
    [ -n "$new_lsn" ] && rm -rf "$new_lsn"
    echo "mariabackup_backup: $*" >&2
    exit 0
}

mkdir -p "$BACK_DIR" "$STATE_DIR" "$(dirname "$BACK_LOG")" "$(dirname "$LAST_ALL_LOG")" \
    || fail "cannot create $BACK_DIR, $STATE_DIR or the log directories"
command -v "$MARIABACKUP" >/dev/null || fail "$MARIABACKUP not found (install mariadb-backup, or set MARIABACKUP)"
case "$COMPRESS" in
    gzip) zip=(gzip -c -1); ext=.gz ;;
    zstd) zip=(zstd -c -q -3); ext=.zst ;;
    none) zip=(cat); ext="" ;;
    *) fail "COMPRESS=$COMPRESS: expected gzip, zstd or none" ;;
esac
command -v "${zip[0]}" >/dev/null || fail "${zip[0]} not found (COMPRESS=$COMPRESS)"

count=$(cat "$STATE_DIR/count" 2>/dev/null || echo 0)
full=0
if [ "$FORCE_FULL" = 1 ] || [ "$count" -ge $((FULL_EVERY - 1)) ] \
    || [ ! -f "$STATE_DIR/last/xtrabackup_checkpoints" ] || [ -e "$STATE_DIR/force_full" ]; then
    full=1
elif [ "$(sed -n 1p "$LAST_ALL_LOG" 2>/dev/null)" != ok ] || [ -z "$(sed -n 3p "$LAST_ALL_LOG" 2>/dev/null)" ]; then
    full=1
fi

args=()
[ -n "${MYSQL_DEFAULTS_FILE:-}" ] && args+=("--defaults-file=$MYSQL_DEFAULTS_FILE")
args+=(--backup --stream=xbstream "--parallel=$PARALLEL")
[ -n "${MYSQL_SOCKET:-}" ] && args+=("--socket=$MYSQL_SOCKET")
[ -n "${MYSQL_USER:-}" ] && args+=("--user=$MYSQL_USER")

stamp=$(date +%Y%m%d_%H%M%S)
if [ "$full" = 1 ]; then
    name="mysql_full_${stamp}_$$.xbstream$ext"
else
    name="mysql_incr_${stamp}_$$.xbstream$ext"
    args+=("--incremental-basedir=$STATE_DIR/last")
fi
[ -e "$BACK_DIR/$name" ] && fail "$BACK_DIR/$name exists already (two runs in one second?)"
new_lsn="$STATE_DIR/new.$$"
rm -rf "$new_lsn" && mkdir -p "$new_lsn" || fail "cannot create $new_lsn"
tmp_target="$STATE_DIR/tmp.$$"
mkdir -p "$tmp_target" || fail "cannot create $tmp_target"
args+=("--extra-lsndir=$new_lsn" "--target-dir=$tmp_target")

part="$BACK_DIR/.$name.part"
err="$STATE_DIR/last_run.err"
"$MARIABACKUP" "${args[@]}" 2>"$err" | "${zip[@]}" > "$part"
codes=("${PIPESTATUS[@]}")
rm -rf "$tmp_target"
if [ "${codes[0]}" != 0 ]; then
    fail "$MARIABACKUP exited ${codes[0]}: $(grep -v '^\s*$' "$err" | tail -n 1)"
fi
[ "${codes[1]}" = 0 ] || fail "${zip[0]} exited ${codes[1]} writing $part"
grep -q "completed OK" "$err" || fail "$MARIABACKUP did not report 'completed OK': $(tail -n 1 "$err")"
[ -f "$new_lsn/xtrabackup_checkpoints" ] || fail "$MARIABACKUP wrote no xtrabackup_checkpoints into $new_lsn"
sync "$part" 2>/dev/null
mv "$part" "$BACK_DIR/$name" || fail "cannot rename $part into $BACK_DIR"
part=""

# the chain moves on only now: the LSN of this backup is the next base
rm -rf "$STATE_DIR/last" && mv "$new_lsn" "$STATE_DIR/last" || fail "cannot keep the LSN in $STATE_DIR/last"
new_lsn=""
if [ "$full" = 1 ]; then
    printf 'ok\n%s\n' "$name" > "$LAST_ALL_LOG"
    echo 0 > "$STATE_DIR/count"
    rm -f "$STATE_DIR/force_full"
else
    echo $((count + 1)) > "$STATE_DIR/count"
fi
printf 'ok\n%s\n' "$name" > "$BACK_LOG"
echo "mariabackup_backup: wrote $BACK_DIR/$name"
