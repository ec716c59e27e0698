package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ConfigMapName is the name of the ConfigMap the signer reads, in its own namespace.
const ConfigMapName = "chains-config"

// Formats of provenance. "in-toto" is Chains' alias of "slsa/v1" (SLSA v0.2).
const (
	FormatInToto        = "in-toto"
	FormatSLSAv1        = "slsa/v1"
	FormatSLSAv2alpha3  = "slsa/v2alpha3"
	FormatSLSAv2alpha4  = "slsa/v2alpha4"
	FormatSimpleSigning = "simplesigning"
)

// Storage backends.
const (
	StorageTekton = "tekton"
	StorageOCI    = "oci"
)

// Encodings of oci storage (storage.oci.encoding-format, as Chains names them).
const (
	EncodingDSSE   = "dsse"
	EncodingBundle = "sigstore-bundle"
)

// Signers.
const (
	SignerX509 = "x509"
	SignerKMS  = "kms"
)

// Build types Chains accepts for builddefinition.buildtype.
const (
	BuildTypeSLSA       = "https://tekton.dev/chains/v2/slsa"
	BuildTypeSLSATekton = "https://tekton.dev/chains/v2/slsa-tekton"
)

// Artifact configures what is produced for one kind of artifact.
type Artifact struct {
	// Format of the payload.
	Format string
	// Storage lists the backends it is stored in; empty means the artifact
	// is not produced (Chains: an empty storage value disables it).
	Storage []string
	// Signer signs it.
	Signer string
}

// Enabled reports whether the artifact is produced at all.
func (a Artifact) Enabled() bool { return len(a.Storage) > 0 }

// Config is the parsed chains-config.
type Config struct {
	TaskRuns     Artifact
	PipelineRuns Artifact
	// DeepInspection: a PipelineRun's provenance also carries the artifacts
	// of its child TaskRuns.
	DeepInspection bool
	OCI            Artifact

	// OCIRepository, when set, stores signatures and attestations in this
	// repository instead of next to the image.
	OCIRepository string
	// OCIInsecure allows plain HTTP to the OCI repository.
	OCIInsecure bool
	// OCIEncoding is how oci storage writes signatures and attestations:
	// EncodingDSSE (cosign's legacy .sig/.att tags) or EncodingBundle
	// (sigstore bundles attached as OCI 1.1 referrers, as cosign v3 does).
	OCIEncoding string

	// BuilderID is the builder.id of the provenance.
	BuilderID string
	// BuildType is the buildDefinition.buildType of SLSA v1.0 provenance.
	BuildType string

	// Transparency: upload to a transparency log ("true"), only runs that ask
	// with chains.tekton.dev/transparency-upload ("manual"), or not at all.
	TransparencyEnabled bool
	TransparencyManual  bool
	TransparencyURL     string

	// KMS signer settings (signers.kms.*).
	KMS KMS

	// Fulcio: the x509 signer signs keylessly (signers.x509.fulcio.*).
	Fulcio Fulcio
}

// Fulcio configures keyless signing: an ephemeral key certified by Fulcio
// for the signer's workload identity.
type Fulcio struct {
	Enabled bool
	// Address of Fulcio.
	Address string
	// Issuer is the OIDC issuer of the identity (recorded; Fulcio decides).
	Issuer string
	// Provider of the identity token: ProviderFilesystem or ProviderSPIFFE.
	Provider string
	// TokenFile is the filesystem provider's token
	// (signers.x509.identity.token.file).
	TokenFile string
}

// Identity token providers (signers.x509.fulcio.provider, Chains' names).
const (
	ProviderFilesystem = "filesystem"
	// ProviderSPIFFE asks the SPIFFE Workload API for a JWT-SVID, as
	// Chains (cosign's spiffe provider) does: the socket named by
	// SPIFFE_ENDPOINT_SOCKET, or /tmp/spire-agent/public/api.sock.
	ProviderSPIFFE = "spiffe"
)

// providersNotYet are Chains' other providers: refused by name.
var providersNotYet = []string{"github", "google", "buildkite-agent"}

// KMS configures the kms signer.
type KMS struct {
	Ref           string // signers.kms.kmsref, e.g. hashivault://key, awskms://...
	AuthAddress   string
	AuthToken     string
	AuthTokenPath string
	OIDCPath      string
	OIDCRole      string
	SpireSock     string
	SpireAudience string
}

// Default returns the configuration of an empty chains-config: Chains' own
// defaults (golden test: TestDefault).
func Default() Config {
	return Config{
		TaskRuns:        Artifact{Format: FormatInToto, Storage: []string{StorageTekton}, Signer: SignerX509},
		PipelineRuns:    Artifact{Format: FormatInToto, Storage: []string{StorageTekton}, Signer: SignerX509},
		OCI:             Artifact{Format: FormatSimpleSigning, Storage: []string{StorageOCI}, Signer: SignerX509},
		OCIEncoding:     EncodingDSSE,
		BuilderID:       "https://tekton.dev/chains/v2",
		BuildType:       BuildTypeSLSA,
		TransparencyURL: "https://rekor.sigstore.dev",
		Fulcio: Fulcio{
			Address:   "https://fulcio.sigstore.dev",
			Issuer:    "https://oauth2.sigstore.dev/auth",
			Provider:  ProviderFilesystem,
			TokenFile: "/var/run/sigstore/cosign/oidc-token",
		},
	}
}

var (
	runFormats = []string{FormatInToto, FormatSLSAv1, FormatSLSAv2alpha3, FormatSLSAv2alpha4}
	storages   = []string{StorageTekton, StorageOCI}
	signers    = []string{SignerX509, SignerKMS}
	// Chains backends Tollgate does not implement: refused by name, not ignored.
	unsupportedStorage = []string{"gcs", "docdb", "grafeas", "kafka", "pubsub"}
)

// key is one accepted chains-config key and how to read it.
type key struct {
	name  string
	parse func(c *Config, v string) error
}

func oneOf(allowed []string, set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		set(c, v)
		return nil
	}
}

func storageList(set func(*Config, []string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		if strings.TrimSpace(v) != "" {
			for _, s := range strings.Split(v, ",") {
				s = strings.TrimSpace(s)
				switch {
				case slices.Contains(storages, s):
				case slices.Contains(unsupportedStorage, s):
					return fmt.Errorf("storage %q is a Tekton Chains backend Tollgate does not implement (supported: %s)", s, strings.Join(storages, ", "))
				default:
					return fmt.Errorf("%q is not one of %s", s, strings.Join(storages, ", "))
				}
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		sort.Strings(out)
		set(c, out)
		return nil
	}
}

func boolean(set func(*Config, bool)) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
		set(c, b)
		return nil
	}
}

func text(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error { set(c, v); return nil }
}

func absoluteURL(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%q is not an absolute URL", v)
		}
		set(c, v)
		return nil
	}
}

func notYet(what string) func(*Config, string) error {
	return func(_ *Config, v string) error {
		if v == "" || v == "false" {
			return nil
		}
		return fmt.Errorf("%s is not supported by Tollgate yet", what)
	}
}

var keys = []key{
	{"artifacts.taskrun.format", oneOf(runFormats, func(c *Config, v string) { c.TaskRuns.Format = v })},
	{"artifacts.taskrun.storage", storageList(func(c *Config, v []string) { c.TaskRuns.Storage = v })},
	{"artifacts.taskrun.signer", oneOf(signers, func(c *Config, v string) { c.TaskRuns.Signer = v })},
	{"artifacts.pipelinerun.format", oneOf(runFormats, func(c *Config, v string) { c.PipelineRuns.Format = v })},
	{"artifacts.pipelinerun.storage", storageList(func(c *Config, v []string) { c.PipelineRuns.Storage = v })},
	{"artifacts.pipelinerun.signer", oneOf(signers, func(c *Config, v string) { c.PipelineRuns.Signer = v })},
	{"artifacts.pipelinerun.enable-deep-inspection", boolean(func(c *Config, v bool) { c.DeepInspection = v })},
	{"artifacts.oci.format", oneOf([]string{FormatSimpleSigning}, func(c *Config, v string) { c.OCI.Format = v })},
	{"artifacts.oci.storage", storageList(func(c *Config, v []string) { c.OCI.Storage = v })},
	{"artifacts.oci.signer", oneOf(signers, func(c *Config, v string) { c.OCI.Signer = v })},
	{"storage.oci.repository", text(func(c *Config, v string) { c.OCIRepository = v })},
	{"storage.oci.repository.insecure", boolean(func(c *Config, v bool) { c.OCIInsecure = v })},
	{"storage.oci.encoding-format", oneOf([]string{EncodingDSSE, EncodingBundle}, func(c *Config, v string) { c.OCIEncoding = v })},
	{"builder.id", text(func(c *Config, v string) { c.BuilderID = v })},
	{"builddefinition.buildtype", oneOf([]string{BuildTypeSLSA, BuildTypeSLSATekton}, func(c *Config, v string) { c.BuildType = v })},
	{"transparency.enabled", oneOf([]string{"true", "false", "manual"}, func(c *Config, v string) {
		c.TransparencyEnabled, c.TransparencyManual = v == "true" || v == "manual", v == "manual"
	})},
	{"transparency.url", absoluteURL(func(c *Config, v string) { c.TransparencyURL = v })},
	{"signers.kms.kmsref", text(func(c *Config, v string) { c.KMS.Ref = v })},
	{"signers.kms.auth.address", text(func(c *Config, v string) { c.KMS.AuthAddress = v })},
	{"signers.kms.auth.token", text(func(c *Config, v string) { c.KMS.AuthToken = v })},
	{"signers.kms.auth.token-path", text(func(c *Config, v string) { c.KMS.AuthTokenPath = v })},
	{"signers.kms.auth.oidc.path", text(func(c *Config, v string) { c.KMS.OIDCPath = v })},
	{"signers.kms.auth.oidc.role", text(func(c *Config, v string) { c.KMS.OIDCRole = v })},
	{"signers.kms.auth.spire.sock", notYet("SPIRE authentication to the KMS (signers.kms.auth.spire.sock)")},
	{"signers.kms.auth.spire.audience", notYet("SPIRE authentication to the KMS (signers.kms.auth.spire.audience)")},
	{"signers.x509.fulcio.enabled", boolean(func(c *Config, v bool) { c.Fulcio.Enabled = v })},
	{"signers.x509.fulcio.address", absoluteURL(func(c *Config, v string) { c.Fulcio.Address = v })},
	{"signers.x509.fulcio.issuer", absoluteURL(func(c *Config, v string) { c.Fulcio.Issuer = v })},
	{"signers.x509.fulcio.provider", func(c *Config, v string) error {
		if slices.Contains(providersNotYet, v) {
			return fmt.Errorf("the %s identity provider is not supported by Tollgate yet; use filesystem (a projected service-account token, audience sigstore, in signers.x509.identity.token.file) or spiffe (a JWT-SVID from the SPIFFE Workload API)", v)
		}
		return oneOf([]string{ProviderFilesystem, ProviderSPIFFE}, func(c *Config, v string) { c.Fulcio.Provider = v })(c, v)
	}},
	{"signers.x509.identity.token.file", text(func(c *Config, v string) { c.Fulcio.TokenFile = v })},
	{"signers.x509.tuf.mirror.url", notYet("keyless signing (signers.x509.tuf.mirror.url)")},
}

// Keys lists every accepted key, sorted.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	sort.Strings(out)
	return out
}

// Parse reads a chains-config's data. Every problem is reported, each
// naming its key; on error the returned Config is the zero value.
func Parse(data map[string]string) (Config, error) {
	c := Default()
	byName := make(map[string]key, len(keys))
	for _, k := range keys {
		byName[k.name] = k
	}
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		k, ok := byName[n]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key%s", n, suggest(n)))
			continue
		}
		if err := k.parse(&c, strings.TrimSpace(data[n])); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks settings that depend on each other.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct {
		name string
		art  Artifact
	}{{"taskrun", c.TaskRuns}, {"pipelinerun", c.PipelineRuns}, {"oci", c.OCI}} {
		if a.art.Enabled() && a.art.Signer == SignerKMS && c.KMS.Ref == "" {
			errs = append(errs, fmt.Errorf("artifacts.%s.signer: kms needs signers.kms.kmsref", a.name))
		}
		if a.name == "oci" && a.art.Enabled() && slices.Contains(a.art.Storage, StorageTekton) {
			errs = append(errs, errors.New("artifacts.oci.storage: tekton storage of image signatures is not supported by Tollgate yet; use oci"))
		}
	}
	if c.Fulcio.Enabled && c.Fulcio.TokenFile == "" {
		errs = append(errs, errors.New("signers.x509.identity.token.file: keyless signing needs the identity token's file"))
	}
	if c.BuilderID == "" {
		errs = append(errs, errors.New("builder.id: must not be empty"))
	}
	return errors.Join(errs...)
}

// suggest names the accepted key closest to a mistyped one.
func suggest(n string) string {
	best, bestD := "", 4
	for _, k := range keys {
		if d := distance(n, k.name); d < bestD {
			best, bestD = k.name, d
		}
	}
	if best == "" {
		return " (see the configuration reference)"
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance of two short strings.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
