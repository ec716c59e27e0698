package webhook

import (
	"sync/atomic"
	"testing"
	"time"
)

// A review that panics on a warm worker is answered through onPanic, and
// the worker goes on serving: no input may crash the process or shrink the
// pool.
func TestWarmStacksRecoverPanics(t *testing.T) {
	s := &warmStacks{jobs: make(chan *stackJob)}
	stop := make(chan struct{})
	defer close(stop)
	s.start(1, stop)
	time.Sleep(10 * time.Millisecond) // the worker waits for a job
	var panics atomic.Int32
	for i := 0; i < 3; i++ {
		s.run(func() { panic("crafted review") }, func(p any) {
			if p != "crafted review" {
				t.Errorf("onPanic got %v", p)
			}
			panics.Add(1)
		})
	}
	if panics.Load() != 3 {
		t.Fatalf("%d panics reported, want 3", panics.Load())
	}
	ran := false
	s.run(func() { ran = true }, func(any) { t.Error("no panic expected") })
	if !ran {
		t.Fatal("a job after the panics did not run")
	}
}

// Without an idle worker the review runs on the caller's goroutine, at
// once: a review is never queued behind another.
func TestWarmStacksRunInlineWhenBusy(t *testing.T) {
	s := &warmStacks{jobs: make(chan *stackJob)} // no workers
	done := make(chan struct{})
	go func() {
		s.run(func() {}, func(any) {})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the job waited for a worker")
	}
	var panicked bool
	s.run(func() { panic("inline") }, func(any) { panicked = true })
	if !panicked {
		t.Fatal("a panic on the caller's goroutine was not reported")
	}
}
