#!/usr/bin/env bash
# install-deps.sh — install what socksd's build and test suite need on a fresh
# Debian machine that already has Go. Idempotent: it only calls apt-get (and
# only runs `apt-get update`) when a package is missing, and only installs
# staticcheck when the pinned version is not already there.
#
#   tor, tor-gencert, tor-resolve  private Tor network (test/tornet) + tor-resolve e2e
#   dnsmasq-base                   not used by the Go harness (it serves DNS with
#                                  miekg/dns); kept for the shell recipe and demos
#   curl, proxychains4, torsocks   real SOCKS/HTTP clients driven by test/e2e
#   dnsutils                       dig, for the DNS bridge e2e tests
#   chromium                       headless browser e2e test
#   systemd, iproute2, procps      test/systemd boots systemd (252+) as PID 1 in
#                                  a throwaway box (ip for its loopback, pgrep);
#                                  systemd brings deb-systemd-helper for the
#                                  package's maintainer scripts
#
# Knobs: STATICCHECK_VERSION (default below), SKIP_APT=1 (skip the apt part).
set -euo pipefail

# staticcheck 2026.2.2 (module version v0.8.2): checked to install and run
# with go1.26.8 (`go install ...@v0.8.2`, then `staticcheck ./...`).
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
# git, iproute2 (ip netns for the canary host) and util-linux (setpriv):
# the socksd run tests in test/run. systemd and procps: test/systemd.
PKGS=(tor dnsmasq-base curl proxychains4 torsocks dnsutils chromium ca-certificates git iproute2 util-linux systemd procps)

log() { echo "install-deps: $*" >&2; }

installed() { # pkg: true when dpkg says "install ok installed"
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

if [[ "${SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then
    sudo=()
    if [[ $(id -u) != 0 ]]; then
      command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
      sudo=(sudo)
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

command -v go >/dev/null || { log "go not found on PATH (install Go >= 1.26 first)"; exit 1; }
GOBIN=$(go env GOBIN); [[ -n "$GOBIN" ]] || GOBIN=$(go env GOPATH)/bin
want=${STATICCHECK_VERSION#v}
have=$("$GOBIN/staticcheck" -version 2>/dev/null || true)   # "staticcheck 2026.2.2 (0.8.2)"
if [[ "$have" != *"($want)"* ]]; then
  log "installing staticcheck $STATICCHECK_VERSION into $GOBIN"
  GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

for bin in tor tor-gencert tor-resolve curl proxychains4 torsocks dig chromium ip pgrep deb-systemd-helper dpkg-deb; do
  command -v "$bin" >/dev/null || [[ -x /usr/sbin/$bin ]] || { log "$bin still missing after install"; exit 1; }
done
log "ok"
