# cri-shim: a Kubernetes CRI runtime on containerd.
#   make run    install what is missing, then run the daemon (managed containerd) in the foreground
#   make test   install what is missing, then unit, integration and critest conformance tests
#   make install  the binary, the systemd unit and the default config under DESTDIR/PREFIX
#   make test-node  build a Debian guest (cgroup v2 only, systemd, containerd service) and run in it
#               under QEMU (TCG) the smoke test, a v1.37 kubelet with a static pod and critest;
#               results in hack/guest/results*.txt
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS ?= -buildvcs=false
CACHE ?= /var/cache/cri-shim
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
RUN_ARGS ?=
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

.PHONY: all build install setup run test unit integration fuzz critest test-node test-node-e2e bench fmt vet clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o bin/cri-shim ./cmd/cri-shim

# The binary, the systemd unit (its paths filled in) and the config dir. The default config is
# installed only where there is none: an existing config.toml is kept as it is.
install: build
	install -D -m 0755 bin/cri-shim $(DESTDIR)$(BINDIR)/cri-shim
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/cri-shim/config.d
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/cri-shim.service > $(DESTDIR)$(UNITDIR)/cri-shim.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cri-shim.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/cri-shim/config.toml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/cri-shim/config.toml (the default is packaging/config.toml)"; \
	else \
		install -m 0644 packaging/config.toml $(DESTDIR)$(SYSCONFDIR)/cri-shim/config.toml; \
	fi

setup:
	./hack/setup.sh

run: setup build
	./bin/cri-shim $(RUN_ARGS)

# unit tests, then integration tests against a real containerd (started by the tests themselves),
# then the critest conformance run with its ratchet.
test: setup vet unit integration fuzz critest

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	go vet -tags integration ./...

unit:
	go test ./...

# Every package's integration tests; then the runtime's and the standalone pods' again with the pods
# the kubelet makes (a PID namespace per container), which run without a pause process.
integration:
	CRI_SHIM_INTEGRATION=1 go test -tags integration -count=1 -p 1 -timeout 30m ./...
	CRI_SHIM_INTEGRATION=1 CRI_SHIM_TEST_PAUSE_LESS=1 go test -tags integration -count=1 -p 1 -timeout 30m ./kuberuntime/ ./standalone/

# each fuzz target for a bounded number of runs (not a duration: with a -fuzztime duration, go1.26's
# fuzz coordinator can fail a target with a bare "context deadline exceeded" at the deadline when
# the machine is loaded, golang/go#75804, fixed in go1.27), one at a time.
FUZZTIME ?= 30000x
FUZZ_TARGETS := server:FuzzRunPodSandbox server:FuzzCreateContainer server:FuzzExec server:FuzzPortForward \
	server:FuzzPullImage kuberuntime/containerspec:FuzzContainerSpec kuberuntime/checkpointarchive:FuzzCheckpointArchive kuberuntime/criu:FuzzCheckpointImages standalone:FuzzManifest legacy/crilog:FuzzReadLogs \
	kuberuntime/kmsgoom:FuzzParseRecord kuberuntime/cdi:FuzzRequested
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in ./$${t%%:*}/ for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}/; \
	done

critest: build
	./test/critest/run.sh

# a production-like node: hack/kubelet/build.sh builds (or reuses) the kubelet, hack/guest/build.sh
# makes (or reuses) the guest under /var/cache/cri-shim/guest, and hack/guest/run.sh boots a fresh
# copy of it for each test: smoke (results.txt), kubelet (results-kubelet.txt), critest
# (results-critest.txt; GUEST_CRITEST=full GUEST_TIMEOUT=8400 for the whole suite).
test-node: setup
	./hack/kubelet/build.sh
	./hack/guest/build.sh
	./hack/guest/run.sh
	GUEST_TEST=kubelet ./hack/guest/run.sh
	GUEST_TEST=critest ./hack/guest/run.sh

# the Kubernetes node e2e suite (k8s.io/kubernetes v1.37 test/e2e_node: [NodeConformance], no
# [Flaky]/[Slow]/[Serial]) on this host: hack/node-e2e/build.sh builds (or reuses) e2e_node.test, the
# kubelet and ginkgo from the Go module proxy; hack/node-e2e/run.sh runs a real kubelet and API server
# against cri-shim (NODE_E2E_RUNTIME=containerd: containerd's own CRI); results in
# test/e2e_node/results*.txt, ratchet test/e2e_node/baseline.txt.
test-node-e2e: setup
	./hack/node-e2e/build.sh
	./hack/node-e2e/run.sh

bench: build
	SETUP_PROFILE=bench ./hack/setup.sh
	./hack/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin test/critest/last-run
