package imagegate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// namespaces answers labels from a map; a namespace mapped to nil fails.
type namespaces map[string]map[string]string

func (n namespaces) Labels(_ context.Context, name string) (map[string]string, error) {
	l, ok := n[name]
	if !ok {
		return nil, errors.New("not found")
	}
	if l == nil {
		return nil, errors.New("the API server is unavailable")
	}
	return l, nil
}

// anonymous gives every workload no credentials.
type anonymous struct{}

func (anonymous) Keychain(context.Context, string, string, []string) (authn.Keychain, string, error) {
	return authn.NewMultiKeychain(), "anonymous", nil
}

// gate is the image gate in-process over a real loopback registry.
type gate struct {
	reg      *registry.Registry
	key      *signing.Key
	handler  *imagegate.Handler
	gate     *images.Gate
	cache    *images.Cache
	sigReads atomic.Int64 // reads of .sig manifests: one per upstream verification
}

func newGate(t testing.TB) *gate {
	t.Helper()
	g := &gate{reg: registry.Start(t), key: signing.NewKey(t)}
	g.reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".sig") {
			g.sigReads.Add(1)
		}
		return false
	})
	p, err := images.Compile(context.Background(), &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "release", UID: types.UID("u"), Generation: 1},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images:       []v1alpha1.ImagePattern{{Glob: g.reg.Host + "/**"}},
			Authorities:  []v1alpha1.Authority{{Name: "release", Key: &v1alpha1.KeyAuthority{Data: string(g.key.PublicPEM)}}},
			Attestations: []v1alpha1.AttestationRequirement{{Name: "slsa", PredicateType: slsa.PredicateV1}},
		},
	}, images.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	set := images.NewSet(p)
	r, err := images.NewRegistry(nil, images.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	g.cache, err = images.NewCache(images.DefaultCacheOptions())
	if err != nil {
		t.Fatal(err)
	}
	g.gate = &images.Gate{Verifier: images.NewVerifier(r), Cache: g.cache}
	g.handler, err = imagegate.New(imagegate.Deps{
		Policies: func() *images.Set { return set },
		Gate:     g.gate,
		Namespaces: namespaces{
			"prod":   {imagegate.LabelGate: imagegate.GateEnforce},
			"dev":    {imagegate.LabelGate: imagegate.GateWarn},
			"free":   {},
			"odd":    {imagegate.LabelGate: "Enforce"},
			"trial":  {imagegate.LabelGate: imagegate.GateAudit},
			"broken": nil,
		},
		Credentials: anonymous{},
		Budget:      5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gate) signed(t testing.TB, repo string) name.Digest {
	img := g.reg.PushRandom(t, repo, "v1")
	g.key.Sign(t, img, signing.Options{})
	g.key.Attest(t, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
	g.sigReads.Store(0) // signing read them; count only the gate's reads
	return img
}

// signedBundles signs and attests the image as cosign v3 does: sigstore
// bundles attached as referrers.
func (g *gate) signedBundles(t testing.TB, repo string) name.Digest {
	img := g.reg.PushRandom(t, repo, "v1")
	g.key.AttachBundleOf(t, img, signing.PredicateCosignSign, map[string]any{}, signing.BundleOptions{})
	g.key.AttachBundleOf(t, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.BundleOptions{})
	g.sigReads.Store(0)
	return img
}

func podJSON(imgs ...string) []byte {
	var cs []map[string]string
	for i, img := range imgs {
		cs = append(cs, map[string]string{"name": fmt.Sprintf("c%d", i), "image": img})
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": cs}})
	return b
}

func request(ns string, op admissionv1.Operation, obj, old []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "u1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Name:      "p",
		Operation: op,
		Object:    runtime.RawExtension{Raw: obj},
		OldObject: runtime.RawExtension{Raw: old},
	}}
}

func expect(t *testing.T, resp admission.Response, allowed bool, code int32, want ...string) {
	t.Helper()
	msg := ""
	if resp.Result != nil {
		msg = resp.Result.Message
	}
	msg += strings.Join(resp.Warnings, "\n")
	if resp.Allowed != allowed || (code != 0 && (resp.Result == nil || resp.Result.Code != code)) {
		t.Fatalf("allowed=%v code=%v, want allowed=%v code=%d: %s", resp.Allowed, resp.Result, allowed, code, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("response does not mention %q:\n%s", w, msg)
		}
	}
}

func TestHandler(t *testing.T) {
	g := newGate(t)
	ctx := t.Context()
	img := g.signed(t, "app/web")
	tag := img.Context().Tag("v1").String()
	mutate := g.handler.MutateHandler()

	t.Run("mutate pins, validate admits the pinned image", func(t *testing.T) {
		resp := mutate.Handle(ctx, request("prod", admissionv1.Create, podJSON(tag), nil))
		expect(t, resp, true, 0)
		if len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/containers/0/image" || resp.Patches[0].Value != tag+"@"+img.DigestStr() {
			t.Fatalf("patches: %+v", resp.Patches)
		}
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Create, podJSON(tag+"@"+img.DigestStr()), nil)), true, 0)
	})
	t.Run("validate denies a tag that was never pinned", func(t *testing.T) {
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Create, podJSON(tag), nil)), false, http.StatusForbidden,
			"is not pinned to a digest", "/mutate-workloads")
	})
	t.Run("a namespace lookup error denies", func(t *testing.T) {
		expect(t, g.handler.Handle(ctx, request("broken", admissionv1.Create, podJSON(tag), nil)), false, http.StatusInternalServerError,
			`reading namespace "broken"`, "fail closed")
		expect(t, mutate.Handle(ctx, request("broken", admissionv1.Create, podJSON(tag), nil)), false, http.StatusInternalServerError)
	})
	t.Run("an unknown gate value is refused, not guessed", func(t *testing.T) {
		expect(t, g.handler.Handle(ctx, request("odd", admissionv1.Create, podJSON(tag), nil)), false, http.StatusBadRequest, `tollgate.dev/gate="Enforce"`)
	})
	t.Run("an ungated namespace is not reviewed", func(t *testing.T) {
		expect(t, g.handler.Handle(ctx, request("free", admissionv1.Create, podJSON("anything:latest"), nil)), true, 0)
	})
	t.Run("deletes, finalizer removal and unchanged images pass without a registry", func(t *testing.T) {
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Delete, nil, podJSON("x"))), true, 0)
		dying, _ := json.Marshal(map[string]any{"kind": "Pod", "metadata": map[string]any{"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": map[string]any{"containers": []any{map[string]string{"name": "c", "image": "unsigned:v1"}}}})
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Update, dying, podJSON("unsigned:v1"))), true, 0)
		dyingNew, _ := json.Marshal(map[string]any{"kind": "Pod", "metadata": map[string]any{"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": map[string]any{"containers": []any{map[string]string{"name": "c", "image": "other:v3"}}}})
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Update, dyingNew, podJSON("unsigned:v1"))), false, http.StatusForbidden, "other:v3")
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Update, podJSON("unsigned:v1"), podJSON("unsigned:v1"))), true, 0)
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Update, podJSON("unsigned:v1", "other:v2"), podJSON("unsigned:v1"))), false, http.StatusForbidden, "other:v2")
	})
	t.Run("malformed requests are refused", func(t *testing.T) {
		r := request("prod", admissionv1.Create, podJSON(tag), nil)
		r.Kind.Version = "v2"
		expect(t, g.handler.Handle(ctx, r), false, http.StatusBadRequest, "unsupported version v2 of Pod")
		r = request("prod", admissionv1.Create, podJSON(tag), nil)
		r.Resource.Resource = "deployments"
		expect(t, g.handler.Handle(ctx, r), false, http.StatusBadRequest, "kind Pod does not match resource deployments")
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Create, []byte(`{"spec":{"containers":"nope"}}`), nil)), false, http.StatusBadRequest, "decoding Pod")
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Create, []byte(`{"kind":"Secret"}`), nil)), false, http.StatusBadRequest, `object kind "Secret" is not Pod`)
		expect(t, g.handler.Handle(ctx, admission.Request{}), false, http.StatusBadRequest, "malformed AdmissionReview")
		// A case-variant key is not the field the kubelet reads.
		expect(t, g.handler.Handle(ctx, request("prod", admissionv1.Create, []byte(`{"spec":{"containers":[{"name":"c","Image":"`+tag+`","image":"unsigned:v1"}]}}`), nil)), false, http.StatusForbidden, "unsigned:v1")
	})
	t.Run("warn namespaces warn on the validating path only", func(t *testing.T) {
		unsigned := g.reg.PushRandom(t, "app/unsigned", "v1").Context().Tag("v1").String()
		m := mutate.Handle(ctx, request("dev", admissionv1.Create, podJSON(unsigned), nil))
		expect(t, m, true, 0)
		if len(m.Warnings) != 0 {
			t.Errorf("mutate warned: %v", m.Warnings)
		}
		v := g.handler.Handle(ctx, request("dev", admissionv1.Create, podJSON(unsigned), nil))
		expect(t, v, true, 0)
		if len(v.Warnings) == 0 {
			t.Error("validate did not warn")
		}
	})
}

// A namespace labelled audit is never denied at admission; the audit
// decides its workloads as enforce would, with the same decision, tags
// resolved, and says why it skips an ungated one.
func TestAudit(t *testing.T) {
	g := newGate(t)
	ctx := t.Context()
	img := g.signed(t, "app/web")
	unsigned := g.reg.PushRandom(t, "app/unsigned", "v1").Context().Tag("v1").String()

	for _, h := range []admission.Handler{g.handler, g.handler.MutateHandler()} {
		resp := h.Handle(ctx, request("trial", admissionv1.Create, podJSON(unsigned), nil))
		expect(t, resp, true, 0, "audited")
		if len(resp.Warnings) != 0 || len(resp.Patches) != 0 {
			t.Errorf("admission in an audited namespace warned or patched: %+v", resp)
		}
	}
	for _, ns := range []string{"trial", "dev", "prod"} {
		out, skip, err := g.handler.Audit(ctx, "", "v1", "Pod", "pods", ns, podJSON(unsigned, img.Context().Tag("v1").String()))
		if err != nil || skip != "" {
			t.Fatalf("%s: audit: %v %q", ns, err, skip)
		}
		var rules []string
		for _, d := range out.Denials {
			rules = append(rules, d.Rule)
			if !strings.Contains(d.Message, "app/unsigned") {
				t.Errorf("%s: a denial not of the unsigned image: %s", ns, d)
			}
		}
		if strings.Join(rules, ",") != "signature,slsa" || len(out.Warnings) != 0 {
			t.Errorf("%s: want the unsigned image denied for signature and slsa (as enforce would), got %+v", ns, out.Decision)
		}
		verified := false
		for _, r := range out.Results {
			verified = verified || (r.Digest == img.DigestStr() && r.Verified())
		}
		if !verified {
			t.Errorf("%s: the signed tag was not resolved and verified", ns)
		}
	}
	if _, skip, err := g.handler.Audit(ctx, "", "v1", "Pod", "pods", "free", podJSON(unsigned)); err != nil || skip == "" {
		t.Errorf("an ungated namespace was audited: %q %v", skip, err)
	}
	if _, _, err := g.handler.Audit(ctx, "", "v1", "Pod", "pods", "prod", []byte(`{"spec":`)); err == nil {
		t.Error("a truncated workload was audited")
	}
}

// TestTagAnsweredDifferentlyEachTime plays the registry of Kyverno's
// CVE-2022-47633: a tag that names a signed manifest on one read and an
// unsigned one on the next. The gate reads the tag once, verifies that
// digest, and pins exactly that digest; whichever it was served decides.
func TestTagAnsweredDifferentlyEachTime(t *testing.T) {
	g := newGate(t)
	good := g.signed(t, "app/flip")
	evil := g.reg.PushRandom(t, "app/flip-evil", "v1")
	manifests := map[bool][]byte{}
	for signed, d := range map[bool]name.Digest{true: good, false: evil} {
		desc, err := remote.Get(d)
		if err != nil {
			t.Fatal(err)
		}
		manifests[signed] = desc.Manifest
	}
	var reads atomic.Int32
	g.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/app/flip/manifests/v1" {
			return false
		}
		signed := reads.Add(1)%2 == 1 // the first read is signed, the next is not, ...
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", good.DigestStr()) // always claims the signed digest
		w.Write(manifests[signed])
		return true
	})
	tag := good.Context().Tag("v1").String()
	for i := range 4 {
		resp := g.handler.MutateHandler().Handle(t.Context(), request("prod", admissionv1.Create, podJSON(tag), nil))
		servedSigned := reads.Load()%2 == 1
		switch {
		case servedSigned && (!resp.Allowed || len(resp.Patches) != 1 || resp.Patches[0].Value != tag+"@"+good.DigestStr()):
			t.Fatalf("read %d (signed): %+v %+v", i, resp.Result, resp.Patches)
		case !servedSigned && resp.Allowed:
			t.Fatalf("read %d: the unsigned manifest was admitted: %+v", i, resp.Patches)
		}
	}
}

func TestEightContainersOneVerification(t *testing.T) {
	g := newGate(t)
	img := g.signed(t, "app/eight")
	ref := img.Context().Tag("v1").String()
	resp := g.handler.MutateHandler().Handle(t.Context(), request("prod", admissionv1.Create, podJSON(ref, ref, ref, ref, ref, ref, ref, ref), nil))
	expect(t, resp, true, 0)
	if len(resp.Patches) != 8 {
		t.Fatalf("%d patches, want 8", len(resp.Patches))
	}
	if n := g.cache.Stats().Verifications; n != 1 {
		t.Fatalf("8 containers of one image ran %d verifications, want 1", n)
	}
	if n := g.sigReads.Load(); n != 1 {
		t.Fatalf("8 containers of one image read the signatures %d times, want 1", n)
	}
}

func TestConcurrentAdmissionsOneUpstreamVerification(t *testing.T) {
	g := newGate(t)
	img := g.signed(t, "app/rollout")
	pinned := img.Context().Tag("v1").String() + "@" + img.DigestStr()
	var wg sync.WaitGroup
	var denied atomic.Int32
	start := make(chan struct{})
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if r := g.handler.Handle(t.Context(), request("prod", admissionv1.Create, podJSON(pinned), nil)); !r.Allowed {
				denied.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if denied.Load() != 0 {
		t.Fatalf("%d of 500 admissions denied", denied.Load())
	}
	if n := g.sigReads.Load(); n != 1 {
		t.Fatalf("500 concurrent admissions of one digest read its signatures %d times, want 1", n)
	}
}

// FuzzHandler feeds crafted objects of every kind to both paths: the
// handler answers, never panics, and never allows what it could not read.
func FuzzHandler(f *testing.F) {
	g := newGate(f)
	kinds := []struct{ group, kind, resource string }{
		{"", "Pod", "pods"}, {"apps", "Deployment", "deployments"}, {"apps", "ReplicaSet", "replicasets"},
		{"apps", "StatefulSet", "statefulsets"}, {"apps", "DaemonSet", "daemonsets"}, {"batch", "Job", "jobs"}, {"batch", "CronJob", "cronjobs"},
	}
	f.Add(uint8(0), podJSON("busybox"), []byte(nil))
	f.Add(uint8(0), podJSON(g.reg.Host+"/app/x:v1", g.reg.Host+"/app/x@sha256:"+strings.Repeat("a", 64)), podJSON("busybox"))
	f.Add(uint8(1), []byte(`{"spec":{"template":{"spec":{"initContainers":[{"name":"i","image":"`+g.reg.Host+`/a:b"}]}}}}`), []byte(nil))
	f.Add(uint8(6), []byte(`{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"@@"}]}}}}}}`), []byte(nil))
	f.Add(uint8(0), []byte(`{"spec":{"ephemeralContainers":[{"name":"e","image":"x@sha256:ABC"}]}}`), podJSON("y"))
	f.Add(uint8(0), []byte(`null`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, k uint8, obj, old []byte) {
		kd := kinds[int(k)%len(kinds)]
		op := admissionv1.Create
		if len(old) > 0 {
			op = admissionv1.Update
		}
		r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Namespace: "prod", Name: "x", Operation: op,
			Kind:      metav1.GroupVersionKind{Group: kd.group, Version: "v1", Kind: kd.kind},
			Resource:  metav1.GroupVersionResource{Group: kd.group, Version: "v1", Resource: kd.resource},
			Object:    runtime.RawExtension{Raw: obj},
			OldObject: runtime.RawExtension{Raw: old},
		}}
		for _, h := range []admission.Handler{g.handler, g.handler.MutateHandler()} {
			resp := h.Handle(t.Context(), r)
			if resp.Allowed && resp.Result != nil && resp.Result.Code >= 400 {
				t.Fatalf("allowed with an error status: %+v", resp.Result)
			}
			if len(obj) == 0 && resp.Allowed {
				t.Fatal("allowed a request without an object")
			}
		}
	})
}
