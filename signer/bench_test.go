package signer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/signer/config"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/tollgate-dev/tollgate/signer/provenance"
	"github.com/tollgate-dev/tollgate/signer/sign"
)

// BenchmarkProvenanceAndSign: one finished TaskRun (Chains' fixture) to a
// signed DSSE envelope, in-process: statement (slsa/v2alpha4), encoding,
// ECDSA P-256 signature. The key is loaded once, as the signer does.
func BenchmarkProvenanceAndSign(b *testing.B) {
	raw, err := os.ReadFile("provenance/testdata/chains/runs/slsa-v2alpha4/taskrun1.json")
	if err != nil {
		b.Fatal(err)
	}
	var tr pipelinev1.TaskRun
	if err := json.Unmarshal(raw, &tr); err != nil {
		b.Fatal(err)
	}
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(pk)
	s, err := sign.FromSecret(map[string][]byte{sign.KeyX509PEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	opts := provenance.Options{BuilderID: "https://tollgate.dev/builder"}
	b.ReportAllocs()
	for b.Loop() {
		st, err := provenance.TaskRunStatement(config.FormatSLSAv2alpha4, &tr, opts)
		if err != nil {
			b.Fatal(err)
		}
		payload, err := provenance.Marshal(st)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Envelope(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}
