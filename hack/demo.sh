#!/usr/bin/env bash
# make demo: the operator on a local control plane against the Fifteenth simulator, with the
# samples of config/samples applied. No cluster and no Fifteenth key needed.
#   hack/demo.sh          stays up until Ctrl-C, which stops everything it started
#   hack/demo.sh --once   exits 0 once every sample is Ready, non-zero otherwise
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
once=false
for arg in "$@"; do
	case "$arg" in
	--once) once=true ;;
	*) echo "usage: $0 [--once]" >&2; exit 2 ;;
	esac
done

state=$root/.demo
mkdir -p "$state"
export LOCAL_CLUSTER_DIR=$state/cluster
ns=default
pids=()
current=""
log=""

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	"$root/hack/local-cluster.sh" down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { # step NAME LOGFILE
	current=$1
	log=$2
	printf '==> %s\n' "$current"
}
fail() {
	printf '\nFAILED at step "%s": %s\n' "$current" "$1" >&2
	[ -n "$log" ] && printf 'Its log: %s\n' "$log" >&2
	exit 1
}

step "Building the control plane, the manager and the simulator" "$state/build.log"
{
	hack/setup-envtest.sh
	go build -o bin/manager .
	go build -o bin/fifteenth-sim ./hack/fifteenth-sim
} >"$log" 2>&1 || fail "build failed"
assets=$(tail -n 1 "$log")
kubectl=$assets/kubectl

step "Starting the local control plane (etcd + kube-apiserver, CRDs installed)" "$state/cluster/log"
kubeconfig=$(hack/local-cluster.sh up 2>"$state/cluster-up.log" | tail -n 1) || fail "the control plane did not start"
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
k wait --for=condition=Established crd/partneraccounts.partners.fifteenth.com crd/loginlinks.partners.fifteenth.com --timeout=60s >/dev/null ||
	fail "the CRDs are not established"

step "Starting the Fifteenth simulator" "$state/sim.log"
bin/fifteenth-sim --addr 127.0.0.1:0 >"$state/sim.out" 2>"$log" &
pids+=($!)
for _ in $(seq 1 100); do
	[ -s "$state/sim.out" ] && break
	sleep 0.1
done
sim=$(head -n 1 "$state/sim.out" | awk '{print $3}')
[ -n "$sim" ] || fail "the simulator printed no address"
printf '    %s\n' "$sim"

step "Creating the accounts the samples refer to (12345 with an accountant, 12346)" "$state/seed.log"
key=15th_demo_partner_key
printf '%s\n' "$key" >"$state/api-key"
chmod 600 "$state/api-key"
post() { curl -fsS -X POST "$sim$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$2"; }
{
	post /v1beta/accounts '{"email":"alex.morgan@example.com","first_name":"Alex","last_name":"Morgan"}' | grep -o '"id":[0-9]*'
	post /_sim/accounts/12345/users '{"email":"accountant@example.com"}'
	post /v1beta/accounts '{"email":"sam.lee@example.com","first_name":"Sam","last_name":"Lee"}' | grep -o '"id":[0-9]*'
} >"$log" 2>&1 || fail "the simulator refused the seed accounts"

step "Starting the manager" "$state/manager.log"
bin/manager --kubeconfig "$kubeconfig" --api-url "$sim" --api-key-file "$state/api-key" \
	--election-namespace "$ns" --account-access-namespaces "$ns" --metrics-bind-address 127.0.0.1:0 --metrics-secure=false --health-probe-bind-address 127.0.0.1:0 >"$log" 2>&1 &
pids+=($!)

step "Applying config/samples" "$state/apply.log"
k apply -n "$ns" -k config/samples >"$log" 2>&1 || fail "kubectl apply failed"
sed 's/^/    /' "$log"

step "Waiting until every PartnerAccount and LoginLink is Ready" "$state/manager.log"
if ! k wait -n "$ns" --for=condition=Ready partneraccounts,loginlinks --all --timeout=120s >"$state/wait.log" 2>&1; then
	k get -n "$ns" partneraccounts,loginlinks -o wide >&2 || true
	fail "not everything became Ready"
fi

printf '\n'
k get -n "$ns" partneraccounts,loginlinks
printf '\nSecrets written by the operator (links masked but for their last 4 characters):\n'
k get -n "$ns" secrets -l app.kubernetes.io/managed-by=fifteenth-operator \
	-o go-template='{{range .items}}{{.metadata.name}}{{"\t"}}{{index .data "login_link" | base64decode}}{{"\t"}}{{index .data "user_email" | base64decode}}{{"\t"}}{{index .data "expires_at" | base64decode}}{{"\n"}}{{end}}' |
	awk -F'\t' '{ n = length($2); printf "    %-32s login_link=****%s  user_email=%s  expires_at=%s\n", $1, substr($2, n - 3), $3, $4 }'

if $once; then
	printf '\nAll samples are Ready.\n'
	exit 0
fi
cat <<EOT

The demo is up. Explore it from another terminal:
    export KUBECONFIG=$kubeconfig
    $kubectl get partneraccounts,loginlinks
    curl -s $sim/_sim/accounts
Logs: $state/manager.log, $state/sim.log. Ctrl-C stops everything.
EOT
while true; do sleep 3600 & wait $!; done
