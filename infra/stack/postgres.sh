# shellcheck shell=bash
# PostgreSQL for the local stack, sourced by infra/stack.sh: the system server on 5432 when one
# answers (used, never managed, except by the explicit per-component commands), else a cluster
# of our own on 15432 (data in the servers' folder below); which one is in use is recorded in
# .local/run/postgres.mode. Also where every server we start keeps its data (the cluster's too).

# --- where the servers we start keep their data -----------------------------------------------

# As root the servers run as user postgres (initdb and postgres refuse root), and that user cannot
# enter a checkout under a folder only root may enter (root's home, a `mktemp -d` folder: mode
# 0700). So their data and sockets live outside the checkout, in a folder of the servers' user:
# /var/tmp/tally-<hash of the checkout path> (Debian never ages /var/tmp out), mode 0700, with the
# checkout's path in its file `checkout`. The folder is recorded in .local/run/pg-state.dir, so
# that status, down and clean find it even after the checkout moved; `stack.sh clean` removes it.
# Logs stay in .local/logs: we open them and the servers write to the descriptor they inherit.
# A server made in the checkout by an earlier version (.local/pg, .local/cluster/pg-*) stays there.

pg_state_default() { echo "/var/tmp/tally-$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)"; }

# The recorded folder, unless it belongs to another checkout that still records it (this one is
# a copy made with its .local); else the default for this checkout's path. Creates nothing.
pg_state_dir() {
  local recorded owner
  if [ -s "$PG_STATE_RECORD" ]; then
    recorded=$(<"$PG_STATE_RECORD")
    owner=$(cat "$recorded/checkout" 2>/dev/null || true)
    if [ -z "$owner" ] || [ "$owner" = "$ROOT" ] ||
      [ "$(cat "$owner/.local/run/pg-state.dir" 2>/dev/null || true)" != "$recorded" ]; then
      echo "$recorded"
      return 0
    fi
  fi
  pg_state_default
}

# The user the servers run as: postgres when we are root, else ourselves.
pg_server_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

# Makes the servers' folder (0700, the servers' user's) and records it. A folder there that is
# not ours (a link, someone else's) is refused, never used or removed: /var/tmp is shared.
ensure_pg_state() {
  local dir=$PG_STATE user owner
  user=$(pg_server_user)
  if [ "$user" = postgres ] && ! id postgres >/dev/null 2>&1; then
    die "running as root, but there is no 'postgres' user to run the PostgreSQL servers"
  fi
  if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    mkdir -m 700 "$dir" 2>/dev/null || [ -d "$dir" ] || die "cannot create $dir for the PostgreSQL servers' data"
    [ "$(id -u)" != 0 ] || chown "$user:" "$dir"
  fi
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then die "$dir is not a folder; remove it, then run this again"; fi
  owner=$(stat -c %U "$dir")
  [ "$owner" = "$user" ] || die "$dir belongs to $owner, not to $user who runs the PostgreSQL servers; remove it, then run this again"
  chmod 700 "$dir"
  [ "$(cat "$dir/checkout" 2>/dev/null || true)" = "$ROOT" ] || printf '%s\n' "$ROOT" >"$dir/checkout"
  mkdir -p "$RUN"
  [ "$(cat "$PG_STATE_RECORD" 2>/dev/null || true)" = "$dir" ] || echo "$dir" >"$PG_STATE_RECORD"
}

# For `clean`: the servers' folder and its record go, once no server runs from it any more.
remove_pg_state() {
  local dir=$PG_STATE pid_file pid
  if [ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %U "$dir")" = "$(pg_server_user)" ]; then
    for pid_file in "$dir"/pg/data/postmaster.pid "$dir"/cluster/*/data/postmaster.pid; do
      [ -s "$pid_file" ] || continue
      pid=$(head -1 "$pid_file")
      if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(cmdline_of "$pid") == *"$(dirname "$pid_file")"* ]]; then
        die "a PostgreSQL server (pid $pid) still runs from $(dirname "$pid_file"); $dir is kept"
      fi
    done
    rm -rf "$dir"
    say postgres "removed the servers' data in $dir"
  fi
  rm -f "$PG_STATE_RECORD"
}

# A folder under the servers' folder, with every folder between, made the servers' user's.
pg_state_subdirs() {
  local dir=$1
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] || return 0
  while [[ $dir == "$PG_STATE"/* ]]; do
    chown postgres: "$dir"
    dir=$(dirname "$dir")
  done
}

# The local stack's own server: .local/pg if an earlier version made it there, else outside.
local_pg_home() {
  if [ -f "$LOCAL/pg/data/PG_VERSION" ]; then echo "$LOCAL/pg"; else echo "$PG_STATE/pg"; fi
}

# --- the local stack's server ------------------------------------------------------------------

pg_answers_on() { pg_isready -h "$HOST" -p "$1" -q -t 2 2>/dev/null; }

pg_mode() { [ -s "$PG_MODE_FILE" ] && cat "$PG_MODE_FILE" || echo none; }

pg_port() { if [ "$(pg_mode)" = local ]; then echo "$LOCAL_PG_PORT"; else echo "$SYSTEM_PG_PORT"; fi; }

# Remembers which server is in use; switching means the registry's schemas (in the other
# server) are no longer seen, which is worth a note.
set_pg_mode() {
  local previous
  previous=$(pg_mode)
  if [ "$previous" != none ] && [ "$previous" != "$1" ]; then
    echo "stack: note: PostgreSQL switches from $previous to $1; the registry's schemas stored in the $previous server are not visible from the $1 one" >&2
  fi
  echo "$1" >"$PG_MODE_FILE"
}

# The newest installed server binaries; installs Debian's package when missing and we may.
pg_bin_dir() {
  local dir
  # shellcheck disable=SC2012 # version-named folders; sort -V needs the list
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin and no server answers on $HOST:$SYSTEM_PG_PORT; install them (sudo apt-get install postgresql) or start a server on $SYSTEM_PG_PORT"
    echo "stack: installing PostgreSQL with apt-get (binaries missing)" >&2
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } >>"$LOGS/downloads.log" 2>&1 ||
      { show_log_tail "$LOGS/downloads.log"; die "apt-get install postgresql failed"; }
    # shellcheck disable=SC2012
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$dir"
}

# initdb and the server refuse to run as root: as root, run them as the postgres user, from /
# (the caller's folder may be one that user cannot enter).
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to own the local cluster"
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Version of the system cluster (Debian's layout /etc/postgresql/<version>/main).
system_pg_version() {
  local conf
  # shellcheck disable=SC2012 # version-named folders; sort -V needs the list
  conf=$(ls -d /etc/postgresql/*/main 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$conf" ] || die "no system cluster under /etc/postgresql/*/main to manage"
  basename "$(dirname "$conf")"
}

# Stop/start/restart of the system server, for tests that need a database restart mid-stream.
system_pg_ctl() {
  local action=$1 version
  version=$(system_pg_version)
  command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found (Debian's postgresql-common)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main "$action" >>"$(log_of postgres)" 2>&1 ||
    fail_component postgres "pg_ctlcluster $version main $action failed"
}

wait_system_pg() {
  local deadline=$((SECONDS + PG_READY_TIMEOUT_S))
  until pg_answers_on "$SYSTEM_PG_PORT"; do
    [ "$SECONDS" -lt "$deadline" ] ||
      fail_component postgres "timeout: system PostgreSQL not answering on $HOST:$SYSTEM_PG_PORT within ${PG_READY_TIMEOUT_S}s"
    sleep 0.3
  done
}

# Makes the cluster once. fsync and synchronous_commit stay on: benchmarks quote durable numbers.
init_local_pg() {
  init_pg_data postgres "$1" "$PG_DATA" "$PG_SOCKET_DIR"
}

# initdb into a data folder once (also the cluster's servers, cluster-pg.sh), owned by the server's
# user; our settings live in a file of their own, tally.conf, rewritten on every start. A folder
# under the servers' folder (not one an earlier version made in the checkout) is made there first.
init_pg_data() {
  local component=$1 bin=$2 data=$3 sock=$4
  if [[ $data == "$PG_STATE"/* ]]; then
    ensure_pg_state
    pg_state_subdirs "$(dirname "$data")"
  fi
  mkdir -p "$sock"
  [ "$(id -u)" != 0 ] || chown postgres: "$sock"
  [ -f "$data/PG_VERSION" ] && return 0
  echo "stack: creating a PostgreSQL cluster for $component in $data (once)" >&2
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" != 0 ] || chown postgres: "$data"
  chmod 700 "$data"
  as_pg_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale \
    >>"$(log_of "$component")" 2>&1 || fail_component "$component" "initdb failed"
  echo "include_if_exists = 'tally.conf'" >>"$data/postgresql.conf"
}

write_pg_conf() {
  as_pg_owner tee "$PG_DATA/tally.conf" >/dev/null <<EOF
# Written by infra/stack.sh on every start; edits are lost.
listen_addresses = '$HOST'
port = $LOCAL_PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
fsync = on
synchronous_commit = on
EOF
}

start_local_pg() {
  local bin pid log
  bin=$(pg_bin_dir)
  log=$(log_of postgres)
  ensure_port_free postgres "$LOCAL_PG_PORT"
  if pid=$(our_pid postgres); then return 0; fi # adopted by ensure_port_free
  init_local_pg "$bin"
  write_pg_conf
  rotate_log "$log"
  # pg_ctl -w waits for the server to accept connections; the postmaster detaches by itself. With
  # no -l it writes to the log we opened here: the servers' user need not reach the checkout.
  as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -w -t "$PG_READY_TIMEOUT_S" start >>"$log" 2>&1 ||
    fail_component postgres "pg_ctl start failed: exited early or not ready within ${PG_READY_TIMEOUT_S}s"
  head -1 "$PG_DATA/postmaster.pid" >"$(pid_file_of postgres)"
}

stop_local_pg() {
  local pid
  if pid=$(our_pid postgres); then
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
    stop_pid postgres "$pid" INT
  fi
  rm -f "$(pid_file_of postgres)"
}

# For `up` and `start postgres`: keeps a running cluster of ours, else uses the system server
# if one answers (or was stopped by us), else starts our own.
ensure_postgres() {
  local pid
  if pid=$(our_pid postgres); then
    set_pg_mode local
    wait_ready postgres "$pid" "$PG_READY_TIMEOUT_S" local_pg_answers
    say postgres "already running  $HOST:$LOCAL_PG_PORT (pid $pid)"
    return 0
  fi
  if [ "$TALLY_STACK_PG" != local ]; then
    if pg_answers_on "$SYSTEM_PG_PORT"; then
      set_pg_mode system
      rm -f "$PG_SYSTEM_STOPPED_MARK"
      say postgres "using system PostgreSQL on $HOST:$SYSTEM_PG_PORT"
      return 0
    fi
    if [ -e "$PG_SYSTEM_STOPPED_MARK" ]; then
      # `stop postgres` stopped it (a test); bring it back rather than switch servers.
      system_pg_ctl start
      wait_system_pg
      rm -f "$PG_SYSTEM_STOPPED_MARK"
      set_pg_mode system
      say postgres "started system PostgreSQL on $HOST:$SYSTEM_PG_PORT (stopped earlier by stack.sh)"
      return 0
    fi
    [ "$TALLY_STACK_PG" != system ] || die "TALLY_STACK_PG=system but nothing answers on $HOST:$SYSTEM_PG_PORT"
  fi
  start_local_pg
  set_pg_mode local
  say postgres "started  $HOST:$LOCAL_PG_PORT (pid $(our_pid postgres), data in $PG_DATA)"
}

local_pg_answers() { pg_answers_on "$LOCAL_PG_PORT"; }

# The per-component commands act on the server recorded by `up` (a restart must not switch
# servers: the registry's data and the tests' connections point at that one).
start_postgres() {
  case $(pg_mode) in
    local)
      if our_pid postgres >/dev/null; then
        say postgres "already running  $HOST:$LOCAL_PG_PORT (pid $(our_pid postgres))"
      else
        start_local_pg
        say postgres "started  $HOST:$LOCAL_PG_PORT (pid $(our_pid postgres))"
      fi
      ;;
    system)
      if pg_answers_on "$SYSTEM_PG_PORT"; then
        say postgres "system PostgreSQL already answers on $HOST:$SYSTEM_PG_PORT"
      else
        system_pg_ctl start
        wait_system_pg
        say postgres "started system PostgreSQL on $HOST:$SYSTEM_PG_PORT"
      fi
      rm -f "$PG_SYSTEM_STOPPED_MARK"
      ;;
    *) ensure_postgres ;;
  esac
}

stop_postgres() {
  case $(pg_mode) in
    system)
      system_pg_ctl stop
      touch "$PG_SYSTEM_STOPPED_MARK" # so that `up` starts it again instead of making a cluster
      say postgres "stopped system PostgreSQL on $HOST:$SYSTEM_PG_PORT"
      ;;
    *)
      stop_local_pg
      say postgres "stopped"
      ;;
  esac
}

restart_postgres() {
  local started=$SECONDS
  case $(pg_mode) in
    system)
      system_pg_ctl restart # pg_ctlcluster's default mode is fast: clients are disconnected
      wait_system_pg
      rm -f "$PG_SYSTEM_STOPPED_MARK"
      say postgres "restarted system PostgreSQL on $HOST:$SYSTEM_PG_PORT in $((SECONDS - started))s"
      ;;
    *)
      stop_local_pg
      start_local_pg
      say postgres "restarted  $HOST:$LOCAL_PG_PORT (pid $(our_pid postgres)) in $((SECONDS - started))s"
      ;;
  esac
}
