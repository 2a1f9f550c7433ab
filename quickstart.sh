#!/usr/bin/env bash
# ubackup quickstart: a whole cluster on this machine, in one command.
#   ./quickstart.sh          install, build, start, back up, index, report, restore, stop
#   ./quickstart.sh --keep   the same, but leave the cluster running
# This script installs the packages and builds (release); the run itself is the
# ubackup-quickstart binary (quickstart/), given these arguments. docs/quickstart.md
set -euo pipefail
REPO=$(cd "$(dirname "$0")" && pwd)
PROFILE=release BIN="" PASS=()
usage() {
    cat <<EOF
Usage: ./quickstart.sh [--keep] [--debug] [--rounds N] [--bin-dir D]
  --keep       leave the cluster running at the end and print how to use it
  --debug      a debug build instead of --release (quicker to compile)
  --rounds N   client runs per database host (default 4, at least 2)
  --bin-dir D  use the ubackup-* binaries in D and skip the build (and cargo)
Exit code: 0 every step passed, 1 a step failed (logs kept), 2 usage error.
EOF
}
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) PASS+=("$1") ;;
    --debug) PROFILE=debug ;;
    --bin-dir) { [ -n "${2:-}" ] && BIN=$(cd "$2" && pwd); } || { usage >&2; exit 2; }; shift ;;
    --rounds) { [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 2 ]; } || { usage >&2; exit 2; }; PASS+=("$1" "$2"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
T0=$(date +%s.%N) STEP=0
step() { STEP=$((STEP + 1)); printf '\n==> [%s] %d. %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1fs", b - a }')" "$STEP" "$*"; }
die() { printf '\nquickstart: FAILED at step %d: %s\n' "$STEP" "$*" >&2; exit 1; }

step "system packages (redis-server, rsync)"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev) # for the bundled SQLite and ring
if [ ${#need[@]} -gt 0 ]; then
    echo "    installing: ${need[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${need[*]} by hand"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null; } || die "apt-get install ${need[*]} failed"
fi
echo "    $(redis-server --version | cut -d' ' -f1-3), $(rsync --version | head -n1)"

cd "$REPO"
if [ -n "$BIN" ]; then step "use the binaries in $BIN (--bin-dir: no build)"; else
    build=(cargo build --locked -p ubackup-client -p ubackup-server -p ubackup-indexer -p ubackup-reporter -p ubackup-quickstart)
    [ "$PROFILE" = release ] && build+=(--release)
    step "build the binaries (${build[*]})"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust first (https://rustup.rs: curl https://sh.rustup.rs -sSf | sh), then open a new shell"
    "${build[@]}" || die "cargo build failed"
    BIN="$(cargo metadata --format-version 1 --no-deps --locked | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/$PROFILE"
fi
[ -x "$BIN/ubackup-quickstart" ] || die "$BIN/ubackup-quickstart not found or not executable"
UBACKUP_QUICKSTART_T0=$T0 UBACKUP_QUICKSTART_STEP=$STEP exec "$BIN/ubackup-quickstart" --repo "$REPO" --bin-dir "$BIN" "${PASS[@]}"
