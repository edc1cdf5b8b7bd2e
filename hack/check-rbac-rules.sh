#!/usr/bin/env bash
# Proves that every RBAC rule the operator is given is needed: removes one rule at a time
# from config/rbac (the generated ClusterRole, the Secret ClusterRole, the leader election Role,
# the metrics endpoint's authentication and reader roles) and from config/namespaced (the key
# Secret Role in the operator's namespace), runs the e2e suite (which runs the manager with
# its ServiceAccount's token, installed by config/default and by config/namespaced, and
# scrapes its metrics), and expects it to fail.
# Restores the files at the end. Takes a few minutes: not part of make test.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
files=(config/rbac/role.yaml config/rbac/secret_role.yaml config/rbac/leader_election_role.yaml
	config/rbac/metrics_auth_role.yaml config/rbac/metrics_reader_role.yaml config/namespaced/operator/key_secret_role.yaml)
backup=$(mktemp -d)
for f in "${files[@]}"; do cp "$f" "$backup/$(basename "$f")"; done
restore() { local r; for r in "${files[@]}"; do cp "$backup/$(basename "$r")" "$r"; done; }
trap restore EXIT

go test -c -o "$backup/e2e.test" ./test/e2e/ || exit 1
failures=0
for f in "${files[@]}"; do
	n=$(grep -c -E '^- (apiGroups|nonResourceURLs):' "$f")
	for i in $(seq 1 "$n"); do
		restore
		# Drop the i-th rule: a "- apiGroups:" or "- nonResourceURLs:" block, which runs until
		# the next one or the end.
		awk -v drop="$i" '/^- (apiGroups|nonResourceURLs):/{k++} !(k==drop && /^(- apiGroups:|- nonResourceURLs:|  )/)' "$backup/$(basename "$f")" >"$f"
		rule=$(diff "$backup/$(basename "$f")" "$f" | grep '^<' | tr -d '<' | tr -s ' \n' ' ')
		if (cd test/e2e && "$backup/e2e.test" -test.count=1 >"$backup/run.log" 2>&1); then
			echo "NOT NEEDED?  $f:$rule"
			failures=$((failures + 1))
		else
			reason=$(grep -o -m1 -E '(forbidden[^"]{0,80}|[a-zA-Z ]+: [a-z ]*Ready[^\n]{0,60})' "$backup/run.log" | head -1)
			echo "needed       $f:$rule -> e2e failed (${reason:-see log})"
		fi
	done
done
exit $failures
