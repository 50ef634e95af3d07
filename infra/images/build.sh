#!/usr/bin/env bash
# Builds the container images the testcontainers path needs, only those missing or out of date
# (their recipe, sources or base changed; see recipe_hash):
#   - tally: the tally command on Node 24 (one image for apply, project, migrate, topics, ...),
#     from tally.Containerfile: the one recipe, also for infra/k8s and @tally/testing;
#   - where no image registry answers: a Debian base made with debootstrap, a Java runtime, and
#     PostgreSQL 15, Kafka 4.3.1 and Apicurio Registry 3.3.3 on it. Where one answers, the
#     public images are the defaults and are pulled by testcontainers instead.
#
#   bash infra/images/build.sh [--force] [debian|jre|postgres|kafka|registry|tally ...]
#
# Names come from services/testing/images.ts (the module's defaults). TALLY_TEST_IMAGES=local
# builds the local ones even where a registry answers; =public builds only Tally's.
# Builds run with --network=host (apt inside the build) and never pull when no registry answers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/infra/images"
WORK="$ROOT/.local/images"
LOGS="$ROOT/.local/logs"
LOG="$LOGS/images.log"
NODE="$ROOT/.local/node/bin/node"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# shellcheck disable=SC2034 # read by infra/stack/*.sh in stack_step
KAFKA_VERSION=4.3.1
APICURIO_VERSION=3.3.3
# shellcheck disable=SC2034 # read by infra/stack/*.sh in stack_step (the same as infra/stack.sh)
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
REGISTRY_PROBE_TIMEOUT_S=3
BUILD_TIMEOUT_S=${BUILD_TIMEOUT_S:-900}
JAVA_MIN_MAJOR=21

say() { printf 'images: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}
fail_step() {
  say "$1 failed: $2"
  if [ -s "$LOG" ]; then
    echo "images: log $LOG (last 20 lines):" >&2
    tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  fi
  exit 1
}

# --- engine and names -----------------------------------------------------------------------

bash "$ROOT/infra/containers/engine.sh" ensure
while IFS='=' read -r name value; do export "$name=$value"; done < <(bash "$ROOT/infra/containers/engine.sh" env)
if [[ $DOCKER_HOST == "unix://$ROOT/.local/containers/"* ]]; then CLI=podman; else CLI=docker; fi
[ -x "$NODE" ] || die "Node is not set up here; run 'make setup' first"

# Image names as the module uses them: debian=..., jre=..., postgres=..., tally=...
declare -A IMAGE
while IFS='=' read -r name value; do IMAGE[$name]=$value; done < <("$NODE" "$ROOT/services/testing/images.ts")
[ -n "${IMAGE[tally]:-}" ] || die "services/testing/images.ts printed no image names"

# Docker Hub's API answers 401 to an anonymous /v2/ when it is reachable at all.
registry_answers() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time "$REGISTRY_PROBE_TIMEOUT_S" https://registry-1.docker.io/v2/ || true)" = 401 ]
}

image_exists() { "$CLI" image inspect "$1" >/dev/null 2>&1; }
image_id() { "$CLI" image inspect -f '{{.Id}}' "$1" 2>/dev/null || echo none; }
recipe_label=tally.recipe-hash

# What an image is made from: its base image, its Containerfile and what goes into it. The hash is
# the image's label; a changed recipe (or a rebuilt base) rebuilds the image, as a missing one does.
recipe_hash() {
  local step=$1
  {
    echo "$step"
    case $step in
      debian) echo "$DEBIAN_SUITE $DEBIAN_MIRROR" ;;
      jre | postgres) image_id "${IMAGE[debian]}" ;;
      kafka | registry) image_id "${IMAGE[jre]}" ;;
      tally) if [ "$MODE" = local ]; then image_id "${IMAGE[debian]}"; else echo public; fi ;;
    esac
    [ "$step" = debian ] || cat "$HERE/$step.Containerfile"
    case $step in
      kafka) cat "$HERE/kafka-run.sh" "$ROOT/infra/stack/kafka-log4j2.properties" "$ROOT/infra/stack/kafka-pom.xml" ;;
      registry) echo "$APICURIO_VERSION" ;;
      tally) tally_bundle_hash ;;
    esac
  } | sha256sum | cut -c1-16
}

image_current() {
  image_exists "$1" && [ "$("$CLI" image inspect -f "{{ index .Labels \"$recipe_label\" }}" "$1" 2>/dev/null)" = "$2" ]
}

# Runs a step's command with its output in the log, bounded in time.
logged() {
  local step=$1
  shift
  printf '\n===== %s %s =====\n' "$(date -Is)" "$step" >>"$LOG"
  timeout "$BUILD_TIMEOUT_S" "$@" >>"$LOG" 2>&1 || fail_step "$step" "exit $? (124 = not done within ${BUILD_TIMEOUT_S}s)"
}

# podman: never pull a local base, pull a public one only when missing. Docker's build has no such
# setting: it uses a local image when present and pulls otherwise.
pull_flag() {
  if [ "$CLI" != podman ]; then return 0; fi
  if [[ $1 == localhost/* ]]; then echo --pull=never; else echo --pull=missing; fi
}

build() {
  local step=$1 context=$2 base=$3 pull
  pull=$(pull_flag "$base")
  logged "$step" "$CLI" build --network=host ${pull:+"$pull"} --build-arg "BASE=$base" \
    --label "$recipe_label=$RECIPE" -f "$HERE/$step.Containerfile" -t "${IMAGE[$step]}" "$context"
}

# --- the steps ------------------------------------------------------------------------------

# A build context starts empty: what a failed build left there must not go into the next.
fresh_dir() {
  rm -rf "$1"
  mkdir -p "$1"
}

# debootstrap mounts /proc (and more) inside the root while it works; an interrupted run can leave
# them mounted, so they are unmounted first and rm never crosses into another file system.
release_root() {
  local mount
  [ -d "$1" ] || return 0
  for mount in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r); do umount -l "$mount" 2>/dev/null || true; done
  rm -rf --one-file-system "$1"
}

build_debian() {
  local root
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  # Outside the repository: tools that walk it (biome, find, the duplicates check) must not
  # wander into a half-made root with /proc mounted in it.
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/tally-debian.XXXXXX")
  trap 'release_root "$root"' EXIT
  logged debian debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR"
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  printf '\n===== %s import =====\n' "$(date -Is)" >>"$LOG"
  tar -C "$root" -c . | "$CLI" import --change "LABEL $recipe_label=$RECIPE" - "${IMAGE[debian]}" >>"$LOG" 2>&1 ||
    fail_step debian "import"
  release_root "$root"
  trap - EXIT
}

# The local stack's own steps (infra/stack/: finding a JDK, fetching the Kafka jars and the
# Apicurio distribution with Maven), run in a subshell with the same layout as infra/stack.sh, so
# that the images are made of the very files `make up` runs.
stack_step() (
  STACK_DIR="$ROOT/infra/stack"
  LOCAL="$ROOT/.local"
  DOWNLOADS="$LOCAL/downloads"
  KAFKA_LIBS="$LOCAL/kafka/libs"
  APICURIO_HOME="$LOCAL/apicurio/apicurio-registry-app-$APICURIO_VERSION"
  APICURIO_TARBALL="$DOWNLOADS/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  mkdir -p "$DOWNLOADS"
  # shellcheck source=infra/stack/lib.sh
  source "$STACK_DIR/lib.sh"
  # shellcheck source=infra/stack/kafka.sh
  source "$STACK_DIR/kafka.sh"
  # shellcheck source=infra/stack/registry.sh
  source "$STACK_DIR/registry.sh"
  "$@"
)

# A JDK home >= 21 with jlink: the first java the local stack would pick for Apicurio.
find_jdk() {
  local java home
  java=$(stack_step find_java "$JAVA_MIN_MAJOR" "${TALLY_JAVA21_HOME:-}") || return 1
  home=$(dirname "$(dirname "$(readlink -f "$java")")")
  [ -x "$home/bin/jlink" ] && echo "$home"
}

build_jre() {
  local context="$WORK/jre" jdk modules
  jdk=$(find_jdk) || die "a JDK >= $JAVA_MIN_MAJOR with jlink is needed for the Java runtime image (looked at \$TALLY_JAVA21_HOME, \$JAVA_HOME, java on PATH, /usr/lib/jvm/*)"
  fresh_dir "$context"
  # Every module the JDK has: Kafka and Quarkus load some reflectively, and a missing one fails
  # only at run time. (A JDK 24+ links from its own runtime when it ships no jmods folder.)
  # jlink and what needs it cannot be linked from a runtime image (nor are they needed to run).
  modules=$("$jdk/bin/java" --list-modules | sed 's/@.*//' | grep -vxE 'jdk.jlink|jdk.jpackage|jdk.incubator.*' | paste -sd, -)
  # No --generate-cds-archive: it triples this step (16 s to 54 s measured) for well under a second
  # per JVM start, and a stack starts about three JVMs.
  logged jre-jlink "$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages \
    --no-header-files --output "$context/jre"
  build jre "$context" "${IMAGE[debian]}"
  rm -rf "$context"
}

build_postgres() {
  mkdir -p "$WORK/postgres"
  build postgres "$WORK/postgres" "${IMAGE[debian]}"
}

build_kafka() {
  local context="$WORK/kafka" libs
  stack_step fetch_kafka_libs >&2
  libs="$ROOT/.local/kafka/libs"
  fresh_dir "$context"
  cp -a "$libs" "$context/libs"
  cp "$ROOT/infra/stack/kafka-log4j2.properties" "$context/log4j2.properties"
  cp "$HERE/kafka-run.sh" "$context/kafka-run.sh"
  build kafka "$context" "${IMAGE[jre]}"
  rm -rf "$context"
}

build_registry() {
  local context="$WORK/registry" app
  stack_step fetch_apicurio >&2
  app="$ROOT/.local/apicurio/apicurio-registry-app-$APICURIO_VERSION"
  fresh_dir "$context"
  cp -a "$app" "$context/app"
  build registry "$context" "${IMAGE[jre]}"
  rm -rf "$context"
}

# Tally's image is Node, the bundled command and the schemas (tally.Containerfile). The bundle is
# made before the recipe is hashed, so that a change to any source it takes in (Tally's modules, a
# dependency) rebuilds the image; esbuild's output is the same for the same sources.
TALLY_BUNDLE="$WORK/tally-bundle"
tally_bundle() {
  if [ -z "${TALLY_BUNDLE_MADE:-}" ]; then
    logged tally-bundle "$NODE" "$ROOT/infra/images/bundle.mjs" "$TALLY_BUNDLE"
    TALLY_BUNDLE_MADE=1
  fi
}
tally_bundle_hash() {
  tally_bundle
  (cd "$TALLY_BUNDLE" && find tally.mjs schemas -type f | LC_ALL=C sort | xargs -d '\n' sha256sum)
  "$NODE" --version
}

build_tally() {
  local context="$WORK/tally" base=${IMAGE[debian]}
  [ "$MODE" = local ] || base=docker.io/library/debian:bookworm-slim
  tally_bundle
  fresh_dir "$context"
  cp "$NODE" "$context/node"
  cp "$TALLY_BUNDLE/tally.mjs" "$context/tally.mjs"
  cp -r "$TALLY_BUNDLE/schemas" "$context/schemas"
  build tally "$context" "$base"
  rm -rf "$context" "$WORK/tally-deps" # the latter: node_modules of the image before the bundle
  # The image's own check: the bundle starts, reads its schema and knows its version.
  local version
  version=$("$CLI" run --rm --network=none "${IMAGE[tally]}" --version 2>>"$LOG") ||
    fail_step tally "the built image does not run 'tally --version'"
  say "${IMAGE[tally]} runs tally $version ($("$CLI" image inspect -f '{{.Size}}' "${IMAGE[tally]}" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# --- main -----------------------------------------------------------------------------------

FORCE=
steps=()
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    debian | jre | postgres | kafka | registry | tally) steps+=("$arg") ;;
    *) die "unknown argument '$arg' (usage: build.sh [--force] [debian|jre|postgres|kafka|registry|tally ...])" ;;
  esac
done

case ${TALLY_TEST_IMAGES:-auto} in
  local | public) MODE=${TALLY_TEST_IMAGES} ;;
  auto) if registry_answers; then MODE=public; else MODE=local; fi ;;
  *) die "TALLY_TEST_IMAGES=${TALLY_TEST_IMAGES} is invalid: auto, local or public" ;;
esac
if [ ${#steps[@]} = 0 ]; then
  if [ "$MODE" = local ]; then steps=(debian jre postgres kafka registry tally); else steps=(tally); fi
fi
mkdir -p "$WORK" "$LOGS"
for step in "${steps[@]}"; do
  # Here, not inside recipe_hash's subshell: build_tally uses the same bundle.
  if [ "$step" = tally ]; then tally_bundle; fi
  RECIPE=$(recipe_hash "$step")
  if [ -z "$FORCE" ] && image_current "${IMAGE[$step]}" "$RECIPE"; then continue; fi
  started=$SECONDS
  say "building ${IMAGE[$step]} (recipe $RECIPE)"
  "build_$step"
  say "${IMAGE[$step]} ready in $((SECONDS - started))s"
done
