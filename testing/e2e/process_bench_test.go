package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tollgate-dev/tollgate/testing/benchdata"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
	"github.com/tollgate-dev/tollgate/webhook"
)

// BenchmarkWebhookProcess measures `tollgate webhook` as users run it: the
// real binary, against the harness's API server (its informers, the stamp
// keys Secret), driven from outside over TLS by one keep-alive HTTP/2
// client with C requests in flight. Each sub-benchmark sends b.N
// byte-identical AdmissionReviews (CREATE of benchdata's PipelineRun, 5
// tasks × 3 steps; the deny body has one privileged step; the floor is the
// same review as a DELETE, answered without a decision) to one path and
// reports latency percentiles, requests per second, the server's CPU per
// review (utime+stime from /proc, all its threads) and its resident
// memory. `make bench` prints the table.
//
// With TOLLGATE_BENCH_PROFILE=DIR the process serves its profiles
// (--profiling-address) and each sub-benchmark writes a 5-second CPU
// profile of it, taken while it runs, to DIR/NAME.pprof (give it a
// -benchtime long enough, e.g. 20000x).
func BenchmarkWebhookProcess(b *testing.B) {
	// The API server registers the webhooks at the address the process
	// serves (the harness's certificate is for it); nothing here goes
	// through the API server.
	env := prepareGuarded(b, namespace("tollgate-system", nil)) // the stamp keys Secret's
	bin := tollgateBinary(b)
	dir := b.TempDir()
	kubeconfig := writeKubeconfig(b, env, filepath.Join(dir, "kubeconfig"), "")
	addr := env.WebhookAddr
	probe := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(b))
	args := []string{"webhook", "--kubeconfig", kubeconfig, "--listen", addr,
		"--tls-cert-file", filepath.Join(env.CertDir, "tls.crt"), "--tls-key-file", filepath.Join(env.CertDir, "tls.key"),
		"--probe-address", probe}
	profileDir := os.Getenv("TOLLGATE_BENCH_PROFILE")
	profiling := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(b))
	if profileDir != "" {
		args = append(args, "--profiling-address", profiling)
	}
	p := proc.Start(b, "tollgate webhook", bin, nil, args...)
	p.WaitFor(b, "ready", proc.HTTPOK("http://"+probe+"/readyz"))
	pid := p.Cmd.Process.Pid

	post := newPoster(addr, env.CAData)

	// The validating bodies are what the API server sends after the
	// mutating webhook: the run with the stamp (and its MAC) this process
	// wrote.
	stamped := func(obj []byte) []byte {
		r, _, err := post(webhook.PathMutateRuns, benchdata.Review(obj, Alice))
		if err != nil {
			b.Fatal(err)
		}
		patch, err := jsonpatch.DecodePatch(r.Patch)
		if err != nil {
			b.Fatalf("the mutating webhook's patch: %v: %s", err, r.Patch)
		}
		out, err := patch.Apply(obj)
		if err != nil {
			b.Fatalf("applying the mutating webhook's patch: %v", err)
		}
		return out
	}
	allowObj, denyObj := benchdata.PipelineRun(false, nil), benchdata.PipelineRun(true, nil)
	cases := []struct {
		name, path string
		body       []byte
		allowed    bool
	}{
		{"validate-allow", webhook.PathValidateRuns, benchdata.Review(stamped(allowObj), Alice), true},
		{"validate-deny", webhook.PathValidateRuns, benchdata.Review(stamped(denyObj), Alice), false},
		{"mutate", webhook.PathMutateRuns, benchdata.Review(allowObj, Alice), true},
		// The floor: the validate-allow body as a DELETE, which the run
		// guard allows once the review is decoded, without reading the
		// run. What it costs is the transport (TLS, HTTP/2, the body read,
		// the envelope decode, the answer), not the decision.
		{"floor", webhook.PathValidateRuns, asDelete(b, benchdata.Review(stamped(allowObj), Alice)), true},
	}
	for _, c := range cases {
		r, proto, err := post(c.path, c.body)
		if err != nil {
			b.Fatal(err)
		}
		if r.Allowed != c.allowed {
			b.Fatalf("%s: allowed = %v, want %v: %+v", c.name, r.Allowed, c.allowed, r.Result)
		}
		if proto != "HTTP/2.0" {
			b.Fatalf("%s: served over %s, want HTTP/2", c.name, proto)
		}
	}

	for _, conc := range []int{1, 8} {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/C=%d", c.name, conc), func(b *testing.B) {
				var profile func() (wait func())
				if profileDir != "" {
					file := filepath.Join(profileDir, strings.ReplaceAll(c.name+"-C"+strconv.Itoa(conc), "/", "-")+".pprof")
					profile = func() func() {
						var profiled sync.WaitGroup
						profiled.Add(1)
						go func() {
							defer profiled.Done()
							if err := saveProfile("http://"+profiling+"/debug/pprof/profile?seconds=5", file); err != nil {
								b.Error(err)
							}
						}()
						return profiled.Wait
					}
				}
				loadRow(b, post, c.path, c.body, c.allowed, conc, pid, profile)
			})
		}
	}
}

// reviewPoster posts an AdmissionReview to a path of the process under
// test and returns its response and the protocol it came over.
type reviewPoster func(path string, body []byte) (*admissionv1.AdmissionResponse, string, error)

// newPoster returns a reviewPoster for the process serving addr with a
// certificate ca signs: one HTTP/2 keep-alive client, as the API server
// calls webhooks.
func newPoster(addr string, ca []byte) reviewPoster {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
	}}
	return func(path string, body []byte) (*admissionv1.AdmissionResponse, string, error) {
		resp, err := client.Post("https://"+addr+path, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, "", err
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(raw, &out); err != nil || out.Response == nil {
			return nil, "", fmt.Errorf("%s: %s: bad review %q", path, resp.Status, raw)
		}
		return out.Response, resp.Proto, nil
	}
}

// loadRow sends b.N copies of body to path with conc requests in flight,
// after a warm-up, each answer checked (allowed or not), and reports the
// latency percentiles, requests per second, and the CPU per review and
// resident memory of process pid; profile, when set, is started with the
// row and waited for after it.
func loadRow(b *testing.B, post reviewPoster, path string, body []byte, allowed bool, conc, pid int, profile func() (wait func())) {
	b.SetBytes(int64(len(body)))
	send := func(n int) []time.Duration {
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failure error
		next := make(chan int, n)
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					start := time.Now()
					r, _, err := post(path, body)
					lat[i] = time.Since(start)
					if err == nil && r.Allowed != allowed {
						err = fmt.Errorf("allowed = %v", r.Allowed)
					}
					if err != nil {
						mu.Lock()
						failure = err
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if failure != nil {
			b.Fatal(failure)
		}
		return lat
	}
	send(200 * conc) // warm: connections, caches, the heap's size
	wait := func() {}
	if profile != nil {
		wait = profile()
	}
	cpu0 := cpuTicks(b, pid)
	b.ResetTimer()
	start := time.Now()
	lat := send(b.N)
	wall := time.Since(start)
	b.StopTimer()
	wait()
	cpu := cpuTicks(b, pid) - cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 { return float64(lat[int(float64(len(lat)-1)*q)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "req/s")
	b.ReportMetric(float64(cpu)*1000/clockTicks/float64(b.N), "cpu-ms/review")
	b.ReportMetric(rssMiB(b, pid), "rss-MiB")
}

// saveProfile writes what GET url answers to file.
func saveProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// cpuTicks is the CPU time (user + system, all threads) process pid has
// used, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields count from its ")".
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// rssMiB is process pid's resident set size.
func rssMiB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// writeKubeconfig writes a kubeconfig for env's API server at path with
// the harness's administrator credentials, impersonating user (with the
// service account groups) unless user is "".
func writeKubeconfig(t testing.TB, env *envtest.Env, path, user string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	auth := &clientcmdapi.AuthInfo{ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData, Token: env.Config.BearerToken}
	if user != "" {
		auth.Impersonate, auth.ImpersonateGroups = user, []string{"system:serviceaccounts", "system:authenticated"}
	}
	kc.AuthInfos["user"] = auth
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// asDelete turns a CREATE review into the DELETE of the same object.
func asDelete(b *testing.B, review []byte) []byte {
	out := bytes.Replace(review, []byte(`"operation":"CREATE"`), []byte(`"operation":"DELETE"`), 1)
	if bytes.Equal(out, review) {
		b.Fatal("the review is not a CREATE")
	}
	return out
}
