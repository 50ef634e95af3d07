#!/usr/bin/env bash
# Entrypoint of the locally built Kafka image: the Apache image's convention, so that the same
# container settings work with either. Every KAFKA_<NAME> variable becomes a server property
# (lower case, "_" -> ".", "__" -> "_", "___" -> "-"), except the JVM ones; CLUSTER_ID formats
# the storage on the first start (a restarted container keeps its data and cluster id).
set -euo pipefail

PROPS=/var/lib/kafka/server.properties
DATA=/var/lib/kafka/data
JVM_VARIABLES=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS "

property_name() {
  local name=${1#KAFKA_}
  name=${name,,}
  name=${name//___/-}
  name=${name//__/@}
  name=${name//_/.}
  echo "${name//@/_}"
}

write_properties() {
  local variable
  {
    echo "# Written by kafka-run.sh from KAFKA_* variables on every start."
    echo "log.dirs=$DATA"
    while IFS= read -r variable; do
      [[ $JVM_VARIABLES == *" $variable "* ]] && continue
      echo "$(property_name "$variable")=${!variable}"
    done < <(compgen -e | grep '^KAFKA_' || true)
  } >"$PROPS"
}

java_args=(-Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties)
# shellcheck disable=SC2206 # the JVM option variables are word lists by convention
java_args+=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-})

write_properties
mkdir -p "$DATA"
if [ ! -f "$DATA/meta.properties" ]; then
  [ -n "${CLUSTER_ID:-}" ] || { echo "kafka-run: CLUSTER_ID is needed to format the storage" >&2; exit 2; }
  java "${java_args[@]}" -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$PROPS" --ignore-formatted
fi
exec java "${java_args[@]}" -cp '/opt/kafka/libs/*' kafka.Kafka "$PROPS"
