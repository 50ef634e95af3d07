#!/usr/bin/env bash
# Compiles the public packages to JavaScript with .d.ts files (ESM), each into its own dist/:
#   @tally/service (the repository root: the tally command), @tally/producer, @tally/testing.
# Each package's dist/ holds the modules its entry point reaches, at their paths under the
# repository (dist/services/...), and the event schema (dist/schemas), which avro.ts reads.
#
#   bash infra/build.sh [service|producer|testing ...]     (all three when none is named)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TSC="$ROOT/node_modules/.bin/tsc"
[ -x "$TSC" ] || { echo "build: dependencies are not installed; run 'make setup' first" >&2; exit 1; }

build_one() {
  local name=$1 dir
  case $name in
    service) dir=. ;;
    producer | testing) dir=services/$name ;;
    *) echo "build: unknown package '$name' (service, producer or testing)" >&2; exit 2 ;;
  esac
  rm -rf "$dir/dist"
  "$TSC" -p "$dir/tsconfig.build.json"
  mkdir -p "$dir/dist/schemas"
  cp schemas/*.avsc "$dir/dist/schemas/"
  if [ "$dir" != . ]; then cp LICENSE "$dir/LICENSE"; fi
  if [ -x "$dir/build-extra.sh" ]; then bash "$dir/build-extra.sh"; fi
  echo "build: $name -> $dir/dist ($(find "$dir/dist" -name '*.js' | wc -l) modules)"
}

if [ $# -eq 0 ]; then set -- service producer testing; fi
for name in "$@"; do build_one "$name"; done
