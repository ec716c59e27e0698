package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Keyless signing: an ephemeral key certified by Fulcio for the signer's
// own workload identity (an OIDC token), as Chains' x509 signer does with
// signers.x509.fulcio.enabled. One key and certificate serve every
// signature until the certificate nears its end (Reuse before NotAfter),
// then a new key is made and certified: one Fulcio request per rotation
// window, not per run.

// DefaultTokenFile is where Chains' filesystem provider reads the token
// (signers.x509.identity.token.file): a projected service-account token
// with audience "sigstore".
const DefaultTokenFile = "/var/run/sigstore/cosign/oidc-token"

// FulcioOptions configure keyless signing.
type FulcioOptions struct {
	// URL of Fulcio (signers.x509.fulcio.address).
	URL string
	// Token returns the OIDC identity token to present.
	Token func(ctx context.Context) (string, error)
	// Renew is how long before the certificate's end a new one is
	// requested (default 2 minutes of Fulcio's 10).
	Renew time.Duration
	// Client speaks to Fulcio (default: 30 s timeout).
	Client *http.Client
	// Now is the clock (tests).
	Now func() time.Time
}

// Keyless hands out signers whose key Fulcio certified.
type Keyless struct {
	opts FulcioOptions
	mu   sync.Mutex
	cur  *Signer
	end  time.Time
	// Requests counts certificates obtained (the reuse policy's figure).
	requests int
}

// NewKeyless returns a keyless signer source. Nothing is requested until
// the first Signer call.
func NewKeyless(opts FulcioOptions) (*Keyless, error) {
	if opts.URL == "" {
		return nil, errors.New("signers.x509.fulcio.address is empty")
	}
	if opts.Token == nil {
		return nil, errors.New("keyless signing needs an identity token source")
	}
	if opts.Renew == 0 {
		opts.Renew = 2 * time.Minute
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.URL = strings.TrimSuffix(opts.URL, "/")
	return &Keyless{opts: opts}, nil
}

// TokenFile reads the token from a file at each request (a projected
// token is rotated by the kubelet).
func TokenFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the identity token (signers.x509.identity.token.file): %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("the identity token file %s is empty", path)
		}
		return t, nil
	}
}

// DefaultSPIFFESocket is where Chains' spiffe provider (cosign's) finds the
// SPIFFE Workload API when SPIFFE_ENDPOINT_SOCKET is not set.
const DefaultSPIFFESocket = "/tmp/spire-agent/public/api.sock"

// SPIFFEToken asks the SPIFFE Workload API (a SPIRE agent) for a JWT-SVID
// with the audience Fulcio expects ("sigstore"), at each request: the
// socket named by SPIFFE_ENDPOINT_SOCKET, or DefaultSPIFFESocket.
func SPIFFEToken() func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		socket := os.Getenv("SPIFFE_ENDPOINT_SOCKET")
		if socket == "" {
			socket = DefaultSPIFFESocket
		}
		addr := socket
		if !strings.Contains(addr, "://") {
			addr = "unix://" + addr
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			return "", fmt.Errorf("the SPIFFE Workload API at %s (signers.x509.fulcio.provider spiffe; SPIFFE_ENDPOINT_SOCKET): %w", addr, err)
		}
		defer c.Close()
		svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "sigstore"})
		if err != nil {
			return "", fmt.Errorf("a JWT-SVID from the SPIFFE Workload API at %s: %w", addr, err)
		}
		return svid.Marshal(), nil
	}
}

// Signer returns the current certified signer, certifying a new key when
// there is none or the certificate ends within Renew.
func (k *Keyless) Signer(ctx context.Context) (*Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur != nil && k.opts.Now().Add(k.opts.Renew).Before(k.end) {
		return k.cur, nil
	}
	s, end, err := k.certify(ctx)
	if err != nil {
		return nil, err
	}
	k.cur, k.end = s, end
	k.requests++
	return s, nil
}

// Requests is how many certificates were obtained so far.
func (k *Keyless) Requests() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.requests
}

func (k *Keyless) certify(ctx context.Context) (*Signer, time.Time, error) {
	token, err := k.opts.Token(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	subject, err := tokenSubject(token)
	if err != nil {
		return nil, time.Time{}, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, time.Time{}, err
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, time.Time{}, err
	}
	// Proof of possession: the key signs the token's subject.
	sum := sha256.Sum256([]byte(subject))
	proof, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		return nil, time.Time{}, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, time.Time{}, err
	}
	chain, err := k.request(ctx, token, pubPEM, proof)
	if err != nil {
		return nil, time.Time{}, err
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(chain)
	if err != nil || len(certs) == 0 {
		return nil, time.Time{}, fmt.Errorf("fulcio %s answered no PEM certificate chain: %v", k.opts.URL, err)
	}
	leaf := certs[0]
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(priv.Public()) {
		return nil, time.Time{}, fmt.Errorf("fulcio %s certified another key than the one it was sent", k.opts.URL)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	var rest []byte
	for _, c := range certs[1:] {
		rest = append(rest, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return &Signer{sv: sv, cert: leafPEM, chain: rest, leaf: leaf}, leaf.NotAfter, nil
}

// request asks Fulcio's v2 API for a certificate of pubPEM and returns the
// chain it answers (leaf first, PEM).
func (k *Keyless) request(ctx context.Context, token string, pubPEM, proof []byte) ([]byte, error) {
	body, err := json.Marshal(map[string]any{
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]string{"algorithm": "ECDSA", "content": string(pubPEM)},
			"proofOfPossession": base64.StdEncoding.EncodeToString(proof),
		},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.opts.URL+"/api/v2/signingCert", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("requesting a certificate from fulcio %s: %w", k.opts.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading fulcio %s's answer: %w", k.opts.URL, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("fulcio %s refused the certificate request: %s: %s", k.opts.URL, resp.Status, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Embedded struct {
			Chain struct{ Certificates []string } `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
		Detached struct {
			Chain struct{ Certificates []string } `json:"chain"`
		} `json:"signedCertificateDetachedSct"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("fulcio %s's answer is not JSON: %w", k.opts.URL, err)
	}
	certs := out.Embedded.Chain.Certificates
	if len(certs) == 0 {
		certs = out.Detached.Chain.Certificates
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("fulcio %s answered no certificate chain: %.300s", k.opts.URL, raw)
	}
	return []byte(strings.Join(certs, "\n")), nil
}

// tokenSubject is the subject Fulcio certifies and checks the proof of
// possession against: the token's email claim when present, else sub. The
// token is not verified here (Fulcio does).
func tokenSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the identity token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("the identity token's claims are not base64url: %w", err)
	}
	var claims struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("the identity token's claims are not JSON: %w", err)
	}
	if claims.Email != "" {
		return claims.Email, nil
	}
	if claims.Sub == "" {
		return "", errors.New("the identity token has no subject")
	}
	return claims.Sub, nil
}

// Certificate returns the PEM certificate and chain of a keyless signer
// (nil for a key).
func (s *Signer) Certificate() (cert, chain []byte) { return s.cert, s.chain }

// Leaf returns the parsed certificate of a keyless signer (nil for a key).
func (s *Signer) Leaf() *x509.Certificate { return s.leaf }
