package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CertOptions make the webhook manage its own serving certificate: a CA and
// a certificate kept in a Secret, renewed well before they expire, with the
// CA bundle patched into the webhook configurations.
type CertOptions struct {
	// Namespace and Name of the Secret (created when missing).
	Namespace, Name string
	// Configurations are the Mutating- and ValidatingWebhookConfigurations
	// (by name) whose every webhook gets the CA bundle.
	Configurations []string
	// Hosts are the DNS names and IP addresses the certificate is for.
	Hosts []string
	// Validity of the serving certificate and of the CA.
	Validity, CAValidity time.Duration
	// Lookahead renews a certificate that expires within it.
	Lookahead time.Duration
	// Interval between checks (rotation by another replica is picked up too).
	Interval time.Duration
	// Grace keeps serving the previous certificate after a new CA went into
	// the bundle, so the API server has picked the bundle up first.
	Grace time.Duration
}

// DefaultCertOptions: a one-year certificate renewed a month ahead, a
// ten-year CA, checked every ten minutes.
func DefaultCertOptions() CertOptions {
	return CertOptions{Validity: 365 * 24 * time.Hour, CAValidity: 10 * 365 * 24 * time.Hour, Lookahead: 30 * 24 * time.Hour, Interval: 10 * time.Minute, Grace: 10 * time.Second}
}

// Validate reports incomplete options.
func (o CertOptions) Validate() error {
	var errs []error
	if o.Namespace == "" || o.Name == "" {
		errs = append(errs, errors.New("the certificate Secret needs a namespace and a name (--cert-secret NAMESPACE/NAME)"))
	}
	if len(o.Hosts) == 0 {
		errs = append(errs, errors.New("the certificate needs at least one host (--cert-hosts)"))
	}
	if o.Validity <= o.Lookahead || o.CAValidity <= o.Validity || o.Interval <= 0 || o.Grace < 0 {
		errs = append(errs, errors.New("certificate durations: want validity > lookahead, CA validity > validity, a positive interval"))
	}
	return errors.Join(errs...)
}

// Secret keys.
const (
	certKeyCA     = "ca.crt"
	certKeyCAKey  = "ca.key"
	certKeyCAPrev = "ca-previous.crt"
	certKeyCert   = "tls.crt"
	certKeyKey    = "tls.key"
)

// selfCerts keeps the serving certificate.
type selfCerts struct {
	opts    CertOptions
	client  client.Client
	log     logr.Logger
	current atomic.Pointer[tls.Certificate]
	mu      sync.Mutex
	now     func() time.Time
}

func newSelfCerts(opts CertOptions, c client.Client, log logr.Logger) *selfCerts {
	return &selfCerts{opts: opts, client: c, log: log, now: time.Now}
}

func (s *selfCerts) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.current.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet")
}

func (s *selfCerts) ready() error {
	if s.current.Load() == nil {
		return fmt.Errorf("no serving certificate from Secret %s/%s yet", s.opts.Namespace, s.opts.Name)
	}
	return nil
}

// run ensures the certificate now and then every interval until ctx ends.
func (s *selfCerts) run(ctx context.Context) {
	every(ctx, s.opts.Interval, func(ctx context.Context) {
		if err := s.ensure(ctx); err != nil {
			s.log.Error(err, "checking the serving certificate; the current one stays in use")
		}
	})
}

// ensure reads the Secret, renews what expires within the lookahead (or is
// missing, or is for other hosts), writes it back, patches the CA bundle,
// and serves the certificate.
func (s *selfCerts) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := &corev1.Secret{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: s.opts.Namespace, Name: s.opts.Name}, sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading Secret %s/%s: %w", s.opts.Namespace, s.opts.Name, err)
	}
	data := sec.Data
	if data == nil {
		data = map[string][]byte{}
	}
	changed, newCA := false, false
	ca, caKey, caErr := parseCA(data[certKeyCA], data[certKeyCAKey])
	if caErr != nil || s.expiring(ca) {
		if ca != nil {
			data[certKeyCAPrev] = data[certKeyCA]
		} else if prev := s.current.Load(); prev != nil && len(prev.Certificate) > 1 {
			// The Secret was lost: keep trusting the CA we serve under until the switch.
			data[certKeyCAPrev] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: prev.Certificate[1]})
		}
		if ca, caKey, data[certKeyCA], data[certKeyCAKey], err = s.newCA(); err != nil {
			return err
		}
		changed, newCA = true, true
	}
	leaf, leafErr := tls.X509KeyPair(data[certKeyCert], data[certKeyKey])
	if newCA || leafErr != nil || s.leafNeedsRenewal(&leaf, ca) {
		if data[certKeyCert], data[certKeyKey], err = s.newLeaf(ca, caKey); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		sec.Data = data
		sec.Type = corev1.SecretTypeOpaque
		if exists {
			err = s.client.Update(ctx, sec)
		} else {
			sec.ObjectMeta = metav1.ObjectMeta{Namespace: s.opts.Namespace, Name: s.opts.Name, Labels: map[string]string{"app.kubernetes.io/name": "tollgate"}}
			err = s.client.Create(ctx, sec)
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Another replica wrote it first: take theirs on the next check.
			return fmt.Errorf("another replica renewed the certificate first; taking it on the next check: %w", err)
		}
		if err != nil {
			return fmt.Errorf("writing Secret %s/%s: %w", s.opts.Namespace, s.opts.Name, err)
		}
		s.log.Info("renewed the serving certificate", "secret", s.opts.Namespace+"/"+s.opts.Name, "new_ca", newCA)
	}
	bundle := append(append([]byte{}, data[certKeyCA]...), data[certKeyCAPrev]...)
	patched, err := s.patchBundles(ctx, bundle)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(append(append([]byte{}, data[certKeyCert]...), data[certKeyCA]...), data[certKeyKey])
	if err != nil {
		return fmt.Errorf("the certificate in Secret %s/%s: %w", s.opts.Namespace, s.opts.Name, err)
	}
	if cur := s.current.Load(); cur != nil && patched && !bytes.Equal(cur.Certificate[0], pair.Certificate[0]) {
		// The API server learns a new bundle through its informers: keep
		// serving the old certificate (still trusted) until it has.
		time.Sleep(s.opts.Grace)
	}
	s.current.Store(&pair)
	return nil
}

func (s *selfCerts) expiring(c *x509.Certificate) bool {
	return c == nil || s.now().Add(s.opts.Lookahead).After(c.NotAfter)
}

func (s *selfCerts) leafNeedsRenewal(pair *tls.Certificate, ca *x509.Certificate) bool {
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || s.expiring(leaf) || leaf.CheckSignatureFrom(ca) != nil {
		return true
	}
	for _, h := range s.opts.Hosts {
		if leaf.VerifyHostname(h) != nil {
			return true
		}
	}
	return false
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no CA")
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

func (s *selfCerts) newCA() (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "tollgate-webhook-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(s.opts.CAValidity),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func (s *selfCerts) newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: s.opts.Hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(s.opts.Validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range s.opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// patchBundles sets the bundle on every webhook of the named configurations;
// it reports whether anything changed.
func (s *selfCerts) patchBundles(ctx context.Context, bundle []byte) (bool, error) {
	changed := false
	for _, name := range s.opts.Configurations {
		found := false
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := s.client.Get(ctx, client.ObjectKey{Name: name}, m); err == nil {
			found = true
			patch := client.MergeFrom(m.DeepCopy())
			dirty := false
			for i := range m.Webhooks {
				if !bytes.Equal(m.Webhooks[i].ClientConfig.CABundle, bundle) {
					m.Webhooks[i].ClientConfig.CABundle, dirty = bundle, true
				}
			}
			if dirty {
				if err := s.client.Patch(ctx, m, patch); err != nil {
					return changed, fmt.Errorf("patching the CA bundle of MutatingWebhookConfiguration %s: %w", name, err)
				}
				changed = true
			}
		} else if !apierrors.IsNotFound(err) {
			return changed, err
		}
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := s.client.Get(ctx, client.ObjectKey{Name: name}, v); err == nil {
			found = true
			patch := client.MergeFrom(v.DeepCopy())
			dirty := false
			for i := range v.Webhooks {
				if !bytes.Equal(v.Webhooks[i].ClientConfig.CABundle, bundle) {
					v.Webhooks[i].ClientConfig.CABundle, dirty = bundle, true
				}
			}
			if dirty {
				if err := s.client.Patch(ctx, v, patch); err != nil {
					return changed, fmt.Errorf("patching the CA bundle of ValidatingWebhookConfiguration %s: %w", name, err)
				}
				changed = true
			}
		} else if !apierrors.IsNotFound(err) {
			return changed, err
		}
		if !found {
			return changed, fmt.Errorf("no webhook configuration named %s to give the CA bundle to", name)
		}
	}
	return changed, nil
}
