# shellcheck shell=bash
# The cluster's Kafka, sourced by infra/stack.sh (see cluster.sh): three KRaft nodes, each broker
# and controller at once, a static three-voter quorum, on 127.0.0.1 beside the plain stack's
# broker. Internal topics and the default for new topics: replication factor 3, min ISR 2, so
# one node can die without losing an acknowledged record or stopping producers (acks=all).
# The jars are the plain stack's (.local/kafka/libs); state under .local/cluster/kafka-<n>.

cluster_kafka_port() { echo $((CLUSTER_KAFKA_BASE_PORT + $1)); }
cluster_controller_port() { echo $((CLUSTER_CONTROLLER_BASE_PORT + $1)); }
cluster_kafka_home() { echo "$CLUSTER_HOME/kafka-$1"; }
cluster_kafka_props() { echo "$(cluster_kafka_home "$1")/server.properties"; }

cluster_kafka_brokers() {
  local n list=""
  for ((n = 1; n <= CLUSTER_NODES_COUNT; n++)); do list+="${list:+,}$HOST:$(cluster_kafka_port "$n")"; done
  echo "$list"
}

cluster_quorum_voters() {
  local n list=""
  for ((n = 1; n <= CLUSTER_NODES_COUNT; n++)); do list+="${list:+,}$n@$HOST:$(cluster_controller_port "$n")"; done
  echo "$list"
}

write_cluster_kafka_properties() {
  local n=$1 port controller
  port=$(cluster_kafka_port "$n")
  controller=$(cluster_controller_port "$n")
  mkdir -p "$(cluster_kafka_home "$n")/data"
  cat >"$(cluster_kafka_props "$n")" <<EOF
# Written by infra/stack.sh (cluster-kafka.sh) on every start; edits are lost.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(cluster_quorum_voters)
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$controller
advertised.listeners=PLAINTEXT://$HOST:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$(cluster_kafka_home "$n")/data
auto.create.topics.enable=false
default.replication.factor=$CLUSTER_NODES_COUNT
min.insync.replicas=$CLUSTER_MIN_ISR
offsets.topic.replication.factor=$CLUSTER_NODES_COUNT
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$CLUSTER_NODES_COUNT
transaction.state.log.min.isr=$CLUSTER_MIN_ISR
share.coordinator.state.topic.replication.factor=$CLUSTER_NODES_COUNT
share.coordinator.state.topic.min.isr=$CLUSTER_MIN_ISR
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# Two cores for three nodes and the rest of the cluster: few threads each.
num.network.threads=2
num.io.threads=2
background.threads=2
EOF
}

# Every node is formatted once with the same cluster id (kept in cluster.id); a static quorum
# (controller.quorum.voters) needs no --standalone or --initial-controllers.
format_cluster_kafka_storage() {
  local n=$1 java=$2 id_file="$CLUSTER_HOME/kafka-cluster.id" data uuid
  data="$(cluster_kafka_home "$n")/data"
  [ -f "$data/meta.properties" ] && return 0
  if [ ! -s "$id_file" ]; then
    # shellcheck disable=SC2046 # word splitting of the fixed JVM flags is intended
    uuid=$("$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$(log_of "cluster-kafka-$n")" | tail -1)
    [ -n "$uuid" ] || fail_component "cluster-kafka-$n" "StorageTool random-uuid printed nothing"
    echo "$uuid" >"$id_file"
  fi
  echo "stack: formatting cluster Kafka node $n storage in $data (once)" >&2
  # shellcheck disable=SC2046
  "$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
    -t "$(<"$id_file")" -c "$(cluster_kafka_props "$n")" >>"$(log_of "cluster-kafka-$n")" 2>&1 ||
    fail_component "cluster-kafka-$n" "StorageTool format failed"
}

# Launches node n without waiting: a node only serves once a quorum of controllers is up, so
# all nodes are launched before any is waited for. Prints nothing when it already runs.
launch_cluster_kafka() {
  local n=$1 java=$2 component="cluster-kafka-$1"
  if our_pid "$component" >/dev/null; then return 0; fi
  ensure_port_free "$component" "$(cluster_kafka_port "$n")"
  ensure_port_free "$component" "$(cluster_controller_port "$n")"
  if our_pid "$component" >/dev/null; then return 0; fi # adopted
  write_cluster_kafka_properties "$n"
  format_cluster_kafka_storage "$n" "$java"
  # shellcheck disable=SC2046
  launch "$component" "$java" -Xms256m -Xmx512m $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.Kafka \
    "$(cluster_kafka_props "$n")"
}

# wait_ready takes a check without arguments: the port to check is passed through this variable.
CLUSTER_CHECK_PORT=""
cluster_kafka_node_answers() { kafka_answers_on "$CLUSTER_CHECK_PORT"; }

wait_cluster_kafka() {
  local n=$1 started=$2 component="cluster-kafka-$1" pid
  pid=$(our_pid "$component") || fail_component "$component" "not running after launch"
  CLUSTER_CHECK_PORT=$(cluster_kafka_port "$n")
  wait_ready "$component" "$pid" "$KAFKA_READY_TIMEOUT_S" cluster_kafka_node_answers
  say "$component" "running  $HOST:$CLUSTER_CHECK_PORT (pid $pid, ready after $((SECONDS - started))s)"
}

cluster_java() {
  find_java 17 || die "Kafka $KAFKA_VERSION needs a JDK >= 17 (apt-get install openjdk-17-jdk-headless)"
}

# Nodes given (default all): launched together, then each waited for.
start_cluster_kafka() {
  local java n started=$SECONDS
  java=$(cluster_java)
  fetch_kafka_libs
  for n in "$@"; do launch_cluster_kafka "$n" "$java"; done
  for n in "$@"; do wait_cluster_kafka "$n" "$started"; done
}

# signal: TERM (a clean shutdown, leadership handed over) or KILL (a crash, the fault tests').
stop_cluster_kafka() {
  local n=$1 signal=${2:-TERM} component="cluster-kafka-$1" pid
  if pid=$(our_pid "$component"); then
    stop_pid "$component" "$pid" "$signal"
    say "$component" "stopped (SIG$signal, pid $pid)"
  else
    say "$component" "not running"
  fi
  rm -f "$(pid_file_of "$component")"
}
