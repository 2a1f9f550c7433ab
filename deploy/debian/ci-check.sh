#!/bin/bash
# CI check of the Debian packages (docs/packages.md), as root on Debian 12:
# builds them (build-debs.sh, cargo-deb installed if missing), installs them
# all with apt-get, runs every installed binary's --help and its config
# check against the installed example configs (none of them reaches Redis:
# `ubackup-client check`, `ubackup-server --check`, `ubackup-indexer
# --check`, `ubackup-reporter check` only load and validate the file),
# checks the installed man pages, completions and units (systemd-analyze
# verify when it exists), then purges them and asserts that their
# conffiles and every file they put under /usr are gone. Idempotent: an
# earlier install is purged first. Exits non-zero with a message on the
# first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() {
    echo "ci-check: FAIL: $*" >&2
    exit 1
}
step() { echo "ci-check: $*"; }
[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i / --purge)"
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-$PWD/target}
out=$target/debian
pkgs=(ubackup-client ubackup-server ubackup-indexer ubackup-reporter)
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^[ic]'; }
leftover=()
for p in "${pkgs[@]}"; do installed "$p" && leftover+=("$p"); done
[ ${#leftover[@]} = 0 ] || { step "purging an earlier install: ${leftover[*]}"; dpkg --purge "${leftover[@]}" >/dev/null; }

start=$SECONDS
rm -f "$out"/ubackup-*.deb
bash deploy/debian/build-debs.sh "$out" >/dev/null || fail "build-debs.sh failed"
debs=()
for p in "${pkgs[@]}"; do
    d=$(ls "$out/${p}_"*.deb 2>/dev/null | head -n1)
    [ -n "$d" ] || fail "no $out/${p}_*.deb"
    debs+=("$d")
done
step "built ${debs[*]##*/} in $((SECONDS - start)) s"

if ! apt-get install -y --no-install-recommends "${debs[@]}" >/tmp/ci-check-apt.log 2>&1; then
    apt-get update >/dev/null 2>&1 || true
    apt-get install -y --no-install-recommends "${debs[@]}" >/tmp/ci-check-apt.log 2>&1 ||
        fail "apt-get install of the packages failed: $(tail -n 20 /tmp/ci-check-apt.log)"
fi
for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${db:Status-Abbrev}' "$p" | grep -q '^ii' || fail "$p is not installed (ii)"
done
step "installed: ${pkgs[*]}"

# what each package put under /usr, and its conffiles, for the purge check
declare -A usr_files conf_files
for p in "${pkgs[@]}"; do
    usr_files[$p]=$(dpkg -L "$p" | grep '^/usr/' | while read -r f; do [ -d "$f" ] || echo "$f"; done)
    conf_files[$p]=$(dpkg-query -W -f '${Conffiles}\n' "$p" | awk 'NF {print $1}')
    [ -n "${conf_files[$p]}" ] || [ "$p" = ubackup-reporter ] || fail "$p has no conffiles"
    for f in "/usr/bin/$p" "/usr/share/man/man1/$p.1.gz" \
        "/usr/share/bash-completion/completions/$p" \
        "/usr/share/zsh/vendor-completions/_$p" \
        "/usr/share/fish/vendor_completions.d/$p.fish"; do
        [ -s "$f" ] || fail "$p: $f missing or empty"
    done
    zcat "/usr/share/man/man1/$p.1.gz" | grep -q "^\.TH $p 1" || fail "$p: its man page has no .TH header"
    "/usr/bin/$p" --help >/dev/null || fail "$p --help exited $?"
done
for f in /etc/uuzuback.conf /etc/cron.d/ubackup-client /etc/logrotate.d/ubackup-client \
    /etc/ubackup/server.conf /etc/logrotate.d/ubackup-server \
    /etc/ubackup/indexer.conf /etc/logrotate.d/ubackup-indexer \
    /usr/share/doc/ubackup-client/examples/dbhost-rsyncd.conf; do
    [ -s "$f" ] || fail "$f not installed"
done
getent passwd ubackup >/dev/null || fail "no ubackup system user after install"
[ "$(stat -c %U /var/lib/ubackup)" = ubackup ] || fail "/var/lib/ubackup is not owned by ubackup"
step "files, man pages, completions and --help: ok"

check() { # what, command…
    local what=$1 outp
    shift
    outp=$("$@" 2>&1) || fail "$what: \`$*\` exited $?: $outp"
    echo "  $what: ${outp%%$'\n'*}"
}
check client ubackup-client -c /etc/uuzuback.conf check
check server ubackup-server -c /etc/ubackup/server.conf --check
check indexer ubackup-indexer -c /etc/ubackup/indexer.conf --check
check reporter ubackup-reporter check -c /etc/ubackup/server.conf
check reporter ubackup-reporter check -c /etc/ubackup/indexer.conf
# as the services run them: the ubackup user must be able to read them
check "server as ubackup" setpriv --reuid=ubackup --regid=ubackup --clear-groups ubackup-server -c /etc/ubackup/server.conf --check
check "indexer as ubackup" setpriv --reuid=ubackup --regid=ubackup --clear-groups ubackup-indexer -c /etc/ubackup/indexer.conf --check
# a broken config must fail the check with the config exit code
bad=$(mktemp)
printf '[global]\nwork_thread = many\n' >"$bad"
code=0; ubackup-server -c "$bad" --check >/dev/null 2>&1 || code=$?
[ "$code" = 2 ] || fail "ubackup-server --check on a broken config exited $code, not 2"
code=0; ubackup-reporter check -c /nonexistent.conf >/dev/null 2>&1 || code=$?
[ "$code" = 3 ] || fail "ubackup-reporter check on a missing config exited $code, not 3"
rm -f "$bad"
step "config checks: ok"

units=$(dpkg -L ubackup-server ubackup-indexer | grep -E '/systemd/system/[^/]+\.service$' || true)
[ "$(echo "$units" | grep -c .)" = 2 ] || fail "expected 2 installed units, found: $units"
for u in $units; do
    grep -q '^ExecStart=/usr/bin/ubackup-' "$u" || fail "$u: ExecStart is not /usr/bin/ubackup-*"
    grep -q '^User=ubackup$' "$u" || fail "$u: no User=ubackup"
done
if command -v systemd-analyze >/dev/null; then
    for u in $units; do
        err=$(systemd-analyze verify "$u" 2>&1) || fail "systemd-analyze verify $u: $err"
        [ -z "$err" ] || fail "systemd-analyze verify $u printed: $err"
    done
    step "units: systemd-analyze verify ok"
else
    step "units: systemd-analyze not installed, checked ExecStart/User only"
fi
if command -v logrotate >/dev/null; then
    for p in ubackup-client ubackup-server ubackup-indexer; do
        err=$(logrotate -d "/etc/logrotate.d/$p" 2>&1) || fail "logrotate -d /etc/logrotate.d/$p: $err"
        ! grep -qE '^error:' <<<"$err" || fail "logrotate -d /etc/logrotate.d/$p: $err"
    done
    step "logrotate -d: ok"
fi

dpkg --purge "${pkgs[@]}" >/tmp/ci-check-purge.log 2>&1 || fail "dpkg --purge failed: $(cat /tmp/ci-check-purge.log)"
for p in "${pkgs[@]}"; do
    ! installed "$p" || fail "$p still known to dpkg after --purge"
    for f in ${conf_files[$p]}; do
        [ ! -e "$f" ] || fail "$p: conffile $f left after purge"
    done
    for f in ${usr_files[$p]}; do
        [ ! -e "$f" ] || fail "$p: $f left after purge"
    done
done
[ ! -e /etc/ubackup ] || fail "/etc/ubackup left after purge: $(ls -A /etc/ubackup)"
[ ! -e /var/lib/ubackup ] || fail "/var/lib/ubackup left after purge (it was empty)"
! getent passwd ubackup >/dev/null || fail "ubackup user left after purge"
step "purged: no conffiles, nothing under /usr, no ubackup user left"
step "ok in $((SECONDS - start)) s"
