# socksd — build, check and test.
#
#   make test     install deps, gofmt/vet/staticcheck, unit tests (-race),
#                 then the real-Tor end-to-end suite on a private Tor network
#   make run      run socksd with config.example.toml
#   make tornet   bring up a private Tor network by hand (Ctrl-C tears it down;
#                 TORNET_DIR=dir keeps it there, default a temp dir;
#                 TORNET_PROFILE=real|lossy|flat shapes its links, default zero)
#   make bench    the issue-8 benchmark suite (test/bench/run.sh): loopback
#                 peers, then through a private Tor network; BENCH_MODE=quick,
#                 BENCH_TOR=0 (loopback only), BENCH_OUT=dir (default results/)
#   make bench-real  socksd against Tor alone as a user feels it, on a private
#                 network with link latency (run.sh real, ~8 min): new
#                 identities, bursts, bulk, onion, circuits, CPU (results/user.md)
#   make soak     the reliability suite's long form (scripts/soak.sh, ~15 min):
#                 floods, slowloris, fd limits, tor kill -9 and SIGSTOP, DNS
#                 abuse, garbage, an 8-minute churn; numbers in results/soak/
#   make fuzz     every fuzz target, one at a time, FUZZTIME each (default
#                 60s, -parallel FUZZ_PARALLEL=1); execs per target in
#                 results/fuzz/report.md
#   make install  install socksd as a systemd service (deploy/install.sh);
#                 make uninstall removes it
#   make deb      build the Debian package into dist/ (deploy/deb/build.sh)
#   make test-systemd  (root) the deployment under a real systemd booted in
#                 a throwaway box on an overlay of / (test/systemd); part of
#                 make test
#
# The e2e suite (test/...) needs SOCKSD_TORNET=1; without it those tests skip.

GO          ?= go
GOBIN       := $(shell $(GO) env GOBIN)
ifeq ($(GOBIN),)
GOBIN       := $(shell $(GO) env GOPATH)/bin
endif
STATICCHECK ?= $(GOBIN)/staticcheck
TORNET_DIR  ?=
# Authority keys (tor-gencert RSA-3072, up to ~10 s on a busy 2-core box)
# are reused between runs from here; test-only keys. Empty = no cache.
TORNET_KEYCACHE ?= $(HOME)/.cache/socksd/tornet-keys
export TORNET_KEYCACHE
E2E_TIMEOUT ?= 15m

.PHONY: test deps check fmt vet staticcheck unit e2e test-systemd run tornet bench bench-real soak fuzz install uninstall deb

test: deps check unit e2e test-systemd

deps:
	scripts/install-deps.sh

check: fmt vet staticcheck

# Tracked files only (a fresh checkout is what CI sees); outside git, all.
fmt:
	@files=$$(git ls-files '*.go' 2>/dev/null); \
	[ -n "$$files" ] || files=$$(find . -name '*.go' -not -path './.git/*'); \
	out=$$(gofmt -l $$files); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

# Unit tests, fuzz seed corpora included (go test runs every Fuzz target on
# its f.Add seeds and testdata/fuzz files). test/... skips without SOCKSD_TORNET.
unit:
	$(GO) test -race ./...

# One private Tor network per test package (TestMain in each). -race also
# builds the socksd binary under test with the race detector.
e2e:
	SOCKSD_TORNET=1 $(GO) test -race -count=1 -timeout $(E2E_TIMEOUT) ./test/...

# Boots systemd as PID 1 in new namespaces on an overlay of / (never on
# the host's root: its boot-time cleanup would empty the host's /tmp) and
# drives install.sh and the Debian package in it; about 5 minutes.
test-systemd:
	SOCKSD_SYSTEMD=1 $(GO) test -count=1 -timeout 15m -v ./test/systemd/

run: deps
	$(GO) run ./cmd/socksd -config config.example.toml

tornet:
	$(GO) run ./cmd/tornet up $(TORNET_DIR)

BENCH_MODE ?=
# -unix-upstream: socksd also reaches U over a Unix socket, as it reaches
# the system tor in deploy/ (torrc.socksd's SocksPort unix:...).
bench:
	bash test/bench/run.sh $(or $(BENCH_MODE),full) -unix-upstream

bench-real:
	bash test/bench/run.sh real

# The reliability suite's short form runs in e2e (make test).
soak: deps
	bash scripts/soak.sh

FUZZTIME ?= 60s
FUZZ_PARALLEL ?= 1
fuzz:
	FUZZTIME=$(FUZZTIME) FUZZ_PARALLEL=$(FUZZ_PARALLEL) bash scripts/fuzz.sh

install:
	deploy/install.sh

uninstall:
	deploy/install.sh --uninstall

deb:
	deploy/deb/build.sh
