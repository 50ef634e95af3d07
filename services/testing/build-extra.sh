#!/usr/bin/env bash
# Run by infra/build.sh after tsc: puts Tally's image recipe into the package, so @tally/testing
# can build the image where it is missing, with no Tally checkout (tally-image.ts):
#   image/Containerfile   infra/images/tally.Containerfile, the one recipe
#   image/tally.mjs       the tally command bundled into one file (infra/images/bundle.mjs)
#   image/schemas/        the event schemas the bundle reads beside itself
# The Node binary is not shipped: the building process adds its own.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
rm -rf "$HERE/image"
node "$ROOT/infra/images/bundle.mjs" "$HERE/image"
cp "$ROOT/infra/images/tally.Containerfile" "$HERE/image/Containerfile"
chmod 0644 "$HERE/image/tally.mjs"
