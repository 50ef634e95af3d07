#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL, Apache Kafka 4.3.1 (one KRaft node) and
# Apicurio Registry 3.3.3, all on 127.0.0.1, all state under <repo>/.local (git-ignored).
#
#   bash infra/stack.sh up | down | status
#   bash infra/stack.sh start|stop|restart postgres|kafka|registry
#   bash infra/stack.sh up-secure | start|stop|restart kafka-secure
#     (opt-in: a second broker over SASL_SSL + SCRAM on 19094; see infra/stack/kafka-secure.sh)
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

PG_HOME="$LOCAL/pg"
PG_DATA="$PG_HOME/data"
PG_SOCKET_DIR="$PG_HOME/sock"
PG_MODE_FILE="$RUN/postgres.mode" # "system" or "local": which server holds the registry's data
PG_SYSTEM_STOPPED_MARK="$RUN/postgres.system-stopped-by-stack"

KAFKA_HOME="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_PROPS="$KAFKA_HOME/server.properties"

APICURIO_HOME="$LOCAL/apicurio/apicurio-registry-app-$APICURIO_VERSION"
APICURIO_TARBALL="$DOWNLOADS/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"

STACK_ENV="$LOCAL/stack.env"

# --- small helpers ------------------------------------------------------------------------

say() { printf '%-9s %s\n' "$1" "$2"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

log_of() { echo "$LOGS/$1.log"; }
pid_file_of() { echo "$RUN/$1.pid"; }

# Prints the last lines of a log, indented, to stderr: the first thing anyone asks for.
show_log_tail() {
  local log=$1
  echo "stack: log: $log (last 20 lines):" >&2
  if [ -s "$log" ]; then tail -n 20 "$log" | sed 's/^/  | /' >&2; else echo "  | (empty)" >&2; fi
}

# A failed start names the component, the reason and the log, then stops `up` (non-zero).
fail_component() {
  local component=$1 reason=$2
  echo "stack: $component failed: $reason" >&2
  show_log_tail "$(log_of "$component")"
  exit 1
}

# True while pid is a live process. A child of ours that exited stays a zombie until reaped,
# and kill -0 still succeeds on zombies, hence the state check.
alive() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# The string that must appear in a process's command line for it to count as our component:
# a pid file can outlive its process and the pid can be reused by something else.
marker_of() {
  case $1 in
    postgres) echo "$PG_DATA" ;;
    kafka) echo "$KAFKA_PROPS" ;;
    registry) echo "$APICURIO_HOME" ;;
    kafka-secure) echo "$SECURE_KAFKA_PROPS" ;;
  esac
}

# Prints the pid if the component's pid file names a live process of ours; else fails.
our_pid() {
  local component=$1 file pid
  file=$(pid_file_of "$component")
  [ -s "$file" ] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ $(cmdline_of "$pid") == *"$(marker_of "$component")"* ]] || return 1
  echo "$pid"
}

# Prints "pid X / cmd Y" of whatever listens on a TCP port; fails if nothing does.
port_owner() {
  local port=$1 line pid
  line=$(ss -ltnpH "sport = :$port" 2>/dev/null | head -1)
  [ -n "$line" ] || return 1
  pid=$(grep -o 'pid=[0-9]*' <<<"$line" | head -1 | cut -d= -f2 || true)
  if [ -n "$pid" ]; then
    echo "pid $pid / cmd $(cmdline_of "$pid" | cut -c1-160)"
  else
    echo "pid unknown (run as root or use 'ss -ltnp' to see it)"
  fi
}

# A port held by something that is not ours is reported, never fought over. If the holder is
# our own component whose pid file got lost, it is adopted instead of reported.
ensure_port_free() {
  local component=$1 port=$2 owner pid
  owner=$(port_owner "$port") || return 0
  pid=$(grep -o '^pid [0-9]*' <<<"$owner" | cut -d' ' -f2 || true)
  if [ -n "$pid" ] && [[ $(cmdline_of "$pid") == *"$(marker_of "$component")"* ]]; then
    echo "$pid" >"$(pid_file_of "$component")"
    return 0
  fi
  echo "stack: $component cannot start: port $port is taken by another process ($owner);" \
    "stop it or free port $port, then run this again" >&2
  exit 1
}

# Keeps each component's log from growing without bound: one previous generation is kept.
rotate_log() {
  local log=$1
  if [ -f "$log" ] && [ "$(stat -c %s "$log")" -gt $((50 * 1024 * 1024)) ]; then
    mv -f "$log" "$log.1"
  fi
}

# Starts a long-running command in the background, detached from our session (setsid) so that
# Ctrl-C on `make` or a closing terminal does not take the stack down with it. Sets LAUNCHED_PID.
launch() {
  local component=$1 log
  shift
  log=$(log_of "$component")
  rotate_log "$log"
  printf '\n===== %s stack.sh: starting %s =====\n' "$(date -Is)" "$component" >>"$log"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  LAUNCHED_PID=$!
  echo "$LAUNCHED_PID" >"$(pid_file_of "$component")"
}

# Waits until `check` succeeds, at most timeout seconds. Fails the component if the process
# exits first (with its exit code when it is our child) or the time runs out (then it is
# stopped, so that a half-started process does not hold the ports for the next attempt).
wait_ready() {
  local component=$1 pid=$2 timeout=$3 check=$4 deadline code
  deadline=$((SECONDS + timeout))
  while :; do
    if "$check"; then return 0; fi
    if ! alive "$pid"; then
      code=0
      wait "$pid" 2>/dev/null || code=$?
      rm -f "$(pid_file_of "$component")"
      if [ "$code" = 127 ]; then
        fail_component "$component" "process $pid exited before it was ready"
      fi
      fail_component "$component" "process $pid exited with code $code before it was ready"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      stop_pid "$component" "$pid" TERM >&2
      rm -f "$(pid_file_of "$component")"
      fail_component "$component" "timeout: not ready within ${timeout}s (it was stopped again)"
    fi
    sleep 0.5
  done
}

# Sends a signal and waits for the process to go, then SIGKILL with a message.
stop_pid() {
  local component=$1 pid=$2 signal=$3 deadline
  kill -"$signal" "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "stack: $component (pid $pid) still running ${STOP_TIMEOUT_S}s after SIG$signal; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true # reap it if it was our child
}

# Serialises concurrent runs (two `make` targets at once would race on pid files and ports):
# the script runs itself again under flock(1). With -o the lock's descriptor stays in flock and
# is closed for the script, so the servers started below do not inherit it; an inherited lock
# would outlive the run (seen with pg_ctlcluster: the system postmaster kept it).
run_locked() {
  local rc=0
  mkdir -p "$LOGS" "$RUN" "$DOWNLOADS"
  TALLY_STACK_LOCKED=1 flock -n -o -E 75 "$RUN/stack.lock" bash "${BASH_SOURCE[0]}" "$@" || rc=$?
  if [ "$rc" = 75 ]; then
    echo "stack: another infra/stack.sh is running; waiting for it (up to 300 s)" >&2
    rc=0
    TALLY_STACK_LOCKED=1 flock -w 300 -o -E 75 "$RUN/stack.lock" bash "${BASH_SOURCE[0]}" "$@" || rc=$?
    [ "$rc" != 75 ] || die "gave up waiting for the lock $RUN/stack.lock"
  fi
  exit "$rc"
}

# Major version of a java binary: "1.8.0_x" -> 8, "17.0.15" -> 17, "25" -> 25.
java_major() {
  local version
  version=$("$1" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}') || return 1
  [ -n "$version" ] || return 1
  version=${version#1.}
  echo "${version%%[.+-]*}"
}

# Prints the first java whose major version is >= min among: an explicit home, JAVA_HOME,
# the java on PATH, every JDK in Debian's JVM folder.
find_java() {
  local min=$1 explicit_home=${2:-} candidate major
  for candidate in ${explicit_home:+"$explicit_home/bin/java"} ${JAVA_HOME:+"$JAVA_HOME/bin/java"} \
    "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    major=$(java_major "$candidate" 2>/dev/null) || continue
    if [[ $major =~ ^[0-9]+$ ]] && [ "$major" -ge "$min" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Runs Maven quietly from .local (no project there: plugin goals that need none), its output in
# a log that is shown only when it fails.
maven() {
  local what=$1 log="$LOGS/downloads.log"
  shift
  command -v mvn >/dev/null || die "Maven is needed to fetch $what from Maven Central (apt-get install maven)"
  echo "stack: fetching $what from Maven Central (once)" >&2
  if ! (cd "$LOCAL" && mvn -B -q -Dstyle.color=never "$@") >>"$log" 2>&1; then
    echo "stack: fetching $what failed" >&2
    show_log_tail "$log"
    exit 1
  fi
}

# --- PostgreSQL ---------------------------------------------------------------------------

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
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin and no server answers on $HOST:$SYSTEM_PG_PORT; install them (sudo apt-get install postgresql) or start a server on $SYSTEM_PG_PORT"
    echo "stack: installing PostgreSQL with apt-get (binaries missing)" >&2
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } >>"$LOGS/downloads.log" 2>&1 ||
      { show_log_tail "$LOGS/downloads.log"; die "apt-get install postgresql failed"; }
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$dir"
}

# initdb and the server refuse to run as root: as root, run them as the postgres user.
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to own the local cluster"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Version of the system cluster (Debian's layout /etc/postgresql/<version>/main).
system_pg_version() {
  local conf
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
  local bin=$1
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  echo "stack: creating a PostgreSQL cluster in $PG_DATA (once)" >&2
  mkdir -p "$PG_HOME"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA" "$PG_SOCKET_DIR"
  [ "$(id -u)" != 0 ] || chown postgres: "$PG_DATA" "$PG_SOCKET_DIR"
  chmod 700 "$PG_DATA"
  as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-locale \
    >>"$(log_of postgres)" 2>&1 || fail_component postgres "initdb failed"
  # Our settings live in a file of their own, rewritten on every start (see write_pg_conf).
  echo "include_if_exists = 'tally.conf'" >>"$PG_DATA/postgresql.conf"
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
  touch "$log"
  [ "$(id -u)" != 0 ] || chown postgres: "$log" "$PG_SOCKET_DIR"
  # pg_ctl -w waits for the server to accept connections; the postmaster detaches by itself.
  as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$log" -w -t "$PG_READY_TIMEOUT_S" start >/dev/null ||
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
  say postgres "started  $HOST:$LOCAL_PG_PORT (pid $(our_pid postgres), data in .local/pg)"
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

# --- Kafka --------------------------------------------------------------------------------

# A real Kafka round trip, no client needed: an ApiVersions v0 request (api key 18, correlation
# id 1, client id "tally") and the answer's correlation id. An open port alone is not enough:
# the broker binds before it serves.
kafka_answers() {
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05tally" >&3
    head -c 8 <&3 | od -An -tx1 | tr -d " \n"
  ' "$HOST" "$KAFKA_PORT" 2>/dev/null | grep -Eq '^[0-9a-f]{8}00000001$'
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

# --- Apicurio Registry --------------------------------------------------------------------

registry_healthy() {
  curl -fsS -o /dev/null --max-time 3 "http://$HOST:$REGISTRY_MANAGEMENT_PORT/health/ready" 2>/dev/null
}
registry_api_answers() { curl -fsS -o /dev/null --max-time 3 "$CCOMPAT_URL/subjects" 2>/dev/null; }
registry_answers() { registry_healthy && registry_api_answers; }

# The distribution is a Quarkus "fast-jar" folder; quarkus-run.jar sits at its top level.
registry_jar() { echo "$APICURIO_HOME/quarkus-run.jar"; }

fetch_apicurio() {
  [ -f "$(registry_jar)" ] && return 0
  if [ ! -s "$APICURIO_TARBALL" ]; then
    maven "Apicurio Registry $APICURIO_VERSION (about 160 MB)" \
      "$MAVEN_DEPENDENCY_PLUGIN:copy" \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$DOWNLOADS"
  fi
  rm -rf "$APICURIO_HOME" "$APICURIO_HOME.partial"
  mkdir -p "$APICURIO_HOME.partial"
  tar -xzf "$APICURIO_TARBALL" -C "$APICURIO_HOME.partial" ||
    die "cannot unpack $APICURIO_TARBALL (delete it to download it again)"
  [ -f "$APICURIO_HOME.partial/quarkus-run.jar" ] || die "$APICURIO_TARBALL holds no quarkus-run.jar"
  mv "$APICURIO_HOME.partial" "$APICURIO_HOME"
}

# Apicurio does not create its database, only its tables.
ensure_registry_db() {
  local port=$1 exists
  exists=$(psql -h "$HOST" -p "$port" -U postgres -d postgres -XAtqc \
    "select 1 from pg_database where datname = '$REGISTRY_DB'") ||
    fail_component registry "cannot query PostgreSQL on $HOST:$port as user postgres"
  [ "$exists" = 1 ] || createdb -h "$HOST" -p "$port" -U postgres "$REGISTRY_DB" ||
    fail_component registry "createdb $REGISTRY_DB on $HOST:$port failed"
}

# Without the storage variables Apicurio keeps everything in memory (an H2 database, which it
# also calls "SQL storage"), so schema ids would be lost on every restart: the log of this start
# must name PostgreSQL as the SQL storage (3.3.3 logs "Using postgresql SQL storage.").
check_registry_storage() {
  local since=$1 log line
  log=$(log_of registry)
  line=$(tail -c +"$since" "$log" | grep -Eo 'Using [a-z0-9]+ SQL storage' | head -1 || true)
  if [ "$line" != "Using postgresql SQL storage" ]; then
    fail_component registry "its log does not show PostgreSQL storage (found: '${line:-no storage line}'); in-memory storage would lose schema ids on restart"
  fi
}

start_registry() {
  local pid java port since started=$SECONDS
  if pid=$(our_pid registry); then
    # Its readiness check stays DOWN for a while after a database outage although the API
    # serves again (error counters): a running registry only has to answer its API here.
    wait_ready registry "$pid" "$REGISTRY_READY_TIMEOUT_S" registry_api_answers
    say registry "already running  $CCOMPAT_URL (pid $pid)"
    return 0
  fi
  ensure_port_free registry "$REGISTRY_PORT"
  ensure_port_free registry "$REGISTRY_MANAGEMENT_PORT"
  if pid=$(our_pid registry); then start_registry; return 0; fi # adopted
  port=$(pg_port)
  pg_answers_on "$port" ||
    fail_component registry "PostgreSQL does not answer on $HOST:$port (run: bash infra/stack.sh start postgres)"
  java=$(find_java 21 "${TALLY_JAVA21_HOME:-}") ||
    die "Apicurio Registry $APICURIO_VERSION needs Java >= 21 and none was found (looked at \$TALLY_JAVA21_HOME, \$JAVA_HOME, java on PATH, /usr/lib/jvm/*): apt-get install openjdk-21-jdk-headless, or install Temurin 21+, or set TALLY_JAVA21_HOME to a JDK >= 21"
  fetch_apicurio
  ensure_registry_db "$port"
  touch "$(log_of registry)"
  rotate_log "$(log_of registry)"
  since=$(($(stat -c %s "$(log_of registry)") + 1))
  # Pool kept small: the default 20/100 connections would eat PostgreSQL's limit.
  # The readiness checks count slow requests and turn DOWN for 60 s counting windows and a
  # 300 s status window after errors (defaults): a database restart in a test would leave
  # /health/ready DOWN for minutes while the API works. 10 s windows keep it honest and quick.
  launch registry env \
    QUARKUS_HTTP_HOST="$HOST" QUARKUS_HTTP_PORT="$REGISTRY_PORT" \
    QUARKUS_MANAGEMENT_HOST="$HOST" QUARKUS_MANAGEMENT_PORT="$REGISTRY_MANAGEMENT_PORT" \
    QUARKUS_HTTP_ACCESS_LOG_ENABLED=false \
    APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql \
    APICURIO_DATASOURCE_URL="jdbc:postgresql://$HOST:$port/$REGISTRY_DB" \
    APICURIO_DATASOURCE_USERNAME=postgres APICURIO_DATASOURCE_PASSWORD= \
    APICURIO_DATASOURCE_JDBC_INITIAL_SIZE=2 APICURIO_DATASOURCE_JDBC_MIN_SIZE=2 \
    APICURIO_DATASOURCE_JDBC_MAX_SIZE=8 \
    APICURIO_METRICS_PERSISTENCE_TIMEOUT_READINESS_CHECK_COUNTER_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_PERSISTENCE_TIMEOUT_READINESS_CHECK_STATUS_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_RESPONSE_TIMEOUT_READINESS_CHECK_COUNTER_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_RESPONSE_TIMEOUT_READINESS_CHECK_STATUS_RESET_WINDOW_DURATION_SECONDS=10 \
    "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -jar "$(registry_jar)"
  wait_ready registry "$LAUNCHED_PID" "$REGISTRY_READY_TIMEOUT_S" registry_answers
  check_registry_storage "$since"
  say registry "started  $CCOMPAT_URL (pid $LAUNCHED_PID, Java $(java_major "$java"), storage PostgreSQL :$port, ready in $((SECONDS - started))s)"
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
    say postgres "stopped (local cluster; data kept in .local/pg)"
  elif [ "$(pg_mode)" = system ]; then
    say postgres "system PostgreSQL on $HOST:$SYSTEM_PG_PORT left alone"
  fi
  rm -f "$(pid_file_of postgres)"
}

usage() {
  echo "usage: bash infra/stack.sh up | up-secure | down | status" >&2
  echo "       bash infra/stack.sh start | stop | restart  postgres | kafka | registry | kafka-secure" >&2
  exit 2
}

main() {
  local cmd=${1:-} component=${2:-}
  case $cmd in
    up | up-secure | down | start | stop | restart)
      [ -n "${TALLY_STACK_LOCKED:-}" ] || run_locked "$@"
      ;;
  esac
  case $cmd in
    status) cmd_status ;;
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

# The opt-in secured broker: its settings and functions (uses the helpers above).
# shellcheck source=infra/stack/kafka-secure.sh
source "$STACK_DIR/kafka-secure.sh"

main "$@"
