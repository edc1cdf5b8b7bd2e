package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	partnersv1 "github.com/fifteenth/fifteenth-operator/api/v1alpha1"
)

// Bad input is refused by the API server at apply time, with a message naming the field,
// never by a failing reconcile.
func TestBadInputRefused(t *testing.T) {
	g := NewWithT(t)
	ns := "bad-input"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	long := strings.Repeat("x", 51)
	cases := []struct {
		name, kind, spec, want string
	}{
		// PartnerAccount
		{"pa no email", "PartnerAccount", `{firstName: J, lastName: D}`, "spec.email: Required value"},
		{"pa no first name", "PartnerAccount", `{email: a@example.com, lastName: D}`, "spec.firstName: Required value"},
		{"pa no last name", "PartnerAccount", `{email: a@example.com, firstName: J}`, "spec.lastName: Required value"},
		{"pa email without at", "PartnerAccount", `{email: example.com, firstName: J, lastName: D}`, "spec.email"},
		{"pa email without domain dot", "PartnerAccount", `{email: a@localhost, firstName: J, lastName: D}`, "spec.email"},
		{"pa email with space", "PartnerAccount", `{email: "a b@example.com", firstName: J, lastName: D}`, "spec.email"},
		{"pa email too long", "PartnerAccount", `{email: "` + strings.Repeat("a", 250) + `@example.com", firstName: J, lastName: D}`, "spec.email"},
		{"pa empty first name", "PartnerAccount", `{email: a@example.com, firstName: "", lastName: D}`, "spec.firstName"},
		{"pa first name over 50", "PartnerAccount", `{email: a@example.com, firstName: ` + long + `, lastName: D}`, "spec.firstName"},
		{"pa last name over 50", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: ` + long + `}`, "spec.lastName"},
		{"pa spouse same email", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, spouse: {email: A@Example.com, firstName: K, lastName: D}}`, "spouse.email must differ from email"},
		{"pa spouse bad email", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, spouse: {email: nope, firstName: K, lastName: D}}`, "spec.spouse.email"},
		{"pa spouse name over 50", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, spouse: {email: b@example.com, firstName: ` + long + `, lastName: D}}`, "spec.spouse.firstName"},
		{"pa spouse without names", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, spouse: {email: b@example.com}}`, "spec.spouse.firstName: Required value"},
		{"pa account id zero", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, accountID: 0}`, "spec.accountID"},
		{"pa account id negative", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, accountID: -3}`, "spec.accountID"},
		{"pa link expiry 0", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {expiryHours: 0}}`, "spec.loginLink.expiryHours"},
		{"pa link expiry 169", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {expiryHours: 169}}`, "spec.loginLink.expiryHours"},
		{"pa http redirect", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {redirectURL: "http://yourplatform.com/x"}}`, "redirectURL must be an https URL"},
		{"pa bad secret name", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {secretName: Bad_Name}}`, "spec.loginLink.secretName"},
		{"pa negative renewBefore", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {renewal: {renewBefore: -1h}}}`, "renewBefore must be a positive duration"},
		{"pa unknown policy", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {renewal: {policy: Often}}}`, "spec.loginLink.renewal.policy"},
		{"pa target namespace", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {rolloutRestartTargets: [{kind: Deployment, name: web, namespace: other}]}}`, "namespace must not be set"},
		{"pa target kind", "PartnerAccount", `{email: a@example.com, firstName: J, lastName: D, loginLink: {rolloutRestartTargets: [{kind: CronJob, name: web}]}}`, "spec.loginLink.rolloutRestartTargets[0].kind"},
		// LoginLink
		{"ll neither account", "LoginLink", `{}`, "exactly one of spec.accountRef and spec.accountID must be set"},
		{"ll both accounts", "LoginLink", `{accountRef: {name: a}, accountID: 1}`, "exactly one of spec.accountRef and spec.accountID must be set"},
		{"ll empty ref name", "LoginLink", `{accountRef: {name: ""}}`, "spec.accountRef.name"},
		{"ll account id zero", "LoginLink", `{accountID: 0}`, "spec.accountID"},
		{"ll expiry 0", "LoginLink", `{accountID: 1, expiryHours: 0}`, "spec.expiryHours"},
		{"ll expiry 169", "LoginLink", `{accountID: 1, expiryHours: 169}`, "spec.expiryHours"},
		{"ll expiry not a number", "LoginLink", `{accountID: 1, expiryHours: "48"}`, "spec.expiryHours"},
		{"ll http redirect", "LoginLink", `{accountID: 1, redirectURL: "http://yourplatform.com/x"}`, "redirectURL must be an https URL"},
		{"ll relative redirect", "LoginLink", `{accountID: 1, redirectURL: dashboard}`, "redirectURL must be an https URL"},
		{"ll javascript redirect", "LoginLink", `{accountID: 1, redirectURL: "javascript:alert(1)"}`, "redirectURL must be an https URL"},
		{"ll unknown purpose", "LoginLink", `{accountID: 1, purpose: fun}`, "spec.purpose"},
		{"ll bad user email", "LoginLink", `{accountID: 1, userEmail: not-an-email}`, "spec.userEmail"},
		{"ll negative renewBefore", "LoginLink", `{accountID: 1, renewal: {renewBefore: -30m}}`, "renewBefore must be a positive duration"},
		{"ll zero renewBefore", "LoginLink", `{accountID: 1, renewal: {renewBefore: 0s}}`, "renewBefore must be a positive duration"},
		{"ll unknown policy", "LoginLink", `{accountID: 1, renewal: {policy: Sometimes}}`, "spec.renewal.policy"},
		{"ll bad secret name", "LoginLink", `{accountID: 1, secretName: UPPER}`, "spec.secretName"},
		{"ll subject too long", "LoginLink", `{accountID: 1, notificationSettings: {customSubject: "` + strings.Repeat("s", 201) + `"}}`, "spec.notificationSettings.customSubject"},
		{"ll target unknown kind", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{kind: Job, name: web}]}`, "spec.rolloutRestartTargets[0].kind"},
		{"ll target without kind", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{name: web}]}`, "spec.rolloutRestartTargets[0].kind: Required value"},
		{"ll target without name", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{kind: Deployment}]}`, "spec.rolloutRestartTargets[0].name: Required value"},
		{"ll target bad name", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{kind: Deployment, name: Web_App}]}`, "spec.rolloutRestartTargets[0].name"},
		{"ll target namespace", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{kind: StatefulSet, name: db, namespace: other}]}`, "rolloutRestartTargets are in the LoginLink's namespace; namespace must not be set"},
		{"ll target twice", "LoginLink", `{accountID: 1, rolloutRestartTargets: [{kind: Deployment, name: web}, {kind: Deployment, name: web}]}`, "Duplicate value"},
		{"ll eleven targets", "LoginLink", `{accountID: 1, rolloutRestartTargets: [` + elevenTargets() + `]}`, "spec.rolloutRestartTargets: Too many"},
	}
	g.Expect(len(cases)).To(BeNumerically(">=", 30))
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var spec map[string]any
			g.Expect(yaml.Unmarshal([]byte(tt.spec), &spec)).To(Succeed())
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "partners.fifteenth.com/v1alpha1", "kind": tt.kind,
				"metadata": map[string]any{"name": fmt.Sprintf("bad-%d", i), "namespace": ns},
				"spec":     spec,
			}}
			err := k8s.Create(ctx, u)
			g.Expect(err).To(HaveOccurred(), "the API server accepted %s", tt.spec)
			g.Expect(err.Error()).To(ContainSubstring(tt.want))
		})
	}

	// A valid LoginLink keeps exactly the spec it was given: no defaults are written into it
	// (Argo CD would see a diff).
	id := int64(12345)
	ok := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "valid", Namespace: ns}, Spec: partnersv1.LoginLinkSpec{
		AccountID: &id, ExpiryHours: ptr.To[int32](4), Purpose: "support_request", RedirectURL: "https://yourplatform.com/tax-dashboard",
		Renewal: &partnersv1.Renewal{Policy: partnersv1.RenewalPolicyRenewBefore, RenewBefore: &metav1.Duration{Duration: time.Hour}}}}
	g.Expect(k8s.Create(ctx, ok)).To(Succeed())
	got := &partnersv1.LoginLink{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ok), got)).To(Succeed())
	g.Expect(got.Spec).To(Equal(ok.Spec))

	// The same name under two kinds is two targets.
	two := &partnersv1.LoginLink{ObjectMeta: metav1.ObjectMeta{Name: "two-kinds", Namespace: ns}, Spec: partnersv1.LoginLinkSpec{
		AccountID: &id, RolloutRestartTargets: []partnersv1.RolloutRestartTarget{{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"}}}}
	g.Expect(k8s.Create(ctx, two)).To(Succeed())
}

// elevenTargets is one target more than a LoginLink may have.
func elevenTargets() string {
	var out []string
	for i := range 11 {
		out = append(out, fmt.Sprintf("{kind: Deployment, name: web-%d}", i))
	}
	return strings.Join(out, ", ")
}
