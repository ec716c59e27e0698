package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serve runs a server with opts on a loopback port and returns its address.
func serve(t *testing.T, opts Options) string {
	t.Helper()
	cert := selfSigned(t)
	opts.Addr, opts.ShutdownDelay = "127.0.0.1:0", 0
	opts.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	s, err := New(opts, Handlers{allow, allow, allow, allow}, func() error { return nil }, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- s.Run(ctx, started) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-started:
		return a.String()
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

func handshake(addr string, cfg *tls.Config) error {
	cfg.InsecureSkipVerify = true // the test checks the protocol, not the certificate
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// The webhook offers only modern TLS: 1.2 with ECDHE-AEAD suites, or 1.3.
func TestTLSOnlyModernSuites(t *testing.T) {
	addr := serve(t, Default())
	if err := handshake(addr, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Error("a TLS 1.2 client offering only CBC suites was served")
	}
	if err := handshake(addr, &tls.Config{MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	if err := handshake(addr, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err != nil {
		t.Errorf("a TLS 1.2 ECDHE-AEAD client was refused: %v", err)
	}
	if err := handshake(addr, &tls.Config{MinVersion: tls.VersionTLS13}); err != nil {
		t.Errorf("a TLS 1.3 client was refused: %v", err)
	}

	opts := Default()
	opts.TLSMinVersion = "1.3"
	addr13 := serve(t, opts)
	if err := handshake(addr13, &tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("--tls-min-version 1.3 served a TLS 1.2 client")
	}
	opts.TLSMinVersion = "1.0"
	if err := opts.Validate(); err == nil {
		t.Error("--tls-min-version 1.0 was accepted")
	}
}

// With a probe address, /healthz, /readyz and /metrics leave the admission
// port: a caller there reaches only the admission paths.
func TestProbesLeaveTheAdmissionPort(t *testing.T) {
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	opts := Default()
	opts.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	opts.ProbeAddr = "127.0.0.1:0"
	s, err := New(opts, Handlers{allow, allow, allow, allow}, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{PathMetrics, PathReadyz, PathHealthz} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s on the admission port: %d, want 404", path, rec.Code)
		}
		rec = httptest.NewRecorder()
		s.probes.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s on the probe port: %d, want 200", path, rec.Code)
		}
	}
}
