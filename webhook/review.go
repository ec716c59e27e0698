package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/internal/apijson"
)

// MaxRequestBytes bounds an AdmissionReview body. The API server's own
// request limit is 3 MiB per object; a review carries the object twice on
// UPDATE.
const MaxRequestBytes = 7 << 20

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// reviewHandler serves admission.v1 AdmissionReviews. It decodes the review
// in one pass over the bytes with apijson, member names matched exactly as
// the API server writes them (encoding/json reads the body three times:
// to validate it, to decode it, and again for the object it keeps raw),
// recovers panics into a 500 that denies, and puts a logger with the
// request's fields in the context.
type reviewHandler struct {
	handler admission.Handler
	log     logr.Logger
	stacks  *warmStacks
}

func (h *reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.stacks == nil {
		h.serve(w, r)
		return
	}
	h.stacks.run(func() { h.serve(w, r) }, func(p any) {
		h.log.Error(fmt.Errorf("panic: %v", p), "serving an admission review panicked; denying")
		h.write(w, admission.Errored(http.StatusInternalServerError, errors.New("tollgate failed internally and denies (fail closed)")).AdmissionResponse)
	})
}

func (h *reviewHandler) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		h.reject(w, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: want application/json", ct))
		return
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 { // keep the pool small; huge reviews are rare
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	buf.Reset()
	if r.ContentLength > 0 && r.ContentLength <= MaxRequestBytes {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, MaxRequestBytes+1)); err != nil {
		h.reject(w, http.StatusBadRequest, fmt.Errorf("reading the request: %w", err))
		return
	}
	// The decoded review copies what it keeps (RawExtension copies the
	// object), so the buffer can be reused once the request is answered.
	body := buf.Bytes()
	if len(body) > MaxRequestBytes {
		h.reject(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request is over %d bytes", MaxRequestBytes))
		return
	}
	var review admissionv1.AdmissionReview
	if err := apijson.Unmarshal(body, &review); err != nil {
		h.reject(w, http.StatusBadRequest, fmt.Errorf("decoding the AdmissionReview: %w", err))
		return
	}
	if review.Request == nil {
		h.reject(w, http.StatusBadRequest, errors.New("the AdmissionReview has no request"))
		return
	}
	if review.APIVersion != "" && review.APIVersion != admissionv1.SchemeGroupVersion.String() {
		h.reject(w, http.StatusBadRequest, fmt.Errorf("AdmissionReview version %q: want admission.k8s.io/v1", review.APIVersion))
		return
	}
	req := admission.Request{AdmissionRequest: *review.Request}
	// Plain strings: the logger encodes typed values (types.UID, the
	// operation) by reflection, at every request, logged or not.
	log := h.log.WithValues("uid", string(req.UID), "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "operation", string(req.Operation), "user", req.UserInfo.Username)
	resp := h.handle(logf.IntoContext(r.Context(), log), req, log)
	resp.UID = req.UID
	// admission.Response carries JSON patch operations; the wire format
	// wants them encoded in Patch, with PatchType only when there is one.
	resp.Patch, resp.PatchType = nil, nil
	if len(resp.Patches) > 0 {
		patch, err := json.Marshal(resp.Patches)
		if err != nil {
			log.Error(err, "encoding the patch; denying")
			h.write(w, admission.Errored(http.StatusInternalServerError, errors.New("tollgate could not encode its patch and denies (fail closed)")).AdmissionResponse)
			return
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	h.write(w, resp.AdmissionResponse)
}

func (h *reviewHandler) handle(ctx context.Context, req admission.Request, log logr.Logger) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "handler panicked; denying", "stack", string(debug.Stack()))
			resp = admission.Errored(http.StatusInternalServerError, errors.New("tollgate failed internally and denies (fail closed)"))
		}
	}()
	return h.handler.Handle(ctx, req)
}

// reject answers a review that could not be read: a denial the API server
// shows, with the HTTP status of the problem.
func (h *reviewHandler) reject(w http.ResponseWriter, code int32, err error) {
	h.log.Info("rejected a malformed admission request", "error", err.Error())
	h.write(w, admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: code, Message: err.Error()}})
}

func (h *reviewHandler) write(w http.ResponseWriter, resp admissionv1.AdmissionResponse) {
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.log.Error(err, "writing the admission response")
	}
}

// warmStacks runs reviews on long-lived goroutines whose stacks have
// already grown to what decoding and deciding a review takes. The HTTP/2
// server starts a goroutine with a small stack per request, and the
// runtime copies that stack each time it grows (measured: about a tenth
// of a review's CPU, BENCHMARKS.md). When every worker is busy, the review
// runs on the caller's goroutine: never queued behind another.
type warmStacks struct {
	jobs chan *stackJob
}

type stackJob struct {
	f, done func()
	onPanic func(any)
}

var stackJobs = sync.Pool{New: func() any { return new(stackJob) }}

// start starts n workers, which stop when stop is closed. Without
// workers every review runs on its caller's goroutine.
func (s *warmStacks) start(n int, stop <-chan struct{}) {
	for i := 0; i < n; i++ {
		go s.work(stop)
	}
}

func (s *warmStacks) work(stop <-chan struct{}) {
	for {
		select {
		case j := <-s.jobs:
			j.do()
		case <-stop:
			return
		}
	}
}

// do runs the job, turning a panic into onPanic: no review may crash the
// process, whichever goroutine it runs on.
func (j *stackJob) do() {
	defer j.done()
	defer func() {
		if p := recover(); p != nil {
			j.onPanic(p)
		}
	}()
	j.f()
}

// run calls f on a warm worker, or on this goroutine when none is idle,
// and returns when f has returned; a panic in f calls onPanic instead.
func (s *warmStacks) run(f func(), onPanic func(any)) {
	j := stackJobs.Get().(*stackJob)
	var wg sync.WaitGroup
	wg.Add(1)
	j.f, j.onPanic, j.done = f, onPanic, wg.Done
	select {
	case s.jobs <- j:
	default:
		j.do()
	}
	wg.Wait()
	j.f, j.onPanic, j.done = nil, nil, nil
	stackJobs.Put(j)
}
