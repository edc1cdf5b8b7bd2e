package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
	"github.com/fifteenth/fifteenth-operator/internal/cli"
	"github.com/fifteenth/fifteenth-operator/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

var (
	k8s        client.Client // reads and writes the API server directly
	restCfg    *rest.Config
	kubeconfig string // a cluster-admin kubeconfig for the plugin
	scheme     = runtime.NewScheme()
)

// fakeLink is the link the tests put in Secrets: no output may ever contain its token.
const (
	fakeToken = "tok-SECRET-4f1c9a77e2b04d"
	fakeLink  = "https://app.fifteenth.com/auth/user-login/" + fakeToken
)

func TestMain(m *testing.M) {
	flag.Parse()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = partnersv1.AddToScheme(scheme)
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the test control plane:", err)
		os.Exit(1)
	}
	code := func() int {
		defer func() { _ = env.Stop() }()
		restCfg = cfg
		if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "kubectl-fifteenth-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = os.RemoveAll(dir) }()
		kubeconfig = filepath.Join(dir, "kubeconfig")
		if err := testenv.WriteAdminKubeconfig(env, kubeconfig); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// world is one test's namespace and the plugin's clock.
type world struct {
	t   *testing.T
	g   *WithT
	ctx context.Context
	ns  string
	now time.Time
}

func newWorld(t *testing.T, ns string) *world {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	// A fixed clock, on the second, so that relative times in the output do not move.
	return &world{t: t, g: g, ctx: ctx, ns: ns, now: time.Now().UTC().Truncate(time.Second)}
}

// run runs the plugin with args and returns its standard output and error.
func (w *world) run(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	rec := &recorder{}
	cmd := cli.NewCommand(cli.Options{Out: &out, ErrOut: &errOut, Now: func() time.Time { return w.now }, WrapTransport: rec.wrap})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	// No output, ever, holds a link; the plugin does not even receive one from the API server.
	w.g.Expect(out.String()+errOut.String()).NotTo(ContainSubstring(fakeToken), "output of %v", args)
	w.g.Expect(rec.sawLink()).To(BeFalse(), "the plugin received a Secret's link running %v", args)
	return out.String(), errOut.String(), err
}

// recorder keeps every response body the plugin receives.
type recorder struct {
	mu     sync.Mutex
	bodies bytes.Buffer
}

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.Body == nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		r.mu.Lock()
		r.bodies.Write(body)
		r.mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, err
	})
}

// sawLink reports whether a response held fakeLink, as JSON (base64) or protobuf (raw) carry it.
func (r *recorder) sawLink() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bodies.Bytes()
	return bytes.Contains(b, []byte(fakeToken)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(fakeLink))))
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// The recorder sees a link when a client reads a Secret's data: the assertion in run can fail.
func TestRecorderSeesSecretData(t *testing.T) {
	w := newWorld(t, "recorder")
	w.family()
	rec := &recorder{}
	cfg := rest.CopyConfig(restCfg)
	cfg.Wrap(rec.wrap)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(c.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: "jane-login-link"}, &corev1.Secret{})).To(Succeed())
	w.g.Expect(rec.sawLink()).To(BeTrue())
}

func (w *world) at(d time.Duration) *metav1.Time { return &metav1.Time{Time: w.now.Add(d)} }

func ready(status bool, reason, msg string) []metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return []metav1.Condition{{Type: partnersv1.ConditionReady, Status: s, Reason: reason, Message: msg,
		ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
}

// account creates a PartnerAccount and sets its status.
func (w *world) account(name string, spec partnersv1.PartnerAccountSpec, st partnersv1.PartnerAccountStatus) *partnersv1.PartnerAccount {
	w.t.Helper()
	pa := &partnersv1.PartnerAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}, Spec: spec}
	w.g.Expect(k8s.Create(w.ctx, pa)).To(Succeed())
	pa.Status = st
	w.g.Expect(k8s.Status().Update(w.ctx, pa)).To(Succeed())
	return pa
}

// link creates a LoginLink (owned by owner when not nil) and sets its status.
func (w *world) link(name string, owner *partnersv1.PartnerAccount, labels map[string]string, spec partnersv1.LoginLinkSpec, st partnersv1.LoginLinkStatus) *partnersv1.LoginLink {
	w.t.Helper()
	ll := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name, Labels: labels}, Spec: spec}
	if owner != nil {
		ll.OwnerReferences = []metav1.OwnerReference{{APIVersion: partnersv1.GroupVersion.String(), Kind: "PartnerAccount",
			Name: owner.Name, UID: owner.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	}
	w.g.Expect(k8s.Create(w.ctx, ll)).To(Succeed())
	ll.Status = st
	w.g.Expect(k8s.Status().Update(w.ctx, ll)).To(Succeed())
	return ll
}

// secret creates a LoginLink's Secret as the operator writes it, with fakeLink in it unless
// heldBy names the LoginLink that superseded it.
func (w *world) secret(name string, ll *partnersv1.LoginLink, heldBy string) {
	w.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name,
		Labels: map[string]string{partnersv1.LabelManagedBy: partnersv1.ManagedByValue},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: partnersv1.GroupVersion.String(), Kind: "LoginLink",
			Name: ll.Name, UID: ll.UID, Controller: ptr.To(true)}}},
		Data: map[string][]byte{partnersv1.SecretKeyAccountID: []byte("4711"), partnersv1.SecretKeyUserEmail: []byte(ll.Status.UserEmail)}}
	if heldBy != "" {
		s.Annotations = map[string]string{partnersv1.AnnotationHeldBy: heldBy}
	} else {
		s.Data[partnersv1.SecretKeyLoginLink] = []byte(fakeLink)
		s.Data[partnersv1.SecretKeyExpiresAt] = []byte(ll.Status.ExpiresAt.UTC().Format(time.RFC3339))
	}
	w.g.Expect(k8s.Create(w.ctx, s)).To(Succeed())
}

// event records an Event about obj as the operator's recorder does (events.k8s.io/v1).
func (w *world) event(obj client.Object, kind string, ago time.Duration, typ, reason, action, note string) {
	w.t.Helper()
	e := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: fmt.Sprintf("%s.%d", obj.GetName(), w.now.Add(-ago).UnixNano())},
		EventTime:  metav1.NewMicroTime(w.now.Add(-ago)),
		Regarding: corev1.ObjectReference{APIVersion: partnersv1.GroupVersion.String(), Kind: kind, Namespace: w.ns,
			Name: obj.GetName(), UID: obj.GetUID()},
		ReportingController: "fifteenth-operator", ReportingInstance: "fifteenth-operator-0",
		Type: typ, Reason: reason, Action: action, Note: note,
	}
	w.g.Expect(k8s.Create(w.ctx, e)).To(Succeed())
}

// family creates the couple "jane" (account 4711): jane-holder holds Jane and is Ready,
// jane-old (an older LoginLink for Jane) is superseded by it, and jane-spouse failed with
// UserNotFound, so that John is held by nobody Ready.
func (w *world) family() {
	pa := w.account("jane", partnersv1.PartnerAccountSpec{Email: "jane@example.com", FirstName: "Jane", LastName: "Doe",
		Spouse: &partnersv1.SpouseSpec{Email: "john@example.com", FirstName: "John", LastName: "Doe"}},
		partnersv1.PartnerAccountStatus{AccountID: 4711, AccountStatus: "active", CreatedAt: w.at(-72 * time.Hour),
			Spouse:              &partnersv1.SpouseStatus{ID: 9, Email: "john@example.com", Status: "invited"},
			LoginLinkSecretName: "jane-login-link", SpouseLoginLinkSecretName: "jane-spouse-login-link",
			LoginLinkExpiresAt: w.at(168*time.Hour - 10*time.Minute),
			Users: []partnersv1.AccountUserStatus{
				{Email: "jane@example.com", Role: "holder", HeldBy: "jane-holder"},
				{Email: "john@example.com", Role: "spouse"}},
			LastSyncTime: w.at(-5 * time.Minute), ObservedGeneration: 1,
			Conditions: ready(false, partnersv1.ReasonLinksNotReady,
				"no LoginLink can keep a link for the spouse john@example.com: UserNotFound: the user is not on account 4711")})
	ref := &partnersv1.LocalObjectReference{Name: "jane"}
	holder := w.link("jane-holder", pa, nil, partnersv1.LoginLinkSpec{AccountRef: ref, SecretName: "jane-login-link",
		RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "portal"}}},
		partnersv1.LoginLinkStatus{AccountID: 4711, UserEmail: "jane@example.com", SecretName: "jane-login-link",
			GeneratedAt: w.at(-10 * time.Minute), ExpiresAt: w.at(168*time.Hour - 10*time.Minute),
			RenewalTime: w.at(112*time.Hour - 10*time.Minute), RenewBefore: &metav1.Duration{Duration: 56 * time.Hour},
			ObservedGeneration: 1,
			Conditions: append(ready(true, partnersv1.ReasonRenewed, fmt.Sprintf("generated a link for jane@example.com on account 4711 because it was due; it expires at %s",
				w.at(168*time.Hour-10*time.Minute).UTC().Format(time.RFC3339))),
				metav1.Condition{Type: partnersv1.ConditionRolloutRestarted, Status: metav1.ConditionFalse, Reason: partnersv1.ReasonTargetNotFound,
					Message: "cannot restart Deployment/portal: does not exist; the link is kept and the restart is tried again", LastTransitionTime: metav1.Now()})})
	w.secret("jane-login-link", holder, "")
	spouse := w.link("jane-spouse", pa, nil, partnersv1.LoginLinkSpec{AccountRef: ref, UserEmail: "john@example.com", SecretName: "jane-spouse-login-link"},
		partnersv1.LoginLinkStatus{AccountID: 4711, UserEmail: "john@example.com", SecretName: "jane-spouse-login-link",
			LastFailureTime: w.at(-3 * time.Minute), ObservedGeneration: 1,
			Conditions: ready(false, partnersv1.ReasonUserNotFound, "the user is not on account 4711")})
	old := w.link("jane-old", nil, nil, partnersv1.LoginLinkSpec{AccountRef: ref, UserEmail: "jane@example.com"},
		partnersv1.LoginLinkStatus{AccountID: 4711, UserEmail: "jane@example.com", SecretName: "jane-old",
			GeneratedAt: w.at(-26 * time.Hour), ExpiresAt: w.at(142 * time.Hour), RenewalTime: w.at(86 * time.Hour), ObservedGeneration: 1,
			Conditions: ready(false, partnersv1.ReasonSuperseded,
				"LoginLink jane-holder holds jane@example.com on account 4711 (the newest LoginLink for the user that can keep a link); this one calls nothing until that changes")})
	w.secret("jane-old", old, "jane-holder")
	w.event(pa, "PartnerAccount", 72*time.Hour, corev1.EventTypeNormal, "Created", "Create", "created account 4711 for jane@example.com")
	w.event(holder, "LoginLink", 26*time.Hour, corev1.EventTypeNormal, "Generated", "Generate", "generated a link for jane@example.com on account 4711 because it had none")
	w.event(holder, "LoginLink", 10*time.Minute, corev1.EventTypeNormal, "Renewed", "Generate", "generated a link for jane@example.com on account 4711 because it was due")
	w.event(spouse, "LoginLink", 3*time.Minute, corev1.EventTypeWarning, "GenerationFailed", "Generate", "UserNotFound: the user is not on account 4711")
	w.event(old, "LoginLink", 10*time.Minute, corev1.EventTypeNormal, "Superseded", "Supersede", "LoginLink jane-holder holds jane@example.com on account 4711")
}

// timestamps masks absolute times: the relative ones are fixed by the plugin's clock.
var timestamps = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z`)

// golden compares got, its times masked, with testdata/<name>.golden (-update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = timestamps.ReplaceAllString(got, "<time>")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test ./internal/cli -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The status of a LoginLink that holds its user: account, user, Secret, times, election,
// Events; the same for every spelling of the kind. No link is printed.
func TestStatusLoginLink(t *testing.T) {
	w := newWorld(t, "status-ll")
	w.family()
	out, _, err := w.run("status", "loginlink", "jane-holder", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "status-loginlink", out)
	for _, kind := range []string{"ll", "loginlinks", "LoginLink", "loginlink.partners.fifteenth.com"} {
		again, _, err := w.run("status", kind, "jane-holder", "-n", w.ns)
		w.g.Expect(err).NotTo(HaveOccurred())
		w.g.Expect(again).To(Equal(out), kind)
	}
	// kind/name works as in kubectl.
	again, _, err := w.run("status", "ll/jane-holder", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(again).To(Equal(out))
}

// A superseded LoginLink names its holder and says its Secret's link was removed; a failed one
// gives the docs' "what to do" for its reason.
func TestStatusSupersededAndFailed(t *testing.T) {
	w := newWorld(t, "status-superseded")
	w.family()
	out, _, err := w.run("status", "ll", "jane-old", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "status-superseded", out)
	out, _, err = w.run("status", "ll", "jane-spouse", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "status-failed", out)
}

// The status of a PartnerAccount: the account, each user and who holds it, every LoginLink of
// the account with its Secret and times, who is superseded, hints, the Events.
func TestStatusPartnerAccount(t *testing.T) {
	w := newWorld(t, "status-pa")
	w.family()
	out, _, err := w.run("status", "partneraccount", "jane", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "status-partneraccount", out)
	for _, kind := range []string{"pa", "partneraccounts", "pa/jane"} {
		args := []string{"status", kind, "jane", "-n", w.ns}
		if strings.Contains(kind, "/") {
			args = []string{"status", kind, "-n", w.ns}
		}
		again, _, err := w.run(args...)
		w.g.Expect(err).NotTo(HaveOccurred())
		w.g.Expect(again).To(Equal(out), kind)
	}
}

// Wrong input is refused with a message that says what is expected.
func TestStatusErrors(t *testing.T) {
	w := newWorld(t, "status-errors")
	_, _, err := w.run("status", "ll", "missing", "-n", w.ns)
	w.g.Expect(err).To(MatchError(ContainSubstring(`loginlink "missing" not found in namespace status-errors`)))
	_, _, err = w.run("status", "secret", "x", "-n", w.ns)
	w.g.Expect(err).To(MatchError(ContainSubstring("partneraccount (pa) or loginlink (ll)")))
	_, _, err = w.run("status", "ll", "-n", w.ns)
	w.g.Expect(err).To(HaveOccurred())
}

// annotation reads a LoginLink's renew-requested-at annotation.
func (w *world) annotation(ns, name string) string {
	w.t.Helper()
	ll := &partnersv1.LoginLink{}
	w.g.Expect(k8s.Get(w.ctx, client.ObjectKey{Namespace: ns, Name: name}, ll)).To(Succeed())
	return ll.Annotations[partnersv1.AnnotationRenewRequestedAt]
}

// plain creates a Ready LoginLink for account id generated ago before now.
func (w *world) plain(name string, id int64, labels map[string]string, ago time.Duration) {
	w.t.Helper()
	w.link(name, nil, labels, partnersv1.LoginLinkSpec{AccountID: ptr.To(id), UserEmail: name + "@example.com"},
		partnersv1.LoginLinkStatus{AccountID: id, UserEmail: name + "@example.com", SecretName: name,
			GeneratedAt: w.at(-ago), ExpiresAt: w.at(168*time.Hour - ago), RenewalTime: w.at(112*time.Hour - ago),
			ObservedGeneration: 1, Conditions: ready(true, partnersv1.ReasonLinkValid, "the link is valid")})
}

// renew NAME sets the annotation to the plugin's clock, in RFC 3339, on those LoginLinks only;
// a PartnerAccount stands for the LoginLinks it owns; a superseded LoginLink is said to call
// nothing.
func TestRenewNames(t *testing.T) {
	w := newWorld(t, "renew-names")
	w.family()
	w.plain("other", 5, nil, 2*time.Hour)
	want := w.now.Format(time.RFC3339)
	out, errOut, err := w.run("renew", "jane-holder", "jane-old", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(errOut).To(BeEmpty())
	golden(t, "renew-names", out)
	w.g.Expect(w.annotation(w.ns, "jane-holder")).To(Equal(want))
	w.g.Expect(w.annotation(w.ns, "jane-old")).To(Equal(want))
	w.g.Expect(w.annotation(w.ns, "jane-spouse")).To(BeEmpty())
	w.g.Expect(w.annotation(w.ns, "other")).To(BeEmpty())

	// pa/NAME: the PartnerAccount's own LoginLinks that are not superseded, and the ones that
	// hold its users (jane-old, not its own, once status.users says it holds Jane).
	w.now = w.now.Add(time.Minute)
	out, _, err = w.run("renew", "pa/jane", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(out).To(ContainSubstring("jane-holder"))
	w.g.Expect(w.annotation(w.ns, "jane-holder")).To(Equal(w.now.Format(time.RFC3339)))
	w.g.Expect(w.annotation(w.ns, "jane-spouse")).To(Equal(w.now.Format(time.RFC3339)))
	w.g.Expect(w.annotation(w.ns, "jane-old")).To(Equal(want), "neither owned by the PartnerAccount nor holding a user")
	pa := &partnersv1.PartnerAccount{}
	w.g.Expect(k8s.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: "jane"}, pa)).To(Succeed())
	pa.Status.Users[0].HeldBy = "jane-old"
	w.g.Expect(k8s.Status().Update(w.ctx, pa)).To(Succeed())
	w.now = w.now.Add(time.Minute)
	_, _, err = w.run("renew", "pa/jane", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(w.annotation(w.ns, "jane-old")).To(Equal(w.now.Format(time.RFC3339)))

	// A missing name changes nothing at all.
	w.now = w.now.Add(time.Minute)
	_, _, err = w.run("renew", "other", "missing", "-n", w.ns)
	w.g.Expect(err).To(MatchError(ContainSubstring(`loginlink "missing" not found`)))
	w.g.Expect(w.annotation(w.ns, "other")).To(BeEmpty())
}

// renew -l and --all select in the namespace; -A in every namespace; a request with neither
// names nor a selection is refused.
func TestRenewSelection(t *testing.T) {
	w := newWorld(t, "renew-select")
	w.plain("a", 11, map[string]string{"team": "tax"}, 3*time.Hour)
	w.plain("b", 12, map[string]string{"team": "payroll"}, 3*time.Hour)
	w2 := newWorld(t, "renew-select-2")
	w2.plain("c", 13, map[string]string{"team": "tax"}, 3*time.Hour)
	w2.now = w.now

	_, _, err := w.run("renew", "-l", "team=tax", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(w.annotation(w.ns, "a")).NotTo(BeEmpty())
	w.g.Expect(w.annotation(w.ns, "b")).To(BeEmpty())
	w.g.Expect(w.annotation(w2.ns, "c")).To(BeEmpty())

	_, _, err = w.run("renew", "-l", "team=tax", "-A")
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(w.annotation(w2.ns, "c")).NotTo(BeEmpty())
	w.g.Expect(w.annotation(w.ns, "b")).To(BeEmpty())

	out, _, err := w.run("renew", "--all", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "renew-all", out)
	w.g.Expect(w.annotation(w.ns, "b")).NotTo(BeEmpty())

	for _, args := range [][]string{{"renew"}, {"renew", "a", "--all"}, {"renew", "a", "-l", "team=tax"}, {"renew", "a", "-A"}, {"renew", "--all", "-l", "x=y"}} {
		_, _, err := w.run(append(args, "-n", w.ns)...)
		w.g.Expect(err).To(HaveOccurred(), "%v", args)
	}
}

// renew warns when an account's links generated in the last hour (by status.generatedAt) plus
// the ones requested exceed the API's 10 per hour, and not when they fit.
func TestRenewBudgetWarning(t *testing.T) {
	w := newWorld(t, "renew-budget")
	for i := range 8 {
		w.link(fmt.Sprintf("u%d", i), nil, map[string]string{"batch": "1"}, partnersv1.LoginLinkSpec{AccountID: ptr.To(int64(77)), UserEmail: fmt.Sprintf("u%d@example.com", i)},
			partnersv1.LoginLinkStatus{AccountID: 77, UserEmail: fmt.Sprintf("u%d@example.com", i), SecretName: fmt.Sprintf("u%d", i),
				GeneratedAt: w.at(-time.Duration(10+i) * time.Minute), ObservedGeneration: 1,
				Conditions: ready(true, partnersv1.ReasonLinkValid, "the link is valid")})
	}
	w.plain("old1", 77, nil, 2*time.Hour)
	w.plain("old2", 77, nil, 61*time.Minute)
	w.plain("old3", 77, nil, 3*time.Hour)

	// 8 in the last hour + 2 requested = 10: no warning.
	_, errOut, err := w.run("renew", "old1", "old2", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(errOut).To(BeEmpty())

	// 8 + 3 = 11: a warning, and the annotations are still set.
	w.now = w.now.Add(time.Second)
	_, errOut, err = w.run("renew", "old1", "old2", "old3", "-n", w.ns)
	w.g.Expect(err).NotTo(HaveOccurred())
	golden(t, "renew-budget", errOut)
	w.g.Expect(w.annotation(w.ns, "old3")).To(Equal(w.now.Format(time.RFC3339)))
}

// version prints the plugin's version and, when the cluster answers, its version and whether
// the operator's API is served; --client asks nothing of the cluster.
func TestVersion(t *testing.T) {
	w := newWorld(t, "version")
	out, _, err := w.run("version")
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(out).To(MatchRegexp(`(?m)^kubectl-fifteenth: \S+`))
	w.g.Expect(out).To(MatchRegexp(`(?m)^Kubernetes: v` + regexp.QuoteMeta(testenv.K8sVersion)))
	w.g.Expect(out).To(ContainSubstring("partners.fifteenth.com/v1alpha1: served (ClusterPartnerConfig, LoginLink, PartnerAccount, PartnerConfig)"))
	w.g.Expect(out).To(MatchRegexp(`(?m)^CRD loginlinks.partners.fifteenth.com: controller-gen v\S+`))

	out, _, err = w.run("version", "--client")
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(strings.Count(out, "\n")).To(Equal(1), out)

	// An unreachable cluster still gives the plugin's version, and says so.
	var o, e bytes.Buffer
	cmd := cli.NewCommand(cli.Options{Out: &o, ErrOut: &e})
	cmd.SetArgs([]string{"version", "--server", "https://127.0.0.1:1", "--token", "x"})
	cmd.SetOut(io.Discard)
	w.g.Expect(cmd.Execute()).To(Succeed())
	w.g.Expect(o.String()).To(MatchRegexp(`(?m)^kubectl-fifteenth: \S+`))
	w.g.Expect(e.String()).To(ContainSubstring("cluster not reachable"))
}
