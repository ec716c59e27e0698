package sigstore

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/testing/proc"
)

// SPIRE is a running SPIRE v1.13.3: a server (SQLite, join-token node
// attestation, JWT-SVIDs issued as Issuer), one agent serving the Workload
// API on Socket (unix workload attestation: a process is known by its
// uid), and the OIDC discovery provider that publishes the server's JWT
// keys at Issuer.URL, for Fulcio's spiffe issuer type.
type SPIRE struct {
	TrustDomain string
	Issuer      Issuer
	// Socket is the agent's Workload API socket (SPIFFE_ENDPOINT_SOCKET).
	Socket string

	admin string // the server's admin API socket
	bin   string
}

// StartSPIRE starts SPIRE for one test, stopped with it.
func StartSPIRE(t testing.TB) *SPIRE {
	t.Helper()
	dir, err := os.MkdirTemp("", "tollgate-spire-") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := ports(2)
	if err != nil {
		t.Fatal(err)
	}
	s := &SPIRE{TrustDomain: "tollgate.test", Socket: filepath.Join(dir, "agent.sock"), admin: filepath.Join(dir, "server.sock"),
		bin: proc.Tool(t, root(), "spire-server")}
	s.Issuer = Issuer{URL: fmt.Sprintf("http://127.0.0.1:%d", p[1]), Type: "spiffe", TrustDomain: s.TrustDomain}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	server := write("server.conf", fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "INFO"
  jwt_issuer = %q
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`, p[0], s.admin, s.TrustDomain, filepath.Join(dir, "server-data"), s.Issuer.URL, filepath.Join(dir, "datastore.sqlite3")))
	srv := proc.Start(t, "spire-server", s.bin, nil, "run", "-config", server)
	srv.WaitFor(t, "healthy", func() error {
		out, err := exec.Command(s.bin, "healthcheck", "-socketPath", s.admin).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	token := s.run(t, "token", "generate", "-spiffeID", s.id("node"))
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(token)
	if m == nil {
		t.Fatalf("spire-server token generate: %s", token)
	}
	agent := write("agent.conf", fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  trust_domain = %q
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`, filepath.Join(dir, "agent-data"), p[0], s.Socket, s.TrustDomain))
	ag := proc.Start(t, "spire-agent", proc.Tool(t, root(), "spire-agent"), nil, "run", "-config", agent, "-joinToken", m[1])
	ag.WaitFor(t, "serving the Workload API", func() error { _, err := os.Stat(s.Socket); return err })
	oidc := write("oidc.conf", fmt.Sprintf(`log_level = "INFO"
domains = ["127.0.0.1"]
insecure_addr = "127.0.0.1:%d"
allow_insecure_scheme = true
jwt_issuer = %q
server_api {
  address = "unix://%s"
}
`, p[1], s.Issuer.URL, s.admin))
	op := proc.Start(t, "oidc-discovery-provider", proc.Tool(t, root(), "oidc-discovery-provider"), nil, "-config", oidc)
	op.WaitFor(t, "publishing the JWT keys", proc.HTTPOK(s.Issuer.URL+"/keys"))
	return s
}

// id is the SPIFFE ID of path in the trust domain.
func (s *SPIRE) id(path string) string { return "spiffe://" + s.TrustDomain + "/" + path }

// Register gives processes of uid the SPIFFE ID of path (e.g.
// ns/tollgate-system/sa/tollgate-signer) and returns it.
func (s *SPIRE) Register(t testing.TB, path string, uid int) string {
	t.Helper()
	id := s.id(path)
	s.run(t, "entry", "create", "-parentID", s.id("node"), "-spiffeID", id, "-selector", fmt.Sprintf("unix:uid:%d", uid))
	return id
}

func (s *SPIRE) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, append(args, "-socketPath", s.admin)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spire-server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
