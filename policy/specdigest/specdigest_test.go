package specdigest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestOfSpec(t *testing.T) {
	base := `{"taskRef":{"name":"build"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50}]}`
	want, err := OfSpec([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if !Valid(want) {
		t.Fatalf("digest %q is not valid", want)
	}
	tests := []struct {
		name string
		spec string
		same bool
	}{
		{"key order does not matter", `{"params":[{"value":1.50,"name":"n"}],"serviceAccountName":"builder","taskRef":{"name":"build"}}`, true},
		{"whitespace does not matter", "{\n \"taskRef\" : {\"name\":\"build\"},\t\"serviceAccountName\":\"builder\",\"params\":[{\"name\":\"n\",\"value\":1.50}]}", true},
		{"spec.status is a lifecycle field", `{"status":"Cancelled","taskRef":{"name":"build"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50}]}`, true},
		{"spec.statusMessage is a lifecycle field", `{"statusMessage":"bye","taskRef":{"name":"build"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50}]}`, true},
		{"a nested status is content", `{"taskRef":{"name":"build","status":"x"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50}]}`, false},
		{"a changed value changes it", `{"taskRef":{"name":"build2"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50}]}`, false},
		{"number spelling is kept exactly", `{"taskRef":{"name":"build"},"serviceAccountName":"builder","params":[{"name":"n","value":1.5}]}`, false},
		{"array order matters", `{"taskRef":{"name":"build"},"serviceAccountName":"builder","params":[{"name":"n","value":1.50},{"name":"m","value":2}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OfSpec([]byte(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tc.same {
				t.Errorf("digest %s vs %s: same=%v, want same=%v", got, want, got == want, tc.same)
			}
		})
	}
}

// The digest is pinned: a change to canonicalization breaks every stamped run.
func TestOfSpecGolden(t *testing.T) {
	got, err := OfSpec([]byte(`{"b":[true,null,"\u003c\u00e9\n"],"a":{"z":1e3,"y":-0.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Canonical([]byte(`{"b":[true,null,"\u003c\u00e9\n"],"a":{"z":1e3,"y":-0.5}}`))
	if string(c) != `{"a":{"y":-0.5,"z":1e3},"b":[true,null,"<é\u000a"]}` {
		t.Errorf("canonical form = %s", c)
	}
	const want = "sha256:" + "a11f67f6d0f07aa213e1da31b49ab32f26c7adf9bdc3927be27d942627e127f1"
	if got != want {
		t.Logf("golden digest: %s", got)
		t.Errorf("digest changed: got %s", got)
	}
}

func TestOfSpecErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"array", `[1,2]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"trailing data", `{"a":1} {"b":2}`, "trailing data"},
		{"invalid", `{"a":`, "decoding spec"},
		{"too deep", strings.Repeat(`{"a":`, MaxDepth+2) + "1" + strings.Repeat("}", MaxDepth+2), "deeper than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OfSpec([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := OfObject([]byte(`{"metadata":{}}`)); !errors.Is(err, ErrNotObject) {
		t.Errorf("object without spec: err = %v", err)
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"sha256:" + strings.Repeat("a", 64): true,
		"sha256:" + strings.Repeat("A", 64): false,
		"sha256:" + strings.Repeat("a", 63): false,
		"sha512:" + strings.Repeat("a", 64): false,
		"":                                  false,
	} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
}

// FuzzCanonical: never panics; canonical form is a fixed point; the digest of
// a spec survives a decode/encode round trip through Go maps (what the
// mutating path does) whenever the input is valid JSON.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"status":"x","b":[1,2,{"c":null}]}`, `{"b":1,"a":2,"b":3}`, `{"a":1,"b":2,"a":3,"c":4}`, `{"s":"é\u00e9\"\u0001"}`, `{"s":"\u2028\ud800"}`, `{"n":1.0e-7}`,
		`{"pipelineSpec":{"tasks":[{"name":"a","taskSpec":{"steps":[{"name":"s","image":"x","script":"echo"}]}}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Canonical(in)
		ref, refErr := referenceCanonical(in)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("one-pass and reference disagree on validity: %v vs %v\n%q", err, refErr, in)
		}
		if err != nil {
			return
		}
		if string(c) != string(ref) {
			t.Fatalf("one-pass and reference canonical forms differ:\n%s\n%s", c, ref)
		}
		var obj bytes.Buffer
		obj.WriteString(`{"kind":"X","spec":`)
		obj.Write(in)
		obj.WriteString(`}`)
		if d1, d2 := mustDigest(t, in), mustObjectDigest(t, obj.Bytes()); d1 != d2 {
			t.Fatalf("OfObject and OfSpec disagree: %s vs %s", d2, d1)
		}
		c2, err := Canonical(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c)
		}
		if string(c) != string(c2) {
			t.Fatalf("canonical form is not a fixed point:\n%s\n%s", c, c2)
		}
		d1, _ := OfSpec(in)
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(in)))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return
		}
		re, err := json.Marshal(m)
		if err != nil {
			return
		}
		d2, err := OfSpec(re)
		if err != nil {
			t.Fatalf("re-encoded spec does not digest: %v", err)
		}
		if d1 != d2 {
			t.Fatalf("digest changed across a decode/encode round trip:\n%s\n%s", in, re)
		}
	})
}

func mustDigest(t *testing.T, spec []byte) string {
	t.Helper()
	d, err := OfSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustObjectDigest(t *testing.T, obj []byte) string {
	t.Helper()
	d, err := OfObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func BenchmarkOfObject(b *testing.B) {
	obj := []byte(`{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"x","annotations":{"a":"b"}},"spec":{"pipelineSpec":{"tasks":[` +
		strings.Repeat(`{"name":"t","taskSpec":{"steps":[{"name":"s","image":"i@sha256:0000","script":"make build","securityContext":{"runAsNonRoot":true,"capabilities":{"drop":["ALL"]}},"computeResources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}},`, 14) +
		`{"name":"last"}]},"taskRunTemplate":{"serviceAccountName":"sa"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OfObject(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOfObjectWith: the member comes back as the bytes a decoder would
// keep (the last top-level one of that name, escapes in its name decoded),
// and the digest is OfObject's.
func TestOfObjectWith(t *testing.T) {
	for _, tc := range []struct {
		name, obj, want string
		absent          bool
	}{
		{name: "found", obj: `{"metadata":{"annotations":{"a":"b"}},"spec":{}}`, want: `{"annotations":{"a":"b"}}`},
		{name: "after the spec", obj: `{"spec":{"x":1}, "metadata" : {"name":"n"} }`, want: `{"name":"n"}`},
		{name: "the last one wins", obj: `{"metadata":{"name":"a"},"spec":{},"metadata":null}`, want: `null`},
		{name: "escaped name", obj: `{"\u006detadata":[1],"spec":{}}`, want: `[1]`},
		{name: "nested is not top-level", obj: `{"spec":{"metadata":{"name":"x"}}}`, absent: true},
		{name: "absent", obj: `{"spec":{}}`, absent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, raw, err := OfObjectWith([]byte(tc.obj), "metadata")
			if err != nil {
				t.Fatal(err)
			}
			if want := mustObjectDigest(t, []byte(tc.obj)); d != want {
				t.Errorf("digest %s, OfObject says %s", d, want)
			}
			if tc.absent {
				if raw != nil {
					t.Errorf("got %q, want nothing", raw)
				}
				return
			}
			if string(raw) != tc.want {
				t.Errorf("got %q, want %q", raw, tc.want)
			}
		})
	}
	if _, _, err := OfObjectWith([]byte(`{"metadata":{"a":},"spec":{}}`), "metadata"); err == nil {
		t.Error("invalid JSON in the member was not refused")
	}
}
