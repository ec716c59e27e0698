package imagegate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/webhook/reply"
)

// LabelGate is the namespace label that gates a namespace.
const LabelGate = "tollgate.dev/gate"

// Values of LabelGate.
const (
	GateEnforce = "enforce"
	GateWarn    = "warn"
	// GateAudit reports (tollgate audit) without reviewing admissions:
	// what enforcing the namespace would deny, before anything is.
	GateAudit = "audit"
)

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

type podSpec struct {
	Containers          []container `json:"containers"`
	InitContainers      []container `json:"initContainers"`
	EphemeralContainers []container `json:"ephemeralContainers"`
	ImagePullSecrets    []struct {
		Name string `json:"name"`
	} `json:"imagePullSecrets"`
	ServiceAccountName string `json:"serviceAccountName"`
	// DeprecatedServiceAccount is the old alias the API server still honours.
	DeprecatedServiceAccount string `json:"serviceAccount"`
}

type objectMeta struct {
	Name         string `json:"name"`
	GenerateName string `json:"generateName"`
}

type template struct {
	Spec podSpec `json:"spec"`
}

// object is the union of the shapes the gate reads; the kind decides which
// part holds the pod spec.
type object struct {
	Kind     string     `json:"kind"`
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		podSpec
		Template    template `json:"template"`
		JobTemplate struct {
			Spec struct {
				Template template `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

// kind is one workload kind the gate reviews.
type kind struct {
	Kind     string
	Resource schema.GroupVersionResource
	// path is where the pod spec is, as a field path and a JSON pointer.
	path    string
	pointer string
}

var kinds = []kind{
	{"Pod", schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "spec", "/spec"},
	{"Deployment", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "spec.template.spec", "/spec/template/spec"},
	{"ReplicaSet", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, "spec.template.spec", "/spec/template/spec"},
	{"StatefulSet", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, "spec.template.spec", "/spec/template/spec"},
	{"DaemonSet", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, "spec.template.spec", "/spec/template/spec"},
	{"Job", schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, "spec.template.spec", "/spec/template/spec"},
	{"CronJob", schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "spec.jobTemplate.spec.template.spec", "/spec/jobTemplate/spec/template/spec"},
}

func kindFor(group, version, k, resource string) (*kind, error) {
	for i := range kinds {
		kd := &kinds[i]
		if kd.Kind != k || kd.Resource.Group != group {
			continue
		}
		if version != kd.Resource.Version {
			return nil, reply.BadRequest("unsupported version %s of %s: the image gate reviews %s (register it with matchPolicy: Equivalent)", version, k, kd.Resource.GroupVersion())
		}
		if resource != kd.Resource.Resource {
			return nil, reply.BadRequest("kind %s does not match resource %s", k, resource)
		}
		return kd, nil
	}
	return nil, reply.BadRequest("unsupported kind %s/%s %s: the image gate reviews Pods and workload controllers", group, version, k)
}

// workload is a decoded object: its metadata, pod spec and where it is.
type workload struct {
	kind *kind
	meta objectMeta
	spec *podSpec
}

func decode(kd *kind, raw []byte) (*workload, error) {
	if len(raw) == 0 {
		return nil, reply.BadRequest("the request carries no object")
	}
	var o object
	// Case-sensitive like the API server: "Image" is not "image".
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &o); err != nil {
		return nil, reply.BadRequest("decoding %s: %w", kd.Kind, err)
	}
	if o.Kind != "" && o.Kind != kd.Kind {
		return nil, reply.BadRequest("object kind %q is not %s", o.Kind, kd.Kind)
	}
	w := &workload{kind: kd, meta: o.Metadata}
	switch kd.Kind {
	case "Pod":
		w.spec = &o.Spec.podSpec
	case "CronJob":
		w.spec = &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		w.spec = &o.Spec.Template.Spec
	}
	return w, nil
}

func (w *workload) name() string {
	if w.meta.Name != "" {
		return w.meta.Name
	}
	return w.meta.GenerateName + "*"
}

func (w *workload) serviceAccount() string {
	switch {
	case w.spec.ServiceAccountName != "":
		return w.spec.ServiceAccountName
	case w.spec.DeprecatedServiceAccount != "":
		return w.spec.DeprecatedServiceAccount
	}
	return "default"
}

func (w *workload) pullSecrets() []string {
	out := make([]string, 0, len(w.spec.ImagePullSecrets))
	for _, s := range w.spec.ImagePullSecrets {
		if s.Name != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// images lists every image of every container kind, located, with the
// JSON pointer of each image field.
func (w *workload) images() ([]images.ContainerImage, []string) {
	var out []images.ContainerImage
	var pointers []string
	for _, list := range []struct {
		field string
		cs    []container
	}{{"containers", w.spec.Containers}, {"initContainers", w.spec.InitContainers}, {"ephemeralContainers", w.spec.EphemeralContainers}} {
		for i, c := range list.cs {
			out = append(out, images.ContainerImage{Field: fmt.Sprintf("%s.%s[%d].image", w.kind.path, list.field, i), Container: c.Name, Image: c.Image})
			pointers = append(pointers, fmt.Sprintf("%s/%s/%d/image", w.kind.pointer, list.field, i))
		}
	}
	return out, pointers
}

// imageSet is the set of images a workload names.
func (w *workload) imageSet() map[string]bool {
	out := map[string]bool{}
	for _, list := range [][]container{w.spec.Containers, w.spec.InitContainers, w.spec.EphemeralContainers} {
		for _, c := range list {
			out[c.Image] = true
		}
	}
	return out
}
