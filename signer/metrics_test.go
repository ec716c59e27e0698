package signer

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.observe("TaskRun", "signed", "", 20*time.Millisecond)
	m.observe("TaskRun", "failed", ReasonNoArtifacts, 0)
	// A second controller in one process shares the collectors.
	newMetrics(reg).observe("TaskRun", "failed", ReasonNoArtifacts, 0)
	want := `
# HELP tollgate_signer_runs_total Finished runs by kind and outcome (signed, failed, retry) and reason.
# TYPE tollgate_signer_runs_total counter
tollgate_signer_runs_total{kind="TaskRun",outcome="failed",reason="NoArtifacts"} 2
tollgate_signer_runs_total{kind="TaskRun",outcome="signed",reason=""} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tollgate_signer_runs_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("latency series = %d, want 1", n)
	}
}
