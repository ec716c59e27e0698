package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/webhook"
)

// servedCert returns the certificate the webhook presents.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only to read what is served
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// TestSelfManagedCertificate: the webhook makes its own CA and certificate,
// gives the API server the CA bundle, and renews both — a lost Secret (new
// CA) and an expiring certificate — while admissions keep flowing: none
// fails for want of a trusted certificate.
func TestSelfManagedCertificate(t *testing.T) {
	env := prepareGuarded(t, namespace(signerNS, nil))
	ctx := t.Context()
	certs := webhook.DefaultCertOptions()
	certs.Namespace, certs.Name = signerNS, "tollgate-webhook-tls"
	certs.Configurations = []string{webhook.ConfigurationName}
	certs.Hosts = []string{"127.0.0.1"}
	certs.Interval, certs.Grace = 200*time.Millisecond, 2*time.Second

	env.RunWebhook(t, webhook.Config{Server: webhook.Options{Addr: env.WebhookAddr}, Certs: &certs}, logr.Discard())
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: certs.Name}, secret); err != nil {
		t.Fatalf("the webhook made no Secret: %v", err)
	}
	if err := controlplane.WaitReady(t.Context(), env.WebhookAddr, secret.Data["ca.crt"], 60*time.Second); err != nil {
		t.Fatal(err)
	}
	bundle := func() []byte {
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: webhook.ConfigurationName}, v); err != nil {
			t.Fatal(err)
		}
		return v.Webhooks[0].ClientConfig.CABundle
	}
	if !bytes.Contains(bundle(), secret.Data["ca.crt"]) {
		t.Fatal("the CA bundle was not patched into the webhook configuration")
	}

	// A loop of admissions: each must be decided by the webhook.
	stopLoop := admissionLoop(t, env, "rotation", 2)
	first := servedCert(t, env.WebhookAddr)
	time.Sleep(time.Second)

	// 1. The Secret is lost: a new CA, the bundle holds both, then the switch.
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, 30*time.Second, func() bool { return !bytes.Equal(servedCert(t, env.WebhookAddr), first) }) {
		t.Fatal("no new certificate after the Secret was deleted")
	}
	time.Sleep(time.Second)

	// 2. The certificate is about to expire: renewed under the same CA.
	fresh := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: certs.Name}, fresh); err != nil {
		t.Fatal(err)
	}
	second := servedCert(t, env.WebhookAddr)
	leaf, _ := x509.ParseCertificate(second)
	if leaf == nil || time.Until(leaf.NotAfter) < 300*24*time.Hour {
		t.Fatalf("the certificate is not valid for a year: %v", leaf)
	}
	certs2 := fresh.DeepCopy()
	certs2.Data["tls.crt"] = []byte("not a certificate")
	if err := env.Client.Update(ctx, certs2); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, 30*time.Second, func() bool { return !bytes.Equal(servedCert(t, env.WebhookAddr), second) }) {
		t.Fatal("a broken certificate in the Secret was not replaced")
	}
	time.Sleep(time.Second)
	decided, dropped, last := stopLoop()
	if dropped != 0 {
		t.Fatalf("%d of %d admissions were not decided during the rotations; last: %s", dropped, dropped+decided, last)
	}
	if decided < 20 {
		t.Fatalf("only %d admissions during the rotations: the test proves little", decided)
	}
	t.Logf("%d admissions decided across two rotations, none dropped", decided)
}
