package v1alpha1

// Conditions of LoginLinks and PartnerAccounts. Ready is the summary; Reconciling and Stalled
// are the abnormal-true conditions kstatus (Flux, cli-utils) reads, derived from Ready's reason
// and present only while True.
const (
	// ConditionReady is the one condition every kind carries.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator works towards Ready and retries on its
	// own (waiting for the account, a rate limit, an API outage).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True on a failure that no retry fixes: a change of the spec or of
	// another object (a Secret, a grant, a conflicting object) is needed.
	ConditionStalled = "Stalled"
)

// Reasons of the Ready condition. They are part of the API: alerts and Argo CD health checks
// match on them.
const (
	// ReasonGenerated: a first link was generated and written to the Secret.
	ReasonGenerated = "Generated"
	// ReasonRenewed: the link was renewed before it expired.
	ReasonRenewed = "Renewed"
	// ReasonLinkValid: the Secret holds a current link; nothing to do until renewal.
	ReasonLinkValid = "LinkValid"
	// ReasonAccountNotReady: the referenced PartnerAccount has no account yet.
	ReasonAccountNotReady = "AccountNotReady"
	// ReasonAccountNotFound: the API does not know the account (terminal until the spec changes).
	ReasonAccountNotFound = "AccountNotFound"
	// ReasonUserNotFound: the user is not on the account (terminal until the spec changes).
	ReasonUserNotFound = "UserNotFound"
	// ReasonAccountSuspended: the account is suspended; nothing is generated until it is active.
	ReasonAccountSuspended = "AccountSuspended"
	// ReasonInvalidRedirectURL: the redirect URL is not on a permitted domain (terminal).
	ReasonInvalidRedirectURL = "InvalidRedirectURL"
	// ReasonInvalidRequest: the API refused the request as invalid (terminal).
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonRateLimited: a rate limit applies; the next try is at its reset time.
	ReasonRateLimited = "RateLimited"
	// ReasonAPIUnavailable: the API failed or timed out; retried with capped exponential backoff.
	ReasonAPIUnavailable = "APIUnavailable"
	// ReasonUnauthorized: the API refused the partner key; retried with backoff (rotate the key).
	ReasonUnauthorized = "Unauthorized"
	// ReasonExpired: the link expired and renewal is disabled.
	ReasonExpired = "Expired"
	// ReasonSuperseded: another LoginLink holds the same user (the newest eligible one does);
	// this one calls nothing, and its Secret's link is removed once the holder generated.
	ReasonSuperseded = "Superseded"
	// ReasonSecretConflict: a Secret of that name exists and is not owned by this object.
	ReasonSecretConflict = "SecretConflict"

	// ReasonCreated: the PartnerAccount created its Fifteenth account.
	ReasonCreated = "Created"
	// ReasonAdopted: the PartnerAccount adopted an existing account.
	ReasonAdopted = "Adopted"
	// ReasonAccountReady: the account exists and its links are kept.
	ReasonAccountReady = "AccountReady"
	// ReasonValidationFailed: the API refused the account's data (terminal until the spec changes).
	ReasonValidationFailed = "ValidationFailed"
	// ReasonAccountMismatch: the adopted account's email differs from spec.email.
	ReasonAccountMismatch = "AccountMismatch"
	// ReasonAccountClaimed: another PartnerAccount already manages this account.
	ReasonAccountClaimed = "AccountClaimed"
	// ReasonLinksNotReady: the account is fine but a user has no Ready LoginLink holding it.
	ReasonLinksNotReady = "LinksNotReady"
	// ReasonAccountUnverified: Retrieve Account did not answer as expected, so the account's
	// email could not be checked before adopting it; retried at the account sync period.
	ReasonAccountUnverified = "AccountUnverified"
	// ReasonLoginLinkConflict: a LoginLink with the name the PartnerAccount needs for its
	// holder or spouse exists and is not owned by it (terminal until it is renamed or deleted).
	ReasonLoginLinkConflict = "LoginLinkConflict"
	// ReasonAccountNotPermitted: the account belongs to another namespace (its PartnerAccount
	// is there), or no PartnerAccount manages it and this namespace holds no grant to adopt or
	// link such accounts. Nothing is called.
	ReasonAccountNotPermitted = "AccountNotPermitted"
	// ReasonAccountExists: creating the account met an email already registered to an account
	// this PartnerAccount did not create, and this namespace holds no adoption grant.
	ReasonAccountExists = "AccountExists"

	// ReasonPaused: the object, or the PartnerAccount that owns the LoginLink, carries the
	// annotation partners.fifteenth.com/paused: "true". Nothing is called or written (the
	// Secret stays as it is), and a paused LoginLink keeps its hold on its user. A
	// PartnerAccount whose user is held by a paused LoginLink reports it too.
	ReasonPaused = "Paused"
	// ReasonStandby: the manager runs with --read-only (a standby cluster). It calls neither
	// Create Account nor Generate Login Link and writes no Secret; the message says what it
	// would do.
	ReasonStandby = "Standby"
)

// ConditionRolloutRestarted says whether the LoginLink's spec.rolloutRestartTargets were
// restarted for its current link. Absent when the LoginLink has no targets.
const ConditionRolloutRestarted = "RolloutRestarted"

// Reasons of the RolloutRestarted condition.
const (
	// ReasonRestarted: every target's pod template carries the current link's generation time.
	ReasonRestarted = "Restarted"
	// ReasonTargetNotFound: a target does not exist; it is tried again with backoff.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonForbidden: RBAC forbids the operator to read or patch a target.
	ReasonForbidden = "Forbidden"
	// ReasonPatchFailed: reading or patching a target failed otherwise.
	ReasonPatchFailed = "PatchFailed"
)

// Annotations and labels of the operator.
const (
	// AnnotationRestartedAt on the pod template of a LoginLink's rollout restart target is
	// the generation time of the newest link it was restarted for (RFC 3339); the operator
	// only moves it forward.
	AnnotationRestartedAt = "partners.fifteenth.com/restartedAt"
	// AnnotationRenewRequestedAt on a LoginLink asks for a renewal now: an RFC 3339 time later
	// than status.generatedAt triggers one generation. On a PartnerAccount it is copied to the
	// LoginLinks it owns (holder and spouse) when later than theirs.
	AnnotationRenewRequestedAt = "partners.fifteenth.com/renew-requested-at"
	// AnnotationPaused "true" on a LoginLink or a PartnerAccount (which covers the LoginLinks it
	// owns) stops every API call and Secret write for it until removed.
	AnnotationPaused = "partners.fifteenth.com/paused"
	// AnnotationHeldBy on a superseded LoginLink's Secret names the LoginLink that holds the
	// user now; the Secret's login_link was removed because that LoginLink's generation
	// invalidated it.
	AnnotationHeldBy = "partners.fifteenth.com/held-by"
	// LabelManagedBy marks the Secrets the operator writes (and the only ones it caches).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "fifteenth-operator"
)

// Keys of a login link Secret.
const (
	SecretKeyLoginLink = "login_link"
	SecretKeyExpiresAt = "expires_at"
	SecretKeyUserEmail = "user_email"
	SecretKeyAccountID = "account_id"
)

// RenewalPolicy says whether a link is renewed before it expires.
// +kubebuilder:validation:Enum=RenewBefore;Disabled
type RenewalPolicy string

// Renewal policies.
const (
	RenewalPolicyRenewBefore RenewalPolicy = "RenewBefore"
	RenewalPolicyDisabled    RenewalPolicy = "Disabled"
)

// Reasons of the tenancy and credentials model (PartnerConfig, ClusterPartnerConfig, and the
// objects that use them).
const (
	// ReasonValid: the config's Secret holds a well-formed key (status.keyFingerprint).
	ReasonValid = "Valid"
	// ReasonSecretNotFound: the config's Secret, or its key, does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonKeyInvalid: the config's key is empty or not a partner key (it starts with 15th_).
	ReasonKeyInvalid = "KeyInvalid"
	// ReasonAPIURLNotAllowed: a PartnerConfig's apiURL is not on the manager's allow-list
	// (--allowed-api-urls); no request is sent.
	ReasonAPIURLNotAllowed = "APIURLNotAllowed"
	// ReasonPartnerConfigNotPermitted: the ClusterPartnerConfig does not admit the object's
	// namespace (spec.namespaces, spec.namespaceSelector); no call is made.
	ReasonPartnerConfigNotPermitted = "PartnerConfigNotPermitted"
	// ReasonPartnerConfigNotReady: the object's config does not exist or is not usable.
	ReasonPartnerConfigNotReady = "PartnerConfigNotReady"
)
