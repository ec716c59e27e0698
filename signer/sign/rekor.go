package sign

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	rekorclient "github.com/sigstore/rekor/pkg/client"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/models"
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
	UUID     string
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
	uuid := ""
	if id, err := cosign.ComputeLeafHash(e); err == nil {
		uuid = fmt.Sprintf("%x", id)
	}
	return &Entry{
		UUID:     uuid,
		LogIndex: *e.LogIndex,
		URL:      fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", l.url, *e.LogIndex),
		Bundle:   cbundle.EntryToBundle(e),
	}, nil
}
