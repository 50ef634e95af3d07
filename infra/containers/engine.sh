#!/usr/bin/env bash
# The container engine testcontainers talks to: a Docker engine if one already answers, else the
# project's own podman API service, with its configuration, storage and socket under
# .local/containers (installing podman, runc, netavark, aardvark-dns, iptables and debootstrap
# from Debian's packages when they are missing and we are root on Debian).
#
#   bash infra/containers/engine.sh ensure   # make an engine answer (install, configure, start)
#   bash infra/containers/engine.sh env      # NAME=value lines for testcontainers and podman
#   bash infra/containers/engine.sh probe    # exit 0 if an engine answers, else print why not
#   bash infra/containers/engine.sh status | stop | clean
#
# What works on these machines (runc not crun, cgroupfs, file events, no health checks) is in
# the team's stack notes, "Containers (the testcontainers path)". Only the service this script
# started is ever stopped, by the pid it recorded.
#
# `clean` removes every container labelled by testcontainers, so it must not run while another
# run still uses the engine (a second tier, infra/user-project.sh): a run holds a shared flock on
# .local/containers/runs.lock while it uses the engine, and releases it before its own clean:
#   exec 9>>"$ROOT/.local/containers/runs.lock"; flock -s 9   ...   flock -u 9; engine.sh clean
# clean takes the lock exclusively without waiting and, when another run holds it, leaves
# everything in place (that run's own clean, or the next one, removes the leftovers).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOME_DIR="$ROOT/.local/containers"
SOCKET="$HOME_DIR/podman.sock"
PID_FILE="$HOME_DIR/service.pid"
RUNS_LOCK="$HOME_DIR/runs.lock"
LOG="$ROOT/.local/logs/podman-service.log"
CONF="$HOME_DIR/containers.conf"
STORAGE_CONF="$HOME_DIR/storage.conf"
# The socket answers within a second of the service starting; apt may take minutes on a cold machine.
SERVICE_READY_TIMEOUT_S=${SERVICE_READY_TIMEOUT_S:-30}
APT_TIMEOUT_S=${APT_TIMEOUT_S:-600}
# podman's network stack on bookworm: netavark 1.4 makes the bridge, veths and routes itself over
# netlink but runs the iptables and ip6tables commands for NAT and port forwarding (its only
# firewall driver), and podman lists iptables only as a suggestion: without it the first
# container on a network fails with "netavark: No such file or directory (os error 2)".
# aardvark-dns resolves the aliases on a network (netavark only recommends it). kmod gives the
# kernel its modprobe, so a kernel with netfilter as modules loads them on first use (iptables
# suggests it). The iptables package's default is iptables-nft: no nftables package needed.
PACKAGES=(podman runc netavark aardvark-dns iptables kmod debootstrap)
# Where Debian's podman looks for netavark and aardvark-dns (containers.conf helper_binaries_dir).
HELPERS_DIR=/usr/lib/podman
# Containers testcontainers starts carry this label; with Ryuk off, `clean` removes them.
TC_LABEL=org.testcontainers=true

say() { printf 'engine: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

log_tail() {
  [ -s "$1" ] || return 0
  echo "engine: log $1 (last 15 lines):" >&2
  tail -n 15 "$1" | sed 's/^/  | /' >&2
}

# A Docker engine of the caller's own (DOCKER_HOST, or the default socket) is used as it is.
external_docker_host() {
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix://$SOCKET" ]; then
    echo "$DOCKER_HOST"
  elif [ -S /var/run/docker.sock ]; then
    echo unix:///var/run/docker.sock
  else
    return 1
  fi
}

# The Docker API's /_ping over a unix socket or tcp, answered "OK" within 3 s.
answers() {
  local host=$1
  case $host in
    unix://*) curl -fsS --max-time 3 --unix-socket "${host#unix://}" http://d/_ping 2>/dev/null | grep -q OK ;;
    tcp://*) curl -fsS --max-time 3 "http://${host#tcp://}/_ping" 2>/dev/null | grep -q OK ;;
    *) return 1 ;;
  esac
}

service_pid() {
  local pid
  [ -s "$PID_FILE" ] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$SOCKET" || return 1
  echo "$pid"
}

# Prints the packages not yet installed, one a line.
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

install_packages() {
  local missing
  command -v dpkg-query >/dev/null || die "no podman and no Debian packaging here: install Docker or podman"
  mapfile -t missing < <(missing_packages)
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || die "podman is missing (${missing[*]}): run as root, or: sudo apt-get install -y ${missing[*]}"
  say "installing ${missing[*]} from Debian's packages (once)"
  mkdir -p "$ROOT/.local/logs"
  if ! { timeout "$APT_TIMEOUT_S" apt-get update &&
    DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT_S" apt-get install -y --no-install-recommends "${missing[@]}"; } \
    >>"$ROOT/.local/logs/apt.log" 2>&1; then
    log_tail "$ROOT/.local/logs/apt.log"
    die "apt-get install ${missing[*]} failed"
  fi
}

# Rewritten on every start so that changes here apply.
write_config() {
  mkdir -p "$HOME_DIR/storage" "$HOME_DIR/run" "$HOME_DIR/networks" "$HOME_DIR/tmp"
  cat >"$CONF" <<EOF
# Written by infra/containers/engine.sh; edits are lost.
[containers]
# Kafka and PostgreSQL want more open files than the runtime's default.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
# crun fails on this hybrid cgroup setup; there is no systemd to manage cgroups or a journal.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$HOME_DIR/events.log"
exit_command_delay = 10
tmp_dir = "$HOME_DIR/tmp"
volume_path = "$HOME_DIR/storage/volumes"
static_dir = "$HOME_DIR/storage/libpod"

[network]
# netavark + aardvark-dns: containers on a network find each other by alias.
network_backend = "netavark"
network_config_dir = "$HOME_DIR/networks"
EOF
  cat >"$STORAGE_CONF" <<EOF
# Written by infra/containers/engine.sh; edits are lost.
[storage]
driver = "overlay"
graphroot = "$HOME_DIR/storage"
runroot = "$HOME_DIR/run"
EOF
}

podman_env() {
  export CONTAINERS_CONF="$CONF" CONTAINERS_STORAGE_CONF="$STORAGE_CONF"
  # netavark runs iptables by name: the service must see the sbin folders whatever the caller's PATH.
  case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
  case ":$PATH:" in *:/sbin:*) ;; *) PATH="$PATH:/sbin" ;; esac
  export PATH
}

# What a container on a network needs, checked before the service starts, so that a missing
# piece is named here rather than as a bare "No such file or directory" in the middle of a test.
check_network_stack() {
  local helper tool
  [ "$(id -u)" = 0 ] || return 0 # rootless podman uses slirp4netns/pasta, not netavark's firewall
  for helper in netavark aardvark-dns; do
    [ -x "$HELPERS_DIR/$helper" ] || die "$HELPERS_DIR/$helper is missing (apt-get install $helper)"
  done
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || die "$tool is not installed: netavark needs it for NAT and published ports (apt-get install iptables)"
  done
  if ! iptables -w 5 -t nat -S >/dev/null 2>"$HOME_DIR/iptables-check.err"; then
    say "iptables -t nat -S failed: $(head -c 300 "$HOME_DIR/iptables-check.err")"
    die "the kernel's netfilter is not usable here, so netavark cannot set up container networks"
  fi
}

start_service() {
  local deadline pid
  if pid=$(service_pid) && answers "unix://$SOCKET"; then return 0; fi
  [ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true
  write_config
  podman_env
  check_network_stack
  rm -f "$SOCKET"
  mkdir -p "$(dirname "$LOG")"
  printf '\n===== %s engine.sh: starting podman system service =====\n' "$(date -Is)" >>"$LOG"
  # setsid: Ctrl-C on make must not take the service (and every test container's API) down.
  setsid podman system service --time=0 "unix://$SOCKET" </dev/null >>"$LOG" 2>&1 &
  echo $! >"$PID_FILE"
  deadline=$((SECONDS + SERVICE_READY_TIMEOUT_S))
  until answers "unix://$SOCKET"; do
    if ! service_pid >/dev/null; then
      log_tail "$LOG"
      die "podman system service exited before its socket answered"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail "$LOG"
      die "podman system service did not answer on $SOCKET within ${SERVICE_READY_TIMEOUT_S}s"
    fi
    sleep 0.2
  done
  say "podman $(podman --version | awk '{print $3}') API on unix://$SOCKET"
}

cmd_ensure() {
  local host
  if host=$(external_docker_host) && answers "$host"; then return 0; fi
  install_packages
  start_service
}

# What testcontainers needs to reach the engine: the caller's Docker, else our podman.
cmd_env() {
  local host
  if host=$(external_docker_host) && answers "$host"; then
    echo "DOCKER_HOST=$host"
  else
    echo "DOCKER_HOST=unix://$SOCKET"
    # The service runs on this host: its published ports are reached on loopback. (Left alone,
    # testcontainers sees /.dockerenv on these machines and picks the bridge's gateway instead.)
    echo "TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1"
    echo "CONTAINERS_CONF=$CONF"
    echo "CONTAINERS_STORAGE_CONF=$STORAGE_CONF"
  fi
  # Ryuk's image comes from a registry; leftovers are removed by label instead (`clean`).
  echo "TESTCONTAINERS_RYUK_DISABLED=true"
}

# Exit 0 if an engine answers now; else one line on stdout saying why not, for the test summary.
cmd_probe() {
  local host
  if host=$(external_docker_host) && answers "$host"; then return 0; fi
  if service_pid >/dev/null && answers "unix://$SOCKET"; then return 0; fi
  if [ -n "${host:-}" ]; then
    echo "no container engine answers (DOCKER_HOST=$host does not answer /_ping)"
  elif command -v podman >/dev/null; then
    echo "no container engine answers (podman is installed but its API service is not running: bash infra/containers/engine.sh ensure)"
  else
    echo "no container engine answers (no Docker socket, no podman)"
  fi
  return 1
}

# Removes what testcontainers left behind (Ryuk is off): containers by label, then their networks.
cmd_clean() {
  local host cli=docker ids
  host=$(external_docker_host || echo "unix://$SOCKET")
  answers "$host" || return 0
  mkdir -p "$HOME_DIR"
  exec 8>>"$RUNS_LOCK"
  if ! flock -n -x 8; then
    say "another run uses the engine (${RUNS_LOCK#"$ROOT"/}): its containers are left alone"
    return 0
  fi
  if [ "$host" = "unix://$SOCKET" ]; then
    podman_env
    cli=podman
  fi
  mapfile -t ids < <(DOCKER_HOST=$host "$cli" ps -aq --filter "label=$TC_LABEL")
  [ ${#ids[@]} = 0 ] || DOCKER_HOST=$host "$cli" rm -f "${ids[@]}" >/dev/null
  mapfile -t ids < <(DOCKER_HOST=$host "$cli" network ls -q --filter "label=$TC_LABEL")
  [ ${#ids[@]} = 0 ] || DOCKER_HOST=$host "$cli" network rm "${ids[@]}" >/dev/null
  say "removed leftovers labelled $TC_LABEL"
}

cmd_status() {
  local host pid
  if host=$(external_docker_host) && answers "$host"; then
    say "Docker engine at $host"
  elif pid=$(service_pid) && answers "unix://$SOCKET"; then
    podman_env
    say "podman service pid $pid on unix://$SOCKET; $(podman ps -q | wc -l) containers running"
  else
    say "no engine answers"
  fi
}

cmd_stop() {
  local pid
  if pid=$(service_pid); then
    kill "$pid"
    say "podman service (pid $pid) stopped"
  fi
  rm -f "$PID_FILE"
}

case ${1:-} in
  ensure) cmd_ensure ;;
  env) cmd_env ;;
  probe) cmd_probe ;;
  clean) cmd_clean ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *)
    echo "usage: bash infra/containers/engine.sh ensure | env | probe | clean | status | stop" >&2
    exit 2
    ;;
esac
