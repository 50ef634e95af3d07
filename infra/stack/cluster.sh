# shellcheck shell=bash
# The opt-in multi-server cluster, sourced by infra/stack.sh, beside the plain stack (which stays
# as it is, and is never touched by these commands):
#   - Kafka: three KRaft nodes (broker + controller each) on 127.0.0.1:19201-19203, controllers on
#     19204-19206; replication factor 3, min ISR 2 (cluster-kafka.sh);
#   - PostgreSQL: one server per shard on 19210-19212 and one for the views database and the
#     cluster registry's storage on 19213, each a cluster of its own (cluster-pg.sh);
#   - Apicurio Registry: its own instance on 19221 (management 19222), storage in pg-views.
# State under .local/cluster (the PostgreSQL servers' data outside the checkout: postgres.sh); the
# TALLY_* settings a client needs in .local/cluster.env.
#
#   bash infra/stack.sh up-cluster | down-cluster | status-cluster
#   bash infra/stack.sh cluster-start <part> | cluster-stop <part> [kill|immediate]
#     part: kafka-1..3, pg-shard-0..2, pg-views, registry
#     kill: SIGKILL a Kafka node; immediate: pg_ctl stop -m immediate (a crash: WAL recovery)

CLUSTER_HOME="$LOCAL/cluster"
CLUSTER_ENV="$LOCAL/cluster.env"
CLUSTER_NODES_COUNT=3
CLUSTER_MIN_ISR=2
CLUSTER_KAFKA_BASE_PORT=19200      # + node id 1..3
CLUSTER_CONTROLLER_BASE_PORT=19203 # + node id 1..3
CLUSTER_SHARDS_COUNT=3
# The PostgreSQL ports may be moved (a test starts one server from another checkout beside a
# running cluster).
CLUSTER_PG_BASE_PORT=${CLUSTER_PG_BASE_PORT:-19210} # + shard 0..2
CLUSTER_PG_VIEWS_PORT=${CLUSTER_PG_VIEWS_PORT:-19213}
CLUSTER_REGISTRY_PORT=19221
CLUSTER_REGISTRY_MANAGEMENT_PORT=19222
CLUSTER_PARTITIONS=6 # two partitions per shard
CLUSTER_CCOMPAT_URL="http://$HOST:$CLUSTER_REGISTRY_PORT/apis/ccompat/v7"

# shellcheck source=infra/stack/cluster-pg.sh
source "$STACK_DIR/cluster-pg.sh"
# shellcheck source=infra/stack/cluster-kafka.sh
source "$STACK_DIR/cluster-kafka.sh"

# The command-line marker of each cluster process (see our_pid in lib.sh).
cluster_marker_of() {
  case $1 in
    cluster-kafka-*) cluster_kafka_props "${1#cluster-kafka-}" ;;
    cluster-pg-*) cluster_pg_data "${1#cluster-}" ;;
    cluster-registry) echo "-Dtally.component=cluster-registry" ;;
  esac
}

# --- registry --------------------------------------------------------------------------------

cluster_registry_answers() {
  curl -fsS -o /dev/null --max-time 3 "http://$HOST:$CLUSTER_REGISTRY_MANAGEMENT_PORT/health/ready" 2>/dev/null &&
    curl -fsS -o /dev/null --max-time 3 "$CLUSTER_CCOMPAT_URL/subjects" 2>/dev/null
}

start_cluster_registry() {
  local component=cluster-registry pid java since started=$SECONDS
  if pid=$(our_pid "$component"); then
    say "$component" "already running  $CLUSTER_CCOMPAT_URL (pid $pid)"
    return 0
  fi
  ensure_port_free "$component" "$CLUSTER_REGISTRY_PORT"
  ensure_port_free "$component" "$CLUSTER_REGISTRY_MANAGEMENT_PORT"
  if our_pid "$component" >/dev/null; then return 0; fi # adopted
  cluster_pg_answers pg-views ||
    fail_component "$component" "its PostgreSQL (pg-views, $HOST:$CLUSTER_PG_VIEWS_PORT) does not answer (run: bash infra/stack.sh cluster-start pg-views)"
  java=$(find_java 21 "${TALLY_JAVA21_HOME:-}") ||
    die "Apicurio Registry $APICURIO_VERSION needs Java >= 21 and none was found (see infra/stack/registry.sh)"
  fetch_apicurio
  ensure_registry_db "$CLUSTER_PG_VIEWS_PORT"
  touch "$(log_of "$component")"
  rotate_log "$(log_of "$component")"
  since=$(($(stat -c %s "$(log_of "$component")") + 1))
  launch_apicurio "$component" "$CLUSTER_REGISTRY_PORT" "$CLUSTER_REGISTRY_MANAGEMENT_PORT" \
    "$CLUSTER_PG_VIEWS_PORT" "$java"
  wait_ready "$component" "$LAUNCHED_PID" "$REGISTRY_READY_TIMEOUT_S" cluster_registry_answers
  check_registry_storage "$since" "$component"
  say "$component" "started  $CLUSTER_CCOMPAT_URL (pid $LAUNCHED_PID, storage pg-views, ready in $((SECONDS - started))s)"
}

# --- the whole cluster -------------------------------------------------------------------------

cluster_node_ids() { seq 1 "$CLUSTER_NODES_COUNT"; }

write_cluster_env() {
  local k shards=""
  for ((k = 0; k < CLUSTER_SHARDS_COUNT; k++)); do
    shards+="${shards:+,}postgres://postgres@$HOST:$(cluster_pg_port "pg-shard-$k")/tally_shard_$k"
  done
  cat >"$CLUSTER_ENV.tmp" <<EOF
TALLY_KAFKA_BROKERS=$(cluster_kafka_brokers)
TALLY_REPLICATION_FACTOR=$CLUSTER_NODES_COUNT
TALLY_PARTITIONS=$CLUSTER_PARTITIONS
TALLY_SCHEMA_REGISTRY_URL=$CLUSTER_CCOMPAT_URL
TALLY_PG_SHARDS=$shards
TALLY_PG_VIEWS=postgres://postgres@$HOST:$CLUSTER_PG_VIEWS_PORT/tally_views
EOF
  mv -f "$CLUSTER_ENV.tmp" "$CLUSTER_ENV"
}

cmd_up_cluster() {
  local name
  while read -r name; do start_cluster_pg "$name"; done < <(cluster_pg_names)
  # shellcheck disable=SC2046 # node ids, one word each
  start_cluster_kafka $(cluster_node_ids)
  start_cluster_registry
  write_cluster_env
  say cluster "up; settings in ${CLUSTER_ENV#"$ROOT/"} (set -a; source ${CLUSTER_ENV#"$ROOT/"}; set +a)"
}

cmd_down_cluster() {
  local n name pid
  local -A pids=()
  if our_pid cluster-registry >/dev/null; then stop_component cluster-registry; fi
  # All nodes are told at once: stopped one by one, the last would wait for a controller quorum
  # that is already gone, and need SIGKILL after STOP_TIMEOUT_S.
  for n in $(cluster_node_ids); do
    if pid=$(our_pid "cluster-kafka-$n"); then
      pids[$n]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    else
      say "cluster-kafka-$n" "not running"
    fi
  done
  for n in "${!pids[@]}"; do
    stop_pid "cluster-kafka-$n" "${pids[$n]}" TERM
    rm -f "$(pid_file_of "cluster-kafka-$n")"
    say "cluster-kafka-$n" "stopped (pid ${pids[$n]})"
  done
  while read -r name; do stop_cluster_pg "$name"; done < <(cluster_pg_names)
}

cmd_status_cluster() {
  local n name port
  for n in $(cluster_node_ids); do
    CLUSTER_CHECK_PORT=$(cluster_kafka_port "$n")
    status_line "cluster-kafka-$n" "$HOST:$CLUSTER_CHECK_PORT" cluster_kafka_node_answers
  done
  while read -r name; do
    port=$(cluster_pg_port "$name")
    CLUSTER_CHECK_PORT=$port
    status_line "cluster-$name" "$HOST:$port" cluster_pg_check_port
  done < <(cluster_pg_names)
  status_line cluster-registry "$CLUSTER_CCOMPAT_URL" cluster_registry_answers
}
cluster_pg_check_port() { pg_answers_on "$CLUSTER_CHECK_PORT"; }

# One part of the cluster, for the fault tests: start, or stop (cleanly, or as a crash).
cmd_cluster_part() {
  local verb=$1 part=$2 how=${3:-}
  if [[ $part == kafka-* ]] && ! [[ ${part#kafka-} =~ ^[1-9]$ && ${part#kafka-} -le $CLUSTER_NODES_COUNT ]]; then
    die "no such cluster Kafka node: $part (kafka-1..kafka-$CLUSTER_NODES_COUNT)"
  fi
  if [[ $part == pg-shard-* ]] && ! [[ ${part#pg-shard-} =~ ^[0-9]$ && ${part#pg-shard-} -lt $CLUSTER_SHARDS_COUNT ]]; then
    die "no such cluster shard server: $part (pg-shard-0..pg-shard-$((CLUSTER_SHARDS_COUNT - 1)))"
  fi
  case "$verb:$part:$how" in
    start:kafka-[1-9]:) start_cluster_kafka "${part#kafka-}" ;;
    stop:kafka-[1-9]:) stop_cluster_kafka "${part#kafka-}" TERM ;;
    stop:kafka-[1-9]:kill) stop_cluster_kafka "${part#kafka-}" KILL ;;
    start:pg-shard-*: | start:pg-views:) start_cluster_pg "$part" ;;
    stop:pg-shard-*: | stop:pg-views:) stop_cluster_pg "$part" fast ;;
    stop:pg-shard-*:immediate | stop:pg-views:immediate) stop_cluster_pg "$part" immediate ;;
    start:registry:) start_cluster_registry ;;
    stop:registry:) stop_component cluster-registry ;;
    *) die "usage: cluster-start <part> | cluster-stop <part> [kill|immediate]; part: kafka-N, pg-shard-N, pg-views, registry (kill is for kafka, immediate for pg); got: $verb $part $how" ;;
  esac
}
