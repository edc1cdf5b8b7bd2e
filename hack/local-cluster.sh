#!/usr/bin/env bash
# Runs the local control plane (etcd + kube-apiserver on loopback, CRDs installed, and
# kube-controller-manager) alone.
#   hack/local-cluster.sh up     start it; the last line printed is the kubeconfig path
#   hack/local-cluster.sh down   stop it
# LOCAL_CLUSTER_DIR (default .demo/cluster) holds the kubeconfig, the pid file and the log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LOCAL_CLUSTER_DIR:-$root/.demo/cluster}
pidfile=$dir/pid

up() {
	mkdir -p "$dir"
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "$dir/kubeconfig"
		return
	fi
	assets=$("$root/hack/setup-envtest.sh")
	(cd "$root" && go build -o bin/local-cluster ./hack/local-cluster)
	rm -f "$dir/kubeconfig"
	KUBEBUILDER_ASSETS=$assets nohup "$root/bin/local-cluster" --dir "$dir" >"$dir/log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 900); do
		if [ -s "$dir/kubeconfig" ]; then
			echo "$dir/kubeconfig"
			return
		fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "local-cluster: the control plane exited; see $dir/log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "local-cluster: no kubeconfig after 180s; see $dir/log" >&2
	exit 1
}

down() {
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$pidfile"
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
