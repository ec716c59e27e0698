package provenance

import (
	"encoding/json"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/config"
)

// chainsFeatureFlags is Tekton's feature-flags struct as Tekton Chains v0.24
// records it in internalParameters: the fields of the Tekton Pipelines
// release Chains was built with, under their Go names (that struct had no
// JSON tags). Tollgate records the same fields the same way, so its
// statements equal Chains' and existing policies over them keep working;
// flags newer than that release are not recorded there.
type chainsFeatureFlags struct {
	AwaitSidecarReadiness            bool
	Coschedule                       string
	DisableAffinityAssistant         bool
	DisableCredsInit                 bool
	DisableInlineSpec                string
	EnableAPIFields                  string
	EnableArtifacts                  bool
	EnableCELInWhenExpression        bool
	EnableConciseResolverSyntax      bool
	EnableKeepPodOnCancel            bool
	EnableKubernetesSidecar          bool
	EnableParamEnum                  bool
	EnableProvenanceInStatus         bool
	EnableStepActions                bool
	EnforceNonfalsifiability         string
	MaxResultSize                    int
	RequireGitSSHSecretKnownHosts    bool
	ResultExtractionMethod           string
	RunningInEnvWithInjectedSidecars bool
	SendCloudEventsForRuns           bool
	SetSecurityContext               bool
	VerificationNoMatchPolicy        string
}

// recordedFeatureFlags converts Tekton's flags to the form Chains records.
// Names match case-insensitively, as when Chains decodes them.
func recordedFeatureFlags(ff *config.FeatureFlags) (chainsFeatureFlags, error) {
	var out chainsFeatureFlags
	b, err := json.Marshal(ff)
	if err != nil {
		return out, fmt.Errorf("encoding feature flags: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("decoding feature flags: %w", err)
	}
	return out, nil
}
