// Command sigstore-kms-tollgatetest is a KMS plugin for sigstore's CLI plugin
// protocol (the one cosign uses for `--key NAME://...`), for tests: the "KMS"
// holds an ECDSA P-256 key in the PEM file the key resource ID names
// (tollgatetest://PATH), created on first use. The protocol, the plugin
// process and every signature are real; only the key store is a file, since
// no KMS service is reachable here.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin/handler"
)

const scheme = "tollgatetest://"

type fileKMS struct {
	signature.SignerVerifier
	path string
}

func (k *fileKMS) CreateKey(context.Context, string) (crypto.PublicKey, error) {
	return k.PublicKey()
}

func (k *fileKMS) CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error) {
	return nil, nil, errors.New("not offered by this plugin")
}

func (k *fileKMS) SupportedAlgorithms() []string { return []string{"ecdsa-p256-sha256"} }
func (k *fileKMS) DefaultAlgorithm() string      { return "ecdsa-p256-sha256" }

func load(path string, hash crypto.Hash) (*fileKMS, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(pk)
		if err != nil {
			return nil, err
		}
		raw = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("%s is not PEM", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an ECDSA key", path)
	}
	sv, err := signature.LoadECDSASignerVerifier(ec, hash)
	if err != nil {
		return nil, err
	}
	return &fileKMS{SignerVerifier: sv, path: path}, nil
}

func main() {
	args, err := handler.GetPluginArgs(os.Args)
	if err != nil {
		_ = handler.WriteErrorResponse(os.Stdout, err)
		return
	}
	// sigstore passes the key reference without the plugin's scheme.
	id := strings.TrimPrefix(args.InitOptions.KeyResourceID, scheme)
	if !strings.HasPrefix(id, "/") {
		_ = handler.WriteErrorResponse(os.Stdout, fmt.Errorf("key resource %q is not an absolute path", id))
		return
	}
	hash := args.InitOptions.HashFunc
	if hash == 0 {
		hash = crypto.SHA256
	}
	k, err := load(id, hash)
	if err != nil {
		_ = handler.WriteErrorResponse(os.Stdout, err)
		return
	}
	var stdin io.Reader = os.Stdin
	_, _ = handler.Dispatch(os.Stdout, stdin, args, k)
}
