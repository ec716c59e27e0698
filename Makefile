# Tollgate — `make help` lists the targets.
#
# The test tools (kube-apiserver, etcd, controller-gen) are built from the Go
# module proxy once and cached outside the checkout, keyed by version:
#   $(TOLLGATE_CACHE)/tools/NAME-VERSION-GOVERSION/NAME   (default ~/.cache/tollgate)
# bin/ holds symlinks to them. Nothing is downloaded from anywhere else.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export TOLLGATE_CACHE ?= $(HOME)/.cache/tollgate
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TEST_TIMEOUT ?= 30m
FUZZTIME ?= 30s

# The keyless and KMS servers (one module: testing/tools/sigstore), and
# SPIRE for the spiffe identity provider (testing/tools/spire).
KEYLESS_TOOLS := bin/fulcio bin/rekor-server bin/rekor-cli bin/trillian_log_server bin/trillian_log_signer bin/local-kms
SPIRE_TOOLS := bin/spire-server bin/spire-agent bin/oidc-discovery-provider
# Tekton Pipelines' controller, webhook and resolvers (testing/tools/tekton; TEKTON_VERSION=… for another release).
TEKTON_TOOLS := bin/tekton-controller bin/tekton-webhook bin/tekton-resolvers
TEST_TOOLS := bin/kube-apiserver bin/etcd bin/cosign bin/cosign3 bin/helm $(KEYLESS_TOOLS) $(SPIRE_TOOLS) $(TEKTON_TOOLS)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/tollgate
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/tollgate ./cmd/tollgate

# make image: the OCI image in bin/image; IMAGE=REGISTRY/REPO:TAG pushes it,
# KEY=cosign.key (password in COSIGN_PASSWORD) or KEY=awskms://… signs it and
# attests its SLSA provenance and CycloneDX SBOM (needs IMAGE).
IMAGE_FLAGS = -out bin/image -version $(VERSION) -commit $(COMMIT) -epoch $$(git log -1 --format=%ct) $(if $(KEY),-key $(KEY))

.PHONY: image
image: ## the OCI image in bin/image: linux/amd64 and linux/arm64, static, non-root, reproducible; IMAGE=REGISTRY/REPO:TAG pushes it, KEY=cosign.key|KMS-ref signs and attests it (SLSA provenance, CycloneDX SBOM)
	$(GO) run ./build/image $(IMAGE_FLAGS) $(if $(IMAGE),-push $(IMAGE))

.PHONY: release
release: bin/helm ## VERSION=vX.Y.Z IMAGE=REGISTRY/REPO [KEY=…]: push the image as IMAGE:VERSION, point charts/tollgate/values.yaml at its digest, package the chart into bin/
	@[ "$(origin VERSION)" = "command line" ] || { echo "make release: set VERSION=vX.Y.Z (the image tag and chart version)"; exit 2; }
	@[ -n "$(IMAGE)" ] || { echo "make release: set IMAGE=REGISTRY/REPO (pushed as IMAGE:$(VERSION))"; exit 2; }
	$(GO) run ./build/image $(IMAGE_FLAGS) -push $(IMAGE):$(VERSION) -values charts/tollgate/values.yaml
	bin/helm package charts/tollgate --version $(patsubst v%,%,$(VERSION)) --app-version $(VERSION) -d bin

.PHONY: tools
tools: ## build the test tools into the cache (once; ~40 min cold): kube-apiserver, etcd, controller-gen, cosign v2 and v3, helm, Fulcio, Rekor, Trillian
	./testing/tools/build.sh etcd kube-apiserver controller-gen cosign cosign3 helm $(notdir $(KEYLESS_TOOLS)) $(notdir $(SPIRE_TOOLS)) $(notdir $(TEKTON_TOOLS))

bin/kube-apiserver bin/etcd bin/controller-gen bin/cosign bin/cosign3 bin/helm $(KEYLESS_TOOLS) $(SPIRE_TOOLS) $(TEKTON_TOOLS):
	./testing/tools/build.sh $(notdir $@)

.PHONY: demo
demo: build bin/kube-apiserver bin/etcd bin/cosign bin/helm bin/tekton-controller bin/tekton-webhook $(if $(KEYLESS),$(KEYLESS_TOOLS)) ## the whole system on this machine (tollgate dev and the real Tekton), walked through step by step; KEYLESS=1 adds the keyless act (Fulcio, Rekor)
	$(GO) run ./testing/demo -tollgate bin/tollgate $(if $(KEYLESS),-keyless)

.PHONY: dev
dev: build bin/kube-apiserver bin/etcd bin/cosign bin/helm bin/tekton-controller bin/tekton-webhook ## tollgate dev and the real Tekton, to explore by hand (Ctrl-C stops everything)
	$(GO) run ./testing/demo -tollgate bin/tollgate -explore

.PHONY: test
test: $(TEST_TOOLS) verify ## all tests: unit, fuzz seed corpus, envtest e2e (what CI runs)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-unit
test-unit: ## unit tests only (no control plane)
	$(GO) test -count=1 -short $$($(GO) list ./... | grep -v /testing/e2e)

.PHONY: fuzz
fuzz: ## fuzz the spec digest, the one-pass decoder against sigs.k8s.io/json, run extraction, both handlers and image verification of hostile registry content, legacy and bundles (FUZZTIME=30s each)
	$(GO) test ./policy/specdigest -run '^$$' -fuzz FuzzCanonical -fuzztime $(FUZZTIME)
	$(GO) test ./internal/apijson -run '^$$' -fuzz FuzzSameAsAPIServerDecoding -fuzztime $(FUZZTIME)
	$(GO) test ./policy/runs -run '^$$' -fuzz FuzzAdmit -fuzztime $(FUZZTIME)
	$(GO) test ./webhook/runguard -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME)
	$(GO) test ./webhook/imagegate -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME)
	$(GO) test ./policy/images -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	$(GO) test ./policy/images -run '^$$' -fuzz '^FuzzVerifyBundles$$' -fuzztime $(FUZZTIME)

.PHONY: bench
bench: $(TEST_TOOLS) ## benchmarks: run guard in-process and through the API server (see BENCHMARKS.md)
	./testing/bench/run.sh

# OPA Gatekeeper v3.20.1, for make bench-compare only (testing/tools/gatekeeper:
# its go.sum copied from the module; no test needs it).
bin/gatekeeper:
	./testing/tools/build.sh gatekeeper

.PHONY: bench-compare
bench-compare: $(TEST_TOOLS) bin/gatekeeper ## OPA Gatekeeper v3.20.1 (built once from the Go module proxy) and the tollgate webhook process on the same reviews: req/s, p50/p90/p99, CPU per review, RSS
	./testing/bench/compare.sh

.PHONY: golden
golden: ## regenerate signer/provenance/testdata/chains from Tekton Chains v0.24.0 itself
	cd testing/tools/chainsgolden && $(GO) run . -out ../../../signer/provenance/testdata/chains

.PHONY: tekton-golden
tekton-golden: $(TEST_TOOLS) ## capture the article's runs from the real Tekton controller (runs/tekton), then make golden
	TOLLGATE_CAPTURE_RUNS=$(CURDIR)/signer/provenance/testdata/chains/runs/tekton $(GO) test -count=1 -run '^TestTektonArticlePipeline$$' ./testing/e2e
	$(MAKE) golden

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: chart-lint
chart-lint: bin/helm ## helm lint and helm template the chart with its default and every ci/*-values.yaml
	bin/helm lint charts/tollgate --kube-version 1.35.4
	@for f in charts/tollgate/ci/*-values.yaml; do echo "== $$f"; bin/helm lint charts/tollgate --kube-version 1.35.4 -f $$f && bin/helm template tollgate charts/tollgate -n tollgate-system --kube-version 1.35.4 -f $$f > /dev/null || exit 1; done

.PHONY: generate
generate: bin/controller-gen ## regenerate deepcopy code, CRDs (charts/tollgate/files/crds) and the chart's README
	bin/controller-gen object paths=./policy/v1alpha1/...
	bin/controller-gen crd paths=./policy/v1alpha1/... output:crd:dir=charts/tollgate/files/crds
	$(GO) run ./testing/chartdoc charts/tollgate

.PHONY: verify
verify: generate lint ## generate, then fail if anything changed (stale generated files) or a tracked file is a binary or over 1 MiB
	./testing/checks/tracked-files.sh
	@git diff --exit-code -- policy/v1alpha1 charts/tollgate/files/crds charts/tollgate/README.md || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
