package audit

import (
	"context"
	"errors"
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
}

// NewLoop registers the loop's metrics with reg.
func NewLoop(s *Scanner, w client.Client, interval time.Duration, reg prometheus.Registerer, log logr.Logger) *Loop {
	l := &Loop{Scanner: s, Writer: w, Interval: interval, Log: log,
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
// ctx is done.
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
	counts := map[[4]string]float64{}
	failing := 0
	for _, ns := range names {
		rows, _, err := l.Scanner.Namespace(ctx, ns)
		if err != nil {
			l.Log.Error(err, "auditing a namespace; its last report stays", "namespace", ns)
			continue
		}
		nsFailing := 0
		for _, r := range rows {
			counts[[4]string{ns, r.Policy, r.Rule, r.Result}]++
			if r.Result == Fail || r.Result == Error {
				nsFailing++
				l.Log.V(1).Info("audit", "namespace", ns, "object", r.Object.Kind+"/"+r.Object.Name, "result", r.Result, "rule", r.Rule, "message", r.Message)
			}
		}
		failing += nsFailing
		l.Log.Info("audited namespace", "namespace", ns, "rows", len(rows), "failing", nsFailing)
		if err := WriteReport(ctx, l.Writer, Report(ns, rows, time.Now())); err != nil {
			if errors.Is(err, ErrNoReportCRD) {
				status = err
			} else {
				l.Log.Error(err, "writing the report", "namespace", ns)
			}
		}
	}
	l.results.Reset()
	for k, v := range counts {
		l.results.WithLabelValues(k[0], k[1], k[2], k[3]).Set(v)
	}
	l.mu.Lock()
	l.status, l.passes = status, l.passes+1
	l.mu.Unlock()
	if status != nil {
		l.Log.Error(status, "audit results are logged and exported, not reported")
	}
	l.Log.Info("audit pass finished", "namespaces", len(names), "failing", failing, "duration", time.Since(start).Round(time.Millisecond).String())
}
