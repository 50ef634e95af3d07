# shellcheck shell=bash
# Apicurio Registry for the local stack, sourced by infra/stack.sh: the distribution fetched
# once with Maven, its database created in PostgreSQL, started with SQL storage there, and its
# log checked to name PostgreSQL as the storage (else schema ids would be lost on restart).

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
  local since=$1 component=${2:-registry} log line
  log=$(log_of "$component")
  line=$(tail -c +"$since" "$log" | grep -Eo 'Using [a-z0-9]+ SQL storage' | head -1 || true)
  if [ "$line" != "Using postgresql SQL storage" ]; then
    fail_component "$component" "its log does not show PostgreSQL storage (found: '${line:-no storage line}'); in-memory storage would lose schema ids on restart"
  fi
}

# Starts an Apicurio with SQL storage in the PostgreSQL on pg_port (the plain stack's registry and
# the cluster's); the system property names the component in the process list.
launch_apicurio() {
  local component=$1 http_port=$2 management_port=$3 pg_port=$4 java=$5
  # Pool kept small: the default 20/100 connections would eat PostgreSQL's limit.
  # The readiness checks count slow requests and turn DOWN for 60 s counting windows and a
  # 300 s status window after errors (defaults): a database restart in a test would leave
  # /health/ready DOWN for minutes while the API works. 10 s windows keep it honest and quick.
  launch "$component" env \
    QUARKUS_HTTP_HOST="$HOST" QUARKUS_HTTP_PORT="$http_port" \
    QUARKUS_MANAGEMENT_HOST="$HOST" QUARKUS_MANAGEMENT_PORT="$management_port" \
    QUARKUS_HTTP_ACCESS_LOG_ENABLED=false \
    APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql \
    APICURIO_DATASOURCE_URL="jdbc:postgresql://$HOST:$pg_port/$REGISTRY_DB" \
    APICURIO_DATASOURCE_USERNAME=postgres APICURIO_DATASOURCE_PASSWORD= \
    APICURIO_DATASOURCE_JDBC_INITIAL_SIZE=2 APICURIO_DATASOURCE_JDBC_MIN_SIZE=2 \
    APICURIO_DATASOURCE_JDBC_MAX_SIZE=8 \
    APICURIO_METRICS_PERSISTENCE_TIMEOUT_READINESS_CHECK_COUNTER_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_PERSISTENCE_TIMEOUT_READINESS_CHECK_STATUS_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_RESPONSE_TIMEOUT_READINESS_CHECK_COUNTER_RESET_WINDOW_DURATION_SECONDS=10 \
    APICURIO_METRICS_RESPONSE_TIMEOUT_READINESS_CHECK_STATUS_RESET_WINDOW_DURATION_SECONDS=10 \
    "$java" -Dtally.component="$component" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -jar "$(registry_jar)"
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
  launch_apicurio registry "$REGISTRY_PORT" "$REGISTRY_MANAGEMENT_PORT" "$port" "$java"
  wait_ready registry "$LAUNCHED_PID" "$REGISTRY_READY_TIMEOUT_S" registry_answers
  check_registry_storage "$since"
  say registry "started  $CCOMPAT_URL (pid $LAUNCHED_PID, Java $(java_major "$java"), storage PostgreSQL :$port, ready in $((SECONDS - started))s)"
}
