// Package apijson decodes the JSON the Kubernetes API server sends to the
// run guard (AdmissionReviews and the runs and Pods inside them) in one
// pass. The image gate still decodes its workloads with sigs.k8s.io/json;
// the fuzz test already holds the two decoders together for Pods,
// Deployments and CronJobs.
//
// Unmarshal has the semantics of sigs.k8s.io/json's
// UnmarshalCaseSensitivePreserveInts, which is how the API server itself
// decodes objects: member names match exactly (case-sensitive), the last of
// a repeated member wins, unknown members are ignored, invalid UTF-8 is
// replaced by U+FFFD, and types' own UnmarshalJSON methods decode their
// values. It is implemented with encoding/json/v2 (go-json-experiment/json,
// its mirror for Go 1.26) under the v1 options: v1's decoder scans the bytes
// once to validate them and again to decode, and once more for every value
// kept raw (an AdmissionReview's object); v2 reads them once. The fuzz test
// holds the two decoders to the same results on every input, so a decision
// cannot depend on which one read the bytes.
//
// One difference is by construction: numbers decoded into interface{}
// values are float64 here, int64 where integral in sigs.k8s.io/json. The
// types this package decodes have no such values (a test walks them);
// decode free-form JSON with sigs.k8s.io/json.
//
// It imports only the standard library and the JSON decoder.
package apijson
