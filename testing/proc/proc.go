// Package proc runs the test servers the harnesses start (kube's
// neighbours: PostgreSQL, Trillian, Rekor, Fulcio, local-kms, Tekton's
// controller and webhook) as processes: output kept and shown when the test
// fails, stopped by their own PID when the test ends.
package proc

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a server a harness started: its output is kept and shown
// when the test fails, and it is stopped (SIGTERM, then SIGKILL) by its own
// PID when the test ends.
type Process struct {
	Name string
	// StopSignal asks the server to stop (SIGTERM unless set); it is
	// killed after a grace period: test servers keep nothing worth a slow
	// shutdown.
	StopSignal syscall.Signal
	// Cmd is the command; set its Env or SysProcAttr before Run.
	Cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error
}

// Buffer keeps the start of what a process writes (Limit bytes, 1 MiB
// when 0), safe for concurrent writers.
type Buffer struct {
	Limit int
	mu    sync.Mutex
	buf   bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.Limit
	if limit == 0 {
		limit = 1 << 20
	}
	if b.buf.Len() > limit { // keep the start of a chatty server's log
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tool is the path of a test tool in bin/ of the checkout at root (built
// by `make tools`).
func Tool(t testing.TB, root, name string) string {
	t.Helper()
	bin, err := ToolPath(root, name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// ToolPath is Tool for a caller that is not a test.
func ToolPath(root, name string) (string, error) {
	bin := filepath.Join(root, "bin", name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("bin/%s is not built: run `make tools` (it builds the test servers from the Go module proxy once, cached in ~/.cache/tollgate): %w", name, err)
	}
	return bin, nil
}

// New is a process not started yet: set Cmd.Env or Cmd.SysProcAttr, then Run.
func New(name, bin string, args ...string) *Process {
	return &Process{Name: name, Cmd: exec.Command(bin, args...), out: &Buffer{}, done: make(chan struct{})}
}

// Start runs a server; attr, when set, runs it as another user.
func Start(t testing.TB, name, bin string, attr *syscall.SysProcAttr, args ...string) *Process {
	t.Helper()
	p := New(name, bin, args...)
	p.Cmd.SysProcAttr = attr
	p.Run(t)
	return p
}

// Launch starts the process; the caller stops it (Stop).
func (p *Process) Launch() error {
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	if err := p.Cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return nil
}

// Run starts the process, stopped when the test ends.
func (p *Process) Run(t testing.TB) {
	t.Helper()
	if err := p.Launch(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.Name, p.out)
		}
	})
}

// Output is what the process printed so far (its first MiB).
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop stops the process: its stop signal, then SIGKILL after 3 s.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// WaitFor polls ready until it returns nil, the process exits or a minute
// passes.
func (p *Process) WaitFor(t testing.TB, what string, ready func() error) {
	t.Helper()
	if err := p.Await(what, ready); err != nil {
		t.Fatal(err)
	}
}

// Await is WaitFor for a caller that is not a test.
func (p *Process) Await(what string, ready func() error) error {
	deadline := time.Now().Add(time.Minute)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s: %v\n%s", p.Name, what, p.err, p.out)
		default:
		}
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: not %s after a minute: %v\n%s", p.Name, what, err, p.out)
}

// FreePort returns a loopback port nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Port is FreePort for a caller that is not a test.
func Port() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// HTTPOK is a readiness check: GET url answers 200.
func HTTPOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// DialOK is a readiness check: addr accepts TCP connections.
func DialOK(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}
