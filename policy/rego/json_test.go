package rego

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// FuzzParseJSON: ParseJSON accepts exactly what encoding/json accepts and
// yields the value OPA's own conversion yields.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2.5,-3e2,true,false,null,"x\"y\u00e9"],"b":{"c":{}},"d":[]}`,
		`{"a":1,"a":2}`, `[]`, `"\ud83d\ude00"`, `0`, `-0.0e+1`, ` {"k" : [ 1 , {"x":"y"} ] } `,
		`{"a":}`, `[1,]`, `01`, `"\x"`, "\"a\tb\"", `{"a":1}x`, "\"\xff\"", `1.`, `-`, `tru`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseJSON(b)
		var v any
		// OPA reads JSON with numbers kept exact (json.Number), as ParseJSON does.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		jerr := dec.Decode(&v)
		if jerr == nil && dec.More() {
			jerr = errors.New("trailing data")
		}
		if jerr == nil {
			if _, err := dec.Token(); err != io.EOF {
				jerr = errors.New("trailing data")
			}
		}
		if (err == nil) != (jerr == nil) {
			t.Fatalf("ParseJSON error %v, encoding/json error %v, input %q", err, jerr, b)
		}
		if err != nil {
			return
		}
		want, err := ast.InterfaceToValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("ParseJSON %v, want %v (input %q)", got, want, b)
		}
	})
}

func TestParseJSONLargeObjects(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("{")
	for i := range 200000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i%150000, i) // duplicates after 150,000
	}
	b.WriteString("}")
	v, err := ParseJSON(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(ast.Object)
	if obj.Len() != 150000 {
		t.Fatalf("%d keys", obj.Len())
	}
	if got := obj.Get(ast.StringTerm("k0")); got == nil || got.Value.Compare(ast.Number("150000")) != 0 {
		t.Fatalf("k0 = %v, want the last value 150000", got)
	}
}
