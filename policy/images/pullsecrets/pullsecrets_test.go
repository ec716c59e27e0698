package pullsecrets

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func secret(name string, typ corev1.SecretType, key, data string) corev1.Secret {
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Type: typ, Data: map[string][]byte{key: []byte(data)}}
}

func auth(t *testing.T, k *Keychain, ref string) authn.AuthConfig {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Resolve(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}

func TestCredentialsGoOnlyToTheirRegistry(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	k, err := New([]corev1.Secret{
		secret("a", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey,
			`{"auths":{"registry.acme.io":{"auth":"`+b64([]byte("acme:s3cret"))+`"},"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}`),
		secret("b", corev1.SecretTypeDockercfg, corev1.DockerConfigKey, `{"registry.acme.io":{"username":"second","password":"x"},"ghcr.io":{"username":"gh","password":"tok"}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]authn.AuthConfig{
		"registry.acme.io/team/app:1":       {Username: "acme", Password: "s3cret"}, // the first secret wins
		"docker.io/library/busybox":         {Username: "hub", Password: "pw"},
		"busybox":                           {Username: "hub", Password: "pw"},
		"ghcr.io/acme/app":                  {Username: "gh", Password: "tok"},
		"registry.acme.io.evil.example/app": {}, // never by prefix
		"evilregistry.acme.io/app":          {}, // never by suffix
		"registry.acme.io:5000/app":         {}, // another port is another registry
		"127.0.0.1:5000/app":                {},
	} {
		if got := auth(t, k, ref); got != want {
			t.Errorf("%s: got %+v, want %+v", ref, got, want)
		}
	}
}

func TestBadSecrets(t *testing.T) {
	for name, s := range map[string]corev1.Secret{
		"not a pull secret": secret("x", corev1.SecretTypeOpaque, "k", "v"),
		"bad json":          secret("x", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, "{"),
		"bad auth":          secret("x", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":{"r.io":{"auth":"!!"}}}`),
	} {
		if _, err := New([]corev1.Secret{s}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
