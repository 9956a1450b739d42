#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks for building and testing slackgate:
#   cmake       pingora's zlib-ng build
#   prometheus  promtool, which checks /metrics and the alert rules
#   redis       redis-server and redis-sentinel for the shared-state tests (TLS, Cluster,
#               Sentinel failover: Debian's redis-server is built with TLS)
#   Python      slack_bolt + slack_sdk (compatibility tests), yamllint + kubernetes-validate (manifests)
#   Node.js     npm, and @slack/web-api and @slack/bolt from
#               crates/slackgate/tests/sdk/node/package-lock.json (the egress SDK compatibility
#               test, the Bolt-JS resign test); needs Node 20 or later
#   nftables, iproute2  nft and ip for the deploy tests' network-namespace lab (the lock-down)
#   cargo-deny  license/ban/source checks of the dependency graph (deny.toml); from
#               crates.io, about 3 minutes to build on 2 cores
# Idempotent; installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v promtool >/dev/null || need+=(prometheus)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! python3 -c 'import slack_bolt, yamllint, kubernetes_validate' 2>/dev/null; then
  echo "deps: pip install -r scripts/python-requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/python-requirements.txt
fi

NODE_SDK=crates/slackgate/tests/sdk/node
if [ ! -f "$NODE_SDK/node_modules/@slack/web-api/package.json" ] \
  || [ ! -f "$NODE_SDK/node_modules/@slack/bolt/package.json" ]; then
  echo "deps: npm ci in $NODE_SDK"
  (cd "$NODE_SDK" && npm ci --silent --no-audit --no-fund)
fi

if ! command -v cargo-deny >/dev/null; then
  echo "deps: cargo install --locked cargo-deny@0.20.2"
  cargo install --quiet --locked cargo-deny@0.20.2
fi
