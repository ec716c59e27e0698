package audit

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// Loop is the background audit: every Interval it audits every namespace
// labelled tollgate.dev/gate (enforce, warn or audit) and rewrites its
// PolicyReport and the tollgate_audit_results gauge. A namespace whose
// audit fails keeps its last report; the error is logged.
type Loop struct {
	Scanner  *Scanner
	Writer   client.Client // writes the reports
	Interval time.Duration
	Log      logr.Logger

	results *prometheus.GaugeVec
	mu      sync.Mutex
	status  error // why reports are not written, or nil
	passes  int
	counts  map[string]map[[3]string]float64 // rows by namespace, by policy, rule and result
	audited map[string]map[string]bool       // images running in a namespace when it was last audited
}

// NewLoop registers the loop's metrics with reg.
func NewLoop(s *Scanner, w client.Client, interval time.Duration, reg prometheus.Registerer, log logr.Logger) *Loop {
	l := &Loop{Scanner: s, Writer: w, Interval: interval, Log: log, counts: map[string]map[[3]string]float64{}, audited: map[string]map[string]bool{},
		results: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_audit_results",
			Help: "Audit rows of the last pass by namespace, policy, rule and result (pass, fail, warn, error, skip).",
		}, []string{"namespace", "policy", "rule", "result"})}
	reg.MustRegister(l.results)
	return l
}

// PolicyPoll is how often the loop looks for a policy change, and
// PolicyWait how long it waits for the policy stores to compile one.
const (
	PolicyPoll = 2 * time.Second
	PolicyWait = 30 * time.Second
)

// Run audits now, then every Interval and after every policy change, until
// ctx is done; between passes, a namespace where a new image runs is
// audited at once.
func (l *Loop) Run(ctx context.Context) {
	declared, compiled := l.policies(ctx)
	next := time.Now().Add(l.Interval)
	l.Pass(ctx)
	tick := time.NewTicker(PolicyPoll)
	defer tick.Stop()
	var seen time.Time // when a policy change not compiled yet was first seen
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d, c := l.policies(ctx)
		due := !time.Now().Before(next)
		changed := d != declared
		switch {
		case !changed:
			seen = time.Time{}
			if !due {
				l.newImages(ctx)
				continue
			}
		case c == compiled && !due:
			// The policy stores have not recompiled yet (or a policy that
			// does not compile keeps its last good version): look again,
			// and audit anyway once the change is PolicyWait old.
			if seen.IsZero() {
				seen = time.Now()
			}
			if time.Since(seen) < PolicyWait {
				continue
			}
		}
		if changed {
			l.Log.Info("policies changed; auditing now")
		}
		seen = time.Time{}
		declared, compiled, next = d, c, time.Now().Add(l.Interval)
		l.Pass(ctx)
	}
}

func (l *Loop) policies(ctx context.Context) (string, string) {
	if l.Scanner.Policies == nil {
		return "", ""
	}
	return l.Scanner.Policies(ctx)
}

// Ready says why the audit is not doing its whole job: no pass finished
// yet, or reports cannot be written.
func (l *Loop) Ready() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.passes == 0 {
		return errors.New("the first audit pass has not finished")
	}
	return l.status
}

// Pass audits every gated namespace once.
func (l *Loop) Pass(ctx context.Context) {
	start := time.Now()
	running := l.running(ctx)
	var list corev1.NamespaceList
	if err := l.Scanner.Reader.List(ctx, &list, client.HasLabels{imagegate.LabelGate}); err != nil {
		l.Log.Error(err, "listing gated namespaces; the audit pass is skipped")
		return
	}
	names := make([]string, 0, len(list.Items))
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	var status error
	failing := 0
	counts := map[string]map[[3]string]float64{}
	for _, ns := range names {
		c, nsFailing, err := l.namespace(ctx, ns, running)
		switch {
		case errors.Is(err, ErrNoReportCRD):
			status = err
		case err != nil:
			if old, ok := l.counts[ns]; ok { // its last report stays: and its figures
				counts[ns] = old
			}
			continue
		}
		counts[ns] = c
		failing += nsFailing
	}
	l.mu.Lock()
	l.status, l.passes, l.counts = status, l.passes+1, counts
	l.mu.Unlock()
	l.publish()
	if status != nil {
		l.Log.Error(status, "audit results are logged and exported, not reported")
	}
	l.Log.Info("audit pass finished", "namespaces", len(names), "failing", failing, "duration", time.Since(start).Round(time.Millisecond).String())
}

// namespace audits one namespace and writes its report. The images
// running there (running[ns]) are remembered as audited. An error is
// returned when the namespace could not be audited (its last report
// stays), or, with the rows counted, when the report CRD is missing.
func (l *Loop) namespace(ctx context.Context, ns string, running map[string][]string) (map[[3]string]float64, int, error) {
	rows, _, err := l.Scanner.Namespace(ctx, ns)
	if err != nil {
		l.Log.Error(err, "auditing a namespace; its last report stays", "namespace", ns)
		return nil, 0, err
	}
	if imgs, ok := running[ns]; ok {
		l.mu.Lock()
		l.audited[ns] = toSet(imgs)
		l.mu.Unlock()
	}
	counts := map[[3]string]float64{}
	failing := 0
	for _, r := range rows {
		counts[[3]string{r.Policy, r.Rule, r.Result}]++
		if r.Result == Fail || r.Result == Error {
			failing++
			l.Log.V(1).Info("audit", "namespace", ns, "object", r.Object.Kind+"/"+r.Object.Name, "result", r.Result, "rule", r.Rule, "message", r.Message)
		}
	}
	l.Log.Info("audited namespace", "namespace", ns, "rows", len(rows), "failing", failing)
	if err := WriteReport(ctx, l.Writer, Report(ns, rows, time.Now())); err != nil {
		if errors.Is(err, ErrNoReportCRD) {
			return counts, failing, err
		}
		l.Log.Error(err, "writing the report", "namespace", ns)
	}
	return counts, failing, nil
}

// newImages audits at once each gated namespace running an image its last
// audit did not see (a namespace gated since is all new).
func (l *Loop) newImages(ctx context.Context) {
	running := l.running(ctx)
	for _, ns := range slices.Sorted(maps.Keys(running)) {
		l.mu.Lock()
		seen := l.audited[ns]
		l.mu.Unlock()
		fresh := ""
		for _, img := range running[ns] {
			if !seen[img] {
				fresh = img
				break
			}
		}
		if fresh == "" {
			continue
		}
		l.Log.Info("a new image runs; auditing its namespace now", "namespace", ns, "image", fresh)
		counts, _, err := l.namespace(ctx, ns, running)
		if err != nil && !errors.Is(err, ErrNoReportCRD) {
			l.mu.Lock()
			l.audited[ns] = toSet(running[ns]) // not again before the resync
			l.mu.Unlock()
			continue
		}
		l.mu.Lock()
		l.counts[ns] = counts
		l.mu.Unlock()
		l.publish()
	}
}

func (l *Loop) running(ctx context.Context) map[string][]string {
	if l.Scanner.Running == nil {
		return nil
	}
	r, err := l.Scanner.Running(ctx)
	if err != nil {
		l.Log.Error(err, "reading the images running")
		return nil
	}
	return r
}

// publish sets tollgate_audit_results from the counts.
func (l *Loop) publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results.Reset()
	for ns, c := range l.counts {
		for k, v := range c {
			l.results.WithLabelValues(ns, k[0], k[1], k[2]).Set(v)
		}
	}
}

func toSet(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}
