package webhook

import (
	"context"
	"time"

	"github.com/go-logr/logr"
)

// retryUntil calls f every 2 s until it succeeds (what the webhook needs
// before it can serve: its certificate, its stamp keys) or ctx ends.
func retryUntil(ctx context.Context, log logr.Logger, what string, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		log.Error(err, what+"; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}
