// Package sigstore runs the real keyless servers for tests, on loopback:
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

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
)

// Issuer is an OIDC issuer Fulcio trusts: the kube-apiserver's service
// account issuer, its discovery endpoints served over HTTPS with CA.
type Issuer struct {
	URL string
	CA  []byte
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

	rekor *rekor
}

// rekorV1 serializes the tests that run Rekor v1: it binds its metrics on
// :2112 of every interface, with no flag to move it.
var rekorV1 sync.Mutex

func root() string { return envtest.Root() }

// Start starts PostgreSQL, Trillian, Rekor and Fulcio for one test.
func Start(t testing.TB, iss Issuer) *Stack {
	t.Helper()
	rekorV1.Lock()
	t.Cleanup(rekorV1.Unlock)
	dsn := startPostgres(t)
	trillian := startTrillian(t, dsn)
	s := &Stack{}
	s.startRekor(t, trillian)
	s.FulcioURL, s.FulcioRoots = startFulcio(t, iss)
	return s
}

// startPostgres initializes a database cluster in a scratch directory and
// runs it on a loopback port, as the postgres user when this is root
// (PostgreSQL refuses to run as root). It returns the Trillian database's
// URI, with Trillian's schema loaded.
func startPostgres(t testing.TB) string {
	t.Helper()
	bindir, err := pgBin()
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	dir, err := os.MkdirTemp("", "tollgate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("PostgreSQL does not run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if err := os.Chmod(dir, 0o755); err == nil {
			err = os.Chown(dir, uid, gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = attr
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := proc.FreePort(t)
	p := proc.Start(t, "postgres", filepath.Join(bindir, "postgres"), attr, "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	p.StopSignal = syscall.SIGINT // fast shutdown: its children stop with it
	p.WaitFor(t, "accepting connections", func() error {
		out, err := exec.Command(filepath.Join(bindir, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(port)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	psql := func(db string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bindir, "psql"), append([]string{"-v", "ON_ERROR_STOP=1", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", db}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %v: %v\n%s", args, err, out)
		}
	}
	psql("postgres", "-c", "CREATE DATABASE trillian")
	psql("trillian", "-f", trillianSchema(t))
	return fmt.Sprintf("postgresql:///trillian?host=%s&port=%d&user=postgres&sslmode=disable", "127.0.0.1", port)
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
func trillianSchema(t testing.TB) string {
	t.Helper()
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian")
	list.Dir = filepath.Join(root(), "testing", "tools", "sigstore")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("locating Trillian's schema (go list -m github.com/google/trillian in testing/tools/sigstore): %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "storage", "postgresql", "schema", "storage.sql")
}

// startTrillian runs Trillian's log server and log signer (this one
// signer is always the master) on the database; it returns the log
// server's gRPC address.
func startTrillian(t testing.TB, dsn string) string {
	t.Helper()
	common := []string{"--storage_system=postgresql", "--quota_system=postgresql", "--postgresql_uri=" + dsn}
	rpc := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(t))
	server := proc.Start(t, "trillian_log_server", proc.Tool(t, root(), "trillian_log_server"), nil,
		append(common, "--rpc_endpoint="+rpc, fmt.Sprintf("--http_endpoint=127.0.0.1:%d", proc.FreePort(t)))...)
	server.WaitFor(t, "serving gRPC", proc.DialOK(rpc))
	proc.Start(t, "trillian_log_signer", proc.Tool(t, root(), "trillian_log_signer"), nil,
		append(common, "--force_master", "--sequencer_interval=50ms",
			fmt.Sprintf("--rpc_endpoint=127.0.0.1:%d", proc.FreePort(t)), fmt.Sprintf("--http_endpoint=127.0.0.1:%d", proc.FreePort(t)))...)
	return rpc
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
func (s *Stack) startRekor(t testing.TB, trillian string) {
	t.Helper()
	redis := miniredis.RunT(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "rekor-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s.rekor = &rekor{trillian: trillian, redisPort: redis.Port(), port: proc.FreePort(t), keyFile: keyFile}
	s.RekorURL = fmt.Sprintf("http://127.0.0.1:%d", s.rekor.port)
	s.StartRekor(t)
	pub, err := get(s.RekorURL + "/api/v1/log/publicKey")
	if err != nil {
		t.Fatalf("rekor-server: %v", err)
	}
	s.RekorKey = pub
	info, err := get(s.RekorURL + "/api/v1/log")
	if err != nil {
		t.Fatalf("rekor-server: %v", err)
	}
	var log struct {
		TreeID string `json:"treeID"`
	}
	if err := json.Unmarshal(info, &log); err != nil {
		t.Fatalf("rekor-server /api/v1/log: %v\n%s", err, info)
	}
	s.TreeID, _ = strconv.ParseInt(log.TreeID, 10, 64)
}

// StartRekor (re)starts Rekor: the same port, key and, once it has one,
// tree.
func (s *Stack) StartRekor(t testing.TB) {
	t.Helper()
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
	r.proc = proc.Start(t, "rekor-server", proc.Tool(t, root(), "rekor-server"), nil, args...)
	r.proc.WaitFor(t, "serving its log", proc.HTTPOK(s.RekorURL+"/api/v1/log"))
}

// StopRekor stops Rekor (its database and index stay).
func (s *Stack) StopRekor() { s.rekor.proc.Stop() }

// startFulcio runs Fulcio with an ephemeral CA, trusting one Kubernetes
// issuer (audience "sigstore"), without a CT log. It returns Fulcio's URL
// and its root certificate.
func startFulcio(t testing.TB, iss Issuer) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{"OIDCIssuers": map[string]any{
		iss.URL: map[string]any{"IssuerURL": iss.URL, "ClientID": "sigstore", "Type": "kubernetes", "CACert": string(iss.CA)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	port := proc.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := proc.Start(t, "fulcio", proc.Tool(t, root(), "fulcio"), nil, "serve", "--ca", "ephemeralca", "--config-path", cfgPath,
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(proc.FreePort(t)), "--metrics-port", strconv.Itoa(proc.FreePort(t)),
		"--ct-log-url", "", "--legacy-unix-domain-socket", filepath.Join(dir, "legacy.sock"))
	p.WaitFor(t, "serving its root", proc.HTTPOK(url+"/api/v1/rootCert"))
	roots, err := get(url + "/api/v1/rootCert")
	if err != nil {
		t.Fatalf("fulcio: %v", err)
	}
	return url, roots
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
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.Config.CAData)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-test-oidc-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:unauthenticated"}},
	}
	if err := env.Client.Create(t.Context(), crb); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("opening the OIDC discovery endpoints: %v", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(strings.TrimSuffix(env.Config.Host, "/") + "/.well-known/openid-configuration")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &doc) == nil && doc.Issuer != "" {
				break
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server's OIDC discovery document: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return Issuer{URL: doc.Issuer, CA: env.Config.CAData}
}

// Token is a TokenRequest token of service account ns/name with audience
// "sigstore", as a projected volume would hold it (the account is created
// if missing).
func Token(t testing.TB, env *envtest.Env, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Create(t.Context(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("service account %s/%s: %v", ns, name, err)
	}
	expiry := int64(3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sigstore"}, ExpirationSeconds: &expiry}}
	if err := env.Client.SubResource("token").Create(t.Context(), sa, tr); err != nil {
		t.Fatalf("a token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
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
