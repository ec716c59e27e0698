package webhook

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

type countingCredentials struct {
	calls int
	fail  bool
}

func (c *countingCredentials) Keychain(context.Context, string, string, []string) (authn.Keychain, string, error) {
	c.calls++
	if c.fail {
		return nil, "", errors.New("API server down")
	}
	return authn.DefaultKeychain, "id", nil
}

// The audit reads a service account's pull secrets once per TTL, keyed by
// everything that selects them; a failed read is never kept.
func TestMemoCredentials(t *testing.T) {
	inner := &countingCredentials{}
	m := &memoCredentials{inner: inner, ttl: 50 * time.Millisecond, memo: map[string]memoKeychain{}}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, id, err := m.Keychain(ctx, "shop", "default", []string{"regcred"}); err != nil || id != "id" {
			t.Fatal(id, err)
		}
	}
	if inner.calls != 1 {
		t.Fatalf("%d reads for one key, want 1", inner.calls)
	}
	_, _, _ = m.Keychain(ctx, "shop", "default", []string{"other"})
	_, _, _ = m.Keychain(ctx, "bank", "default", []string{"regcred"})
	if inner.calls != 3 {
		t.Fatalf("%d reads for three keys, want 3", inner.calls)
	}
	time.Sleep(60 * time.Millisecond)
	_, _, _ = m.Keychain(ctx, "shop", "default", []string{"regcred"})
	if inner.calls != 4 {
		t.Fatalf("an expired keychain was served: %d reads", inner.calls)
	}
	failing := &countingCredentials{fail: true}
	m = &memoCredentials{inner: failing, ttl: time.Minute, memo: map[string]memoKeychain{}}
	for i := 0; i < 2; i++ {
		if _, _, err := m.Keychain(ctx, "shop", "default", nil); err == nil {
			t.Fatal("a failed read was answered")
		}
	}
	if failing.calls != 2 {
		t.Fatalf("a failed read was kept: %d reads", failing.calls)
	}
}
