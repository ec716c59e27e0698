package images

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// CacheOptions bound the verification cache.
type CacheOptions struct {
	// MaxEntries and MaxBytes bound the cache; the least recently used
	// result goes first.
	MaxEntries int
	MaxBytes   int64
	// TTL is how long a verified result is served; NegativeTTL how long a
	// failed one is. Registry errors are never cached.
	TTL         time.Duration
	NegativeTTL time.Duration
	// VerifyTimeout bounds one shared verification, whoever waits for it.
	VerifyTimeout time.Duration
}

// DefaultCacheOptions keep 10,000 results for 10 minutes (failures 15 s).
func DefaultCacheOptions() CacheOptions {
	return CacheOptions{MaxEntries: 10000, MaxBytes: 128 << 20, TTL: 10 * time.Minute, NegativeTTL: 15 * time.Second, VerifyTimeout: 25 * time.Second}
}

// Validate reports options that would make the cache useless or unbounded.
func (o CacheOptions) Validate() error {
	if o.MaxEntries <= 0 || o.MaxBytes <= 0 {
		return errors.New("the verification cache needs a positive entry and byte bound")
	}
	if o.TTL <= 0 || o.NegativeTTL < 0 || o.VerifyTimeout <= 0 {
		return errors.New("the verification cache TTL and timeout must be positive")
	}
	return nil
}

// Key identifies a verified result by everything the verification read:
// the repository the signatures were read from, the identity of the
// credentials they were read with, the digest, and the policy's
// fingerprint (policy UID, generation and trust material). A failure read
// from one repository (an attacker's, holding nothing) is never served for
// the same digest in another (the victim's, holding its signatures).
type Key struct {
	Repository  string
	Credentials string
	Digest      string
	Fingerprint string
}

func (k Key) flight() string {
	return k.Repository + "\x00" + k.Credentials + "\x00" + k.Digest + "\x00" + k.Fingerprint
}

// PanicError is a panic recovered from a verification: third-party
// parsing of what a registry served crashed. The verification counts as
// not done (never cached), and admission denies naming an internal fault.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("the verification failed internally (recovered panic: %v)", e.Value)
}

type entry struct {
	key     Key
	result  *Result
	size    int64
	expires time.Time
}

// Cache holds verified results and shares concurrent verifications of one
// key: 500 admissions of one new digest cause one verification.
type Cache struct {
	opts  CacheOptions
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	lru     *list.List // front: most recent
	entries map[Key]*list.Element
	bytes   int64

	hits, misses, verifications, errors, panics atomic.Int64
}

// NewCache returns an empty cache.
func NewCache(opts CacheOptions) (*Cache, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Cache{opts: opts, now: time.Now, lru: list.New(), entries: map[Key]*list.Element{}}, nil
}

// Stats are the cache's counters.
type Stats struct {
	Hits, Misses, Verifications int64
	// Errors counts verifications that could not finish (registry errors,
	// timeouts): not cached, and denied in Enforce.
	Errors int64
	// Panics counts verifications that panicked (recovered; also in Errors).
	Panics  int64
	Entries int
	Bytes   int64
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Verifications: c.verifications.Load(), Errors: c.errors.Load(), Panics: c.panics.Load(), Entries: c.lru.Len(), Bytes: c.bytes}
}

func (c *Cache) get(k Key) (*Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*entry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.result, true
}

func (c *Cache) put(k Key, r *Result) {
	ttl := c.opts.TTL
	if !r.Verified() {
		ttl = c.opts.NegativeTTL
	}
	if ttl <= 0 {
		return
	}
	size := r.size()
	if size > c.opts.MaxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.remove(el)
	}
	el := c.lru.PushFront(&entry{key: k, result: r, size: size, expires: c.now().Add(ttl)})
	c.entries[k] = el
	c.bytes += size
	for c.lru.Len() > c.opts.MaxEntries || c.bytes > c.opts.MaxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// Do returns the cached result for k, or runs verify once for every caller
// waiting on the same k. verify runs with its own deadline
// (VerifyTimeout), not the caller's: a caller that gives up does not cancel
// it for the others. A panic in verify is recovered inside the flight (the
// flight runs on its own goroutine, where no caller's recover reaches) and
// returned as a *PanicError.
func (c *Cache) Do(ctx context.Context, k Key, verify func(context.Context) (*Result, error)) (res *Result, hit bool, err error) {
	if r, ok := c.get(k); ok {
		c.hits.Add(1)
		return r, true, nil
	}
	c.misses.Add(1)
	ch := c.group.DoChan(k.flight(), func() (any, error) {
		if r, ok := c.get(k); ok { // a flight that just finished filled it
			return r, nil
		}
		c.verifications.Add(1)
		r, err := c.run(ctx, verify)
		if err != nil {
			c.errors.Add(1)
			return nil, err
		}
		c.put(k, r)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case out := <-ch:
		if out.Err != nil {
			return nil, false, out.Err
		}
		return out.Val.(*Result), false, nil
	}
}

// run calls verify under the verification deadline, turning a panic into a
// *PanicError.
func (c *Cache) run(ctx context.Context, verify func(context.Context) (*Result, error)) (r *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.panics.Add(1)
			r, err = nil, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.VerifyTimeout)
	defer cancel()
	return verify(vctx)
}
