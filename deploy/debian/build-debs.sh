#!/bin/bash
# Builds the four Debian packages (ubackup-client, -server, -indexer,
# -reporter) with cargo-deb into OUT_DIR (default: $CARGO_TARGET_DIR/debian,
# or target/debian). See docs/packages.md.
#
#   deploy/debian/build-debs.sh [OUT_DIR]
#
# 1. release binaries of the four crates (nothing else of the workspace);
# 2. deploy/debian/generated/<pkg>/ (git-ignored, rewritten each time):
#    man pages and bash/zsh/fish completions from each binary's own clap
#    definition (`<bin> --generate-assets DIR`, hidden from --help), the
#    units of deploy/systemd/ with the packaged path (/usr/bin) and the
#    `ubackup` user, and the client's cron line from deploy/cron/;
# 3. `cargo deb -p <crate> --no-build` per package.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-$PWD/target}
out=${1:-$target/debian}
gen=deploy/debian/generated
pkgs=(ubackup-client ubackup-server ubackup-indexer ubackup-reporter)

if ! command -v cargo-deb >/dev/null; then
    echo "build-debs: installing cargo-deb" >&2
    cargo install --locked cargo-deb
fi
cargo build --release --locked "${pkgs[@]/#/-p}"

rm -rf "$gen"
for p in "${pkgs[@]}"; do
    "$target/release/$p" --generate-assets "$gen/$p" >/dev/null
done
for p in ubackup-server ubackup-indexer; do
    sed -e 's#/usr/local/bin/#/usr/bin/#g' \
        -e 's#^\(\# Install: \).*#\1by the '"$p"' Debian package (disabled: systemctl enable --now '"$p"')#' \
        -e '/^\[Service\]$/a User=ubackup\nGroup=ubackup' \
        "deploy/systemd/$p.service" >"$gen/$p/$p.service"
    grep -q '^ExecStart=/usr/bin/' "$gen/$p/$p.service" || {
        echo "build-debs: $p.service: no ExecStart=/usr/bin/ after rewriting deploy/systemd/$p.service" >&2
        exit 1
    }
done
{
    echo "# /etc/cron.d/ubackup-client (from deploy/cron/ubackup.cron; docs/packages.md)."
    echo "# Uncomment the line once /etc/uuzuback.conf describes this host"
    echo "# (\`ubackup-client check\` prints what a run would do). Exit codes:"
    echo "# 0 all queued, 1 an instance failed, 2 config error, 3 Redis"
    echo "# unreachable (spooled), 4 neither queued nor spooled."
    grep -E '^[^#].* root /usr/local/bin/ubackup-client ' deploy/cron/ubackup.cron |
        sed -e 's#/usr/local/bin/#/usr/bin/#' -e 's/^/#/'
} >"$gen/ubackup-client/ubackup-client.cron"
grep -q '^#.* root /usr/bin/ubackup-client ' "$gen/ubackup-client/ubackup-client.cron" || {
    echo "build-debs: no ubackup-client line in deploy/cron/ubackup.cron" >&2
    exit 1
}

mkdir -p "$out"
for p in "${pkgs[@]}"; do
    cargo deb -p "$p" --no-build --strip --output "$out" >/dev/null
done
ls "$out"/ubackup-*.deb
