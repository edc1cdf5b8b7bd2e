# fifteenth-operator. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
CHART_TOOL ?= $(LOCALBIN)/chart-tool
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
ENVTEST_K8S_VERSION ?= 1.34.4
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(ENVTEST_K8S_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)
IMG ?= ghcr.io/fifteenth/fifteenth-operator:dev
# Packages whose tests run with the race detector: the client, the simulator, the election and
# the controllers (whose suite runs on the test control plane).
RACE_PKGS ?= ./internal/... ./controllers/...

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet (and in the chart tool's module).
	go vet ./...
	cd hack/tools/helm && go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (and go vet in the chart tool's module).
	$(GOLANGCI_LINT) run ./...
	cd hack/tools/helm && go vet ./...

.PHONY: verify
verify: manifests generate ## Fail when generated files or formatting drift from the source.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are out of date: run make manifests generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts)" || { echo "untracked generated files:"; git status --porcelain -- api config charts; exit 1; }
	go mod tidy -diff
	cd hack/tools/helm && go mod tidy -diff

.PHONY: envtest
envtest: ## Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) into bin/k8s/.
	@hack/setup-envtest.sh >/dev/null

.PHONY: test
test: manifests generate envtest chart-tool ## Run all tests: unit, simulator, envtest suites, Argo CD health, alerts, e2e, the Helm chart.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -race -count=1 -timeout 20m $(RACE_PKGS)
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" CHART_TOOL="$(CHART_TOOL)" go test -count=1 -timeout 20m $$(go list ./... | grep -v -e /internal/ -e /controllers)

FUZZTIME ?= 10s
.PHONY: fuzz
fuzz: ## Fuzz the client's answer decoding and the renewal-time function for FUZZTIME each.
	go test -run '^$$' -fuzz FuzzDecodeAnswer -fuzztime $(FUZZTIME) ./internal/fifteenth/
	go test -run '^$$' -fuzz FuzzTime -fuzztime $(FUZZTIME) ./internal/renewal/

BENCH_ARGS ?=
.PHONY: bench
bench: envtest ## Measure scale, rate limits and steady state; write bench/results.md (BENCH_ARGS=-n 500 to scale down; BENCH_ARGS="-n 10000 -idle-sync-period 3m -out bench/results-10000.md" for the 10,000 run, about 16 min).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./test/bench $(BENCH_ARGS)

.PHONY: test-faults
test-faults: envtest ## Crashes, API faults, leader change, API server restart, suspension, key rotation.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -tags faults -count=1 -timeout 20m -v ./test/faults/

.PHONY: test-e2e
test-e2e: manifests envtest chart-tool ## Install config/default, then the Helm chart, on the local control plane and run the manager as its ServiceAccount.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" CHART_TOOL="$(CHART_TOOL)" go test -count=1 -timeout 10m -v ./test/e2e/...

.PHONY: demo
demo: ## Run the operator locally against the simulator with the samples (DEMO_ARGS=--once to exit).
	hack/demo.sh $(DEMO_ARGS)

##@ Build

# The version kubectl-fifteenth reports (kubectl fifteenth version).
PLUGIN_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# Where make install-plugin puts kubectl-fifteenth: a directory on PATH, where kubectl finds it.
INSTALL_DIR ?= $(HOME)/.local/bin

.PHONY: build
build: ## Build the manager, the simulator and the kubectl plugin (kubectl-fifteenth) into bin/.
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/fifteenth-sim ./hack/fifteenth-sim
	go build -ldflags "-X github.com/fifteenth/fifteenth-operator/internal/cli.Version=$(PLUGIN_VERSION)" -o $(LOCALBIN)/kubectl-fifteenth ./cmd/kubectl-fifteenth

.PHONY: install-plugin
install-plugin: build ## Copy bin/kubectl-fifteenth into INSTALL_DIR (default ~/.local/bin), for `kubectl fifteenth`.
	install -d "$(INSTALL_DIR)"
	install -m 0755 $(LOCALBIN)/kubectl-fifteenth "$(INSTALL_DIR)/kubectl-fifteenth"
	@echo "Installed $(INSTALL_DIR)/kubectl-fifteenth: run kubectl fifteenth --help"
	@case ":$$PATH:" in *":$(INSTALL_DIR):"*) ;; *) echo "Warning: $(INSTALL_DIR) is not on PATH: add it, or run make install-plugin INSTALL_DIR=<a directory on PATH>";; esac

.PHONY: run
run: ## Run the manager against the current kubeconfig.
	go run . $(ARGS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the current cluster.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every PartnerAccount and LoginLink) from the current cluster.
	kubectl delete -k config/crd --ignore-not-found

.PHONY: deploy
deploy: manifests ## Deploy the operator to the current cluster.
	kubectl apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator from the current cluster.
	kubectl delete -k config/default --ignore-not-found

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

# Always run: go build is a no-op when nothing changed, and rebuilds when hack/tools/helm did.
# The flags match hack/setup-envtest.sh's, so the k8s.io packages both build are shared in the
# build cache.
.PHONY: chart-tool
chart-tool: ## Build bin/chart-tool: renders and lints charts/ with the Helm Go SDK (module hack/tools/helm).
	cd hack/tools/helm && CGO_ENABLED=0 go build -trimpath -o $(CHART_TOOL) .

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
