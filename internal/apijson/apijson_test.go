package apijson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"

	"github.com/tollgate-dev/tollgate/testing/benchdata"
)

// targets are the types the webhooks decode with Unmarshal; each is
// checked against sigs.k8s.io/json on every input.
var targets = []func() any{
	func() any { return &admissionv1.AdmissionReview{} },
	func() any { return &pipelinev1.PipelineRun{} },
	func() any { return &pipelinev1.TaskRun{} },
	func() any { return &corev1.Pod{} },
	func() any { return &appsv1.Deployment{} },
	func() any { return &batchv1.CronJob{} },
	func() any {
		return &struct {
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}{}
	},
}

// same decodes in with both decoders into a fresh target and reports how
// they differ, or "".
func same(in []byte, target func() any) string {
	a, b := target(), target()
	errA := kjson.UnmarshalCaseSensitivePreserveInts(in, a)
	errB := Unmarshal(in, b)
	switch {
	case (errA == nil) != (errB == nil):
		return "sigs.k8s.io/json: " + errString(errA) + "; apijson: " + errString(errB)
	case errA == nil && !reflect.DeepEqual(a, b):
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return "decoded differently:\n sigs.k8s.io/json " + string(ja) + "\n apijson          " + string(jb)
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func seeds() [][]byte {
	pr := benchdata.PipelineRun(false, map[string]string{"a": "b"})
	out := [][]byte{
		pr,
		benchdata.PipelineRun(true, nil),
		benchdata.Review(pr, "alice"),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"tekton.dev","version":"v1","kind":"TaskRun"},"resource":{"group":"tekton.dev","version":"v1","resource":"taskruns"},"operation":"UPDATE","userInfo":{"username":"u","groups":["g"],"extra":{"k":["v"]}},"object":{"spec":{}},"oldObject":null,"dryRun":false,"options":{"kind":"UpdateOptions"}}}`),
		[]byte(`{"metadata":{"name":"t","annotations":{"x":"y"}},"spec":{"serviceAccountName":"sa","taskSpec":{"steps":[{"name":"s","image":"i","computeResources":{"limits":{"cpu":"1","memory":"1Gi"}},"securityContext":{"privileged":true,"runAsUser":0}}]},"params":[{"name":"p","value":["a","b"]},{"name":"o","value":{"k":"v"}},{"name":"s","value":"x"}],"timeout":"1h"}}`),
		[]byte(`{"metadata":{"labels":{"tekton.dev/taskRun":"x"},"ownerReferences":[{"apiVersion":"tekton.dev/v1","kind":"TaskRun","name":"x","uid":"u","controller":true}]},"spec":{"containers":[{"name":"step-a","image":"i","ports":[{"containerPort":80}],"securityContext":{"privileged":true}}]}}`),
		// What the two decoders might treat differently.
		[]byte(`{"Metadata":{"Name":"upper"},"metadata":{"name":"lower","NAME":"x"},"spec":{"ServiceAccountName":"x"}}`),
		[]byte(`{"metadata":{"name":"first","name":"second","annotations":{"a":"1","a":"2"}},"metadata":{"annotations":null}}`),
		[]byte("{\"metadata\":{\"name\":\"\xff\xfe\",\"annotations\":{\"\xc3\x28\":\"\\ud800\"}}}"),
		[]byte(`{"metadata":{"name":5}}`),
		[]byte(`{"metadata":{"name":null,"annotations":{"a":null}}}`),
		[]byte(`{"spec":{"taskSpec":{"steps":[{"computeResources":{"limits":{"cpu":"1e400"}}}]}}}`),
		[]byte(`{"spec":{"taskSpec":{"steps":[{"computeResources":{"limits":{"cpu":1}}}]}}}`),
		[]byte(`{"spec":{"timeout":"forever"}}`),
		[]byte(`{"spec":{"params":[{"name":"p","value":5}]}}`),
		[]byte(`{"metadata":{}} trailing`),
		[]byte(`{"metadata":{"generation":9223372036854775808}}`),
		[]byte(`{"metadata":{"generation":1.5}}`),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(``),
		[]byte(strings.Repeat(`{"spec":`, 300) + `{}` + strings.Repeat(`}`, 300)),
	}
	return out
}

// TestSameAsAPIServerDecoding: on the seeds, Unmarshal decodes every
// target exactly as sigs.k8s.io/json does, errors included.
func TestSameAsAPIServerDecoding(t *testing.T) {
	for i, in := range seeds() {
		for _, target := range targets {
			if d := same(in, target); d != "" {
				t.Errorf("seed %d into %T: %s", i, target(), d)
			}
		}
	}
}

// FuzzSameAsAPIServerDecoding holds the two decoders together on any input
// (make fuzz).
func FuzzSameAsAPIServerDecoding(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, target := range targets {
			if d := same(in, target); d != "" {
				t.Fatalf("into %T: %s", target(), d)
			}
		}
	})
}

// TestNoFreeFormNumbers walks the decoded types: no interface{} value may
// be reached outside a type that decodes itself, where the two decoders'
// number types would differ (float64 here, int64 there).
func TestNoFreeFormNumbers(t *testing.T) {
	unmarshaler := reflect.TypeFor[json.Unmarshaler]()
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if typ.Implements(unmarshaler) || reflect.PointerTo(typ).Implements(unmarshaler) {
			return
		}
		switch typ.Kind() {
		case reflect.Interface:
			t.Errorf("%s is an interface{} value", path)
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(typ.Elem(), path+"[]")
		case reflect.Map:
			walk(typ.Elem(), path+"{}")
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				if f.IsExported() && f.Tag.Get("json") != "-" {
					walk(f.Type, path+"."+f.Name)
				}
			}
		}
	}
	for _, target := range targets {
		typ := reflect.TypeOf(target()).Elem()
		walk(typ, typ.String())
	}
}
