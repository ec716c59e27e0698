package v1alpha1

// RegoModule is one Rego module (Rego v1: `import rego.v1`, `deny contains
// msg if {...}`, `warn contains msg if {...}`), inline or from a ConfigMap.
// +kubebuilder:validation:XValidation:rule="has(self.module) != has(self.configMapRef)",message="a module is given inline (module) or by configMapRef, not both"
type RegoModule struct {
	// Name identifies the module in errors and status, e.g. "params.rego".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	Name string `json:"name"`
	// Module is the Rego source.
	// +kubebuilder:validation:MaxLength=262144
	// +optional
	Module string `json:"module,omitempty"`
	// ConfigMapRef names a ConfigMap key holding the Rego source; the
	// policy is recompiled when it changes (within a minute).
	// +optional
	ConfigMapRef *ConfigMapKeyRef `json:"configMapRef,omitempty"`
}

// ConfigMapKeyRef names one key of one ConfigMap.
type ConfigMapKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}
