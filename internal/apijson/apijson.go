package apijson

import (
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// options are v1's semantics with exact member names, as the API server
// decodes (sigs.k8s.io/json's case-sensitive mode).
var options = jsonv2.JoinOptions(
	jsonv1.DefaultOptionsV1(),
	jsonv2.MatchCaseInsensitiveNames(false),
	jsonv1.MatchCaseSensitiveDelimiter(false),
)

// Unmarshal decodes data into v, which must be a non-nil pointer, in one
// pass over the bytes.
func Unmarshal(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, options)
}
