#!/usr/bin/env bash
# Builds the envtest control plane (etcd, kube-apiserver, kubectl) from Go modules into
# bin/k8s/<version>-<os>-<arch>/, because these machines cannot download prebuilt binaries
# (setup-envtest downloads). Idempotent: a binary that exists is kept. The last line printed
# is the assets directory, for KUBEBUILDER_ASSETS.
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

build() { # build NAME MODULE_DIR PACKAGE
	local name=$1 mod=$2 pkg=$3
	if [ -x "$dir/$name" ]; then
		echo "envtest: $name exists, skipped" >&2
		return
	fi
	echo "envtest: building $name (first build takes minutes)" >&2
	local start=$SECONDS
	(cd "$root/hack/tools/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" "$pkg")
	mv "$dir/$name.tmp" "$dir/$name"
	echo "envtest: built $name in $((SECONDS - start))s" >&2
}

build etcd etcd .
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver
build kubectl kube k8s.io/kubernetes/cmd/kubectl

echo "$dir"
