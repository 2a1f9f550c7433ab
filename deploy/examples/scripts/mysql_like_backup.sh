#!/bin/sh
# Example backup script for a full + incremental scheme (the way Xtrabackup
# is used with UBackup). It backs up a directory with tar, so it runs
# anywhere; replace the two tar lines with your real backup tool.
#
# Usage: mysql_like_backup.sh DATA_DIR [BACK_DIR [BACK_LOG [LAST_ALL_LOG]]]
#   DATA_DIR      the "database" directory; created with sample data if missing
#   BACK_DIR      where backup files go     (default: $UBACKUP_BACK_DIR)
#   BACK_LOG      the log ubackup-client reads (default: $UBACKUP_BACK_LOG)
#   LAST_ALL_LOG  the last full's log          (default: $UBACKUP_LAST_ALL_LOG)
# ubackup-client sets the UBACKUP_* variables from the instance section, so
# in the config `script = sh /path/mysql_like_backup.sh /var/lib/mysql` is enough.
#
# Environment:
#   FULL_EVERY=N   make a full every N runs (default 6: one full, 5 incrementals)
#   FORCE_FULL=1   make a full now
#
# The log contract (what ubackup-client reads):
#   full:        back_log and last_all_log both get "ok\n<file>\n"; the
#                client then appends the unix time to last_all_log as line 3
#   incremental: back_log gets "ok\n<file>\n"; last_all_log is left alone
#   failure:     back_log gets "wrong\n<reason>\n"
set -u

DATA_DIR=${1:?usage: mysql_like_backup.sh DATA_DIR [BACK_DIR [BACK_LOG [LAST_ALL_LOG]]]}
BACK_DIR=${2:-${UBACKUP_BACK_DIR:?BACK_DIR not given and UBACKUP_BACK_DIR not set}}
BACK_LOG=${3:-${UBACKUP_BACK_LOG:?BACK_LOG not given and UBACKUP_BACK_LOG not set}}
LAST_ALL_LOG=${4:-${UBACKUP_LAST_ALL_LOG:?LAST_ALL_LOG not given and UBACKUP_LAST_ALL_LOG not set}}
FULL_EVERY=${FULL_EVERY:-6}
FORCE_FULL=${FORCE_FULL:-0}
COUNT_FILE="$BACK_LOG.count"   # incrementals since the last full
STAMP="$BACK_LOG.stamp"         # mtime = when the last backup started

# Report a failure the UBackup way: the reason goes into the message.
fail() {
    printf 'wrong\n%s\n' "$*" > "$BACK_LOG"
    echo "mysql_like_backup: $*" >&2
    exit 0
}

mkdir -p "$BACK_DIR" "$(dirname "$BACK_LOG")" "$(dirname "$LAST_ALL_LOG")" || fail "cannot create directories"

# Sample data, so the example works on a bare machine; each run "writes"
# a row, so incrementals have something to carry.
if [ ! -d "$DATA_DIR" ]; then
    mkdir -p "$DATA_DIR" || fail "cannot create $DATA_DIR"
    head -c 262144 /dev/urandom > "$DATA_DIR/ibdata1" || fail "cannot create sample data in $DATA_DIR"
fi
echo "$(date +%s) row written by pid $$" >> "$DATA_DIR/orders.csv" || fail "cannot write to $DATA_DIR"

# A full when asked, every FULL_EVERY runs, or when the last full is not
# usable: missing, failed, or never reported (no line 3 from the client).
count=$(cat "$COUNT_FILE" 2>/dev/null || echo 0)
full=0
if [ "$FORCE_FULL" = 1 ] || [ "$count" -ge $((FULL_EVERY - 1)) ] || [ ! -f "$STAMP" ]; then
    full=1
elif [ "$(sed -n 1p "$LAST_ALL_LOG" 2>/dev/null)" != ok ] || [ -z "$(sed -n 3p "$LAST_ALL_LOG" 2>/dev/null)" ]; then
    full=1
fi

now=$(date +%Y%m%d_%H%M%S)
touch "$STAMP.new" || fail "cannot write $STAMP.new"
if [ "$full" = 1 ]; then
    name="mysql_full_${now}_$$.tar.gz"
    # Written under a temporary name and renamed: a node never sees half a file.
    tar -czf "$BACK_DIR/.$name.part" -C "$DATA_DIR" . 2>"$BACK_LOG.err" \
        || fail "tar of $DATA_DIR failed: $(tail -n 1 "$BACK_LOG.err")"
    mv "$BACK_DIR/.$name.part" "$BACK_DIR/$name" || fail "cannot rename the backup into $BACK_DIR"
    printf 'ok\n%s\n' "$name" > "$LAST_ALL_LOG"
    printf 'ok\n%s\n' "$name" > "$BACK_LOG"
    echo 0 > "$COUNT_FILE"
else
    name="mysql_incr_${now}_$$.tar.gz"
    list="$BACK_LOG.files"
    (cd "$DATA_DIR" && find . -type f -newer "$STAMP") > "$list" || fail "cannot list changed files in $DATA_DIR"
    tar -czf "$BACK_DIR/.$name.part" -C "$DATA_DIR" -T "$list" 2>"$BACK_LOG.err" \
        || fail "tar of changed files in $DATA_DIR failed: $(tail -n 1 "$BACK_LOG.err")"
    mv "$BACK_DIR/.$name.part" "$BACK_DIR/$name" || fail "cannot rename the backup into $BACK_DIR"
    printf 'ok\n%s\n' "$name" > "$BACK_LOG"
    echo $((count + 1)) > "$COUNT_FILE"
fi
mv "$STAMP.new" "$STAMP"
echo "mysql_like_backup: wrote $BACK_DIR/$name"
