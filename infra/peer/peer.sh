#!/usr/bin/env bash
# The peer of `make bench-peer`: Kafka Connect 4.3.1 (standalone) with Debezium's JDBC sink and
# Apicurio's Avro converter, what a user would otherwise wire up to land the events in PostgreSQL.
#
#   bash infra/peer/peer.sh fetch                      jars from Maven Central into .local/peer (once)
#   bash infra/peer/peer.sh worker <worker.properties>  exec a standalone worker in the foreground
#
# `tally bench-peer` renders the worker's properties (infra/peer/worker.properties), spawns
# `worker`, and does the bounded waits itself (REST up, connector running, rows landed), since it
# times them. What is verified to work here (versions, converter settings) is in docs/bench (and the team's stack notes).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEER_DIR="$ROOT/infra/peer"
LOCAL="$ROOT/.local"
LOGS="$LOCAL/logs"
PEER_HOME="$LOCAL/peer"
DOWNLOADS="$LOCAL/downloads"
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# Pinned, never ranges; the Kafka and converter versions are in the poms beside this file.
KAFKA_VERSION=4.3.1
DEBEZIUM_VERSION=3.6.0.Final
APICURIO_CONVERTER_VERSION=2.6.13.Final

PEER_LIBS="$PEER_HOME/libs"
PEER_PLUGINS="$PEER_HOME/plugins"
DEBEZIUM_PLUGIN="$PEER_PLUGINS/debezium-connector-jdbc"
CONVERTER_PLUGIN="$PEER_PLUGINS/apicurio-converter"
DEBEZIUM_TARBALL="$DOWNLOADS/debezium-connector-jdbc-$DEBEZIUM_VERSION-plugin.tar.gz"
# What connect-standalone.sh gives a worker unless told otherwise: the peer runs as users run it.
PEER_HEAP_OPTS=${PEER_HEAP_OPTS:-"-Xms256M -Xmx2G"}

# say, die, show_log_tail, find_java and maven (quiet Maven, its log shown on failure).
# shellcheck source=infra/stack/lib.sh
source "$ROOT/infra/stack/lib.sh"
die() { printf 'peer: %s\n' "$*" >&2; exit 1; }

# One file per part that only exists once the part is complete (each lands in a .partial folder
# that is renamed at the end: an interrupted download never looks complete).
worker_jar() { echo "$PEER_LIBS/connect-runtime-$KAFKA_VERSION.jar"; }
debezium_jar() { echo "$DEBEZIUM_PLUGIN/debezium-connector-jdbc-$DEBEZIUM_VERSION.jar"; }
converter_jar() { echo "$CONVERTER_PLUGIN/apicurio-registry-utils-converter-$APICURIO_CONVERTER_VERSION.jar"; }

fetch_dependencies() {
  local what=$1 pom=$2 target=$3
  rm -rf "$target" "$target.partial"
  maven "$what" -f "$pom" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$target.partial"
  mv "$target.partial" "$target"
}

fetch_debezium() {
  [ -f "$(debezium_jar)" ] && return 0
  mkdir -p "$DOWNLOADS" "$PEER_PLUGINS"
  if [ ! -s "$DEBEZIUM_TARBALL" ]; then
    maven "Debezium JDBC sink $DEBEZIUM_VERSION (about 60 MB)" "$MAVEN_DEPENDENCY_PLUGIN:copy" \
      -Dartifact="io.debezium:debezium-connector-jdbc:$DEBEZIUM_VERSION:tar.gz:plugin" \
      -DoutputDirectory="$DOWNLOADS"
  fi
  rm -rf "$DEBEZIUM_PLUGIN" "$PEER_PLUGINS/.debezium.partial"
  mkdir -p "$PEER_PLUGINS/.debezium.partial"
  tar -xzf "$DEBEZIUM_TARBALL" -C "$PEER_PLUGINS/.debezium.partial" ||
    die "unpacking $DEBEZIUM_TARBALL failed (remove it to download it again)"
  [ -d "$PEER_PLUGINS/.debezium.partial/debezium-connector-jdbc" ] ||
    die "$DEBEZIUM_TARBALL holds no debezium-connector-jdbc folder"
  mv "$PEER_PLUGINS/.debezium.partial/debezium-connector-jdbc" "$DEBEZIUM_PLUGIN"
  rmdir "$PEER_PLUGINS/.debezium.partial"
}

cmd_fetch() {
  mkdir -p "$LOGS" "$PEER_HOME"
  [ -f "$(worker_jar)" ] ||
    fetch_dependencies "Kafka Connect $KAFKA_VERSION worker jars" "$PEER_DIR/connect-pom.xml" "$PEER_LIBS"
  [ -f "$(converter_jar)" ] ||
    fetch_dependencies "Apicurio converter $APICURIO_CONVERTER_VERSION" "$PEER_DIR/converter-pom.xml" "$CONVERTER_PLUGIN"
  fetch_debezium
  say peer "ready  $(du -sh "$PEER_HOME" | cut -f1) in $PEER_HOME (worker, Debezium JDBC sink, Apicurio converter)"
}

cmd_worker() {
  local properties=${1:-} java part
  if [ -z "$properties" ] || [ ! -f "$properties" ]; then
    die "usage: peer.sh worker <worker.properties> (no such file: '$properties')"
  fi
  for part in "$(worker_jar)" "$(debezium_jar)" "$(converter_jar)"; do
    [ -f "$part" ] || die "$part is missing: run 'bash infra/peer/peer.sh fetch' (make bench-peer does)"
  done
  java=$(find_java 17) || die "Kafka Connect $KAFKA_VERSION needs a JDK >= 17 (apt-get install openjdk-17-jdk-headless)"
  # exec: the caller's child is the JVM itself, so its pid is the one whose memory is measured.
  # shellcheck disable=SC2086 # the heap options are words on purpose
  exec "$java" $PEER_HEAP_OPTS -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$PEER_DIR/connect-log4j2.properties" \
    -cp "$PEER_LIBS/*" org.apache.kafka.connect.cli.ConnectStandalone "$properties"
}

case ${1:-} in
  fetch) cmd_fetch ;;
  worker) cmd_worker "${2:-}" ;;
  *) die "usage: bash infra/peer/peer.sh fetch | worker <worker.properties>" ;;
esac
