#!/usr/bin/env bash
# The user-project step of `make test`: Tally as a user outside the repository gets it, from the
# packed tarballs and nothing else of Tally's.
#
#   bash infra/user-project.sh [--after-tier]
#
#  1. pack     builds (infra/build.sh) and `npm pack`s @tally/service, @tally/producer and
#              @tally/testing into .local/packs/; prints each tarball's size, and what a
#              producer-only user installs (packages, size on disk)
#  2. install  a folder made by mktemp -d, outside the repository, with test/user-project's
#              package.json: `npm install` of the three tarballs, plus vitest and testcontainers
#              as dev dependencies at the repository's versions
#  3. stack    on the local stack (`make up`), with a topic, group and databases of its own:
#              npx tally migrate, npx tally topics, the user's producer (produce.mjs, plain
#              JavaScript on @tally/producer), npx tally apply and npx tally project in the
#              background until `tally balance` shows what the producer expects (then SIGTERM:
#              both must exit 0), the balances once more, and npx tally verify; then removes its
#              topic, schema subject and databases
#  4. vitest   the README's testcontainers example (test/containers/readme-example.containers.spec.ts)
#     node     and its node:test form (test/user-project/payments.node-test.ts), which the unit
#              test readme-example keeps equal to the README's blocks, run in that folder with
#              `npx vitest run` and `node --test`. They need a container engine: NOT RUN (with
#              why) only where the container tier does not run either. With --after-tier (make
#              test) the container tier's verdict decides; alone, the same checks as the tier's.
#
# Each step's verdict goes to .local/test-results-user-project.txt ("<passed|failed|not run>
# <TAB> <step> <TAB> <note>", then "end"), which infra/test-summary.mjs reads; logs go to
# .local/logs/user-project/. Exit 1 when a step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKS="$ROOT/.local/packs"
RESULTS="$ROOT/.local/test-results-user-project.txt"
LOGS="$ROOT/.local/logs/user-project"
FILES="$ROOT/test/user-project"
AFTER_TIER=${1:-}

export PATH="$ROOT/.local/node/bin:$PATH"
# ~/.npmrc on these machines points nodedir at the system Node 20 (see the Makefile).
export npm_config_nodedir="$ROOT/.local/node"
export KAFKAJS_NO_PARTITIONER_WARNING=1
# As under make: kafkajs on Node 24 warns about a negative timeout it clamps itself (a user of the
# packed tally command sees that warning today; harmless).
case " ${NODE_OPTIONS:-} " in *TimeoutNegativeWarning*) ;; *) export NODE_OPTIONS="${NODE_OPTIONS:-} --disable-warning=TimeoutNegativeWarning" ;; esac
NPM_FLAGS=(--no-audit --no-fund --loglevel=error)

rm -f "$RESULTS"
rm -rf "$LOGS"
mkdir -p "$LOGS" "$ROOT/.local"
: >"$RESULTS"

say() { printf 'user-project: %s\n' "$*" >&2; }
record() { # record <passed|failed|not run> <step> [note]
  printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$RESULTS"
  say "$2: ${1^^}${3:+ ($3)}"
}
failed=0
fail() { # fail <step> <note>
  record failed "$1" "$2"
  failed=1
}
seconds() { echo $((SECONDS - $1)) s; }
log_tail() {
  [ -s "$1" ] || return 0
  say "last lines of $1:"
  tail -n "${2:-25}" "$1" | sed 's/^/  | /' >&2
}

WORK=""
BACKGROUND=()
STACK_NAME=""
cleanup() {
  local pid
  for pid in "${BACKGROUND[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${BACKGROUND[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$STACK_NAME" ]; then
    (cd "$ROOT" && node test/user-project/drop.mjs) || say "could not remove all of $STACK_NAME (above)"
  fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 1. pack ----------------------------------------------------------------------------------
step_pack() {
  local t=$SECONDS
  cd "$ROOT"
  bash infra/build.sh >"$LOGS/build.log" 2>&1 || {
    log_tail "$LOGS/build.log"
    return 1
  }
  rm -rf "$PACKS"
  mkdir -p "$PACKS"
  # The workspaces' own lifecycle scripts (prepack) run as they would for a publish.
  npm pack --pack-destination "$PACKS" --include-workspace-root \
    --workspace services/producer --workspace services/testing >"$LOGS/pack.log" 2>&1 || {
    log_tail "$LOGS/pack.log"
    return 1
  }
  local tgz
  for tgz in "$PACKS"/*.tgz; do
    say "packed $(basename "$tgz"): $(du -k "$tgz" | cut -f1) kB, $(tar -tzf "$tgz" | wc -l) files," \
      "$(tar -xzOf "$tgz" | wc -c | awk '{printf "%.0f", $1 / 1024}') kB unpacked"
  done
  [ "$(find "$PACKS" -name '*.tgz' | wc -l)" = 3 ] || {
    say "expected 3 tarballs in $PACKS"
    return 1
  }
  # What a service that only emits events gets: @tally/producer alone.
  local only
  only=$(mktemp -d)
  (
    cd "$only"
    echo '{ "name": "producer-only", "private": true, "type": "module" }' >package.json
    npm install "${NPM_FLAGS[@]}" "$PACKS"/tally-producer-*.tgz >"$LOGS/producer-only.log" 2>&1
    say "producer-only install: $(npm ls --all --omit=dev --parseable | tail -n +2 | sort -u | wc -l)" \
      "packages (@tally/producer and its dependencies), node_modules $(du -sh node_modules | cut -f1)"
  ) || say "producer-only install failed (see $LOGS/producer-only.log); not counted"
  rm -rf "$only"
  record passed pack "3 tarballs in .local/packs, $(seconds "$t")"
}

# --- 2. install -------------------------------------------------------------------------------
step_install() {
  local t=$SECONDS
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/tally-user-project.XXXXXX")
  case $WORK in "$ROOT"/*)
    say "the temporary folder $WORK is inside the repository"
    return 1
    ;;
  esac
  mkdir "$WORK/packs"
  cp "$PACKS"/*.tgz "$WORK/packs/"
  cp "$FILES/package.json" "$FILES/produce.mjs" "$FILES/check-balances.mjs" "$WORK/"
  cp "$ROOT/test/containers/readme-example.containers.spec.ts" "$WORK/payments.int.spec.ts"
  cp "$FILES/payments.node-test.ts" "$WORK/payments.node-test.ts"
  # The dependencies a user would add: the tarballs, and the test tools at the repository's versions.
  node -e '
    const fs = require("node:fs");
    const [work, root] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(`${work}/package.json`, "utf8"));
    const repo = JSON.parse(fs.readFileSync(`${root}/package.json`, "utf8"));
    pkg.dependencies = {};
    for (const file of fs.readdirSync(`${work}/packs`)) {
      const name = file.match(/^tally-(.+)-\d+\.\d+\.\d+.*\.tgz$/)[1];
      pkg.dependencies[`@tally/${name}`] = `file:packs/${file}`;
    }
    pkg.devDependencies = {
      testcontainers: repo.devDependencies.testcontainers,
      vitest: repo.devDependencies.vitest,
    };
    fs.writeFileSync(`${work}/package.json`, `${JSON.stringify(pkg, null, 2)}\n`);
  ' "$WORK" "$ROOT"
  (cd "$WORK" && npm install "${NPM_FLAGS[@]}") >"$LOGS/npm-install.log" 2>&1 || {
    log_tail "$LOGS/npm-install.log"
    return 1
  }
  # Nothing of Tally's but what the tarballs brought.
  local linked
  linked=$(find "$WORK/node_modules" -maxdepth 2 -type l -not -path "*/.bin/*" | head -n 3)
  [ -z "$linked" ] || {
    say "symlinks in node_modules (not from the tarballs): $linked"
    return 1
  }
  [ "$(cd "$WORK" && npx --no -- tally --version)" = "$(node -p "require('$ROOT/package.json').version")" ] || {
    say "npx tally --version does not answer the packed version"
    return 1
  }
  say "installed in $WORK: $(cd "$WORK" && npm ls --all --parseable | tail -n +2 | sort -u | wc -l) packages," \
    "node_modules $(du -sh "$WORK/node_modules" | cut -f1)"
  record passed install "npm install of the tarballs + vitest, testcontainers outside the repository, $(seconds "$t")"
}

# --- 3. the local stack: migrate, topics, produce, apply, project, balance, verify ---------------
stack_value() { sed -n "s/^$1=//p" "$ROOT/.local/stack.env" 2>/dev/null | tail -n 1; }

step_stack() {
  local t=$SECONDS
  STACK_NAME="user_project_$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
  local port brokers registry
  port=$(stack_value TALLY_LOCAL_PG_PORT)
  brokers=$(stack_value TALLY_KAFKA_BROKERS)
  registry=$(stack_value TALLY_SCHEMA_REGISTRY_URL)
  [ -n "$brokers" ] && [ -n "$registry" ] || {
    say "no .local/stack.env: the local stack is not up (make up)"
    return 1
  }
  local db="postgres://postgres@127.0.0.1:${port:-5432}/$STACK_NAME"
  export TALLY_KAFKA_BROKERS=$brokers TALLY_SCHEMA_REGISTRY_URL=$registry
  export TALLY_TOPIC=$STACK_NAME TALLY_GROUP=$STACK_NAME-applier TALLY_PARTITIONS=4
  export TALLY_PG_SHARDS="${db}_shard_0,${db}_shard_1" TALLY_PG_VIEWS="${db}_views"
  export TALLY_LOG_LEVEL=warn TALLY_KAFKA_SESSION_TIMEOUT_MS=6000
  say "stack: topic and databases $STACK_NAME on $brokers, PostgreSQL port ${port:-5432}"
  cd "$WORK"

  local cmd
  for cmd in migrate topics; do
    npx --no tally "$cmd" >"$LOGS/$cmd.log" 2>&1 || {
      log_tail "$LOGS/$cmd.log"
      say "npx tally $cmd failed"
      return 1
    }
  done
  node produce.mjs >expected.json 2>"$LOGS/produce.log" || {
    log_tail "$LOGS/produce.log"
    say "the producer script failed"
    return 1
  }
  cat "$LOGS/produce.log" >&2
  say "expected balances: $(cat expected.json)"

  # What `npx tally apply` runs, started directly so that SIGTERM reaches the process itself.
  node_modules/.bin/tally apply >"$LOGS/apply.log" 2>&1 &
  local apply_pid=$!
  node_modules/.bin/tally project >"$LOGS/project.log" 2>&1 &
  local project_pid=$!
  BACKGROUND=("$apply_pid" "$project_pid")
  local caught_up=0
  node check-balances.mjs expected.json --wait 120 >"$LOGS/balances-wait.log" 2>&1 || caught_up=$?
  local apply_rc=0 project_rc=0
  kill -TERM "$apply_pid" "$project_pid" 2>/dev/null || true
  wait "$apply_pid" || apply_rc=$?
  wait "$project_pid" || project_rc=$?
  BACKGROUND=()
  say "apply and project stopped by SIGTERM: exit $apply_rc and $project_rc"
  if [ "$caught_up" != 0 ]; then
    cat "$LOGS/balances-wait.log" >&2
    log_tail "$LOGS/apply.log"
    log_tail "$LOGS/project.log"
    say "the balances did not reach what was produced within 120 s"
    return 1
  fi
  if [ "$apply_rc" != 0 ] || [ "$project_rc" != 0 ]; then
    log_tail "$LOGS/apply.log"
    log_tail "$LOGS/project.log"
    say "apply or project did not exit 0 on SIGTERM"
    return 1
  fi
  node check-balances.mjs expected.json >"$LOGS/balances.log" 2>&1 || {
    cat "$LOGS/balances.log" >&2
    return 1
  }
  cat "$LOGS/balances.log" >&2
  npx --no tally balance alice >&2 || return 1
  npx --no tally verify >"$LOGS/verify.log" 2>&1 || {
    log_tail "$LOGS/verify.log" 40
    say "npx tally verify failed"
    return 1
  }
  record passed "producer + tally balance" "migrate, topics, produce.mjs, apply, project, balance, verify, $(seconds "$t")"
}

# --- 4. the README's testcontainers example, under vitest and node --test ------------------------
# Prints why the examples cannot run here, or nothing when they can (and the engine then answers).
containers_not_run() {
  if [ "$AFTER_TIER" = --after-tier ]; then
    local not_run="$ROOT/.local/test-results-containers.not-run"
    if [ -f "$not_run" ]; then
      echo "the container tier did not run: $(cat "$not_run")"
    elif [ ! -f "$ROOT/.local/test-results-containers.json" ]; then
      echo "the container tier wrote no results"
    fi
    return 0
  fi
  if [ "${TALLY_TEST_CONTAINERS:-1}" = 0 ]; then
    echo "turned off (TALLY_TEST_CONTAINERS=0)"
    return 0
  fi
  # The container tier's own checks (infra/containers/tier.sh).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bash "$ROOT/infra/containers/engine.sh" ensure >&2 ||
      echo "no container engine: installing or starting podman failed"
  else
    local reason
    reason=$(bash "$ROOT/infra/containers/engine.sh" probe) || echo "${reason:-no container engine answers}"
  fi
}

step_examples() {
  local why
  why=$(containers_not_run)
  if [ -n "$why" ]; then
    record "not run" "README example (vitest)" "$why"
    record "not run" "README example (node --test)" "$why"
    return 0
  fi
  if [ "$AFTER_TIER" != --after-tier ]; then
    bash "$ROOT/infra/images/build.sh" >&2 || {
      fail "README example (vitest)" "the images could not be built"
      fail "README example (node --test)" "the images could not be built"
      return 0
    }
  fi
  # A shared lock while the examples use the engine: another run's `engine.sh clean` then leaves
  # the engine alone (engine.sh's header); released before this step's own clean.
  mkdir -p "$ROOT/.local/containers"
  exec 9>>"$ROOT/.local/containers/runs.lock"
  flock -s 9
  (
    while IFS='=' read -r name value; do export "$name=$value"; done < <(bash "$ROOT/infra/containers/engine.sh" env)
    cd "$WORK"
    local t=$SECONDS
    if timeout 900 npx --no vitest run payments.int.spec.ts >"$LOGS/vitest.log" 2>&1; then
      record passed "README example (vitest)" "npx vitest run payments.int.spec.ts, $(seconds "$t")"
    else
      log_tail "$LOGS/vitest.log" 40
      record failed "README example (vitest)" "see $LOGS/vitest.log"
    fi
    t=$SECONDS
    if timeout 900 node --test payments.node-test.ts >"$LOGS/node-test.log" 2>&1; then
      record passed "README example (node --test)" "node --test payments.node-test.ts, $(seconds "$t")"
    else
      log_tail "$LOGS/node-test.log" 40
      record failed "README example (node --test)" "see $LOGS/node-test.log"
    fi
  )
  flock -u 9
  # Ryuk is off here: whatever a failed start left behind goes by label.
  bash "$ROOT/infra/containers/engine.sh" clean >/dev/null 2>&1 || true
  grep -q '^failed' "$RESULTS" && failed=1
  return 0
}

# --- the steps ----------------------------------------------------------------------------------
start=$SECONDS
if ! step_pack; then
  fail pack "build or npm pack failed (see $LOGS)"
elif ! step_install; then
  fail install "npm install in a folder outside the repository failed (see $LOGS)"
else
  step_stack || fail "producer + tally balance" "see $LOGS and above"
  cd "$ROOT"
  step_examples
fi
echo end >>"$RESULTS"
say "done in $(seconds "$start"): $(grep -c '^passed' "$RESULTS") passed, $(grep -c '^failed' "$RESULTS") failed, $(grep -c '^not run' "$RESULTS") not run"
exit "$failed"
