// Package pullsecrets turns image pull secrets (kubernetes.io/dockerconfigjson
// and kubernetes.io/dockercfg) into a registry keychain, so the signer pushes
// to a registry with the credentials of the run's service account. A
// credential is only ever offered to the registry it is written for: hosts
// match exactly (Docker Hub's aliases aside), never by prefix or suffix.
package pullsecrets

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
)

type entry struct {
	Auth     string `json:"auth"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Keychain resolves registries to the credentials of a set of secrets.
type Keychain struct {
	byHost map[string]authn.AuthConfig
}

// New reads the secrets; the first secret naming a host wins, as kubelet
// tries pull secrets in order. Secrets of other types are an error.
func New(secrets []corev1.Secret) (*Keychain, error) {
	k := &Keychain{byHost: map[string]authn.AuthConfig{}}
	for _, s := range secrets {
		var auths map[string]entry
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]entry `json:"auths"`
			}
			if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
				return nil, fmt.Errorf("secret %s/%s: %s is not a docker config: %w", s.Namespace, s.Name, corev1.DockerConfigJsonKey, err)
			}
			auths = cfg.Auths
		case corev1.SecretTypeDockercfg:
			if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths); err != nil {
				return nil, fmt.Errorf("secret %s/%s: %s is not a docker config: %w", s.Namespace, s.Name, corev1.DockerConfigKey, err)
			}
		default:
			return nil, fmt.Errorf("secret %s/%s is of type %q, not an image pull secret", s.Namespace, s.Name, s.Type)
		}
		for host, e := range auths {
			h := normalize(host)
			if _, seen := k.byHost[h]; seen || h == "" {
				continue
			}
			cfg := authn.AuthConfig{Username: e.Username, Password: e.Password}
			if e.Auth != "" {
				raw, err := base64.StdEncoding.DecodeString(e.Auth)
				if err != nil {
					return nil, fmt.Errorf("secret %s/%s: the auth of %s is not base64", s.Namespace, s.Name, h)
				}
				user, pass, ok := strings.Cut(string(raw), ":")
				if !ok {
					return nil, fmt.Errorf("secret %s/%s: the auth of %s is not user:password", s.Namespace, s.Name, h)
				}
				cfg.Username, cfg.Password = user, pass
			}
			k.byHost[h] = cfg
		}
	}
	return k, nil
}

// normalize reduces a docker config key ("https://host/v1/", "host") to its host.
func normalize(key string) string {
	key = strings.TrimSpace(key)
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil {
			key = u.Host
		}
	}
	key = strings.TrimSuffix(strings.SplitN(key, "/", 2)[0], "/")
	switch key {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return "index.docker.io"
	}
	return strings.ToLower(key)
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k.byHost[normalize(target.RegistryStr())]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}

// Hosts lists the registries the keychain has credentials for.
func (k *Keychain) Hosts() []string {
	out := make([]string, 0, len(k.byHost))
	for h := range k.byHost {
		out = append(out, h)
	}
	return out
}
