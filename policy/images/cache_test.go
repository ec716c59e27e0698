package images

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheSharesOneVerification(t *testing.T) {
	c, err := NewCache(DefaultCacheOptions())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	release := make(chan struct{})
	verify := func(context.Context) (*Result, error) {
		calls.Add(1)
		<-release
		return &Result{Digest: "sha256:x", Attestations: []VerifiedAttestation{{Requirement: "p", Statement: []byte(`{"a":1}`)}}}, nil
	}
	k := Key{Digest: "sha256:x", Fingerprint: "f"}
	var wg sync.WaitGroup
	results := make([]*Result, 500)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _, err := c.Do(t.Context(), k, verify)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them all join the flight
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("500 concurrent checks ran %d verifications, want 1", n)
	}
	for _, r := range results {
		if r != results[0] {
			t.Fatal("callers got different results")
		}
	}
	r, hit, err := c.Do(t.Context(), k, verify)
	if err != nil || !hit || string(r.Attestations[0].Statement) != `{"a":1}` {
		t.Fatalf("want a hit with the verified statement: %v %v %+v", err, hit, r)
	}
	if calls.Load() != 1 {
		t.Fatal("a hit verified again")
	}
}

func TestCacheTTLAndBounds(t *testing.T) {
	opts := DefaultCacheOptions()
	opts.MaxEntries, opts.TTL, opts.NegativeTTL = 3, time.Minute, time.Second
	c, _ := NewCache(opts)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ok := func(context.Context) (*Result, error) { return &Result{}, nil }
	bad := func(context.Context) (*Result, error) {
		return &Result{Failures: []Failure{{Requirement: "signature"}}}, nil
	}
	broken := func(context.Context) (*Result, error) { return nil, errors.New("registry down") }

	k := func(i int) Key { return Key{Digest: fmt.Sprint(i), Fingerprint: "f"} }
	c.Do(t.Context(), k(1), ok)
	c.Do(t.Context(), k(2), bad)
	if _, _, err := c.Do(t.Context(), k(3), broken); err == nil {
		t.Fatal("want the registry error")
	}
	if _, hit, _ := c.Do(t.Context(), k(3), ok); hit {
		t.Fatal("a registry error was cached")
	}
	now = now.Add(2 * time.Second)
	if _, hit, _ := c.Do(t.Context(), k(2), bad); hit {
		t.Fatal("a failure outlived the negative TTL")
	}
	if _, hit, _ := c.Do(t.Context(), k(1), ok); !hit {
		t.Fatal("a verified result expired early")
	}
	now = now.Add(2 * time.Minute)
	if _, hit, _ := c.Do(t.Context(), k(1), ok); hit {
		t.Fatal("a verified result outlived the TTL")
	}
	for i := 10; i < 20; i++ {
		c.Do(t.Context(), k(i), ok)
	}
	if s := c.Stats(); s.Entries > 3 {
		t.Fatalf("cache holds %d entries, bound is 3", s.Entries)
	}
	// Another fingerprint (policy generation, trust material) never hits.
	if _, hit, _ := c.Do(t.Context(), Key{Digest: "19", Fingerprint: "g"}, ok); hit {
		t.Fatal("a result was served under another fingerprint")
	}
}

func TestCacheCallerGivesUp(t *testing.T) {
	c, _ := NewCache(DefaultCacheOptions())
	release := make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, _, err := c.Do(ctx, Key{Digest: "d"}, func(vctx context.Context) (*Result, error) {
		<-release
		return &Result{}, vctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the caller's deadline, got %v", err)
	}
	close(release)
	// The shared verification was not cancelled with the caller and fills the cache.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, ok := c.get(Key{Digest: "d"}); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the verification was abandoned with its first caller")
}

// A verification that panics (third-party parsing of what a registry
// served) must not take the process down: the flight runs on its own
// goroutine, where only a recover inside it can catch the panic.
func TestCachePanicInVerificationIsAnError(t *testing.T) {
	c, _ := NewCache(DefaultCacheOptions())
	k := Key{Repository: "r", Digest: "d", Fingerprint: "f"}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = c.Do(t.Context(), k, func(context.Context) (*Result, error) {
				var m map[string]any
				_ = m["body"].(string) // what cosign's VerifyBundle does with "{}"
				return &Result{}, nil
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var pe *PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("want a *PanicError, got %v", err)
		}
	}
	if s := c.Stats(); s.Panics < 1 || s.Entries != 0 {
		t.Fatalf("want the panic counted and nothing cached, got %+v", s)
	}
	if _, hit, err := c.Do(t.Context(), k, func(context.Context) (*Result, error) { return &Result{}, nil }); err != nil || hit {
		t.Fatalf("after a panic the next verification must run afresh: hit=%v err=%v", hit, err)
	}
}

// A failure read from one repository is never served for the same digest
// read from another repository, or with other credentials.
func TestCacheKeyedByWhatWasRead(t *testing.T) {
	c, _ := NewCache(DefaultCacheOptions())
	bad := func(context.Context) (*Result, error) {
		return &Result{Failures: []Failure{{Requirement: "signature", Message: "no signature is attached"}}}, nil
	}
	ok := func(context.Context) (*Result, error) { return &Result{}, nil }
	c.Do(t.Context(), Key{Repository: "attacker/empty", Credentials: "anonymous", Digest: "d", Fingerprint: "f"}, bad)
	if r, hit, _ := c.Do(t.Context(), Key{Repository: "victim/app", Credentials: "anonymous", Digest: "d", Fingerprint: "f"}, ok); hit || !r.Verified() {
		t.Fatalf("another repository's failure was served: hit=%v %+v", hit, r)
	}
	if _, hit, _ := c.Do(t.Context(), Key{Repository: "victim/app", Credentials: "team-b-secret", Digest: "d", Fingerprint: "f"}, ok); hit {
		t.Fatal("a result read with other credentials was served")
	}
}
