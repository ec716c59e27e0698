package sigstore

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

// process is a server the harness started: its output is kept and shown
// when the test fails, and it is stopped (SIGTERM, then SIGKILL) by its own
// PID when the test ends.
type process struct {
	name string
	// stopSignal asks the server to stop (SIGTERM unless set); it is
	// killed after a grace period: test servers keep nothing worth a slow
	// shutdown.
	stopSignal syscall.Signal
	cmd        *exec.Cmd
	out        *syncBuffer
	done       chan struct{}
	err        error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep the start of a chatty server's log
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tool is the path of a test tool in bin/ (built by `make tools`).
func tool(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(root(), "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/%s is not built: run `make tools` (it builds the keyless servers from the Go module proxy once, cached in ~/.cache/tollgate): %v", name, err)
	}
	return bin
}

// start runs a server; attr, when set, runs it as another user.
func start(t testing.TB, name, bin string, attr *syscall.SysProcAttr, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.SysProcAttr = attr
	p.run(t)
	return p
}

// run starts the process, stopped when the test ends.
func (p *process) run(t testing.TB) {
	t.Helper()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.name, p.out)
		}
	})
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	sig := p.stopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls ready until it returns nil, the process exits or a minute
// passes.
func (p *process) waitFor(t testing.TB, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before %s: %v\n%s", p.name, what, p.err, p.out)
		default:
		}
		if err = ready(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not %s after a minute: %v\n%s", p.name, what, err, p.out)
}

// freePort returns a loopback port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpOK is a readiness check: GET url answers 200.
func httpOK(url string) func() error {
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

// dialOK is a readiness check: addr accepts TCP connections.
func dialOK(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}
