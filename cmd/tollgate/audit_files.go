package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook/audit"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// manifests are the objects `tollgate audit -f` read, sorted by what they
// are to the audit.
type manifests struct {
	state           []runs.Document // Namespaces, service accounts, RBAC, Tasks, Pipelines
	runPolicies     []runs.Document
	imagePolicies   []runs.Document
	secrets         map[string]map[string][]byte // namespace/name → data
	configMaps      map[string]map[string]string
	objects         map[string][]unstructured.Unstructured // audited objects by namespace
	ignored         map[string]int                         // kinds neither audited nor read, counted
	namespaceGiven  map[string]bool
	defaultNS       string
	workloads, runs int
}

// readManifests sorts docs; objects that name no namespace are in
// defaultNS, as kubectl apply -f puts them.
func readManifests(docs []runs.Document, defaultNS string) (*manifests, error) {
	m := &manifests{secrets: map[string]map[string][]byte{}, configMaps: map[string]map[string]string{}, objects: map[string][]unstructured.Unstructured{},
		ignored: map[string]int{}, namespaceGiven: map[string]bool{}, defaultNS: defaultNS}
	for _, d := range docs {
		gv, err := schema.ParseGroupVersion(d.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("%s: apiVersion %q: %w", d.Source, d.APIVersion, err)
		}
		gvk := gv.WithKind(d.Kind)
		switch {
		case audit.Audited(gvk):
			var u unstructured.Unstructured
			if err := kjson.UnmarshalCaseSensitivePreserveInts(d.Raw, &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			ns := cmpOr(u.GetNamespace(), defaultNS)
			u.SetNamespace(ns)
			m.objects[ns] = append(m.objects[ns], u)
			if gv.Group == "tekton.dev" {
				m.runs++
			} else {
				m.workloads++
			}
		case d.APIVersion == v1alpha1.GroupVersion.String() && d.Kind == "ClusterRunPolicy":
			m.runPolicies = append(m.runPolicies, d)
		case d.APIVersion == v1alpha1.GroupVersion.String() && d.Kind == "ClusterImagePolicy":
			m.imagePolicies = append(m.imagePolicies, d)
		case d.APIVersion == "v1" && (d.Kind == "Secret" || d.Kind == "ConfigMap"):
			var o struct {
				Metadata struct{ Namespace, Name string }
				Data     json.RawMessage
			}
			if err := json.Unmarshal(d.Raw, &o); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			key := cmpOr(o.Metadata.Namespace, defaultNS) + "/" + o.Metadata.Name
			if d.Kind == "Secret" {
				var s corev1.Secret
				if err := kjson.UnmarshalCaseSensitivePreserveInts(d.Raw, &s); err != nil {
					return nil, fmt.Errorf("%s: %w", d.Source, err)
				}
				data := maps.Clone(s.Data)
				if data == nil {
					data = map[string][]byte{}
				}
				for k, v := range s.StringData { // as the API server merges it
					data[k] = []byte(v)
				}
				m.secrets[key] = data
			} else {
				var c corev1.ConfigMap
				if err := kjson.UnmarshalCaseSensitivePreserveInts(d.Raw, &c); err != nil {
					return nil, fmt.Errorf("%s: %w", d.Source, err)
				}
				m.configMaps[key] = c.Data
			}
		case isState(d):
			if d.Kind == "Namespace" {
				m.namespaceGiven[d.Name] = true
			} else if d.Namespace == "" && (d.Kind == "ServiceAccount" || d.Kind == "Role" || d.Kind == "RoleBinding" || d.Kind == "Task" || d.Kind == "Pipeline") {
				d.Raw, err = withNamespace(d.Raw, defaultNS)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", d.Source, err)
				}
			}
			m.state = append(m.state, d)
		default:
			m.ignored[d.Kind]++
		}
	}
	return m, nil
}

func isState(d runs.Document) bool {
	switch d.APIVersion + "/" + d.Kind {
	case "v1/Namespace", "v1/ServiceAccount", "tekton.dev/v1/Task", "tekton.dev/v1/Pipeline",
		"rbac.authorization.k8s.io/v1/Role", "rbac.authorization.k8s.io/v1/ClusterRole",
		"rbac.authorization.k8s.io/v1/RoleBinding", "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return true
	}
	return false
}

func withNamespace(raw []byte, ns string) ([]byte, error) {
	var o map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &o); err != nil {
		return nil, err
	}
	u := unstructured.Unstructured{Object: o}
	u.SetNamespace(ns)
	return json.Marshal(o)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// offlineScanner wires the audit's decisions over the manifests: the run
// guard's and the image gate's handlers, as the webhook builds them, with
// a static cluster of the manifests' objects, the policies in them (the
// built-in default run policy beside the ClusterRunPolicies, as in the
// cluster), the Secrets and ConfigMaps they name from the manifests, and
// registry credentials from the Docker config. Namespaces with no
// Namespace document are audited as labelled tollgate.dev/gate=audit:
// what enforcing them would deny.
func offlineScanner(ctx context.Context, m *manifests, ids runs.Identities, budget time.Duration) (*audit.Scanner, []string, error) {
	objs, err := runs.StateFromDocuments(m.state)
	if err != nil {
		return nil, nil, err
	}
	var assumed []string
	for ns := range m.objects {
		if !m.namespaceGiven[ns] {
			assumed = append(assumed, ns)
			objs.Namespaces = append(objs.Namespaces, corev1.Namespace{})
			objs.Namespaces[len(objs.Namespaces)-1].Name = ns
			objs.Namespaces[len(objs.Namespaces)-1].Labels = map[string]string{imagegate.LabelGate: imagegate.GateAudit}
		}
	}
	slices.Sort(assumed)
	for i := range objs.Namespaces { // the label the API server sets on every namespace
		n := &objs.Namespaces[i]
		n.Labels = maps.Clone(n.Labels)
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelMetadataName] = n.Name
	}
	cluster := runs.NewStaticCluster(objs)

	configMaps := func(_ context.Context, ns, name string) (map[string]string, error) {
		if d, ok := m.configMaps[ns+"/"+name]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("ConfigMap %s/%s is not in the manifests: add it to the files audited", ns, name)
	}
	runPolicies, err := runs.PoliciesFromDocuments(m.runPolicies, configMaps)
	if err != nil {
		return nil, nil, err
	}
	runSet := runs.NewSet(runs.BuiltinDefault(), runPolicies...)
	rg, err := runguard.New(runguard.Deps{Policies: func() *runs.Set { return runSet }, Cluster: cluster, Namespaces: cluster, Identities: ids})
	if err != nil {
		return nil, nil, err
	}

	imagePolicies, err := imagePoliciesFromDocuments(ctx, m.imagePolicies, images.Deps{
		Secret: func(_ context.Context, ns, name string) (map[string][]byte, error) {
			if d, ok := m.secrets[ns+"/"+name]; ok {
				return d, nil
			}
			return nil, fmt.Errorf("Secret %s/%s is not in the manifests: add it to the files audited (a public key is no secret)", ns, name)
		},
		ConfigMaps: configMaps,
	})
	if err != nil {
		return nil, nil, err
	}
	imageSet := images.NewSet(imagePolicies...)
	reg, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		return nil, nil, err
	}
	vcache, err := images.NewCache(images.DefaultCacheOptions())
	if err != nil {
		return nil, nil, err
	}
	ig, err := imagegate.New(imagegate.Deps{
		Policies:    func() *images.Set { return imageSet },
		Gate:        &images.Gate{Verifier: images.NewVerifier(reg), Cache: vcache},
		Namespaces:  cluster,
		Credentials: dockerConfig{},
		Budget:      budget,
	})
	if err != nil {
		return nil, nil, err
	}
	return &audit.Scanner{Images: ig, Runs: rg}, assumed, nil
}

// dockerConfig is the Docker config's credentials (~/.docker/config.json
// and its helpers), for every workload: the manifests' pull secrets are
// not read.
type dockerConfig struct{}

func (dockerConfig) Keychain(context.Context, string, string, []string) (authn.Keychain, string, error) {
	return authn.DefaultKeychain, "docker-config", nil
}

// summary says what the manifests hold, on the progress stream.
func (m *manifests) summary(w io.Writer, files int) {
	fmt.Fprintf(w, "audit: %d files: %d workloads, %d runs, %d ClusterImagePolicies, %d ClusterRunPolicies (beside the built-in default)\n",
		files, m.workloads, m.runs, len(m.imagePolicies), len(m.runPolicies))
	if len(m.ignored) > 0 {
		var kinds []string
		for k, n := range m.ignored {
			kinds = append(kinds, fmt.Sprintf("%s (%d)", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(w, "audit: not audited and not read: %s\n", strings.Join(kinds, ", "))
	}
}
