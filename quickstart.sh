#!/usr/bin/env bash
# ubackup quickstart: a whole cluster on this machine, in one command.
#
#   ./quickstart.sh          build, start, back up, index, report, restore, stop
#   ./quickstart.sh --keep   the same, but leave the cluster running
#
# What it starts, all on 127.0.0.1, on free ports, in a fresh temp directory,
# from the shipped files (deploy/redis, deploy/rsyncd, deploy/examples):
#   * redis-server (deploy/redis/redis-ubackup.conf: AOF everysec, AUTH);
#   * two "database hosts": each an rsync daemon (deploy/rsyncd/dbhost-rsyncd.conf)
#     and a client config (deploy/examples/client.conf): a MySQL-like full +
#     incremental instance and a Redis-like full-only one; host 2 also has an
#     instance whose script fails;
#   * two pull nodes (ubackup-server), each with its own server_root_path and
#     a read-only rsync daemon over it for restore (deploy/rsyncd/node-rsyncd.conf);
#   * the indexer on the SQLite catalog (deploy/examples/indexer.conf, no ES).
# Then it runs the clients a few times, waits until every result is indexed,
# shows `ubackup-reporter status`/`alerts` and `ubackup-client list`, restores
# an incremental chain and checks it byte for byte, and stops what it started
# by PID. Every step is printed; any failure stops the run with exit code 1.
# See docs/quickstart.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")" && pwd)
KEEP=0
PROFILE=release
ROUNDS=4 # client runs per host: one full, then incrementals
BIN=""   # --bin-dir: use these binaries instead of building

usage() {
    cat <<EOF
Usage: ./quickstart.sh [--keep] [--debug] [--rounds N]

  --keep      leave the cluster running at the end and print how to use it
  --debug     use a debug build instead of --release (faster to compile;
              for working on ubackup itself)
  --rounds N  client runs per database host (default $ROUNDS, at least 2)
  --bin-dir D use the ubackup-* binaries in D (e.g. /usr/local/bin) and
              skip the build (and the need for cargo)

Installs redis-server and rsync with apt-get if they are missing, builds the
binaries with cargo, and runs a 2-host, 2-node cluster in a temp directory.
Exit code: 0 when every step passed, 1 when a step failed (its logs are kept
and their paths printed), 2 for a usage error.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --keep) KEEP=1 ;;
    --debug) PROFILE=debug ;;
    --bin-dir)
        shift
        BIN=${1:-}
        [ -n "$BIN" ] || { usage >&2; exit 2; }
        BIN=$(cd "$BIN" && pwd) || exit 2
        ;;
    --rounds)
        shift
        ROUNDS=${1:-}
        [[ "$ROUNDS" =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 2 ] || { usage >&2; exit 2; }
        ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------- output --
T0=$(date +%s.%N)
STEP=0
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1fs", b - a }'; }
step() { STEP=$((STEP + 1)); printf '\n==> [%s] %d. %s\n' "$(elapsed)" "$STEP" "$*"; }
info() { printf '    %s\n' "$*"; }
indent() { sed 's/^/    | /'; }
FAILED=0
die() {
    FAILED=1
    printf '\nquickstart: FAILED at step %d: %s\n' "$STEP" "$*" >&2
    exit 1
}

# ------------------------------------------------------- 1. system packages --
step "system packages (redis-server, rsync)"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
# cargo needs a C compiler for the bundled SQLite and for ring
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
    info "installing: ${need[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${need[*]} by hand"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${need[*]} by hand"
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || die "apt-get update failed"
    $sudo apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
info "$(redis-server --version | cut -d' ' -f1-3), $(rsync --version | head -n1)"

# ------------------------------------------------------------- 2. build --
cd "$REPO"
if [ -n "$BIN" ]; then
    step "use the binaries in $BIN (--bin-dir: no build)"
else
    build=(cargo build --locked -p ubackup-client -p ubackup-server -p ubackup-indexer -p ubackup-reporter)
    [ "$PROFILE" = release ] && build+=(--release)
    step "build the binaries (${build[*]})"
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust first (https://rustup.rs: curl https://sh.rustup.rs -sSf | sh), then open a new shell"
    "${build[@]}" || die "cargo build failed"
    target=$(cargo metadata --format-version 1 --no-deps --locked | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    [ -n "$target" ] || die "cannot find cargo's target directory"
    BIN="$target/$PROFILE"
fi
for b in ubackup-client ubackup-server ubackup-indexer ubackup-reporter; do
    [ -x "$BIN/$b" ] || die "$BIN/$b not found or not executable"
done
info "binaries in $BIN"
T_CLUSTER=$(date +%s.%N)

# ------------------------------------------------- process bookkeeping --
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ubackup-quickstart.XXXXXX")
chmod 755 "$DIR"
PIDS=()  # every process we started, in start order
NAMES=()

# Stops what we started, newest first: SIGTERM, then SIGKILL after 15 s.
# Only our own PIDs; nothing is looked up by name.
stop_all() {
    local i pid n
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for ((n = 0; n < 150; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            info "${NAMES[$i]} (pid $pid) did not stop within 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    [ "$rc" -ne 0 ] && FAILED=1
    if [ "$KEEP" = 1 ] && [ "$FAILED" = 0 ]; then
        return
    fi
    if [ ${#PIDS[@]} -gt 0 ]; then
        step "stop everything this run started (by PID)"
        local t=$SECONDS
        stop_all
        info "stopped in $((SECONDS - t))s: ${NAMES[*]}"
    fi
    if [ "$FAILED" = 1 ]; then
        echo "quickstart: logs and configs kept in $DIR" >&2
        ls "$DIR"/*/*.log "$DIR"/*/log/*.log 2>/dev/null | sed 's/^/    /' >&2 || true
        exit 1
    fi
    rm -rf "$DIR"
}
trap on_exit EXIT
trap 'FAILED=1; echo "quickstart: interrupted" >&2; exit 130' INT TERM

# Remembers a started process.
track() { PIDS+=("$1"); NAMES+=("$2"); }

# A TCP port that nothing listens on right now, on each of the given
# addresses (default 127.0.0.1). Callers retry when a daemon then fails to
# bind it (someone else took it meanwhile).
free_port() {
    local addrs=("${@:-127.0.0.1}") p a ok
    if command -v python3 >/dev/null 2>&1; then
        python3 - "${addrs[@]}" <<'PY'
import socket, sys
for _ in range(100):
    first = socket.socket()
    first.bind((sys.argv[1], 0))
    port = first.getsockname()[1]
    try:
        for addr in sys.argv[2:]:
            s = socket.socket()
            s.bind((addr, port))
            s.close()
    except OSError:
        continue
    finally:
        first.close()
    print(port)
    break
PY
        return
    fi
    while :; do
        p=$((20000 + RANDOM % 40000)) ok=1
        for a in "${addrs[@]}"; do port_open "$a" "$p" && ok=0; done
        [ "$ok" = 1 ] && { echo "$p"; return; }
    done
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.1 s until it
# succeeds; fails the step when SECONDS pass first.
later_than() { [ "$(date +%s)" -gt "$1" ]; }
wait_for() {
    local what=$1 secs=$2
    shift 2
    local end
    end=$(awk -v s="$secs" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now + s }')
    while ! "$@" >/dev/null 2>&1; do
        if awk -v end="$end" -v now="$(date +%s.%N)" 'BEGIN { exit !(now > end) }'; then
            die "timed out after ${secs}s waiting for: $what"
        fi
        sleep 0.1
    done
}

# spawn_listening NAME LOG ADDR PORT COMMAND...: starts COMMAND in the
# background and waits (10 s) until ADDR:PORT accepts connections. Returns 1
# if the process exits first (port taken) or never listens.
spawn_listening() {
    local name=$1 log=$2 addr=$3 port=$4 pid n
    shift 4
    "$@" >>"$log" 2>&1 &
    pid=$!
    for ((n = 0; n < 100; n++)); do
        kill -0 "$pid" 2>/dev/null || break
        if port_open "$addr" "$port"; then
            track "$pid" "$name"
            info "$name: pid $pid, $addr:$port"
            return 0
        fi
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    info "$name did not come up on $addr:$port, retrying on another port; see $log"
    return 1
}

# start_daemon NAME PORTVAR LOG COMMAND...: COMMAND with @PORT@ replaced by
# a free 127.0.0.1 port, retried on another port if it fails to bind.
start_daemon() {
    local name=$1 var=$2 log=$3 _attempt _port _args _a
    shift 3
    for _attempt in 1 2 3 4 5 6 7 8; do
        _port=$(free_port)
        _args=()
        for _a in "$@"; do _args+=("${_a//@PORT@/$_port}"); done
        if spawn_listening "$name" "$log" 127.0.0.1 "$_port" "${_args[@]}"; then
            printf -v "$var" '%s' "$_port"
            return 0
        fi
    done
    die "$name could not be started; see $log"
}

# Stops (and forgets) the process started last.
stop_last() {
    local i=$((${#PIDS[@]} - 1))
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
    PIDS=("${PIDS[@]:0:$i}")
    NAMES=("${NAMES[@]:0:$i}")
}

# ini_set FILE SECTION KEY VALUE: sets KEY in [SECTION] (replacing the line,
# or adding it at the end of the section), so the shipped example configs
# are used as they are with only paths, ports and names changed.
ini_set() {
    awk -v sec="[$2]" -v key="$3" -v val="$4" '
        function add() { if (insec && !done) { print key " = " val; done = 1 } }
        /^[ \t]*\[/ { add(); insec = ($1 == sec); print; next }
        insec && $0 ~ ("^[ \t]*" key "[ \t]*=") { if (!done) print key " = " val; done = 1; next }
        { print }
        END { add(); if (!done) { print ""; print sec; print key " = " val } }
    ' "$1" >"$1.new" && mv "$1.new" "$1"
}
ini_del() {
    awk -v sec="[$2]" -v key="$3" '
        /^[ \t]*\[/ { insec = ($1 == sec) }
        insec && $0 ~ ("^[ \t]*" key "[ \t]*=") { next }
        { print }
    ' "$1" >"$1.new" && mv "$1.new" "$1"
}

# render_rsyncd TEMPLATE OUT DIR MODULE_PATH: a shipped rsyncd.conf with its
# paths, allowed hosts, user and chroot set for this machine; everything else
# (read only, socket options = TCP_NODELAY, refuse options, …) as shipped.
render_rsyncd() {
    # as root: chroot, and stay root (uid nobody could not read this temp
    # dir); as another user: no chroot, and no uid/gid at all (a non-root
    # daemon that names one fails every connection with "setgroups failed")
    local chroot=no ids="s#^uid = .*#uid = root#;s#^gid = .*#gid = root#"
    if [ "$(id -u)" -ne 0 ]; then ids="s/^uid = .*/# &/;s/^gid = .*/# &/"; else chroot=yes; fi
    {
        echo "# generated by quickstart.sh from $1"
        echo "lock file = $3/rsyncd.lock"
        sed -e "s#^path = .*#path = $4#" \
            -e "s#^pid file = .*#pid file = $3/rsyncd.pid#" \
            -e "s#^log file = .*#log file = $3/rsyncd.log#" \
            -e "s#^hosts allow = .*#hosts allow = 127.0.0.0/8#" \
            -e "$ids" \
            -e "s#^use chroot = .*#use chroot = $chroot#" \
            "$1"
    } >"$2"
}

# --------------------------------------------------------------- 3. redis --
step "start redis-server (deploy/redis/redis-ubackup.conf: AOF everysec, AUTH)"
mkdir -p "$DIR/redis"
REDIS_PW=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
start_daemon redis-server REDIS_PORT "$DIR/redis/redis.log" \
    redis-server "$REPO/deploy/redis/redis-ubackup.conf" --port @PORT@ --bind 127.0.0.1 \
    --dir "$DIR/redis" --requirepass "$REDIS_PW" --daemonize no --logfile ""
rcli() { REDISCLI_AUTH="$REDIS_PW" redis-cli -p "$REDIS_PORT" --no-auth-warning "$@"; }
key_exists() { [ "$(rcli --raw exists "$1")" = 1 ]; }
wait_for "redis PING" 10 rcli ping
info "appendfsync: $(rcli config get appendfsync | tail -n1), requirepass set"

# ------------------------------------------------------ 4. database hosts --
step "start two database hosts (rsync daemon + client config each)"
HOSTS=(host1 host2)
declare -A HOST_PORT
for i in 1 2; do
    h="$DIR/host$i"
    mkdir -p "$h/backup" "$h/scripts" "$h/log"
    cp "$REPO"/deploy/examples/scripts/*.sh "$h/scripts/"
    render_rsyncd "$REPO/deploy/rsyncd/dbhost-rsyncd.conf" "$h/rsyncd.conf" "$h" "$h/backup/"
    start_daemon "host$i rsyncd" port "$h/rsyncd.log" \
        rsync --daemon --no-detach --config="$h/rsyncd.conf" --port=@PORT@ --address=127.0.0.1
    HOST_PORT[host$i]=$port
    # the shipped example, with its /tmp/ubackup-demo root moved here
    sed "s#/tmp/ubackup-demo#$h#g" "$REPO/deploy/examples/client.conf" >"$h/client.conf"
    ini_set "$h/client.conf" global server_id "90000$i"
    ini_set "$h/client.conf" global redis_port "$REDIS_PORT"
    ini_set "$h/client.conf" global redis_password "$REDIS_PW"
    ini_set "$h/client.conf" global rsync_port "$port"
    if [ "$i" = 2 ]; then
        # an instance whose backup script fails, as a broken mysqldump would
        cat >>"$h/client.conf" <<EOF

# quickstart: this instance's script always fails (exit code 2)
[mysql3307]
back_type = mysql
instance = 3307
rsync_model = backup/database_3307
back_dir = $h/backup/database_3307
back_log = $h/log/mysql_3307.log
script = echo "mysqldump: Got error: 1045: Access denied for user 'backup'@'localhost'" >&2; exit 2
EOF
    fi
    "$BIN/ubackup-client" -c "$h/client.conf" check >"$h/check.out" 2>&1 ||
        { indent <"$h/check.out"; die "ubackup-client check rejected $h/client.conf"; }
    info "host$i: $h/client.conf, instances: $(grep -c '^\[' "$h/client.conf" | awk '{print $1 - 1}')"
done

# ---------------------------------------------------------- 5. pull nodes --
step "start two pull nodes (ubackup-server) and their read-only rsync daemons for restore"
# Each node has its own address, as real nodes do: results carry it as
# back_server_ip, and restore pulls from back_server_ip:node_rsync_port.
# Linux routes all of 127.0.0.0/8 to the loopback interface.
NODE_IP=([1]=127.0.0.1 [2]=127.0.0.2)
for n in 1 2; do
    d="$DIR/node$n"
    mkdir -p "$d/store"
    cp "$REPO/deploy/examples/server.conf" "$d/server.conf"
    for kv in "work_thread=2" "server_root_path=$d/store/" "reserve=0" "redis_host=127.0.0.1" \
        "redis_port=$REDIS_PORT" "redis_password=$REDIS_PW" "redis_queue=level1 uuzuback" \
        "message_redis_host=127.0.0.1" "message_redis_port=$REDIS_PORT" "message_redis_password=$REDIS_PW" \
        "log=$d/server.log" "error_log=$d/server.error.log" "myip=${NODE_IP[$n]}" "node_id=node$n" \
        "allow_sources=127.0.0.1/32" "drain_secs=10"; do
        ini_set "$d/server.conf" global "${kv%%=*}" "${kv#*=}"
    done
    "$BIN/ubackup-server" -c "$d/server.conf" >"$d/stderr.log" 2>&1 &
    track $! "node$n"
    info "node$n: pid $!, myip ${NODE_IP[$n]}, $d/server.conf, store $d/store/"
    render_rsyncd "$REPO/deploy/rsyncd/node-rsyncd.conf" "$d/rsyncd.conf" "$d" "$d/store/"
done
# one port for both nodes' daemons (the client has one node_rsync_port)
started=0
for attempt in 1 2 3 4 5 6 7 8; do
    NODE_RSYNC_PORT=$(free_port "${NODE_IP[1]}" "${NODE_IP[2]}")
    spawn_listening "node1 rsyncd (module ubackup)" "$DIR/node1/rsyncd.log" "${NODE_IP[1]}" "$NODE_RSYNC_PORT" \
        rsync --daemon --no-detach --config="$DIR/node1/rsyncd.conf" --port="$NODE_RSYNC_PORT" --address="${NODE_IP[1]}" || continue
    if spawn_listening "node2 rsyncd (module ubackup)" "$DIR/node2/rsyncd.log" "${NODE_IP[2]}" "$NODE_RSYNC_PORT" \
        rsync --daemon --no-detach --config="$DIR/node2/rsyncd.conf" --port="$NODE_RSYNC_PORT" --address="${NODE_IP[2]}"; then
        started=1
        break
    fi
    stop_last
done
[ "$started" = 1 ] || die "could not start the nodes' rsync daemons on a common port; see $DIR/node*/rsyncd.log"
for n in 1 2; do
    wait_for "node$n heartbeat (see $DIR/node$n/server.log)" 15 key_exists "ubackup:alive:node$n"
done
# list and restore on the database hosts read the indexer's catalog (on
# this one machine, the SQLite file itself) and pull from the nodes' daemons
for i in 1 2; do
    ini_set "$DIR/host$i/client.conf" global catalog "$DIR/indexer/catalog.db"
    ini_set "$DIR/host$i/client.conf" global node_rsync_port "$NODE_RSYNC_PORT"
done

# ------------------------------------------------------------ 6. indexer --
step "start the indexer (SQLite catalog, no Elasticsearch)"
d="$DIR/indexer"
mkdir -p "$d"
cp "$REPO/deploy/examples/indexer.conf" "$d/indexer.conf"
ini_del "$d/indexer.conf" global es_urls
for kv in "redis_host=127.0.0.1" "redis_port=$REDIS_PORT" "redis_password=$REDIS_PW" \
    "catalog=$d/catalog.db" "log=$d/indexer.log" "error_log=$d/indexer.error.log" \
    "indexer_id=indexer1" "batch_ms=100"; do
    ini_set "$d/indexer.conf" global "${kv%%=*}" "${kv#*=}"
done
"$BIN/ubackup-indexer" -c "$d/indexer.conf" >"$d/stderr.log" 2>&1 &
track $! indexer
info "indexer: pid $!, $d/indexer.conf, catalog $d/catalog.db"
wait_for "indexer heartbeat (see $d/indexer.log)" 15 key_exists "ubackup:alive:indexer1"

# ------------------------------------------------------ 7. backup rounds --
step "run the clients $ROUNDS times (a full, then incrementals; host2's mysql3307 fails every time)"
EXPECTED=0
last_end=0
for ((r = 1; r <= ROUNDS; r++)); do
    # A message's create_time is the run's start in whole seconds (the wire
    # format). Cron runs are an hour apart; back-to-back runs here must not
    # share a second, or a chain's order is ambiguous and two failures of
    # one instance would get the same record id. So a round starts only
    # after the second in which the previous one ended.
    wait_for "the clock to pass second $last_end" 3 later_than "$last_end"
    for i in 1 2; do
        "$BIN/ubackup-client" -c "$DIR/host$i/client.conf" >"$DIR/host$i/run$r.log" 2>&1 &
        eval "cpid$i=\$!"
    done
    rc1=0 rc2=0
    wait "$cpid1" || rc1=$?
    wait "$cpid2" || rc2=$?
    # host1: all good (0); host2: one failing instance (1: failure queued)
    [ "$rc1" = 0 ] || { indent <"$DIR/host1/run$r.log"; die "round $r: ubackup-client on host1 exited $rc1 (expected 0)"; }
    [ "$rc2" = 1 ] || { indent <"$DIR/host2/run$r.log"; die "round $r: ubackup-client on host2 exited $rc2 (expected 1: mysql3307 fails)"; }
    last_end=$(date +%s)
    EXPECTED=$((EXPECTED + 5))
    info "round $r: host1 exit 0 (2 backups queued), host2 exit 1 (2 backups + 1 failure queued)"
done

# ------------------------------------------------- 8. wait for the index --
step "wait until all $EXPECTED results are pulled and indexed"
# Nothing is waiting or in flight anywhere: the priority lists, every
# node's and the indexer's in-flight list, and the results list are empty
# (an ack removes a message from in-flight and pushes its result in one
# atomic step, so "all empty" means every result is in the catalog).
pipeline_empty() {
    [ "$(rcli --raw eval "local n = 0
        for _, k in ipairs(KEYS) do n = n + redis.call('LLEN', k) end
        for _, k in ipairs(redis.call('KEYS', 'ubackup:inflight:*')) do n = n + redis.call('LLEN', k) end
        for _, k in ipairs(redis.call('KEYS', 'ubackup:outbox:*')) do n = n + redis.call('LLEN', k) end
        return n" 3 level1 uuzuback message)" = 0 ]
}
wait_for "every list to drain (see: $0 --keep, then redis-cli; or the logs in $DIR)" 60 pipeline_empty
# …and the catalog has every one of them, exactly once
count_backups() { "$BIN/ubackup-client" -c "$DIR/host$1/client.conf" list --all --json | grep -c '"id":' || true; }
n1=$(count_backups 1)
n2=$(count_backups 2)
[ "$n1" = $((ROUNDS * 2)) ] || die "the catalog has $n1 backups of host1, expected $((ROUNDS * 2))"
[ "$n2" = $((ROUNDS * 3)) ] || die "the catalog has $n2 backups of host2, expected $((ROUNDS * 3))"
info "catalog: $n1 results of host1, $n2 of host2 ($((n1 + n2)) of $EXPECTED), every list empty"
info "files on node1: $(find "$DIR/node1/store" -path '*/.ubackup-tmp' -prune -o -type f -print | wc -l), on node2: $(find "$DIR/node2/store" -path '*/.ubackup-tmp' -prune -o -type f -print | wc -l)"

# ------------------------------------------------------------ 9. reports --
step "reporters as cron runs them: ubackup-reporter disk (each node), queue"
for n in 1 2; do
    "$BIN/ubackup-reporter" disk -c "$DIR/node$n/server.conf" 2>&1 | indent ||
        die "ubackup-reporter disk -c $DIR/node$n/server.conf failed"
done
"$BIN/ubackup-reporter" queue -c "$DIR/indexer/indexer.conf" 2>&1 | indent ||
    die "ubackup-reporter queue failed"

step "ubackup-reporter status -c $DIR/indexer/indexer.conf"
"$BIN/ubackup-reporter" status -c "$DIR/indexer/indexer.conf" >"$DIR/status.out" 2>&1 ||
    { indent <"$DIR/status.out"; die "ubackup-reporter status exited $?"; }
indent <"$DIR/status.out"

step "ubackup-reporter alerts -c $DIR/indexer/indexer.conf (the failing instance must appear)"
rc=0
"$BIN/ubackup-reporter" alerts -c "$DIR/indexer/indexer.conf" >"$DIR/alerts.out" 2>&1 || rc=$?
indent <"$DIR/alerts.out"
info "exit code $rc (Nagios: 0 OK, 1 warning, 2 critical, 3 unknown)"
grep -q "^WARNING  *script_error  *900002/mysql/3307/" "$DIR/alerts.out" ||
    die "no script_error alert for 900002/mysql/3307"
# the rest of the cluster is healthy: nothing else about instances, nodes or lists
# (node_disk_low depends on this machine's disk and is allowed)
if grep -E "^(WARNING|CRITICAL|UNKNOWN) " "$DIR/alerts.out" | grep -vE "script_error +900002/mysql/3307/|node_disk_low" | grep -q .; then
    die "unexpected alerts (above)"
fi
[ "$rc" = 1 ] || [ "$rc" = 2 ] || die "ubackup-reporter alerts exited $rc, expected 1 or 2"

# --------------------------------------------------------------- 10. list --
step "ubackup-client list (on host1: where its backups are)"
"$BIN/ubackup-client" -c "$DIR/host1/client.conf" list --type mysql --instance 3306 >"$DIR/list.out" 2>&1 ||
    { indent <"$DIR/list.out"; die "ubackup-client list failed"; }
indent <"$DIR/list.out"

# ------------------------------------------------------------ 11. restore --
step "restore host1's mysql/3306 (a full + $((ROUNDS - 1)) incrementals) from the nodes' rsync modules"
dest="$DIR/restore/mysql3306"
mkdir -p "$DIR/restore"
"$BIN/ubackup-client" -c "$DIR/host1/client.conf" restore --type mysql --instance 3306 --dest "$dest" \
    >"$DIR/restore.out" 2>&1 || { indent <"$DIR/restore.out"; die "ubackup-client restore failed"; }
indent <"$DIR/restore.out"
src="$DIR/host1/backup/database_3306"
nfiles=$(find "$dest" -type f | wc -l)
[ "$nfiles" = "$ROUNDS" ] || die "restore brought back $nfiles files, expected the whole chain: $ROUNDS"
for f in "$dest"/*; do
    cmp "$f" "$src/$(basename "$f")" || die "$(basename "$f") differs from the source file in $src"
done
info "the $nfiles restored files are byte-identical to the database host's backup files in $src"
# apply the chain (the full, then each incremental in order) and compare the
# result with the "database" itself: nothing has changed since the last backup
mkdir -p "$DIR/restore/data"
for f in $(ls "$dest"/mysql_full_* "$dest"/mysql_incr_* | sort -t_ -k3,4); do
    tar -xzf "$f" -C "$DIR/restore/data" || die "cannot extract $f"
done
diff -r "$DIR/restore/data" "$DIR/host1/data/mysql3306" || die "the restored chain does not rebuild $DIR/host1/data/mysql3306"
info "full + incrementals extracted in order = $DIR/host1/data/mysql3306, byte for byte (diff -r)"

# ---------------------------------------------------------------- done --
T_END=$(date +%s.%N)
secs=$(awk -v a="$T_CLUSTER" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')
step "all steps passed: the cluster part took ${secs}s (after the build)"
if [ "$KEEP" = 1 ]; then
    {
        echo "#!/bin/sh"
        echo "# Stops the quickstart cluster in $DIR by PID: SIGTERM to the"
        echo "# ubackup processes and rsync daemons, then to redis-server once they"
        echo "# are gone (SIGKILL whatever is left after 15 s). It waits, so"
        echo "# 'stop.sh && rm -rf $DIR' cannot pull the directory away from a"
        echo "# redis-server still writing its final save."
        echo 'stop() {'
        echo '    kill "$@" 2>/dev/null'
        echo '    n=0'
        echo '    while [ $n -lt 150 ]; do'
        echo '        alive=0'
        echo '        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done'
        echo '        [ $alive = 0 ] && return'
        echo '        sleep 0.1; n=$((n + 1))'
        echo '    done'
        echo '    kill -9 "$@" 2>/dev/null || true'
        echo '}'
        echo "stop$(for ((i = ${#PIDS[@]} - 1; i >= 1; i--)); do printf ' %s' "${PIDS[$i]}"; done)"
        echo "stop ${PIDS[0]} # ${NAMES[0]}"
        echo "echo 'stopped: ${NAMES[*]}'"
    } >"$DIR/stop.sh"
    chmod +x "$DIR/stop.sh"
    cat <<EOF

The cluster is still running (--keep). Everything is in $DIR:
  redis:     REDISCLI_AUTH=$REDIS_PW redis-cli -p $REDIS_PORT
             (e.g. LRANGE level1 0 -1, HGETALL ubackup:state:node1, KEYS '*')
  configs:   $DIR/host1/client.conf  $DIR/host2/client.conf
             $DIR/node1/server.conf  $DIR/node2/server.conf  $DIR/indexer/indexer.conf
  logs:      $DIR/node1/server.log  $DIR/node2/server.log  $DIR/indexer/indexer.log  $DIR/host*/log/
  catalog:   $DIR/indexer/catalog.db   (sqlite3 -readonly …)
Try:
  $BIN/ubackup-client -c $DIR/host1/client.conf                   # another backup run
  $BIN/ubackup-client -c $DIR/host1/client.conf list --all
  $BIN/ubackup-client -c $DIR/host1/client.conf restore --type redis --instance 6379 --dest $DIR/restore/redis6379
  $BIN/ubackup-reporter status -c $DIR/indexer/indexer.conf
  $BIN/ubackup-reporter alerts -c $DIR/indexer/indexer.conf
  $BIN/ubackup-reporter serve -c $DIR/indexer/indexer.conf --listen 127.0.0.1:9187   # web pages, /metrics
  REDISCLI_AUTH=$REDIS_PW redis-cli -p $REDIS_PORT HSET ubackup:control:node1 paused 1   # pause node1
Stop it:  $DIR/stop.sh && rm -rf $DIR
EOF
fi
