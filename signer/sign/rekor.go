package sign

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorclient "github.com/sigstore/rekor/pkg/client"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/models"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
)

// Log uploads signatures to a Rekor transparency log (transparency.url),
// with the entry types cosign and Chains use: hashedrekord for a simple
// signature, intoto for a DSSE envelope.
type Log struct {
	url   string
	rekor *client.Rekor
}

// Entry is a signature's log entry: where it is, and the Rekor bundle (the
// log's signed entry timestamp over the entry) that lets it be verified
// offline.
type Entry struct {
	LogIndex int64
	// URL is the entry's address, as Chains records it in the
	// chains.tekton.dev/transparency annotation.
	URL    string
	Bundle *cbundle.RekorBundle
}

// NewLog returns a client of the Rekor at url. The signer retries a run
// whose upload failed with its own backoff: the client does not retry.
func NewLog(url string) (*Log, error) {
	c, err := rekorclient.GetRekorClient(url, rekorclient.WithRetryCount(0))
	if err != nil {
		return nil, fmt.Errorf("transparency.url %s: %w", url, err)
	}
	return &Log{url: strings.TrimSuffix(url, "/"), rekor: c}, nil
}

// URL is the log's address.
func (l *Log) URL() string { return l.url }

// verifier is what the log records as the signer: the certificate of a
// keyless signer, else the public key (PEM).
func (s *Signer) verifier() ([]byte, error) {
	if len(s.cert) > 0 {
		return s.cert, nil
	}
	return s.PublicKeyPEM()
}

// Signature uploads a hashedrekord entry of a signature over payload.
func (l *Log) Signature(ctx context.Context, s *Signer, payload, sig []byte) (*Entry, error) {
	pem, err := s.verifier()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(payload)
	e, err := cosign.TLogUpload(ctx, l.rekor, sig, h, pem)
	return l.entry(e, err)
}

// Attestation uploads an intoto entry of a DSSE envelope.
func (l *Log) Attestation(ctx context.Context, s *Signer, envelope []byte) (*Entry, error) {
	pem, err := s.verifier()
	if err != nil {
		return nil, err
	}
	e, err := cosign.TLogUploadInTotoAttestation(ctx, l.rekor, envelope, pem)
	return l.entry(e, err)
}

func (l *Log) entry(e *models.LogEntryAnon, err error) (*Entry, error) {
	if err != nil {
		return nil, fmt.Errorf("uploading to the transparency log %s: %w", l.url, err)
	}
	if e == nil || e.LogIndex == nil || e.Verification == nil || len(e.Verification.SignedEntryTimestamp) == 0 {
		return nil, errors.New("the transparency log answered an entry without its index or signed entry timestamp")
	}
	return &Entry{
		LogIndex: *e.LogIndex,
		URL:      fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", l.url, *e.LogIndex),
		Bundle:   cbundle.EntryToBundle(e),
	}, nil
}

// DSSE uploads a dsse entry of a DSSE envelope — the entry type cosign v3
// writes for the envelopes of its bundles — and returns the entry as a
// sigstore bundle's tlogEntries element (JSON: inclusion promise and
// proof) and its address.
func (l *Log) DSSE(ctx context.Context, s *Signer, envelope []byte) (json.RawMessage, string, error) {
	pem, err := s.verifier()
	if err != nil {
		return nil, "", err
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   []byte `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, "", fmt.Errorf("reading the DSSE envelope: %w", err)
	}
	pe := &protodsse.Envelope{Payload: env.Payload, PayloadType: env.PayloadType}
	for _, sg := range env.Signatures {
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: sg.Sig, Keyid: sg.KeyID})
	}
	b := &protobundle.Bundle{Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe}, VerificationMaterial: &protobundle.VerificationMaterial{}}
	r := sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: l.url})
	if err := r.GetTransparencyLogEntry(ctx, pem, b); err != nil {
		return nil, "", fmt.Errorf("uploading to the transparency log %s: %w", l.url, err)
	}
	entries := b.GetVerificationMaterial().GetTlogEntries()
	if len(entries) != 1 || entries[0].GetInclusionPromise() == nil {
		return nil, "", errors.New("the transparency log answered no entry with a signed entry timestamp")
	}
	j, err := protojson.Marshal(entries[0])
	if err != nil {
		return nil, "", err
	}
	return j, fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", l.url, entries[0].GetLogIndex()), nil
}
