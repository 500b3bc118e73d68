#!/usr/bin/env bash
# Runs every walcast test on a fresh Debian machine, installing what is missing:
# PostgreSQL 15 (initdb/pg_ctl), redis-server, nginx (sticky-session test),
# prometheus and promtool (alert rules, scrape tests), Node.js + npm,
# Chromium (the browser tests), the npm packages of every folder with a package-lock.json,
# and staticcheck. Then: go vet (the main module and the benchmark's Centrifuge
# reference server, a module of its own), staticcheck, go test -race ./...
#
# Usage: scripts/test.sh [extra go test args, e.g. -run TestX]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

export PATH="/usr/local/go/bin:$PATH:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl), 1.26 or newer" >&2; exit 1; }

need_pkgs=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need_pkgs+=(postgresql)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v node >/dev/null || need_pkgs+=(nodejs)
command -v npm >/dev/null || need_pkgs+=(npm)
command -v useradd >/dev/null || need_pkgs+=(passwd)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need_pkgs+=(nginx)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || need_pkgs+=(prometheus)
if ((${#need_pkgs[@]})); then
	log "installing Debian packages: ${need_pkgs[*]}"
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# Debian starts the packaged services on install; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then
	systemctl stop redis-server postgresql nginx prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
for svc in redis-server postgresql nginx prometheus prometheus-node-exporter; do
	service "$svc" stop >/dev/null 2>&1 || true
done

# Every folder with a lockfile: the e2e client, the browser tests, the demo page's client, the benchmarks.
while IFS= read -r lock; do
	dir=$(dirname "$lock")
	if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules" ]; then
		log "npm ci in $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done < <(find . -name package-lock.json -not -path '*/node_modules/*' | sort)

if ! command -v staticcheck >/dev/null; then
	log "installing staticcheck"
	GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

log "go vet"
go vet ./...
# A module of its own (Centrifuge stays out of walcast's go.mod), joined to
# walcast's by its go.work: go vet builds it; its test runs with
# bench/fanout's.
log "go vet and staticcheck in bench/fanout/centrifuge"
(cd bench/fanout/centrifuge && go vet ./... && staticcheck ./...)
log "staticcheck"
staticcheck ./...
log "go test -race"
go test -race -count=1 -timeout 45m "$@" ./...
