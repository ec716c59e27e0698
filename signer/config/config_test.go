package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The defaults are Chains' defaults; changing one changes what an existing
// Chains user's empty ConfigMap means.
func TestDefault(t *testing.T) {
	want := Config{
		TaskRuns:        Artifact{Format: "in-toto", Storage: []string{"tekton"}, Signer: "x509"},
		PipelineRuns:    Artifact{Format: "in-toto", Storage: []string{"tekton"}, Signer: "x509"},
		OCI:             Artifact{Format: "simplesigning", Storage: []string{"oci"}, Signer: "x509"},
		OCIEncoding:     "dsse",
		BuilderID:       "https://tekton.dev/chains/v2",
		BuildType:       "https://tekton.dev/chains/v2/slsa",
		TransparencyURL: "https://rekor.sigstore.dev",
		// Chains' addresses; where Chains tries every identity provider
		// when none is named, Tollgate reads the filesystem one (a
		// projected token at sigstore's default path).
		Fulcio: Fulcio{Address: "https://fulcio.sigstore.dev", Issuer: "https://oauth2.sigstore.dev/auth", Provider: "filesystem", TokenFile: "/var/run/sigstore/cosign/oidc-token"},
	}
	if diff := cmp.Diff(want, Default()); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	got, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(empty) (-want +got):\n%s", diff)
	}
}

// The article's lab ConfigMap, as users apply it to Chains today.
func TestParseTheArticlesConfig(t *testing.T) {
	got, err := Parse(map[string]string{
		"transparency.enabled":          "true",
		"artifacts.taskrun.format":      "slsa/v2alpha4",
		"artifacts.taskrun.storage":     "oci",
		"artifacts.pipelinerun.format":  "slsa/v2alpha4",
		"artifacts.pipelinerun.storage": "oci",
		"artifacts.oci.storage":         "oci",
		"artifacts.oci.format":          "simplesigning",
		"signers.kms.kmsref":            "gcpkms://projects/acme-prod/locations/us-central1/keyRings/tekton/cryptoKeys/chains-signer/versions/1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.TaskRuns = Artifact{Format: "slsa/v2alpha4", Storage: []string{"oci"}, Signer: "x509"}
	want.PipelineRuns = Artifact{Format: "slsa/v2alpha4", Storage: []string{"oci"}, Signer: "x509"}
	want.KMS.Ref = "gcpkms://projects/acme-prod/locations/us-central1/keyRings/tekton/cryptoKeys/chains-signer/versions/1"
	want.TransparencyEnabled = true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want func(*Config)
		err  []string
	}{
		{"two storages, spaces and duplicates", map[string]string{"artifacts.taskrun.storage": " oci, tekton ,oci"}, func(c *Config) { c.TaskRuns.Storage = []string{"oci", "tekton"} }, nil},
		{"empty storage disables", map[string]string{"artifacts.pipelinerun.storage": ""}, func(c *Config) { c.PipelineRuns.Storage = nil }, nil},
		{"transparency off", map[string]string{"transparency.enabled": "false"}, func(c *Config) {}, nil},
		{"transparency on", map[string]string{"transparency.enabled": "true", "transparency.url": "https://rekor.acme.io"}, func(c *Config) { c.TransparencyEnabled, c.TransparencyURL = true, "https://rekor.acme.io" }, nil},
		{"transparency manual", map[string]string{"transparency.enabled": "manual"}, func(c *Config) { c.TransparencyEnabled, c.TransparencyManual = true, true }, nil},
		{"keyless, the article's production keys", map[string]string{
			"signers.x509.fulcio.enabled": "true", "signers.x509.fulcio.address": "https://fulcio.internal.acme.io",
			"signers.x509.fulcio.issuer": "https://oidc.acme.io", "signers.x509.fulcio.provider": "filesystem",
			"signers.x509.identity.token.file": "/var/run/sigstore/token",
		}, func(c *Config) {
			c.Fulcio = Fulcio{Enabled: true, Address: "https://fulcio.internal.acme.io", Issuer: "https://oidc.acme.io", Provider: "filesystem", TokenFile: "/var/run/sigstore/token"}
		}, nil},
		{"a kms ref alone is kept for later", map[string]string{"signers.kms.kmsref": "hashivault://chains"}, func(c *Config) { c.KMS.Ref = "hashivault://chains" }, nil},
		{"kms signer with a ref", map[string]string{"artifacts.taskrun.signer": "kms", "signers.kms.kmsref": "hashivault://chains"}, func(c *Config) { c.TaskRuns.Signer, c.KMS.Ref = "kms", "hashivault://chains" }, nil},
		{"deep inspection", map[string]string{"artifacts.pipelinerun.enable-deep-inspection": "true"}, func(c *Config) { c.DeepInspection = true }, nil},
		{"sigstore bundles as referrers", map[string]string{"storage.oci.encoding-format": "sigstore-bundle"}, func(c *Config) { c.OCIEncoding = "sigstore-bundle" }, nil},
		{"an unknown encoding", map[string]string{"storage.oci.encoding-format": "protobuf"}, nil, []string{`storage.oci.encoding-format: "protobuf" is not one of dsse, sigstore-bundle`}},

		{"unknown key, with a suggestion", map[string]string{"artifacts.taskrun.formats": "slsa/v1"}, nil, []string{"artifacts.taskrun.formats: unknown key (did you mean artifacts.taskrun.format?)"}},
		{"unknown format", map[string]string{"artifacts.taskrun.format": "slsa/v3"}, nil, []string{`artifacts.taskrun.format: "slsa/v3" is not one of in-toto, slsa/v1, slsa/v2alpha3, slsa/v2alpha4`}},
		{"a Chains backend Tollgate lacks", map[string]string{"artifacts.taskrun.storage": "tekton,gcs"}, nil, []string{`storage "gcs" is a Tekton Chains backend Tollgate does not implement`}},
		{"a malformed boolean is an error, not false", map[string]string{"artifacts.pipelinerun.enable-deep-inspection": "yes"}, nil, []string{`"yes" is not a boolean`}},
		{"kms without a ref", map[string]string{"artifacts.taskrun.signer": "kms"}, nil, []string{"artifacts.taskrun.signer: kms needs signers.kms.kmsref"}},
		{"transparency in bundles", map[string]string{"transparency.enabled": "true", "storage.oci.encoding-format": "sigstore-bundle"}, func(c *Config) { c.TransparencyEnabled, c.OCIEncoding = true, "sigstore-bundle" }, nil},
		{"an identity provider Tollgate does not read", map[string]string{"signers.x509.fulcio.provider": "github"}, nil, []string{"signers.x509.fulcio.provider: the github identity provider is not supported by Tollgate yet; use filesystem"}},
		{"a relative Fulcio URL", map[string]string{"signers.x509.fulcio.address": "fulcio.local"}, nil, []string{`signers.x509.fulcio.address: "fulcio.local" is not an absolute URL`}},

		{"image signatures in tekton storage are refused", map[string]string{"artifacts.oci.storage": "tekton"}, nil, []string{"artifacts.oci.storage: tekton storage of image signatures is not supported"}},
		{"a relative transparency URL", map[string]string{"transparency.url": "rekor.local"}, nil, []string{`transparency.url: "rekor.local" is not an absolute URL`}},
		{"every problem is reported", map[string]string{"artifacts.oci.format": "cosign", "builder.id": ""}, nil, []string{"artifacts.oci.format", "builder.id: must not be empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.data)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				for _, e := range tc.err {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error does not say %q:\n%v", e, err)
					}
				}
				if diff := cmp.Diff(Config{}, got); diff != "" {
					t.Errorf("a failed parse returned a config:\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
