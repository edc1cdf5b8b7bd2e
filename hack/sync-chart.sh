#!/usr/bin/env bash
# Copies the manifests the chart renders from config/ into charts/fifteenth-operator/files/,
# byte for byte, so that the chart cannot drift from config/ (run by make manifests; make
# verify and test/e2e/chart fail when the copies differ):
#   config/crd/bases/*.yaml          -> files/crds/      (rendered by templates/crds.yaml)
#   config/rbac/*.yaml               -> files/rbac/      (every Role, ClusterRole and binding; templates/rbac.yaml)
#   config/prometheus/rules.yaml     -> files/prometheus/ (templates/prometheusrule.yaml)
#   config/argocd/argocd-cm.yaml     -> files/argocd/    (templates/argocd-health.yaml)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files="$root/charts/fifteenth-operator/files"

sync() { # sync SRC_DIR DEST_DIR GLOB...: DEST_DIR holds exactly the matching files of SRC_DIR
	local src=$1 dest=$2
	shift 2
	rm -rf "$dest"
	mkdir -p "$dest"
	local pattern f
	for pattern in "$@"; do
		for f in "$src"/$pattern; do
			[ -e "$f" ] || continue
			[ "$(basename "$f")" = kustomization.yaml ] && continue
			cp "$f" "$dest/"
		done
	done
}

sync "$root/config/crd/bases" "$files/crds" '*.yaml'
sync "$root/config/rbac" "$files/rbac" '*.yaml'
sync "$root/config/prometheus" "$files/prometheus" rules.yaml
sync "$root/config/argocd" "$files/argocd" argocd-cm.yaml
