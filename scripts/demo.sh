#!/usr/bin/env bash
# Runs walcast with nothing else prepared: installs PostgreSQL (and Node.js for
# the event watcher) when missing, then `walcast demo`, which starts a
# throwaway PostgreSQL with the example schema, prints tokens and the URL, and
# writes sample changes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl), 1.26 or newer" >&2; exit 1; }
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v useradd >/dev/null || need+=(passwd)
if ((${#need[@]})); then
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -d e2e/node_modules ] || (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
exec go run ./cmd/walcast demo "$@"
