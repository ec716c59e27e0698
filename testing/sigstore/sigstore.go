// Package sigstore runs the real keyless servers for tests (and for
// make demo KEYLESS=1), on loopback:
// Fulcio v1.8.8 (its ephemeral CA, trusting the harness's kube-apiserver as
// the Kubernetes OIDC issuer) and Rekor v1.5.4 on Trillian v1.7.3 on
// PostgreSQL 15 (the machine's own). The binaries come from `make tools`
// (testing/tools/sigstore, one module). Everything stops with the test.
//
// What is not the production shape: PostgreSQL runs with fsync off; Rekor's
// search index is an in-process Redis (miniredis) because Rekor v1 indexes
// only in Redis or MySQL and neither is installed here; the CT log is not
// run (Fulcio is started with --ct-log-url "", so certificates carry no
// SCT, and trust roots here name no CT log).
package sigstore

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
)

// Issuer is an OIDC issuer Fulcio trusts: the kube-apiserver's service
// account issuer, its discovery endpoints served over HTTPS with CA.
type Issuer struct {
	URL string
	CA  []byte
	// Type is Fulcio's issuer type: "kubernetes" (empty) or "spiffe", whose
	// tokens are JWT-SVIDs of TrustDomain.
	Type        string
	TrustDomain string
}

// Stack is a running Fulcio and Rekor.
type Stack struct {
	// FulcioURL and RekorURL are http://127.0.0.1:PORT.
	FulcioURL, RekorURL string
	// FulcioRoots is the PEM root certificate of Fulcio's CA; RekorKey the
	// PEM public key of the log.
	FulcioRoots, RekorKey []byte
	// TreeID is Rekor's Trillian tree.
	TreeID int64

	root    string
	dir     string
	rekor   *rekor
	stops   []func() // in the order started
	started []*proc.Process
}

// rekorV1 serializes the tests that run Rekor v1: it binds its metrics on
// :2112 of every interface, with no flag to move it.
var rekorV1 sync.Mutex

func root() string { return envtest.Root() }

// Start starts PostgreSQL, Trillian, Rekor and Fulcio (trusting the
// issuers) for one test.
func Start(t testing.TB, issuers ...Issuer) *Stack {
	t.Helper()
	rekorV1.Lock()
	t.Cleanup(rekorV1.Unlock)
	s, err := Run(root(), issuers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the keyless servers' output:\n%s", s.Output())
		}
		s.Stop()
	})
	return s
}

// Run is Start for a caller that is not a test (make demo KEYLESS=1),
// with the tools of the checkout at root; Stop stops everything it
// started. Rekor v1 binds :2112: one Stack at a time on a machine.
func Run(root string, issuers ...Issuer) (s *Stack, err error) {
	s = &Stack{root: root}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "tollgate-sigstore-"); err != nil {
		return nil, err
	}
	dir := s.dir
	s.onStop(func() { os.RemoveAll(dir) })
	dsn, err := s.startPostgres()
	if err != nil {
		return nil, err
	}
	trillian, err := s.startTrillian(dsn)
	if err != nil {
		return nil, err
	}
	if err := s.startRekor(trillian); err != nil {
		return nil, err
	}
	if s.FulcioURL, s.FulcioRoots, err = s.startFulcio(issuers); err != nil {
		return nil, err
	}
	return s, nil
}

// Stop stops every server, last started first, and removes their data.
func (s *Stack) Stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

func (s *Stack) onStop(f func()) { s.stops = append(s.stops, f) }

// Output is what every server printed so far.
func (s *Stack) Output() string {
	var b strings.Builder
	for _, p := range s.started {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.Name, p.Output())
	}
	return b.String()
}

// launch starts a server, stopped with the stack, and waits until ready.
func (s *Stack) launch(p *proc.Process, what string, ready func() error) error {
	if err := p.Launch(); err != nil {
		return err
	}
	s.started = append(s.started, p)
	s.onStop(p.Stop)
	return p.Await(what, ready)
}

// tempDir is a new directory in the stack's scratch directory.
func (s *Stack) tempDir(name string) (string, error) {
	return os.MkdirTemp(s.dir, name+"-")
}

// startPostgres initializes a database cluster in a scratch directory and
// runs it on a loopback port, as the postgres user when this is root
// (PostgreSQL refuses to run as root). It returns the Trillian database's
// URI, with Trillian's schema loaded.
func (s *Stack) startPostgres() (string, error) {
	bindir, err := pgBin()
	if err != nil {
		return "", fmt.Errorf("PostgreSQL: %w", err)
	}
	dir, err := s.tempDir("pg")
	if err != nil {
		return "", err
	}
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("PostgreSQL does not run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		// Its directory and every one above it must be reachable by it.
		for _, d := range []string{s.dir, dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				return "", err
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = attr
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := proc.Port()
	if err != nil {
		return "", err
	}
	p := proc.New("postgres", filepath.Join(bindir, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	p.Cmd.SysProcAttr = attr
	p.StopSignal = syscall.SIGINT // fast shutdown: its children stop with it
	if err := s.launch(p, "accepting connections", func() error {
		out, err := exec.Command(filepath.Join(bindir, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(port)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		return "", err
	}
	psql := func(db string, args ...string) error {
		cmd := exec.Command(filepath.Join(bindir, "psql"), append([]string{"-v", "ON_ERROR_STOP=1", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", db}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("psql %v: %v\n%s", args, err, out)
		}
		return nil
	}
	schema, err := trillianSchema(s.root)
	if err != nil {
		return "", err
	}
	if err := psql("postgres", "-c", "CREATE DATABASE trillian"); err != nil {
		return "", err
	}
	if err := psql("trillian", "-f", schema); err != nil {
		return "", err
	}
	return fmt.Sprintf("postgresql:///trillian?host=%s&port=%d&user=postgres&sslmode=disable", "127.0.0.1", port), nil
}

// pgBin is the directory of the machine's PostgreSQL server programs.
func pgBin() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		return "", fmt.Errorf("no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian's postgresql package)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// trillianSchema is Trillian's PostgreSQL schema, from the module the
// tools were built from.
func trillianSchema(root string) (string, error) {
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian")
	list.Dir = filepath.Join(root, "testing", "tools", "sigstore")
	out, err := list.Output()
	if err != nil {
		return "", fmt.Errorf("locating Trillian's schema (go list -m github.com/google/trillian in testing/tools/sigstore): %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "storage", "postgresql", "schema", "storage.sql"), nil
}

// ports are n free loopback ports.
func ports(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := proc.Port()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// startTrillian runs Trillian's log server and log signer (this one
// signer is always the master) on the database; it returns the log
// server's gRPC address.
func (s *Stack) startTrillian(dsn string) (string, error) {
	common := []string{"--storage_system=postgresql", "--quota_system=postgresql", "--postgresql_uri=" + dsn}
	p, err := ports(4)
	if err != nil {
		return "", err
	}
	rpc := fmt.Sprintf("127.0.0.1:%d", p[0])
	serverBin, err := proc.ToolPath(s.root, "trillian_log_server")
	if err != nil {
		return "", err
	}
	signerBin, err := proc.ToolPath(s.root, "trillian_log_signer")
	if err != nil {
		return "", err
	}
	server := proc.New("trillian_log_server", serverBin, append(common, "--rpc_endpoint="+rpc, fmt.Sprintf("--http_endpoint=127.0.0.1:%d", p[1]))...)
	if err := s.launch(server, "serving gRPC", proc.DialOK(rpc)); err != nil {
		return "", err
	}
	signer := proc.New("trillian_log_signer", signerBin, append(common, "--force_master", "--sequencer_interval=50ms",
		fmt.Sprintf("--rpc_endpoint=127.0.0.1:%d", p[2]), fmt.Sprintf("--http_endpoint=127.0.0.1:%d", p[3]))...)
	if err := s.launch(signer, "running", func() error { return nil }); err != nil {
		return "", err
	}
	return rpc, nil
}

// rekor is how Rekor was started, to stop and start it again as the same
// log: its port, signing key (a file, not memory) and tree.
type rekor struct {
	proc                *proc.Process
	trillian, redisPort string
	port                int
	keyFile             string
}

// startRekor runs rekor-server on the Trillian log server (it creates its
// tree on the first start), with its signing key in a file and its search
// index in an in-process Redis, and fills in the stack's Rekor fields.
func (s *Stack) startRekor(trillian string) error {
	redis, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("miniredis: %w", err)
	}
	s.onStop(redis.Close)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(s.dir, "rekor-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	port, err := proc.Port()
	if err != nil {
		return err
	}
	s.rekor = &rekor{trillian: trillian, redisPort: redis.Port(), port: port, keyFile: keyFile}
	s.RekorURL = fmt.Sprintf("http://127.0.0.1:%d", s.rekor.port)
	if err := s.runRekor(); err != nil {
		return err
	}
	if s.RekorKey, err = get(s.RekorURL + "/api/v1/log/publicKey"); err != nil {
		return fmt.Errorf("rekor-server: %w", err)
	}
	info, err := get(s.RekorURL + "/api/v1/log")
	if err != nil {
		return fmt.Errorf("rekor-server: %w", err)
	}
	var log struct {
		TreeID string `json:"treeID"`
	}
	if err := json.Unmarshal(info, &log); err != nil {
		return fmt.Errorf("rekor-server /api/v1/log: %w\n%s", err, info)
	}
	s.TreeID, _ = strconv.ParseInt(log.TreeID, 10, 64)
	return nil
}

// StartRekor (re)starts Rekor: the same port, key and, once it has one,
// tree.
func (s *Stack) StartRekor(t testing.TB) {
	t.Helper()
	if err := s.runRekor(); err != nil {
		t.Fatal(err)
	}
}

func (s *Stack) runRekor() error {
	r := s.rekor
	host, port, _ := strings.Cut(r.trillian, ":")
	args := []string{"serve",
		"--trillian_log_server.address=" + host, "--trillian_log_server.port=" + port,
		"--rekor_server.address=127.0.0.1", "--port=" + strconv.Itoa(r.port), "--rekor_server.signer=" + r.keyFile,
		"--search_index.storage_provider=redis", "--redis_server.address=127.0.0.1", "--redis_server.port=" + r.redisPort,
		"--enable_attestation_storage=false", "--log_type=prod"}
	if s.TreeID != 0 {
		args = append(args, fmt.Sprintf("--trillian_log_server.tlog_id=%d", s.TreeID))
	}
	bin, err := proc.ToolPath(s.root, "rekor-server")
	if err != nil {
		return err
	}
	r.proc = proc.New("rekor-server", bin, args...)
	return s.launch(r.proc, "serving its log", proc.HTTPOK(s.RekorURL+"/api/v1/log"))
}

// StopRekor stops Rekor (its database and index stay).
func (s *Stack) StopRekor() { s.rekor.proc.Stop() }

// startFulcio runs Fulcio with an ephemeral CA, trusting the issuers
// (audience "sigstore"), without a CT log. It returns Fulcio's URL and its
// root certificate.
func (s *Stack) startFulcio(issuers []Issuer) (string, []byte, error) {
	dir, err := s.tempDir("fulcio")
	if err != nil {
		return "", nil, err
	}
	trusted := map[string]any{}
	for _, iss := range issuers {
		c := map[string]any{"IssuerURL": iss.URL, "ClientID": "sigstore", "Type": cmp.Or(iss.Type, "kubernetes")}
		if len(iss.CA) > 0 {
			c["CACert"] = string(iss.CA)
		}
		if iss.TrustDomain != "" {
			c["SPIFFETrustDomain"] = iss.TrustDomain
		}
		trusted[iss.URL] = c
	}
	cfg, err := json.Marshal(map[string]any{"OIDCIssuers": trusted})
	if err != nil {
		return "", nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return "", nil, err
	}
	p, err := ports(3)
	if err != nil {
		return "", nil, err
	}
	bin, err := proc.ToolPath(s.root, "fulcio")
	if err != nil {
		return "", nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", p[0])
	fulcio := proc.New("fulcio", bin, "serve", "--ca", "ephemeralca", "--config-path", cfgPath,
		"--host", "127.0.0.1", "--port", strconv.Itoa(p[0]),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(p[1]), "--metrics-port", strconv.Itoa(p[2]),
		"--ct-log-url", "", "--legacy-unix-domain-socket", filepath.Join(dir, "legacy.sock"))
	if err := s.launch(fulcio, "serving its root", proc.HTTPOK(url+"/api/v1/rootCert")); err != nil {
		return "", nil, err
	}
	roots, err := get(url + "/api/v1/rootCert")
	if err != nil {
		return "", nil, fmt.Errorf("fulcio: %w", err)
	}
	return url, roots, nil
}

func get(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, err
}

// IssuerOf is the kube-apiserver's service-account issuer and the CA of
// its serving certificate, with the issuer's discovery endpoints opened to
// anonymous callers (as a cluster does for an external OIDC verifier:
// the system:service-account-issuer-discovery role bound to
// system:unauthenticated).
func IssuerOf(t testing.TB, env *envtest.Env) Issuer {
	t.Helper()
	iss, err := IssuerFor(t.Context(), env.Config, env.Client)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// IssuerFor is IssuerOf for a caller that is not a test: the API server
// cfg names, c an administrator's client of it.
func IssuerFor(ctx context.Context, cfg *rest.Config, c client.Client) (Issuer, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.CAData)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-test-oidc-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:unauthenticated"}},
	}
	if err := c.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		return Issuer{}, fmt.Errorf("opening the OIDC discovery endpoints: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/.well-known/openid-configuration")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &doc) == nil && doc.Issuer != "" {
				return Issuer{URL: doc.Issuer, CA: cfg.CAData}, nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			return Issuer{}, fmt.Errorf("the API server's OIDC discovery document: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Token is a TokenRequest token of service account ns/name with audience
// "sigstore", as a projected volume would hold it (the account is created
// if missing).
func Token(t testing.TB, env *envtest.Env, ns, name string) string {
	t.Helper()
	tok, err := TokenFor(t.Context(), env.Client, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TokenFor is Token for a caller that is not a test, with an
// administrator's client.
func TokenFor(ctx context.Context, c client.Client, ns, name string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("service account %s/%s: %w", ns, name, err)
	}
	expiry := int64(3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sigstore"}, ExpirationSeconds: &expiry}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("a token for %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// StartLocalKMS runs local-kms, a real implementation of the AWS KMS API,
// on a loopback port with its data in a scratch directory, and returns
// the environment that points the AWS SDK's standard credential and
// endpoint chain at it (AWS_ENDPOINT_URL, a region, static credentials):
// `awskms:///alias/NAME` references then resolve there, in the signer and
// in cosign alike.
func StartLocalKMS(t testing.TB) []string {
	t.Helper()
	port := proc.FreePort(t)
	p := proc.New("local-kms", proc.Tool(t, root(), "local-kms"))
	p.Cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "KMS_DATA_PATH="+t.TempDir(), "KMS_REGION=us-east-1",
		"KMS_ACCOUNT_ID=111122223333", "KMS_SEED_PATH="+filepath.Join(t.TempDir(), "no-seed.yaml"))
	p.Run(t)
	p.WaitFor(t, "accepting connections", proc.DialOK(fmt.Sprintf("127.0.0.1:%d", port)))
	return []string{
		fmt.Sprintf("AWS_ENDPOINT_URL=http://127.0.0.1:%d", port),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=tollgate-test", "AWS_SECRET_ACCESS_KEY=tollgate-test",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
