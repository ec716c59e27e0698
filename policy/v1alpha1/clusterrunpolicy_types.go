package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says what a check does with a violation.
// +kubebuilder:validation:Enum=Enforce;Warn;Off
type Mode string

const (
	// Enforce denies the run.
	Enforce Mode = "Enforce"
	// Warn admits the run with an admission warning.
	Warn Mode = "Warn"
	// Off does not evaluate the check.
	Off Mode = "Off"
)

// CheckName names one of the run guard's built-in checks.
// +kubebuilder:validation:Enum=serviceAccount;podSecurity;resources;pinnedRefs;specIntegrity
type CheckName string

const (
	CheckServiceAccount CheckName = "serviceAccount"
	CheckPodSecurity    CheckName = "podSecurity"
	CheckResources      CheckName = "resources"
	CheckPinnedRefs     CheckName = "pinnedRefs"
	CheckSpecIntegrity  CheckName = "specIntegrity"
)

// AllChecks lists the built-in checks in the order they are evaluated and reported.
var AllChecks = []CheckName{CheckServiceAccount, CheckPodSecurity, CheckResources, CheckPinnedRefs, CheckSpecIntegrity}

// ClusterRunPolicy configures the run guard's checks for Tekton PipelineRuns
// and TaskRuns in the namespaces it selects. Every policy that selects a
// namespace applies (all must allow); where none selects it, the built-in
// default policy applies.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=crp,categories=tollgate
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="ServiceAccount",type=string,JSONPath=`.spec.serviceAccount.mode`,priority=1
// +kubebuilder:printcolumn:name="PodSecurity",type=string,JSONPath=`.spec.podSecurity.mode`,priority=1
// +kubebuilder:printcolumn:name="Resources",type=string,JSONPath=`.spec.resources.mode`,priority=1
// +kubebuilder:printcolumn:name="PinnedRefs",type=string,JSONPath=`.spec.pinnedRefs.mode`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterRunPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterRunPolicySpec `json:"spec,omitempty"`
	Status PolicyStatus         `json:"status,omitempty"`
}

// ClusterRunPolicySpec is the desired behaviour of the run guard.
type ClusterRunPolicySpec struct {
	// NamespaceSelector selects the namespaces whose runs this policy checks.
	// An empty or absent selector selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// ServiceAccount checks the service account of every TaskRun the run creates.
	// +optional
	ServiceAccount ServiceAccountCheck `json:"serviceAccount,omitempty"`

	// PodSecurity evaluates the Pod Tekton would create for each task against a
	// Pod Security Standard.
	// +optional
	PodSecurity PodSecurityCheck `json:"podSecurity,omitempty"`

	// Resources requires CPU and memory limits on every step and sidecar.
	// +optional
	Resources ResourcesCheck `json:"resources,omitempty"`

	// PinnedRefs requires remote Task, Pipeline and StepAction references to be pinned.
	// +optional
	PinnedRefs PinnedRefsCheck `json:"pinnedRefs,omitempty"`

	// SpecIntegrity stamps and checks the spec digest and guards the annotations
	// and status the signer trusts.
	// +optional
	SpecIntegrity SpecIntegrityCheck `json:"specIntegrity,omitempty"`

	// Exemptions switch checks off for named namespaces, pipelines or tasks.
	// Every exemption states why; an admitted exempt run is logged with the reason.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Exemptions []Exemption `json:"exemptions,omitempty"`

	// Rego modules evaluated on every run this policy selects, at CREATE,
	// after the built-in checks. Input: run, serviceAccount,
	// serviceAccounts, namespace, request (see the README). Each message of
	// a `deny` rule denies the run; each of a `warn` rule warns.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Rego []RegoModule `json:"rego,omitempty"`

	// Artifacts says which image repositories the runs of the selected
	// namespaces own: the signer signs an image a run claims (IMAGE_URL,
	// IMAGES) only when a policy selecting the run's namespace lists its
	// repository, and refuses the run otherwise (reason ArtifactNotOwned).
	// +optional
	Artifacts *ArtifactsPolicy `json:"artifacts,omitempty"`
}

// ArtifactsPolicy lists what the runs of a policy's namespaces may claim.
type ArtifactsPolicy struct {
	// Repositories are globs over normalised repository names
	// ("registry.example.com/team-a/**", "index.docker.io/acme/*"): `*`
	// matches within one path segment, `**` across segments.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=512
	Repositories []string `json:"repositories"`
}

// ServiceAccountCheck settings.
type ServiceAccountCheck struct {
	// Mode of the check.
	// +kubebuilder:default=Enforce
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// CeilingClusterRole names the ClusterRole whose rules must cover everything
	// the run's service accounts are granted (through RoleBindings and
	// ClusterRoleBindings). A ceiling that does not exist denies every run.
	// +kubebuilder:default=tollgate-run-ceiling
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	CeilingClusterRole string `json:"ceilingClusterRole,omitempty"`
}

// PodSecurityCheck settings.
type PodSecurityCheck struct {
	// Mode of the check.
	// +kubebuilder:default=Enforce
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// Level is the Pod Security Standard level.
	// +kubebuilder:validation:Enum=baseline;restricted
	// +kubebuilder:default=restricted
	// +optional
	Level string `json:"level,omitempty"`

	// Version of the standard: "latest" or a Kubernetes minor version such as "v1.35".
	// +kubebuilder:validation:Pattern=`^(latest|v1\.[0-9]{1,3})$`
	// +kubebuilder:default=latest
	// +optional
	Version string `json:"version,omitempty"`
}

// ResourcesCheck settings.
type ResourcesCheck struct {
	// Mode of the check.
	// +kubebuilder:default=Enforce
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// DefaultLimits are written by the mutating webhook into every inline step
	// and sidecar that sets no limit for a resource (cpu, memory). Steps of
	// Tasks referenced from the cluster get them through stepSpecs/sidecarSpecs.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])",message="only cpu, memory and ephemeral-storage may be defaulted"
	DefaultLimits corev1.ResourceList `json:"defaultLimits,omitempty"`

	// MaxLimits caps the limit a step or sidecar may set for a resource.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])",message="only cpu, memory and ephemeral-storage may be capped"
	MaxLimits corev1.ResourceList `json:"maxLimits,omitempty"`
}

// PinnedRefsCheck settings.
type PinnedRefsCheck struct {
	// Mode of the check.
	// +kubebuilder:default=Enforce
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// AllowedResolvers lists the remote resolvers a run may use. A resolver not
	// listed is denied. The pinning rule of each known resolver: hub needs an
	// exact version, git a full commit SHA as revision, bundles a @sha256: digest;
	// cluster references are local and need no pin.
	// +kubebuilder:default={hub,git,bundles,cluster}
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	AllowedResolvers []string `json:"allowedResolvers,omitempty"`

	// MaxParamLength bounds the length of every resolver parameter value.
	// +kubebuilder:default=512
	// +kubebuilder:validation:Minimum=16
	// +kubebuilder:validation:Maximum=8192
	// +optional
	MaxParamLength int32 `json:"maxParamLength,omitempty"`

	// AllowedGitHosts, when set, lists the hosts git references may fetch
	// from (the host of the git resolver's url, or of serverURL with
	// org/repo): a reference to any other host is denied. Empty: any host.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	AllowedGitHosts []string `json:"allowedGitHosts,omitempty"`
}

// SpecIntegrityCheck settings.
type SpecIntegrityCheck struct {
	// Mode of the check.
	// +kubebuilder:default=Enforce
	// +optional
	Mode Mode `json:"mode,omitempty"`
}

// Exemption switches checks off for matching runs.
// +kubebuilder:validation:XValidation:rule="(has(self.namespaces) && size(self.namespaces) > 0) || (has(self.pipelines) && size(self.pipelines) > 0) || (has(self.tasks) && size(self.tasks) > 0)",message="an exemption names at least one namespace, pipeline or task"
type Exemption struct {
	// Namespaces exempted (exact names).
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
	// Pipelines exempted: PipelineRuns whose pipelineRef names one of these
	// Pipelines in the cluster.
	// +optional
	// +listType=set
	Pipelines []string `json:"pipelines,omitempty"`
	// Tasks exempted: pipeline tasks or TaskRuns whose taskRef names one of
	// these Tasks in the cluster, or pipeline tasks with one of these names.
	// +optional
	// +listType=set
	Tasks []string `json:"tasks,omitempty"`
	// Checks exempted; empty means every check except specIntegrity, which can
	// only be exempted by naming it.
	// +optional
	// +listType=set
	Checks []CheckName `json:"checks,omitempty"`
	// Reason is why the exemption exists; it is logged with each exempt admission.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// PolicyStatus is the observed state of a policy.
type PolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True when the policy is in force, False with the
	// error when it could not be loaded (the last good version stays in force).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterRunPolicyList is a list of ClusterRunPolicy.
// +kubebuilder:object:root=true
type ClusterRunPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterRunPolicy `json:"items"`
}

// PolicyStatus returns the policy's status, for code shared by every policy kind.
func (p *ClusterRunPolicy) PolicyStatus() *PolicyStatus { return &p.Status }
