package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/webhook"
)

// service plays a Kubernetes Service in front of webhook pods: a TCP proxy
// that sends new connections only to backends whose /readyz answers 200,
// checked every 50 ms as endpoints would be updated.
type service struct {
	ln       net.Listener
	ca       []byte
	mu       sync.Mutex
	backends map[string]bool // address -> ready
	next     atomic.Int64
}

func startService(t *testing.T, addr string, ca []byte) *service {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &service{ln: ln, ca: ca, backends: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go s.probe(ctx)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.forward(c)
		}
	}()
	return s
}

func (s *service) set(addr string, present bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if present {
		s.backends[addr] = false
	} else {
		delete(s.backends, addr)
	}
}

func (s *service) probe(ctx context.Context) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ca)
	c := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for ctx.Err() == nil {
		s.mu.Lock()
		addrs := make([]string, 0, len(s.backends))
		for a := range s.backends {
			addrs = append(addrs, a)
		}
		s.mu.Unlock()
		for _, a := range addrs {
			ok := false
			if resp, err := c.Get("https://" + a + "/readyz"); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
			s.mu.Lock()
			if _, still := s.backends[a]; still {
				s.backends[a] = ok
			}
			s.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *service) forward(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	var ready []string
	for a, ok := range s.backends {
		if ok {
			ready = append(ready, a)
		}
	}
	s.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	up, err := net.Dial("tcp", ready[int(s.next.Add(1))%len(ready)])
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// TestRollingRestart: two webhook processes behind one address, restarted
// one after the other as a Deployment's rolling update does, while a loop
// of admissions runs through the API server: none is dropped.
func TestRollingRestart(t *testing.T) {
	env := prepareGuarded(t)
	svc := startService(t, env.WebhookAddr, env.CAData)
	type pod struct {
		addr string
		stop func()
	}
	start := func() *pod {
		addr, stop := env.RunWebhook(t, webhook.Config{Server: webhook.Options{Addr: "127.0.0.1:0", ShutdownDelay: time.Second}}, logr.Discard())
		if err := controlplane.WaitReady(t.Context(), addr, env.CAData, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		svc.set(addr, true)
		return &pod{addr: addr, stop: stop}
	}
	stop := func(p *pod) {
		p.stop() // readiness turns false, the Service stops sending, then it drains
		svc.set(p.addr, false)
	}
	pods := []*pod{start(), start()}
	time.Sleep(200 * time.Millisecond)

	stopLoop := admissionLoop(t, env, "rollout", 3)
	time.Sleep(time.Second)
	// The rolling update: a new pod up and ready, then an old one down; twice.
	for i := range pods {
		fresh := start()
		time.Sleep(200 * time.Millisecond)
		stop(pods[i])
		pods[i] = fresh
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second)
	decided, dropped, last := stopLoop()
	if dropped != 0 {
		t.Fatalf("%d of %d admissions dropped during the rolling restart; last: %s", dropped, dropped+decided, last)
	}
	if decided < 20 {
		t.Fatalf("only %d admissions during the restart", decided)
	}
	t.Logf("%d admissions decided during a rolling restart of two webhooks, none dropped", decided)
}
