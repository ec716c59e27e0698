package signer

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sigstore/sigstore/pkg/signature/options"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/signer/config"
	"github.com/tollgate-dev/tollgate/signer/sign"
)

// snapshot is the configuration and signing key in force. It is never
// changed: a newer ConfigMap or Secret makes a new snapshot, swapped in
// whole, so a reconcile reads one consistent pair without a lock.
type snapshot struct {
	configVersion, secretVersion string
	// Config is the last configuration that parsed (the defaults while
	// there is no ConfigMap); ConfigErr says a newer one did not.
	Config    config.Config
	ConfigErr error
	// X509 is the key of signing-secrets, or X509Err why there is none.
	X509    *sign.Signer
	X509Err error
}

// trust keeps the snapshot current and the KMS signer of the
// configuration in force.
type trust struct {
	client    client.Client // cached: reading the ConfigMap and Secret is no network call
	recorder  record.EventRecorder
	namespace string

	snap   atomic.Pointer[snapshot]
	reload sync.Mutex // one reload at a time: decrypting the key (scrypt) is costly
	// rejected is the version of a ConfigMap that did not parse before any
	// did, and why (guarded by reload): it is reported once, not re-parsed.
	rejectedVersion string
	rejected        error
	kms             atomic.Pointer[kmsSigner]
	keyless         atomic.Pointer[keylessSigner]
	log             atomic.Pointer[sign.Log]
}

// keylessSigner is the keyless signer source of one Fulcio configuration.
type keylessSigner struct {
	key    string
	source *sign.Keyless
}

// kmsSigner is a KMS client and the configuration it was made for.
type kmsSigner struct {
	key    string
	signer *sign.Signer
}

// current returns the snapshot in force, reloading it when the ConfigMap or
// the Secret changed. A configuration that does not parse keeps the last
// good one in force (and is reported in ConfigErr and an Event); an error
// means there is no configuration at all yet.
func (t *trust) current(ctx context.Context) (*snapshot, error) {
	t.reload.Lock()
	defer t.reload.Unlock()
	old := t.snap.Load()
	next := &snapshot{}
	if old != nil {
		*next = *old
	}
	if err := t.loadConfig(ctx, next, old == nil); err != nil {
		return nil, err
	}
	if err := t.loadKey(ctx, next); err != nil {
		return nil, err
	}
	t.snap.Store(next)
	return next, nil
}

func (t *trust) loadConfig(ctx context.Context, next *snapshot, first bool) error {
	cm := &corev1.ConfigMap{}
	err := t.client.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: config.ConfigMapName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		if first {
			next.Config = config.Default()
		}
	case err != nil:
		return fmt.Errorf("reading ConfigMap %s/%s: %w", t.namespace, config.ConfigMapName, err)
	case first && cm.ResourceVersion == t.rejectedVersion:
		return t.rejected
	case cm.ResourceVersion != next.configVersion:
		c, perr := config.Parse(cm.Data)
		if perr != nil {
			next.ConfigErr = fmt.Errorf("ConfigMap %s/%s: %w", t.namespace, config.ConfigMapName, perr)
			t.recorder.Event(cm, corev1.EventTypeWarning, "InvalidConfig", next.ConfigErr.Error())
			if first {
				// Nothing is in force: no snapshot until one parses.
				t.rejectedVersion, t.rejected = cm.ResourceVersion, next.ConfigErr
				return next.ConfigErr
			}
		} else {
			next.Config, next.ConfigErr = c, nil
		}
		next.configVersion = cm.ResourceVersion
	}
	return nil
}

func (t *trust) loadKey(ctx context.Context, next *snapshot) error {
	sec := &corev1.Secret{}
	err := t.client.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: sign.SecretName}, sec)
	switch {
	case apierrors.IsNotFound(err):
		next.X509, next.secretVersion = nil, ""
		next.X509Err = fmt.Errorf("Secret %s/%s does not exist: create it with `cosign generate-key-pair k8s://%s/%s`", t.namespace, sign.SecretName, t.namespace, sign.SecretName)
	case err != nil:
		return fmt.Errorf("reading Secret %s/%s: %w", t.namespace, sign.SecretName, err)
	case sec.ResourceVersion != next.secretVersion:
		next.secretVersion = sec.ResourceVersion
		// Decrypting the key (scrypt) happens here, once per Secret version.
		next.X509, next.X509Err = sign.FromSecret(sec.Data)
		if next.X509Err != nil {
			next.X509Err = fmt.Errorf("Secret %s/%s: %w", t.namespace, sign.SecretName, next.X509Err)
		}
	}
	return nil
}

// signerFor returns the signer an artifact is configured with (x509: the
// key in signing-secrets; kms: signers.kms.kmsref), making a KMS client
// once per configuration. No lock is held while the KMS is called: two
// reconciles may both make one on a change, and the last is kept.
func (t *trust) signerFor(ctx context.Context, snap *snapshot, which string) (*sign.Signer, error) {
	switch which {
	case config.SignerX509:
		if snap.Config.Fulcio.Enabled {
			return t.keylessSigner(ctx, snap.Config.Fulcio)
		}
		if snap.X509 == nil {
			return nil, snap.X509Err
		}
		return snap.X509, nil
	case config.SignerKMS:
		kms := snap.Config.KMS
		auth := options.RPCAuth{Address: kms.AuthAddress, Token: kms.AuthToken, OIDC: options.RPCAuthOIDC{Path: kms.OIDCPath, Role: kms.OIDCRole}}
		if kms.AuthTokenPath != "" {
			b, err := os.ReadFile(kms.AuthTokenPath)
			if err != nil {
				return nil, fmt.Errorf("signers.kms.auth.token-path: %w", err)
			}
			auth.Token = strings.TrimSpace(string(b))
		}
		key := strings.Join([]string{kms.Ref, auth.Address, auth.Token, auth.OIDC.Path, auth.OIDC.Role}, "|")
		if cur := t.kms.Load(); cur != nil && cur.key == key {
			return cur.signer, nil
		}
		s, err := sign.FromKMS(ctx, kms.Ref, auth)
		if err != nil {
			return nil, err
		}
		t.kms.Store(&kmsSigner{key: key, signer: s})
		return s, nil
	}
	return nil, fmt.Errorf("unknown signer %q", which)
}

// keylessSigner returns the current Fulcio-certified signer, keeping one
// source (its key and certificate) per Fulcio configuration.
func (t *trust) keylessSigner(ctx context.Context, f config.Fulcio) (*sign.Signer, error) {
	key := f.Address + "|" + f.Provider + "|" + f.TokenFile
	cur := t.keyless.Load()
	if cur == nil || cur.key != key {
		token := sign.TokenFile(f.TokenFile)
		if f.Provider == config.ProviderSPIFFE {
			token = sign.SPIFFEToken()
		}
		src, err := sign.NewKeyless(sign.FulcioOptions{URL: f.Address, Token: token})
		if err != nil {
			return nil, err
		}
		cur = &keylessSigner{key: key, source: src}
		t.keyless.Store(cur)
	}
	s, err := cur.source.Signer(ctx)
	if err != nil {
		return nil, fmt.Errorf("keyless (signers.x509.fulcio): %w", err)
	}
	return s, nil
}

// logFor returns the transparency log a run's signatures go to, or nil:
// with transparency.enabled "true" every run's; with "manual" only those
// of runs that ask (chains.tekton.dev/transparency-upload: "true").
func (t *trust) logFor(cfg config.Config, rn *run) (*sign.Log, error) {
	if !cfg.TransparencyEnabled {
		return nil, nil
	}
	if cfg.TransparencyManual && rn.obj.GetAnnotations()[AnnotationTransparencyUpload] != "true" {
		return nil, nil
	}
	if cur := t.log.Load(); cur != nil && cur.URL() == strings.TrimSuffix(cfg.TransparencyURL, "/") {
		return cur, nil
	}
	l, err := sign.NewLog(cfg.TransparencyURL)
	if err != nil {
		return nil, err
	}
	t.log.Store(l)
	return l, nil
}

// signers returns the signers of the run's artifact (when enabled) and of
// image signatures (when enabled).
func (t *trust) signers(ctx context.Context, snap *snapshot, art config.Artifact) (artifact, images *sign.Signer, err error) {
	if art.Enabled() {
		if artifact, err = t.signerFor(ctx, snap, art.Signer); err != nil {
			return nil, nil, fmt.Errorf("signer %s: %w", art.Signer, err)
		}
	}
	if snap.Config.OCI.Enabled() {
		if images, err = t.signerFor(ctx, snap, snap.Config.OCI.Signer); err != nil {
			return nil, nil, fmt.Errorf("signer %s: %w", snap.Config.OCI.Signer, err)
		}
	}
	return artifact, images, nil
}
