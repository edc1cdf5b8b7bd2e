package argocd

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

const annRenew = "partners.fifteenth.com/renew-requested-at"

// argoVM is a Lua state as Argo CD's util/lua runLua prepares it for custom health checks
// and actions: no standard library but package, base and table, and a "safe" os module with
// only time and date, reached through require("os") (there is no global os).
func argoVM(t *testing.T, obj map[string]any) *lua.LState {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	t.Cleanup(L.Close)
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.OsLibName, lua.OpenOs}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatal(err)
		}
	}
	full := L.GetGlobal(lua.OsLibName).(*lua.LTable)
	L.SetGlobal(lua.OsLibName, lua.LNil)
	safe := map[string]lua.LValue{"time": full.RawGetString("time"), "date": full.RawGetString("date")}
	L.PreloadModule(lua.OsLibName, func(L *lua.LState) int {
		mod := L.NewTable()
		for k, v := range safe {
			mod.RawSetString(k, v)
		}
		L.Push(mod)
		return 1
	})
	L.SetGlobal("obj", toLua(L, obj))
	return L
}

// run runs a script in an Argo CD VM and returns its result as Go values.
func run(t *testing.T, script string, obj map[string]any) map[string]any {
	t.Helper()
	L := argoVM(t, obj)
	if err := L.DoString(script); err != nil {
		t.Fatalf("script failed: %v", err)
	}
	ret, ok := fromLua(L.Get(-1)).(map[string]any)
	if !ok {
		t.Fatalf("script returned %v, want a table", L.Get(-1))
	}
	return ret
}

func fromLua(v lua.LValue) any {
	switch x := v.(type) {
	case *lua.LTable:
		if x.MaxN() > 0 {
			var out []any
			x.ForEach(func(_, val lua.LValue) { out = append(out, fromLua(val)) })
			return out
		}
		out := map[string]any{}
		x.ForEach(func(k, val lua.LValue) { out[lua.LVAsString(k)] = fromLua(val) })
		return out
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return float64(x)
	case lua.LBool:
		return bool(x)
	}
	return nil
}

// actionConfig is the value of a resource.customizations.actions key.
type actionConfig struct {
	DiscoveryLua string `json:"discovery.lua"`
	Definitions  []struct {
		Name      string `json:"name"`
		ActionLua string `json:"action.lua"`
	} `json:"definitions"`
}

func argocdCM(t *testing.T) corev1.ConfigMap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "argocd", "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	return cm
}

func actions(t *testing.T, kind string) actionConfig {
	t.Helper()
	raw := argocdCM(t).Data["resource.customizations.actions.partners.fifteenth.com_"+kind]
	if raw == "" {
		t.Fatalf("no actions for %s", kind)
	}
	var a actionConfig
	if err := yaml.UnmarshalStrict([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// The renew action is offered on LoginLinks and PartnerAccounts, except while paused, on a
// standby cluster, or being deleted.
func TestRenewActionDiscovery(t *testing.T) {
	for _, kind := range []string{"LoginLink", "PartnerAccount"} {
		script := actions(t, kind).DiscoveryLua
		for _, tt := range []struct {
			name, status string
			deleting     bool
			disabled     bool
		}{
			{"new object without status", ``, false, false},
			{"ready", ready(1, "True", "LinkValid", "fine"), false, false},
			{"terminal failure", ready(1, "False", "UserNotFound", "no such user"), false, false},
			{"superseded", ready(1, "False", "Superseded", "b holds the user"), false, false},
			{"paused", ready(1, "False", "Paused", "paused by annotation"), false, true},
			{"standby", ready(1, "False", "Standby", "read-only manager"), false, true},
			{"being deleted", ready(1, "True", "LinkValid", "fine"), true, true},
		} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				obj := object(kind, 1, tt.status)
				if tt.deleting {
					obj["metadata"].(map[string]any)["deletionTimestamp"] = "2026-12-01T10:00:00Z"
				}
				got := run(t, script, obj)
				renew, ok := got["renew"].(map[string]any)
				if !ok || len(got) != 1 {
					t.Fatalf("discovery = %v, want the renew action alone", got)
				}
				if renew["disabled"] != tt.disabled {
					t.Fatalf("renew = %v, want disabled=%v", renew, tt.disabled)
				}
			})
		}
	}
}

// The renew action sets renew-requested-at to the current time, in UTC and RFC 3339 (what
// the controllers parse), and changes nothing else.
func TestRenewAction(t *testing.T) {
	for _, kind := range []string{"LoginLink", "PartnerAccount"} {
		a := actions(t, kind)
		if len(a.Definitions) != 1 || a.Definitions[0].Name != "renew" {
			t.Fatalf("%s: definitions %+v, want renew alone", kind, a.Definitions)
		}
		for _, annotations := range []map[string]any{nil, {"team": "tax", annRenew: "2020-01-01T00:00:00Z"}} {
			obj := object(kind, 2, ready(2, "True", "LinkValid", "fine"))
			if annotations != nil {
				obj["metadata"].(map[string]any)["annotations"] = annotations
			}
			before := time.Now().UTC().Truncate(time.Second)
			got := run(t, a.Definitions[0].ActionLua, obj)
			after := time.Now().UTC()
			md := got["metadata"].(map[string]any)
			ann, _ := md["annotations"].(map[string]any)
			v, _ := ann[annRenew].(string)
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				t.Fatalf("%s: %s = %q: %v", kind, annRenew, v, err)
			}
			if at.Before(before) || at.After(after) || at.Location() != time.UTC {
				t.Fatalf("%s: %s = %s, want the current UTC time (%s..%s)", kind, annRenew, v, before, after)
			}
			if annotations != nil && ann["team"] != "tax" {
				t.Fatalf("%s: other annotations lost: %v", kind, ann)
			}
			if got["kind"] != kind || md["name"] != "x" || md["generation"] != float64(2) {
				t.Fatalf("%s: the action changed more than the annotation: %v", kind, got)
			}
		}
	}
}
