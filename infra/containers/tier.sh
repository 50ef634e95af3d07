#!/usr/bin/env bash
# Runs the container tier of the test suite (vitest project "containers", TALLY_TEST_STACK=
# containers): makes a container engine answer and the images exist first, or, where that cannot
# be done, records plainly why the tier did not run, for the test summary.
#
#   bash infra/containers/tier.sh [--required]
#
# On these machines (Debian, root) it installs podman and its network stack (netavark,
# aardvark-dns, iptables), runc and debootstrap (infra/containers/engine.sh), and builds the images
# when missing. Elsewhere it runs when Docker or podman answers. With --required (make
# test-containers) a tier that cannot run is a failure; without it (make test) it is a note.
# TALLY_TEST_CONTAINERS=0 turns the tier off.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS="$ROOT/.local/test-results-containers.json"
NOT_RUN="$ROOT/.local/test-results-containers.not-run"
REQUIRED=${1:-}

not_run() {
  echo "containers: tier not run: $1" >&2
  echo "$1" >"$NOT_RUN"
  [ "$REQUIRED" != --required ] || exit 1
  exit 0
}

rm -f "$RESULTS" "$NOT_RUN"
mkdir -p "$ROOT/.local"
[ "${TALLY_TEST_CONTAINERS:-1}" != 0 ] || not_run "turned off (TALLY_TEST_CONTAINERS=0)"

# Podman can be installed here when we are root on Debian; elsewhere only an engine that
# already answers is used.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash "$ROOT/infra/containers/engine.sh" ensure || not_run "no container engine: installing or starting podman failed (see above)"
elif ! reason=$(bash "$ROOT/infra/containers/engine.sh" probe); then
  not_run "$reason"
fi
bash "$ROOT/infra/images/build.sh" || not_run "the images could not be built (see above and .local/logs/images.log)"

while IFS='=' read -r name value; do export "$name=$value"; done < <(bash "$ROOT/infra/containers/engine.sh" env)
# While this run uses the engine, another run's clean leaves its containers alone (engine.sh).
mkdir -p "$ROOT/.local/containers"
exec 9>>"$ROOT/.local/containers/runs.lock"
flock -s 9
rc=0
TALLY_TEST_STACK=containers vitest run --project containers \
  --reporter=default --reporter=json --outputFile.json="$RESULTS" 9>&- || rc=$?
flock -u 9
# Ryuk is off (its image cannot be pulled): whatever a crashed run left behind goes by label.
bash "$ROOT/infra/containers/engine.sh" clean 9>&- || true
# Under make test the summary judges the results file; make test-containers fails right here.
if [ "$REQUIRED" = --required ]; then exit "$rc"; fi
