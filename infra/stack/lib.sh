# shellcheck shell=bash
# Shared helpers of the local stack, sourced by infra/stack.sh: output (say, die, log tails,
# fail_component), pid and port bookkeeping (our_pid, port_owner, ensure_port_free), starting
# and stopping processes (launch, wait_ready for health waits, stop_pid), finding a JDK, Maven.

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
    cluster-*) cluster_marker_of "$1" ;; # infra/stack/cluster.sh
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
