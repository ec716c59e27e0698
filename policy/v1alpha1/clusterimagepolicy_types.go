package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageMode says what the image gate does with an image that fails a policy.
// +kubebuilder:validation:Enum=Enforce;Warn
type ImageMode string

const (
	// ImageEnforce denies the workload.
	ImageEnforce ImageMode = "Enforce"
	// ImageWarn admits the workload with an admission warning.
	ImageWarn ImageMode = "Warn"
)

// SignatureFormat is a layout signatures and attestations are stored in.
// +kubebuilder:validation:Enum=Legacy;Bundle
type SignatureFormat string

// Signature formats.
const (
	FormatLegacy SignatureFormat = "Legacy"
	FormatBundle SignatureFormat = "Bundle"
)

// UnmatchedAction says what happens to an image that no policy's globs match
// in a namespace the policy selects.
// +kubebuilder:validation:Enum=Deny;Warn;Allow
type UnmatchedAction string

const (
	UnmatchedDeny  UnmatchedAction = "Deny"
	UnmatchedWarn  UnmatchedAction = "Warn"
	UnmatchedAllow UnmatchedAction = "Allow"
)

// ClusterImagePolicy says which authorities must have signed the images a
// gated namespace runs, and which attestations (SLSA provenance) they must
// carry. Every policy whose selector and globs match an image applies (all
// must pass).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cip,categories=tollgate
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Unmatched",type=string,JSONPath=`.spec.unmatchedImages`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterImagePolicySpec `json:"spec"`
	Status PolicyStatus           `json:"status,omitempty"`
}

// ClusterImagePolicySpec is the desired behaviour of the image gate.
type ClusterImagePolicySpec struct {
	// NamespaceSelector selects the gated namespaces this policy applies to.
	// An empty or absent selector selects every gated namespace. Only
	// namespaces labelled tollgate.dev/gate=enforce or warn are gated at all.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Images are globs over fully qualified repositories: "*" matches within
	// one path segment, "**" across segments. Docker Hub names are
	// normalised first ("busybox" is index.docker.io/library/busybox), so
	// globs name the registry. Tags and digests are not part of the match.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Images []ImagePattern `json:"images"`

	// Authorities that may sign the images; a signature from any one of them
	// is enough. Attestations must be signed by one of them too.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Authorities []Authority `json:"authorities"`

	// Attestations every matching image must carry, each signed by one of
	// the authorities, for the image's own digest.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Attestations []AttestationRequirement `json:"attestations"`

	// Mode: Enforce denies a workload whose image fails, Warn admits it
	// with a warning. A namespace labelled tollgate.dev/gate=warn only warns.
	// +kubebuilder:default=Enforce
	// +optional
	Mode ImageMode `json:"mode,omitempty"`

	// Formats are where signatures and attestations are taken from: Legacy
	// (cosign's sha256-<hex>.sig and .att tags) and Bundle (sigstore bundles
	// attached as OCI 1.1 referrers, cosign v3's default). Empty: both.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=2
	Formats []SignatureFormat `json:"formats,omitempty"`

	// UnmatchedImages says what happens, in the namespaces this policy
	// selects, to an image that no policy's globs match. The strictest
	// answer among the selecting policies wins.
	// +kubebuilder:default=Deny
	// +optional
	UnmatchedImages UnmatchedAction `json:"unmatchedImages,omitempty"`

	// Rego modules evaluated for every matching image once its signature
	// and attestations verified, on every admission (never cached). Input:
	// image, attestations (every verified statement), resource, namespace,
	// request (see the README).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Rego []RegoModule `json:"rego,omitempty"`
}

// ImagePattern is one glob.
type ImagePattern struct {
	// Glob over the fully qualified repository, e.g. registry.example.com/team/**.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._:/*-]+$`
	Glob string `json:"glob"`
}

// Authority is a signer the policy trusts: a public key or a keyless
// (Fulcio) identity.
// +kubebuilder:validation:XValidation:rule="has(self.key) != has(self.keyless)",message="an authority has exactly one of key and keyless"
type Authority struct {
	// Name identifies the authority in denials and in the verified result.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Key is a public key.
	// +optional
	Key *KeyAuthority `json:"key,omitempty"`

	// Keyless is a Fulcio-issued certificate identity, with its trust root.
	// +optional
	Keyless *KeylessAuthority `json:"keyless,omitempty"`

	// SignaturesRepository, when set, is where this authority's signatures
	// and attestations are read from instead of the image's repository
	// (cosign's COSIGN_REPOSITORY, Chains' storage.oci.repository), e.g.
	// registry.example.com/signatures. The image's pull secrets are used
	// there too.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	SignaturesRepository string `json:"signaturesRepository,omitempty"`

	// Transparency says whether a signature must be recorded in a
	// transparency log (Rekor) that the authority's trust root names.
	// Require (the default for keyless): a verified log entry — its
	// inclusion proof or signed entry timestamp — is part of the signature,
	// and its integrated time is when a short-lived certificate must have
	// been valid. Ignore (the default for a key; for keyless only with a
	// timestamp authority or long-lived certificates): log entries are not
	// needed, a certificate must be valid at a signed timestamp or now.
	// +kubebuilder:validation:Enum=Require;Ignore
	// +optional
	Transparency TransparencyMode `json:"transparency,omitempty"`
}

// TransparencyMode is an authority's transparency log requirement.
type TransparencyMode string

// Transparency modes.
const (
	TransparencyRequire TransparencyMode = "Require"
	TransparencyIgnore  TransparencyMode = "Ignore"
)

// KeyAuthority names a public key in exactly one way.
// +kubebuilder:validation:XValidation:rule="[has(self.data), has(self.secretRef), has(self.kms)].filter(x, x).size() == 1",message="a key is given by exactly one of data, secretRef and kms"
type KeyAuthority struct {
	// Data is the PEM public key, e.g. the contents of cosign.pub.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	Data string `json:"data,omitempty"`

	// SecretRef names a Secret key holding the PEM public key (default key
	// cosign.pub, as `cosign generate-key-pair k8s://` writes it).
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`

	// KMS is a sigstore KMS reference whose public key verifies the signatures.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	KMS string `json:"kms,omitempty"`
}

// SecretKeyRef names one key of one Secret.
type SecretKeyRef struct {
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// KeylessAuthority trusts certificates issued by a Fulcio root to one of
// the identities, for signatures recorded in a Rekor log.
type KeylessAuthority struct {
	// Identities the certificate must match (any one of them).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Identities []Identity `json:"identities"`

	// TrustRoot holds the Fulcio root certificates and the Rekor public key.
	TrustRoot TrustRoot `json:"trustRoot"`
}

// Identity matches a certificate's OIDC issuer and subject (SAN). Each is an
// exact string or an RE2 regular expression; regular expressions always
// match the whole value (Tollgate anchors them). For a Kubernetes service
// account's token (Fulcio's "kubernetes" issuer type, e.g. Tollgate's
// signer with signers.x509.fulcio.provider: filesystem) the issuer is the
// cluster's service-account issuer and the subject
// https://kubernetes.io/namespaces/NAMESPACE/serviceaccounts/NAME.
// +kubebuilder:validation:XValidation:rule="has(self.issuer) != has(self.issuerRegExp)",message="an identity has exactly one of issuer and issuerRegExp"
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="an identity has exactly one of subject and subjectRegExp"
type Identity struct {
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	IssuerRegExp string `json:"issuerRegExp,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Subject string `json:"subject,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// TrustRoot is the keyless trust material: a sigstore trusted root
// (trusted_root.json, as `cosign trusted-root create` writes it and the
// public-good TUF repository ships it, with validity periods), or PEM
// fields; inline or from a Secret or ConfigMap (key trusted_root.json, or
// keys fulcio.pem, rekor.pub and, optionally, ctlog.pub).
// +kubebuilder:validation:XValidation:rule="[has(self.secretRef), has(self.configMapRef), has(self.trustedRoot), has(self.fulcioRoots) || has(self.rekorPublicKey) || has(self.ctLogPublicKey)].filter(x, x).size() == 1",message="a trust root is given by exactly one of secretRef, configMapRef, trustedRoot and the PEM fields (fulcioRoots, rekorPublicKey, ctLogPublicKey)"
type TrustRoot struct {
	// TrustedRoot is a sigstore trusted_root.json
	// (application/vnd.dev.sigstore.trustedroot+json;version=0.1): Fulcio
	// CAs, Rekor logs, CT logs and timestamp authorities.
	// +kubebuilder:validation:MaxLength=262144
	// +optional
	TrustedRoot string `json:"trustedRoot,omitempty"`

	// FulcioRoots are the PEM root (and intermediate) certificates.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	FulcioRoots string `json:"fulcioRoots,omitempty"`
	// RekorPublicKey is the PEM public key of the Rekor log; a signature
	// must carry a Rekor bundle signed by it.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	RekorPublicKey string `json:"rekorPublicKey,omitempty"`
	// CTLogPublicKey is the PEM public key of the certificate transparency
	// log. When it is given the certificate's embedded SCT is verified;
	// when it is not, SCTs are not checked.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	CTLogPublicKey string `json:"ctLogPublicKey,omitempty"`
	// ConfigMapRef names a ConfigMap with the key trusted_root.json, or the
	// keys fulcio.pem, rekor.pub and optionally ctlog.pub (trust roots are
	// public: a ConfigMap is the usual home).
	// +optional
	ConfigMapRef *SecretRef `json:"configMapRef,omitempty"`
	// SecretRef names a Secret with the key trusted_root.json, or the keys
	// fulcio.pem, rekor.pub and optionally ctlog.pub.
	// +optional
	SecretRef *SecretRef `json:"secretRef,omitempty"`
}

// SecretRef names a Secret.
type SecretRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// AttestationRequirement is one attestation every matching image must carry.
type AttestationRequirement struct {
	// Name identifies the requirement in denials.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// PredicateType the in-toto statement must have, exactly, e.g.
	// https://slsa.dev/provenance/v1 or https://slsa.dev/provenance/v0.2.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	PredicateType string `json:"predicateType"`

	// Rego is a module evaluated over this requirement's verified
	// statements (input.attestations holds only them); its
	// `deny contains msg if {...}` rules fail the requirement.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	Rego string `json:"rego,omitempty"`

	// Producer requires the provenance to say who produced the image, as
	// Tollgate's signer records it (predicate ... .tollgate): a run in one
	// of Namespaces (the repository's owners), and, for the subject that is
	// this image, only tasks matching TrustedTasks. Statements without that
	// record (Tekton Chains', cosign attest's) never meet it.
	// +optional
	Producer *ProducerRequirement `json:"producer,omitempty"`
}

// ProducerRequirement says which runs and tasks may have produced an image.
// +kubebuilder:validation:XValidation:rule="has(self.namespaces) || has(self.trustedTasks)",message="name namespaces, trustedTasks or both"
type ProducerRequirement struct {
	// Namespaces whose runs may have produced the image (exact names).
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// TrustedTasks are patterns over the references of the tasks that may
	// have produced the image: oci://BUNDLE (bundles resolver),
	// git+URL//PATH@REVISION, hub://CATALOG/NAME@VERSION,
	// cluster://NAMESPACE/NAME; `*` matches any characters. Every task whose
	// results named the image's digest must match one. An inline task has
	// no reference and never matches; task://NAMESPACE/NAME (a Task its
	// namespace's users may edit) matches only if listed.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=1024
	// +optional
	TrustedTasks []string `json:"trustedTasks,omitempty"`
}

// ClusterImagePolicyList is a list of ClusterImagePolicy.
// +kubebuilder:object:root=true
type ClusterImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterImagePolicy `json:"items"`
}

// PolicyStatus returns the policy's status, for code shared by every policy kind.
func (p *ClusterImagePolicy) PolicyStatus() *PolicyStatus { return &p.Status }
