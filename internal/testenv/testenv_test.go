package testenv

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The built control plane starts, reports its true version, serves the CRDs, and stores a Secret.
func TestControlPlaneSmoke(t *testing.T) {
	env, cfg, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v"+K8sVersion {
		t.Fatalf("kube-apiserver reports %q, want v%s (built without the version ldflags?)", v.GitVersion, K8sVersion)
	}
	resources, err := dc.ServerResourcesForGroupVersion("partners.fifteenth.com/v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range resources.APIResources {
		kinds[r.Kind] = true
	}
	if !kinds["PartnerAccount"] || !kinds["LoginLink"] {
		t.Fatalf("CRDs not served: %v", kinds)
	}

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		StringData: map[string]string{"k": "v"}}
	if err := c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
		t.Fatal(err)
	}
	if string(got.Data["k"]) != "v" {
		t.Fatalf("secret data %q", got.Data)
	}
}

// With Options.ControllerManager, kube-controller-manager runs (StartWith returned once its
// garbage collector worked) and Stop ends it with the control plane; AdmissionPlugins reach
// kube-apiserver (it refuses to start with a plugin it does not know).
func TestControllerManager(t *testing.T) {
	if _, _, err := StartWith(Options{AdmissionPlugins: []string{"NoSuchPlugin"}}); err == nil {
		t.Fatal("kube-apiserver started with an unknown admission plugin: AdmissionPlugins did not reach it")
	}
	env, _, err := StartWith(Options{ControllerManager: true, AdmissionPlugins: []string{"OwnerReferencesPermissionEnforcement"}})
	if err != nil {
		t.Fatal(err)
	}
	log := ControllerManagerLog(env)
	if !strings.Contains(log, "garbage") {
		t.Errorf("kube-controller-manager's log does not mention its garbage collector:\n%s", tail(log, 20))
	}
	kcmMu.Lock()
	kcm := kcms[env]
	kcmMu.Unlock()
	if err := Stop(env); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kcm.done:
	default:
		t.Fatal("kube-controller-manager still runs after Stop")
	}
	if _, err := os.Stat(kcm.dir); !os.IsNotExist(err) {
		t.Errorf("its directory %s is left behind", kcm.dir)
	}
}
