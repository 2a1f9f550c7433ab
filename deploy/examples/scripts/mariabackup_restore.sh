#!/bin/bash
# restore_script for mariabackup_backup.sh: turns a restored chain (a full
# and the incrementals after it) into a MySQL/MariaDB datadir ready to start.
#
#   restore_script = bash /etc/ubackup/scripts/mariabackup_restore.sh /var/lib/mysql-restored
#
# `ubackup-client restore --run-hook` runs it in --dest with BACKUP_FILES
# (the chain, full first, absolute paths). For each file, in order: unpack
# (gzip/zstd by the name) and `mbstream -x` into its own directory; then
# `--prepare` the full, and `--prepare --incremental-dir` each incremental
# in order. The prepared full is renamed to DATADIR (default
# $BACKUP_DIR/datadir), which must not exist yet; nothing is ever written
# into an existing datadir. Start the server on it (owned by the user it
# runs as: set OWNER=mysql to chown it), e.g.
#   mariadbd --datadir=DATADIR --socket=... --port=...
#
# Environment: MARIABACKUP (mariabackup | xtrabackup), MBSTREAM (mbstream |
# xbstream), OWNER (chown -R the datadir), USE_MEMORY (--use-memory for
# prepare, default 256M). Scratch space: about the size of the unpacked
# chain, next to --dest. Exit code: 0 when the datadir is ready.
set -eu -o pipefail

DATADIR=${1:-${BACKUP_DIR:?BACKUP_DIR not set}/datadir}
MARIABACKUP=${MARIABACKUP:-mariabackup}
MBSTREAM=${MBSTREAM:-mbstream}
[ "$(basename "$MARIABACKUP")" = xtrabackup ] && MBSTREAM=${MBSTREAM/mbstream/xbstream}
USE_MEMORY=${USE_MEMORY:-256M}
: "${BACKUP_FILES:?BACKUP_FILES not set (run from ubackup-client restore --run-hook)}"

die() { echo "mariabackup_restore: $*" >&2; exit 1; }
[ -e "$DATADIR" ] && die "$DATADIR exists; give a new directory"
work="$(dirname "$DATADIR")/.prepare.$$"
mkdir -p "$work" || die "cannot create $work"
trap 'rm -rf "$work"' EXIT

read -r -a files <<< "$BACKUP_FILES"
i=0
for f in "${files[@]}"; do
    d="$work/$i"
    mkdir -p "$d"
    case "$f" in
        *.gz) unzip=(gzip -dc) ;;
        *.zst) unzip=(zstd -dc -q) ;;
        *) unzip=(cat) ;;
    esac
    "${unzip[@]}" "$f" | "$MBSTREAM" -x -C "$d" || die "cannot unpack $f"
    i=$((i + 1))
done

started=$(date +%s)
n=${#files[@]}
# Percona xtrabackup needs --apply-log-only on every prepare but the last;
# mariabackup (10.2+) needs nothing
last_only=()
[ "$(basename "$MARIABACKUP")" = xtrabackup ] && [ "$n" -gt 1 ] && last_only=(--apply-log-only)
"$MARIABACKUP" --prepare "--use-memory=$USE_MEMORY" "${last_only[@]}" --target-dir="$work/0" \
    > "$work/prepare.log" 2>&1 || die "prepare of ${files[0]} failed: $(tail -n 3 "$work/prepare.log")"
for ((k = 1; k < n; k++)); do
    extra=()
    [ "$k" -lt $((n - 1)) ] && extra=("${last_only[@]}")
    "$MARIABACKUP" --prepare "--use-memory=$USE_MEMORY" "${extra[@]}" --target-dir="$work/0" \
        --incremental-dir="$work/$k" > "$work/prepare.log" 2>&1 \
        || die "prepare of ${files[$k]} onto the full failed: $(tail -n 3 "$work/prepare.log")"
done
[ -n "${OWNER:-}" ] && chown -R "$OWNER" "$work/0"
mv "$work/0" "$DATADIR" || die "cannot rename the prepared datadir to $DATADIR"
echo "mariabackup_restore: $DATADIR is ready ($n file(s), prepared in $(($(date +%s) - started)) s)"
