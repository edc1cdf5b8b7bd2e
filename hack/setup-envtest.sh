#!/usr/bin/env bash
# Builds the envtest control plane (etcd, kube-apiserver, kube-controller-manager, kubectl)
# from Go modules into bin/k8s/<version>-<os>-<arch>/, because these machines cannot download
# prebuilt binaries (setup-envtest downloads). Idempotent: when every binary exists nothing is
# built; when one of the Kubernetes binaries is missing, all of them are rebuilt in one
# `go build` (they share most packages, so one invocation compiles them once). The last line
# printed is the assets directory, for KUBEBUILDER_ASSETS.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=1.34.4
os=$(go env GOOS)
arch=$(go env GOARCH)
dir="${ASSETS_DIR:-$root/bin/k8s/${k8s_version}-${os}-${arch}}"
mkdir -p "$dir"

# Without these, the binaries report v0.0.0-master in --version and /version.
ver_pkg=k8s.io/component-base/version
ldflags="-s -w -X ${ver_pkg}.gitVersion=v${k8s_version} -X ${ver_pkg}.gitMajor=${k8s_version%%.*}"
minor=${k8s_version#*.}
ldflags="$ldflags -X ${ver_pkg}.gitMinor=${minor%%.*} -X ${ver_pkg}.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=v${k8s_version}"

# build_etcd builds etcd from module hack/tools/etcd unless it exists.
build_etcd() {
	if [ -x "$dir/etcd" ]; then
		echo "envtest: etcd exists, skipped" >&2
		return
	fi
	echo "envtest: building etcd" >&2
	local start=$SECONDS
	(cd "$root/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/etcd.tmp" .)
	mv "$dir/etcd.tmp" "$dir/etcd"
	echo "envtest: built etcd in $((SECONDS - start))s" >&2
}

# build_kube builds the Kubernetes binaries from module hack/tools/kube in one go build into
# $dir/.build/, then moves them into place, unless all of them exist.
build_kube() {
	local names=(kube-apiserver kube-controller-manager kubectl) name missing=() pkgs=()
	for name in "${names[@]}"; do
		[ -x "$dir/$name" ] || missing+=("$name")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "envtest: ${names[*]} exist, skipped" >&2
		return
	fi
	for name in "${names[@]}"; do
		pkgs+=("k8s.io/kubernetes/cmd/$name")
	done
	echo "envtest: building ${names[*]} (missing: ${missing[*]}; the first build takes minutes)" >&2
	local start=$SECONDS
	rm -rf "$dir/.build"
	mkdir -p "$dir/.build"
	(cd "$root/hack/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/.build/" "${pkgs[@]}")
	for name in "${names[@]}"; do
		mv "$dir/.build/$name" "$dir/$name"
	done
	rmdir "$dir/.build"
	echo "envtest: built ${names[*]} in $((SECONDS - start))s" >&2
}

build_etcd
build_kube

echo "$dir"
