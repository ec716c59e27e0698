package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"

	// The cloud KMS providers, in-process.
	_ "github.com/tollgate-dev/tollgate/internal/kmsproviders"
)

// Keys of the signing Secret.
const (
	SecretName        = "signing-secrets"
	KeyCosignKey      = "cosign.key"
	KeyCosignPassword = "cosign.password"
	KeyX509PEM        = "x509.pem"
)

// PayloadTypeInToto is the DSSE payload type of in-toto statements.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// Sentinel errors; messages never include key material.
var (
	ErrNoKey         = errors.New("the signing Secret has neither cosign.key nor x509.pem")
	ErrWrongPassword = errors.New("cosign.key could not be decrypted with cosign.password (wrong password or damaged key)")
)

// Signer signs with one key. A keyless signer's key is ephemeral and
// carries its Fulcio certificate and chain (PEM).
type Signer struct {
	sv          signature.SignerVerifier
	cert, chain []byte
	leaf        *x509.Certificate
}

// FromSecret loads the key of the signing Secret's data. cosign.key wins
// over x509.pem when both are present, as in Chains.
func FromSecret(data map[string][]byte) (*Signer, error) {
	if key, ok := data[KeyCosignKey]; ok {
		pass, ok := data[KeyCosignPassword]
		if !ok {
			return nil, fmt.Errorf("the signing Secret has cosign.key but no cosign.password")
		}
		if b, _ := pem.Decode(key); b == nil {
			return nil, fmt.Errorf("cosign.key is not PEM")
		}
		sv, err := cosign.LoadPrivateKey(key, pass, nil)
		if err != nil {
			// The library's message may name the PEM type; it never includes the key.
			if bytes.Contains([]byte(err.Error()), []byte("decrypt")) {
				return nil, ErrWrongPassword
			}
			return nil, fmt.Errorf("loading cosign.key: %w", err)
		}
		return &Signer{sv: sv}, nil
	}
	if raw, ok := data[KeyX509PEM]; ok {
		pk, err := cryptoutils.UnmarshalPEMToPrivateKey(raw, cryptoutils.SkipPassword)
		if err != nil {
			return nil, fmt.Errorf("x509.pem is not an unencrypted PEM private key")
		}
		sv, err := signature.LoadDefaultSignerVerifier(pk, options.WithED25519ph())
		if err != nil {
			return nil, fmt.Errorf("loading x509.pem: %w", err)
		}
		return &Signer{sv: sv}, nil
	}
	return nil, ErrNoKey
}

// FromKMS loads a key held by a KMS, by a sigstore KMS reference
// (signers.kms.kmsref): a provider linked into the binary (gcpkms://,
// awskms://, azurekms://, hashivault:// where built in), or a sigstore KMS
// plugin program `sigstore-kms-NAME` on PATH for NAME://... — the same
// references cosign accepts. Signing is a KMS call; nothing is cached but the
// client.
func FromKMS(ctx context.Context, ref string, auth options.RPCAuth) (*Signer, error) {
	if ref == "" {
		return nil, errors.New("signers.kms.kmsref is empty")
	}
	sv, err := kms.Get(ctx, ref, crypto.SHA256, options.WithRPCAuthOpts(auth))
	if err != nil {
		return nil, fmt.Errorf("loading KMS key %q: %w", ref, err)
	}
	return &Signer{sv: sv}, nil
}

// PublicKey returns the verifying key.
func (s *Signer) PublicKey() (crypto.PublicKey, error) {
	return s.sv.PublicKey()
}

// PublicKeyDER returns the verifying key as PKIX DER.
func (s *Signer) PublicKeyDER() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// PublicKeyPEM returns the verifying key as PEM, as `cosign public-key` prints it.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.sv.PublicKey(options.WithContext(context.Background()))
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Sign returns the raw signature of a payload (cosign's simple signing).
func (s *Signer) Sign(ctx context.Context, payload []byte) ([]byte, error) {
	return s.sv.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
}

// Envelope returns a DSSE envelope (JSON) signing an in-toto statement,
// as `cosign attest` produces it.
func (s *Signer) Envelope(ctx context.Context, statement []byte) ([]byte, error) {
	return dsse.WrapSigner(s.sv, PayloadTypeInToto).SignMessage(bytes.NewReader(statement), options.WithContext(ctx))
}
