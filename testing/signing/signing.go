// Package signing signs and attests images in a test registry exactly as
// cosign lays them out (simple-signing payloads in ".sig", DSSE envelopes in
// ".att"), with keys or with keyless certificates from a test Fulcio root
// and Rekor bundles from a test Rekor key, and crafts the malformed
// variants the image gate must refuse. It stops nothing: it only pushes.
package signing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/signer/config"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
)

// Key is an ECDSA P-256 key pair, as `cosign generate-key-pair` makes.
type Key struct {
	Private *ecdsa.PrivateKey
	// PublicPEM is the public key as cosign.pub holds it.
	PublicPEM []byte
}

// NewKey generates a key.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Private: priv, PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
}

func (k *Key) sign(t testing.TB, b []byte) []byte {
	t.Helper()
	h := sha256.Sum256(b)
	sig, err := ecdsa.SignASN1(rand.Reader, k.Private, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// Options vary what is signed, to craft the bad cases.
type Options struct {
	// Digest signed instead of the image's own (a signature for another image).
	Digest string
	// PayloadType of the DSSE envelope instead of application/vnd.in-toto+json.
	PayloadType string
	// Statement replaces the statement entirely (raw bytes, signed as given).
	Statement []byte
	// Cert, when set, is a keyless identity: the signature carries its
	// certificate and a Rekor bundle (none with NoLog).
	Cert  *Cert
	NoLog bool
	// Auth authenticates the pushes (a private registry).
	Auth authn.Authenticator
	// Repository receives the signature instead of the image's repository
	// (cosign's COSIGN_REPOSITORY).
	Repository *name.Repository
}

func (o Options) remote() []ociremote.Option {
	var out []ociremote.Option
	if o.Auth != nil {
		out = append(out, ociremote.WithRemoteOptions(remote.WithAuth(o.Auth)))
	}
	if o.Repository != nil {
		out = append(out, ociremote.WithTargetRepository(*o.Repository))
	}
	return out
}

// SimpleSigningPayload is cosign's payload for an image signature.
func SimpleSigningPayload(img name.Digest, digest string) []byte {
	b, _ := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": img.Context().Name()},
			"image":    map[string]string{"docker-manifest-digest": digest},
			"type":     "cosign container image signature",
		},
		"optional": nil,
	})
	return b
}

// Sign attaches a signature over the image's digest (or opts.Digest).
func (k *Key) Sign(t testing.TB, img name.Digest, opts Options) {
	t.Helper()
	digest := img.DigestStr()
	if opts.Digest != "" {
		digest = opts.Digest
	}
	payload := SimpleSigningPayload(img, digest)
	sig := base64.StdEncoding.EncodeToString(k.sign(t, payload))
	var so []static.Option
	if opts.Cert != nil {
		so = append(so, static.WithCertChain(opts.Cert.PEM, opts.Cert.ChainPEM))
		if !opts.NoLog {
			so = append(so, static.WithBundle(opts.Cert.rekor.hashedRekord(t, payload, sig, opts.Cert.PEM)))
		}
	}
	s, err := static.NewSignature(payload, sig, so...)
	if err != nil {
		t.Fatal(err)
	}
	se, err := ociremote.SignedEntity(img, opts.remote()...)
	if err != nil {
		t.Fatal(err)
	}
	se, err = mutate.AttachSignatureToEntity(se, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(img.Repository, se, opts.remote()...); err != nil {
		t.Fatal(err)
	}
}

// Statement returns an in-toto v1 statement about digest.
func Statement(img name.Digest, digest, predicateType string, predicate any) []byte {
	b, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": img.Context().Name(), "digest": map[string]string{"sha256": hexOf(digest)}}},
		"predicateType": predicateType,
		"predicate":     predicate,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func hexOf(digest string) string {
	if len(digest) > 7 && digest[:7] == "sha256:" {
		return digest[7:]
	}
	return digest
}

// SLSAv1 is a minimal valid SLSA v1.0 provenance predicate.
func SLSAv1(builder string) map[string]any {
	return map[string]any{
		"buildDefinition": map[string]any{"buildType": config.BuildTypeSLSA, "externalParameters": map[string]any{"runSpec": map[string]any{}}},
		"runDetails":      map[string]any{"builder": map[string]any{"id": builder}},
	}
}

// Envelope returns a DSSE envelope over statement, signed by k.
func (k *Key) Envelope(t testing.TB, payloadType string, statement []byte) []byte {
	t.Helper()
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(statement), statement)
	sig := k.sign(t, []byte(pae))
	b, err := json.Marshal(map[string]any{
		"payloadType": payloadType,
		"payload":     base64.StdEncoding.EncodeToString(statement),
		"signatures":  []any{map[string]string{"keyid": "", "sig": base64.StdEncoding.EncodeToString(sig)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Attest attaches an attestation of predicateType about the image's
// digest (or opts.Digest), with the predicate, as `cosign attest` does.
func (k *Key) Attest(t testing.TB, img name.Digest, predicateType string, predicate any, opts Options) {
	t.Helper()
	digest := img.DigestStr()
	if opts.Digest != "" {
		digest = opts.Digest
	}
	st := opts.Statement
	if st == nil {
		st = Statement(img, digest, predicateType, predicate)
	}
	pt := opts.PayloadType
	if pt == "" {
		pt = ctypes.IntotoPayloadType
	}
	AttachAttestation(t, img, k.Envelope(t, pt, st), map[string]string{"predicateType": predicateType}, opts.remote()...)
}

// AttachAttestation attaches a raw envelope as an attestation layer.
func AttachAttestation(t testing.TB, img name.Digest, envelope []byte, annotations map[string]string, ro ...ociremote.Option) {
	t.Helper()
	att, err := static.NewAttestation(envelope, static.WithLayerMediaType(ctypes.DssePayloadType), static.WithAnnotations(annotations))
	if err != nil {
		t.Fatal(err)
	}
	se, err := ociremote.SignedEntity(img, ro...)
	if err != nil {
		t.Fatal(err)
	}
	se, err = mutate.AttachAttestationToEntity(se, att)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteAttestations(img.Repository, se, ro...); err != nil {
		t.Fatal(err)
	}
}

// Fulcio is a test certificate authority issuing keyless certificates, with
// the Rekor key that vouches for when they were used.
type Fulcio struct {
	root     *x509.Certificate
	rootKey  *ecdsa.PrivateKey
	RootPEM  []byte
	rekor    *rekor
	RekorPEM []byte
}

// NewFulcio makes a root and a Rekor key.
func NewFulcio(t testing.TB) *Fulcio {
	t.Helper()
	key := NewKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tollgate-test-fulcio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.Private.PublicKey, key.Private)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	rk := &rekor{key: NewKey(t)}
	return &Fulcio{root: root, rootKey: key.Private, RootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), rekor: rk, RekorPEM: rk.key.PublicPEM}
}

// Cert is a keyless certificate and its key.
type Cert struct {
	*Key
	PEM      []byte
	ChainPEM []byte
	rekor    *rekor
}

var oidIssuer = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}

// Issue returns a ten-minute certificate for subject (an email or a URI)
// issued to the OIDC issuer, as Fulcio does.
func (f *Fulcio) Issue(t testing.TB, issuer, subject string) *Cert {
	t.Helper()
	return f.IssueFor(t, issuer, subject, time.Now().Add(-time.Minute), time.Now().Add(9*time.Minute))
}

// IssueFor returns a certificate valid from notBefore to notAfter.
func (f *Fulcio) IssueFor(t testing.TB, issuer, subject string, notBefore, notAfter time.Time) *Cert {
	t.Helper()
	k := NewKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(time.Now().UnixNano()),
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuer, Value: []byte(issuer)}},
	}
	if u, err := url.Parse(subject); err == nil && u.Scheme != "" {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.root, &k.Private.PublicKey, f.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{Key: k, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ChainPEM: f.RootPEM, rekor: f.rekor}
}

type rekor struct{ key *Key }

// hashedRekord returns the bundle Rekor would return for a hashedrekord
// entry of this payload, signature and certificate, integrated now.
func (r *rekor) hashedRekord(t testing.TB, payload []byte, b64sig string, certPEM []byte) *bundle.RekorBundle {
	t.Helper()
	sum := sha256.Sum256(payload)
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data":      map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])}},
			"signature": map[string]any{"content": b64sig, "publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString(certPEM)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&r.key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	logID := sha256.Sum256(der)
	p := bundle.RekorPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: time.Now().Unix(), LogIndex: 1, LogID: hex.EncodeToString(logID[:])}
	contents, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := jsoncanonicalizer.Transform(contents)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle.RekorBundle{SignedEntryTimestamp: r.key.sign(t, canon), Payload: p}
}

// Crafted is one hostile keyless attestation layer: a valid certificate
// and envelope whose annotations are bent the way an attacker who can push
// to the repository would bend them.
type Crafted struct {
	Name string
	// Annotations replace or add to the layer's keyless annotations; a
	// value of "-" removes the key.
	Annotations map[string]string
	// Envelope, when set, is the layer's body instead of a signed envelope.
	Envelope []byte
	// Want is a piece of the failure message the gate must give.
	Want string
}

// CraftedAttestations are the layers issue 10 names: an empty Rekor bundle
// (which crashed cosign's VerifyBundle), its siblings, a null payload and a
// truncated certificate.
func CraftedAttestations() []Crafted {
	return []Crafted{
		{Name: "empty bundle", Annotations: map[string]string{"dev.sigstore.cosign/bundle": "{}"}, Want: "has a body of JSON type null"},
		{Name: "bundle body a number", Annotations: map[string]string{"dev.sigstore.cosign/bundle": `{"SignedEntryTimestamp":"AA==","Payload":{"body":42,"integratedTime":1,"logIndex":1,"logID":"x"}}`}, Want: "has a body of JSON type number"},
		{Name: "bundle body an object", Annotations: map[string]string{"dev.sigstore.cosign/bundle": `{"SignedEntryTimestamp":"AA==","Payload":{"body":{"a":1},"logID":"x"}}`}, Want: "has a body of JSON type object"},
		{Name: "bundle null", Annotations: map[string]string{"dev.sigstore.cosign/bundle": "null"}, Want: "Rekor bundle has a body of JSON type null"},
		{Name: "bundle of wrong JSON types", Annotations: map[string]string{"dev.sigstore.cosign/bundle": `{"SignedEntryTimestamp":7,"Payload":"x"}`}, Want: "Rekor bundle is not a JSON object"},
		{Name: "bundle without timestamp", Annotations: map[string]string{"dev.sigstore.cosign/bundle": `{"Payload":{"body":"e30=","logID":"x"}}`}, Want: "no signed entry timestamp"},
		{Name: "null payload", Envelope: []byte("null"), Want: "attestation of type"},
		{Name: "envelope of wrong JSON types", Envelope: []byte(`{"payloadType":1,"payload":["x"],"signatures":{"sig":2}}`), Want: "attestation of type"},
		{Name: "truncated certificate", Annotations: map[string]string{"dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, Want: "attestation of type"},
		{Name: "certificate without chain", Annotations: map[string]string{"dev.sigstore.cosign/chain": "-"}, Want: "attestation of type"},
	}
}

// AttachCrafted attaches c as an attestation of img, signed with cert and
// carrying cert's keyless annotations as bent by c.
func AttachCrafted(t testing.TB, img name.Digest, cert *Cert, predicateType string, c Crafted, ro ...ociremote.Option) {
	t.Helper()
	env := c.Envelope
	if env == nil {
		env = cert.Envelope(t, ctypes.IntotoPayloadType, Statement(img, img.DigestStr(), predicateType, SLSAv1("https://tollgate.dev/signer")))
	}
	ann := map[string]string{
		"predicateType":                   predicateType,
		"dev.sigstore.cosign/certificate": string(cert.PEM),
		"dev.sigstore.cosign/chain":       string(cert.ChainPEM),
	}
	for k, v := range c.Annotations {
		if v == "-" {
			delete(ann, k)
		} else {
			ann[k] = v
		}
	}
	AttachAttestation(t, img, env, ann, ro...)
}
