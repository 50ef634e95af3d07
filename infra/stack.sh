#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL, Apache Kafka 4.3.1 (one KRaft node) and
# Apicurio Registry 3.3.3, all on 127.0.0.1, all state under <repo>/.local (git-ignored) but the
# data and sockets of the PostgreSQL servers we start (outside the checkout, see postgres.sh).
#
#   bash infra/stack.sh up | down | status
#   bash infra/stack.sh clean   (down, down-cluster, then removes the PostgreSQL servers' data)
#   bash infra/stack.sh start|stop|restart postgres|kafka|registry
#   bash infra/stack.sh up-secure | start|stop|restart kafka-secure
#     (opt-in: a second broker over SASL_SSL + SCRAM on 19094; see infra/stack/kafka-secure.sh)
#   bash infra/stack.sh up-cluster | down-cluster | status-cluster | cluster-start|cluster-stop <part>
#     (opt-in: a 3-node Kafka, a PostgreSQL server per shard and a registry of its own; see
#     infra/stack/cluster.sh)
#
# This file parses the arguments, takes the lock and dispatches; the parts live beside it in
# infra/stack/: lib.sh (helpers), postgres.sh, kafka.sh, registry.sh and kafka-secure.sh.
#
# What was verified to work on these machines (versions, settings, pitfalls) is in
# ../shared/STACK.md; the "local stack" section of ../shared/DESIGN.md says what `make up`
# must provide. Only what this script started is ever stopped, and only by the pid it
# recorded; the system PostgreSQL on 5432 is used, never managed, except by the explicit
# per-component commands the integration tests use (stop/start/restart postgres).
set -euo pipefail

# --- layout and fixed settings ---------------------------------------------------------

# The repository root comes from this file's path: make, tests and humans call it from anywhere.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR="$ROOT/infra/stack"
LOCAL="$ROOT/.local"
LOGS="$LOCAL/logs"
RUN="$LOCAL/run"
DOWNLOADS="$LOCAL/downloads"

# Pinned, never ranges (a range on Kafka resolves to the incompletely published 4.4.0).
KAFKA_VERSION=4.3.1
APICURIO_VERSION=3.3.3
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

HOST=127.0.0.1 # everything binds loopback only
SYSTEM_PG_PORT=5432
LOCAL_PG_PORT=15432
KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
REGISTRY_PORT=18081
REGISTRY_MANAGEMENT_PORT=18082
REGISTRY_DB=tally_registry
CCOMPAT_URL="http://$HOST:$REGISTRY_PORT/apis/ccompat/v7"

# How long each component may take to answer (measured here: Kafka 3-8 s, registry 4-8 s,
# PostgreSQL 1-3 s, on 2 busy cores), and how long a SIGTERM may take before SIGKILL.
PG_READY_TIMEOUT_S=${PG_READY_TIMEOUT_S:-30}
KAFKA_READY_TIMEOUT_S=${KAFKA_READY_TIMEOUT_S:-60}
REGISTRY_READY_TIMEOUT_S=${REGISTRY_READY_TIMEOUT_S:-90}
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-30}
# auto: the server on 5432 if one answers, else a cluster of our own on 15432.
# local: always our own cluster (e.g. to try that path on a machine that has a system server).
TALLY_STACK_PG=${TALLY_STACK_PG:-auto}

# The PostgreSQL servers' folder outside the checkout, as `pg_state_dir` (postgres.sh) finds it.
PG_STATE_RECORD="$RUN/pg-state.dir"
PG_MODE_FILE="$RUN/postgres.mode" # "system" or "local": which server holds the registry's data
PG_SYSTEM_STOPPED_MARK="$RUN/postgres.system-stopped-by-stack"

KAFKA_HOME="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_PROPS="$KAFKA_HOME/server.properties"

APICURIO_HOME="$LOCAL/apicurio/apicurio-registry-app-$APICURIO_VERSION"
APICURIO_TARBALL="$DOWNLOADS/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"

STACK_ENV="$LOCAL/stack.env"

# --- the parts ------------------------------------------------------------------------------

# Helpers (logging, pids, ports, health waits), then one file per component.
# shellcheck source=infra/stack/lib.sh
source "$STACK_DIR/lib.sh"
# shellcheck source=infra/stack/postgres.sh
source "$STACK_DIR/postgres.sh"
PG_STATE=$(pg_state_dir)
PG_HOME=$(local_pg_home)
PG_DATA="$PG_HOME/data"
PG_SOCKET_DIR="$PG_HOME/sock"
# shellcheck source=infra/stack/kafka.sh
source "$STACK_DIR/kafka.sh"
# shellcheck source=infra/stack/registry.sh
source "$STACK_DIR/registry.sh"
# The opt-in secured broker: its settings and functions (uses the helpers above).
# shellcheck source=infra/stack/kafka-secure.sh
source "$STACK_DIR/kafka-secure.sh"
# The opt-in multi-server cluster (its own ports, state and lock; never touches the plain stack).
# shellcheck source=infra/stack/cluster.sh
source "$STACK_DIR/cluster.sh"

# --- the lock -------------------------------------------------------------------------------

# Serialises concurrent runs (two `make` targets at once would race on pid files and ports):
# the script runs itself again under flock(1). With -o the lock's descriptor stays in flock and
# is closed for the script, so the servers started below do not inherit it; an inherited lock
# would outlive the run (seen with pg_ctlcluster: the system postmaster kept it).
# The cluster's commands take a lock of their own: they share no process, port or file with the
# plain stack, so a fault test's restart never waits behind someone's `make up`.
run_locked() {
  local rc=0 lock="$RUN/stack.lock"
  case ${1:-} in *cluster*) lock="$RUN/cluster.lock" ;; esac
  mkdir -p "$LOGS" "$RUN" "$DOWNLOADS"
  TALLY_STACK_LOCKED=1 flock -n -o -E 75 "$lock" bash "${BASH_SOURCE[0]}" "$@" || rc=$?
  if [ "$rc" = 75 ]; then
    echo "stack: another infra/stack.sh is running; waiting for it (up to 300 s)" >&2
    rc=0
    TALLY_STACK_LOCKED=1 flock -w 300 -o -E 75 "$lock" bash "${BASH_SOURCE[0]}" "$@" || rc=$?
    [ "$rc" != 75 ] || die "gave up waiting for the lock $lock"
  fi
  exit "$rc"
}

# --- stopping, status, env file -------------------------------------------------------------

stop_component() {
  local component=$1 pid
  if pid=$(our_pid "$component"); then
    stop_pid "$component" "$pid" TERM
    say "$component" "stopped (pid $pid)"
  else
    say "$component" "not running"
  fi
  rm -f "$(pid_file_of "$component")"
}

# What the TypeScript side needs to find the stack: NAME=value lines, no quotes, no export.
write_stack_env() {
  cat >"$STACK_ENV.tmp" <<EOF
TALLY_LOCAL_PG_PORT=$(pg_port)
TALLY_KAFKA_BROKERS=$HOST:$KAFKA_PORT
TALLY_SCHEMA_REGISTRY_URL=$CCOMPAT_URL
EOF
  mv -f "$STACK_ENV.tmp" "$STACK_ENV"
}

status_line() {
  local component=$1 endpoint=$2 check=$3 pid health
  if pid=$(our_pid "$component"); then
    if "$check"; then health=healthy; else health="NOT answering"; fi
    if [ "$component" = registry ] && [ "$health" != healthy ] && registry_api_answers; then
      health="API answers, /health/ready DOWN (recovers ~10 s after a database outage)"
    fi
    say "$component" "running  pid $pid  $endpoint  $health"
  else
    say "$component" "stopped"
  fi
}

cmd_status() {
  if [ "$(pg_mode)" = system ] && ! our_pid postgres >/dev/null; then
    if pg_answers_on "$SYSTEM_PG_PORT"; then
      say postgres "system   $HOST:$SYSTEM_PG_PORT  healthy"
    else
      say postgres "system   $HOST:$SYSTEM_PG_PORT  NOT answering"
    fi
  else
    status_line postgres "$HOST:$LOCAL_PG_PORT" local_pg_answers
  fi
  status_line kafka "$HOST:$KAFKA_PORT" kafka_answers
  status_line registry "$CCOMPAT_URL" registry_answers
  # Opt-in: listed once it has been made (or while it runs), so a plain stack's status stays as it was.
  if [ -d "$SECURE_KAFKA_HOME" ] || our_pid kafka-secure >/dev/null; then
    status_line kafka-secure "SASL_SSL $HOST:$SECURE_KAFKA_PORT" secure_kafka_answers
  fi
}

cmd_up() {
  ensure_postgres
  start_kafka
  start_registry
  write_stack_env
}

# The plain stack, then the secured broker beside it.
cmd_up_secure() {
  cmd_up
  start_kafka_secure
}

# Reverse order of `up`: the registry needs PostgreSQL until it has stopped.
cmd_down() {
  if our_pid kafka-secure >/dev/null; then stop_component kafka-secure; fi
  stop_component registry
  stop_component kafka
  if our_pid postgres >/dev/null; then
    stop_local_pg
    say postgres "stopped (local cluster; data kept in $PG_DATA)"
  elif [ "$(pg_mode)" = system ]; then
    say postgres "system PostgreSQL on $HOST:$SYSTEM_PG_PORT left alone"
  fi
  rm -f "$(pid_file_of postgres)"
}

# What `make clean` needs beyond removing .local: every server of ours stopped (the cluster's
# too), then the PostgreSQL servers' folder outside the checkout removed.
cmd_clean() {
  bash "${BASH_SOURCE[0]}" down
  bash "${BASH_SOURCE[0]}" down-cluster
  remove_pg_state
}

usage() {
  echo "usage: bash infra/stack.sh up | up-secure | down | status | clean" >&2
  echo "       bash infra/stack.sh start | stop | restart  postgres | kafka | registry | kafka-secure" >&2
  echo "       bash infra/stack.sh up-cluster | down-cluster | status-cluster" >&2
  echo "       bash infra/stack.sh cluster-start | cluster-stop  kafka-1..3 | pg-shard-0..2 | pg-views | registry  [kill | immediate]" >&2
  exit 2
}

main() {
  local cmd=${1:-} component=${2:-}
  case $cmd in
    up | up-secure | down | start | stop | restart | up-cluster | down-cluster | cluster-start | cluster-stop)
      [ -n "${TALLY_STACK_LOCKED:-}" ] || run_locked "$@"
      ;;
  esac
  case $cmd in
    status) cmd_status ;;
    clean) cmd_clean ;;
    up-cluster) cmd_up_cluster ;;
    down-cluster) cmd_down_cluster ;;
    status-cluster) cmd_status_cluster ;;
    cluster-start | cluster-stop)
      [ -n "$component" ] || usage
      cmd_cluster_part "${cmd#cluster-}" "$component" "${3:-}"
      ;;
    up) cmd_up ;;
    up-secure) cmd_up_secure ;;
    down) cmd_down ;;
    start | stop | restart)
      case $component in postgres | kafka | registry | kafka-secure) ;; *) usage ;; esac
      case "$cmd:$component" in
        start:postgres) start_postgres && write_stack_env ;;
        stop:postgres) stop_postgres ;;
        restart:postgres) restart_postgres ;;
        start:kafka) start_kafka ;;
        start:registry) start_registry ;;
        stop:*) stop_component "$component" ;;
        restart:kafka) stop_component kafka && start_kafka ;;
        restart:registry) stop_component registry && start_registry ;;
        start:kafka-secure) start_kafka_secure ;;
        restart:kafka-secure) stop_component kafka-secure && start_kafka_secure ;;
      esac
      ;;
    *) usage ;;
  esac
}

main "$@"
