package profiling

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStart: the index, a heap profile and the goroutine dump answer on the
// address; an address in use is an error at once.
func TestStart(t *testing.T) {
	addr, err := Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile", "/debug/pprof/goroutine?debug=1": "goroutine profile"} {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %s %.200s", path, resp.Status, b)
		}
	}
	if _, err := Start(t.Context(), addr.String()); err == nil || !strings.Contains(err.Error(), "--profiling-address") {
		t.Errorf("an address in use: %v", err)
	}
}
