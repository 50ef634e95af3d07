# shellcheck shell=bash
# The cluster's PostgreSQL servers, sourced by infra/stack.sh (see cluster.sh): one server per shard
# plus one for the views and the cluster's registry, each a cluster of its own made with the
# installed binaries, on its own port. Durability stays on. Their data and sockets are in the
# servers' folder outside the checkout (postgres.sh: <folder>/cluster/pg-<name>), their logs in
# .local/logs; a server an earlier version made under .local/cluster/pg-<name> stays there.

# pg-shard-0 .. pg-shard-(N-1), then pg-views.
cluster_pg_names() {
  local k
  for ((k = 0; k < CLUSTER_SHARDS_COUNT; k++)); do echo "pg-shard-$k"; done
  echo pg-views
}

cluster_pg_port() {
  case $1 in
    pg-views) echo "$CLUSTER_PG_VIEWS_PORT" ;;
    pg-shard-*) echo $((CLUSTER_PG_BASE_PORT + ${1#pg-shard-})) ;;
    *) die "no such cluster PostgreSQL server: $1" ;;
  esac
}

cluster_pg_home() {
  if [ -f "$CLUSTER_HOME/$1/data/PG_VERSION" ]; then echo "$CLUSTER_HOME/$1"; else echo "$PG_STATE/cluster/$1"; fi
}
cluster_pg_data() { echo "$(cluster_pg_home "$1")/data"; }
cluster_pg_socket_dir() { echo "$(cluster_pg_home "$1")/sock"; }

# Small memory settings: five servers share 2 cores. fsync and synchronous_commit stay on.
write_cluster_pg_conf() {
  local name=$1 data
  data=$(cluster_pg_data "$name")
  as_pg_owner tee "$data/tally.conf" >/dev/null <<EOF
# Written by infra/stack.sh (cluster-pg.sh) on every start; edits are lost.
listen_addresses = '$HOST'
port = $(cluster_pg_port "$name")
unix_socket_directories = '$(cluster_pg_socket_dir "$name")'
max_connections = 100
shared_buffers = 64MB
fsync = on
synchronous_commit = on
EOF
}

cluster_pg_answers() { pg_answers_on "$(cluster_pg_port "$1")"; }

start_cluster_pg() {
  local name=$1 component="cluster-$1" bin log data port
  port=$(cluster_pg_port "$name")
  if our_pid "$component" >/dev/null; then
    say "$component" "already running  $HOST:$port (pid $(our_pid "$component"))"
    return 0
  fi
  ensure_port_free "$component" "$port"
  if our_pid "$component" >/dev/null; then return 0; fi # adopted
  bin=$(pg_bin_dir)
  log=$(log_of "$component")
  data=$(cluster_pg_data "$name")
  rotate_log "$log"
  init_pg_data "$component" "$bin" "$data" "$(cluster_pg_socket_dir "$name")"
  write_cluster_pg_conf "$name"
  # pg_ctl -w waits for the server to accept connections; a crashed (immediate) stop recovers here.
  # With no -l it writes to the log we opened here: the servers' user need not reach the checkout.
  as_pg_owner "$bin/pg_ctl" -D "$data" -w -t "$PG_READY_TIMEOUT_S" start >>"$log" 2>&1 ||
    fail_component "$component" "pg_ctl start failed: exited early or not ready within ${PG_READY_TIMEOUT_S}s"
  head -1 "$data/postmaster.pid" >"$(pid_file_of "$component")"
  say "$component" "started  $HOST:$port (pid $(our_pid "$component"), data in $data)"
}

# mode: fast (clients disconnected, clean shutdown) or immediate (no checkpoint: a crash, WAL
# recovery on the next start), the fault the fault tests inject.
stop_cluster_pg() {
  local name=$1 mode=${2:-fast} component="cluster-$1" bin
  if ! our_pid "$component" >/dev/null; then
    say "$component" "not running"
    rm -f "$(pid_file_of "$component")"
    return 0
  fi
  bin=$(pg_bin_dir)
  as_pg_owner "$bin/pg_ctl" -D "$(cluster_pg_data "$name")" -m "$mode" -w -t "$STOP_TIMEOUT_S" stop \
    >>"$(log_of "$component")" 2>&1 || fail_component "$component" "pg_ctl stop -m $mode failed"
  rm -f "$(pid_file_of "$component")"
  say "$component" "stopped ($mode)"
}
