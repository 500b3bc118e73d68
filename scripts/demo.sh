#!/usr/bin/env bash
# Runs walcast with nothing else prepared: installs PostgreSQL and Node.js
# when missing and the npm packages of the demo page (its socket.io-client)
# and of the terminal event watcher, then `walcast demo`, which starts a
# throwaway PostgreSQL with the example schema and serves a page that shows
# its changes arriving; it prints that page's address first.
#
# Usage: scripts/demo.sh [walcast demo flags, e.g. --listen 127.0.0.1:9090]
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
# cmd/walcast/demo: the socket.io-client the page loads; e2e: scripts/watch.mjs's.
for dir in cmd/walcast/demo e2e; do
	if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
	fi
done
exec go run ./cmd/walcast demo "$@"
