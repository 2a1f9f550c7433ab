#!/usr/bin/env bash
# The test command: installs the system packages the tests run for real
# (redis-server and redis-sentinel, rsync, stunnel4 and openssl, MariaDB, mariabackup and
# PostgreSQL for the recipe tests, and chromium for the web-page test) if they are
# missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# the Sentinel failover tests run real sentinels
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
# pulls over TLS are tested through a real stunnel
command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the backup recipes are tested against real database servers
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariabackup >/dev/null 2>&1 || need+=(mariadb-backup)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
# the web-page test drives a real headless Chromium
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]} (needed by the tests)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi

# Build every binary first: integration tests of one crate run the binaries
# of others (the end-to-end and fault suites).
cargo build --workspace --all-targets --locked
# everything above is installed, so no test may skip for a missing server
export UBACKUP_REQUIRE_DATABASES=1
exec cargo test --workspace --locked "$@"
