# shellcheck shell=bash
# The plain Kafka of the local stack, sourced by infra/stack.sh: one KRaft node (broker and
# controller) on 127.0.0.1, its jars fetched once with Maven, its properties written on every
# start, its storage formatted once. The secured broker is in kafka-secure.sh.

# A real Kafka round trip, no client needed: an ApiVersions v0 request (api key 18, correlation
# id 1, client id "tally") and the answer's correlation id. An open port alone is not enough:
# the broker binds before it serves.
kafka_answers() { kafka_answers_on "$KAFKA_PORT"; }

kafka_answers_on() {
  # shellcheck disable=SC2016 # $0 and $1 expand in the inner bash
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05tally" >&3
    head -c 8 <&3 | od -An -tx1 | tr -d " \n"
  ' "$HOST" "$1" 2>/dev/null | grep -Eq '^[0-9a-f]{8}00000001$'
}

fetch_kafka_libs() {
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  # Into a fresh folder then renamed: an interrupted download must not look complete.
  rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS.partial"
  maven "Kafka $KAFKA_VERSION jars" -f "$STACK_DIR/kafka-pom.xml" \
    "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIBS.partial"
  mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

# Regenerated on every start, so that changes here apply; the cluster id lives in the data.
write_kafka_properties() {
  cat >"$KAFKA_PROPS" <<EOF
# Written by infra/stack.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
EOF
  single_node_kafka_properties >>"$KAFKA_PROPS"
}

# What every one-node broker of the stack sets, the plain one and the secured one alike.
single_node_kafka_properties() {
  cat <<'EOF'
# Topics are created by 'tally topics' with explicit partition counts, never by accident.
auto.create.topics.enable=false
# One node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start consumer groups often; the default 3 s wait for more members only slows them.
group.initial.rebalance.delay.ms=0
EOF
}

kafka_java_args() {
  echo -Djava.awt.headless=true "-Dlog4j2.configurationFile=$STACK_DIR/kafka-log4j2.properties" \
    "-Dkafka.logs.dir=$LOGS"
}

# KRaft storage is formatted once; formatting again would give the node a new cluster id.
format_kafka_storage() {
  local java=$1 uuid
  [ -f "$KAFKA_DATA/meta.properties" ] && return 0
  echo "stack: formatting Kafka storage in $KAFKA_DATA (once)" >&2
  # shellcheck disable=SC2046 # word splitting of the fixed JVM flags is intended
  uuid=$("$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$(log_of kafka)" | tail -1)
  [ -n "$uuid" ] || fail_component kafka "StorageTool random-uuid printed nothing"
  # shellcheck disable=SC2046
  "$java" $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
    -t "$uuid" -c "$KAFKA_PROPS" --standalone >>"$(log_of kafka)" 2>&1 ||
    fail_component kafka "StorageTool format failed"
}

start_kafka() {
  local pid java started=$SECONDS
  if pid=$(our_pid kafka); then
    wait_ready kafka "$pid" "$KAFKA_READY_TIMEOUT_S" kafka_answers
    say kafka "already running  $HOST:$KAFKA_PORT (pid $pid)"
    return 0
  fi
  ensure_port_free kafka "$KAFKA_PORT"
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"
  if pid=$(our_pid kafka); then start_kafka; return 0; fi # adopted
  java=$(find_java 17) || die "Kafka $KAFKA_VERSION needs a JDK >= 17 (apt-get install openjdk-17-jdk-headless)"
  fetch_kafka_libs
  mkdir -p "$KAFKA_DATA"
  write_kafka_properties
  format_kafka_storage "$java"
  # shellcheck disable=SC2046
  launch kafka "$java" -Xms512m -Xmx512m $(kafka_java_args) -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS"
  wait_ready kafka "$LAUNCHED_PID" "$KAFKA_READY_TIMEOUT_S" kafka_answers
  say kafka "started  $HOST:$KAFKA_PORT (pid $LAUNCHED_PID, ready in $((SECONDS - started))s)"
}
