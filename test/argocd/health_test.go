// Package argocd tests the Argo CD health checks of config/argocd with gopher-lua, the Lua
// interpreter Argo CD embeds.
package argocd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

// health runs a health script on an object the way Argo CD does: obj is a global table and
// the script returns {status, message}.
func health(t *testing.T, script string, obj map[string]any) (string, string) {
	t.Helper()
	L := argoVM(t, obj)
	if err := L.DoString(script); err != nil {
		t.Fatalf("script failed: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("script returned %v, want a table", L.Get(-1))
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))
}

// toLua converts decoded JSON to Lua values, as Argo CD does (numbers become Lua numbers).
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, val := range x {
			t.RawSetString(k, toLua(L, val))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, val := range x {
			t.Append(toLua(L, val))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	default:
		return lua.LNil
	}
}

func object(kind string, generation int, status string) map[string]any {
	raw := fmt.Sprintf(`{"apiVersion": "partners.fifteenth.com/v1alpha1", "kind": %q,
		"metadata": {"name": "x", "generation": %d}, "spec": {}%s}`, kind, generation, status)
	var obj map[string]any
	if err := json.Unmarshal([]byte(raw), &obj); err != nil {
		panic(err)
	}
	return obj
}

func ready(observed int, status, reason, message string) string {
	return fmt.Sprintf(`, "status": {"observedGeneration": %d, "conditions": [
		{"type": "Ready", "status": %q, "reason": %q, "message": %q, "lastTransitionTime": "2024-01-15T10:30:00Z"}]}`,
		observed, status, reason, message)
}

func TestHealthChecks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "argocd", "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"PartnerAccount", "LoginLink", "PartnerConfig", "ClusterPartnerConfig"} {
		script := cm.Data["resource.customizations.health.partners.fifteenth.com_"+kind]
		if script == "" {
			t.Fatalf("no health check for %s", kind)
		}
		for _, tt := range []struct {
			name, status, wantStatus, wantMessage string
			generation                            int
		}{
			{"new object without status", ``, "Progressing", "Waiting for the operator to observe the latest spec", 1},
			{"status of an older generation", ready(1, "True", "AccountReady", "fine"), "Progressing", "Waiting for the operator to observe the latest spec", 2},
			{"ready", ready(2, "True", "AccountReady", "account 12345 is active and its links are kept"), "Healthy", "account 12345 is active and its links are kept", 2},
			{"ready unknown", ready(1, "Unknown", "Reconciling", "starting"), "Progressing", "starting", 1},
			{"terminal failure", ready(3, "False", "InvalidRedirectURL", "Redirect URL is not permitted"), "Degraded", "InvalidRedirectURL: Redirect URL is not permitted", 3},
			{"claimed", ready(1, "False", "AccountClaimed", "account 1 is managed by PartnerAccount a/b"), "Degraded", "AccountClaimed: account 1 is managed by PartnerAccount a/b", 1},
			{"suspended", ready(1, "False", "AccountSuspended", "account 12345 is suspended"), "Suspended", "AccountSuspended: account 12345 is suspended", 1},
			{"waiting for the account", ready(1, "False", "AccountNotReady", "PartnerAccount \"a\" has no Fifteenth account yet"), "Progressing", "AccountNotReady: PartnerAccount \"a\" has no Fifteenth account yet", 1},
			{"rate limited", ready(1, "False", "RateLimited", "next try at 11:30"), "Progressing", "RateLimited: next try at 11:30", 1},
			{"paused", ready(1, "False", "Paused", "the paused annotation is set"), "Suspended", "Paused: the paused annotation is set", 1},
			{"standby", ready(1, "False", "Standby", "read-only manager: would generate a link"), "Suspended", "Standby: read-only manager: would generate a link", 1},
			{"superseded", ready(1, "False", "Superseded", "LoginLink a/b is newer and keeps the link"), "Suspended", "Superseded: LoginLink a/b is newer and keeps the link", 1},
			{"account unverified", ready(1, "False", "AccountUnverified", "Retrieve Account answered 404"), "Degraded", "AccountUnverified: Retrieve Account answered 404", 1},
			{"login link conflict", ready(1, "False", "LoginLinkConflict", "LoginLink a/holder is not owned by this PartnerAccount"), "Degraded", "LoginLinkConflict: LoginLink a/holder is not owned by this PartnerAccount", 1},
			{"account not permitted", ready(1, "False", "AccountNotPermitted", "account 1 is not managed in this namespace"), "Degraded", "AccountNotPermitted: account 1 is not managed in this namespace", 1},
			{"account exists", ready(1, "False", "AccountExists", "a@b.c is already registered"), "Degraded", "AccountExists: a@b.c is already registered", 1},
			{"secret conflict", ready(1, "False", "SecretConflict", "Secret a/s is not owned by this LoginLink"), "Degraded", "SecretConflict: Secret a/s is not owned by this LoginLink", 1},
			{"no conditions yet", `, "status": {"observedGeneration": 1}`, "Progressing", "Waiting for the operator to observe the latest spec", 1},
		} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				status, msg := health(t, script, object(kind, tt.generation, tt.status))
				if status != tt.wantStatus || msg != tt.wantMessage {
					t.Fatalf("health = %q %q, want %q %q", status, msg, tt.wantStatus, tt.wantMessage)
				}
			})
		}
	}
}

// Every Ready reason of api/v1alpha1 has a decided health, so that a new reason is mapped on
// purpose rather than falling into Degraded unnoticed.
func TestEveryReasonHasAHealth(t *testing.T) {
	want := map[string]string{
		"Generated": "Healthy", "Renewed": "Healthy", "LinkValid": "Healthy",
		"Created": "Healthy", "Adopted": "Healthy", "AccountReady": "Healthy",
		"AccountNotReady": "Progressing", "RateLimited": "Progressing",
		"AccountSuspended": "Suspended", "Superseded": "Suspended", "Paused": "Suspended", "Standby": "Suspended",
		"AccountNotFound": "Degraded", "UserNotFound": "Degraded", "InvalidRedirectURL": "Degraded",
		"InvalidRequest": "Degraded", "APIUnavailable": "Degraded", "Unauthorized": "Degraded",
		"Expired": "Degraded", "SecretConflict": "Degraded", "ValidationFailed": "Degraded",
		"AccountMismatch": "Degraded", "AccountClaimed": "Degraded", "LinksNotReady": "Degraded",
		"AccountUnverified": "Degraded", "LoginLinkConflict": "Degraded",
		"AccountNotPermitted": "Degraded", "AccountExists": "Degraded",
		"Valid": "Healthy", "SecretNotFound": "Degraded", "KeyInvalid": "Degraded", "APIURLNotAllowed": "Degraded",
		"PartnerConfigNotPermitted": "Degraded", "PartnerConfigNotReady": "Degraded",
	}
	reasons := apiReasons(t)
	if len(reasons) == 0 {
		t.Fatal("found no Reason constants in api/v1alpha1/common.go")
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "argocd", "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	for _, reason := range reasons {
		wantStatus, ok := want[reason]
		if !ok {
			t.Errorf("reason %s has no decided Argo CD health: add it to this test (and to the script if not Degraded)", reason)
			continue
		}
		status := "False"
		if wantStatus == "Healthy" {
			status = "True"
		}
		for _, kind := range []string{"PartnerAccount", "LoginLink", "PartnerConfig", "ClusterPartnerConfig"} {
			script := cm.Data["resource.customizations.health.partners.fifteenth.com_"+kind]
			got, _ := health(t, script, object(kind, 1, ready(1, status, reason, "m")))
			if got != wantStatus {
				t.Errorf("%s with Ready=%s %s: health %q, want %q", kind, status, reason, got, wantStatus)
			}
		}
	}
}

// apiReasons returns the values of the Ready reasons of api/v1alpha1/common.go.
func apiReasons(t *testing.T) []string {
	t.Helper()
	reasons, err := testenv.ReadyReasons()
	if err != nil {
		t.Fatal(err)
	}
	return reasons
}
