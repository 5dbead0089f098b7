package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
)

const (
	dashboardPath = "grafana/streamd.json"
	rulesPath     = "prometheus/streamd-rules.yaml"
	rulesTestPath = "prometheus/streamd-rules.test.yaml"
	metricsDoc    = "../docs/metrics.md"
	dsRef         = "${DS_PROMETHEUS}"
)

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *dsRefJSON `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource *dsRefJSON `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dsRefJSON struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(data, &d))
	return d
}

// dashboardQuery is one panel query, with the panel and row it belongs to.
type dashboardQuery struct {
	Row   string
	Panel string
	Expr  string
}

// dashboardQueries lists every PromQL expression in the dashboard. A
// panel belongs to the row above it, or to the collapsed row holding it.
func dashboardQueries(d dashboard) []dashboardQuery {
	var qs []dashboardQuery
	row := ""
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				row = p.Title
			}
			for _, tg := range p.Targets {
				qs = append(qs, dashboardQuery{Row: row, Panel: p.Title, Expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs
}

var templateVar = regexp.MustCompile(`\$(\{[A-Za-z_]\w*\}|[A-Za-z_]\w*)`)

// evaluable turns a dashboard expression into plain PromQL the way Grafana
// would for the default selection: the rate interval becomes 1m, the
// interval 15s and every template variable matches everything.
func evaluable(expr string) string {
	expr = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "15s", "${__interval}", "15s").Replace(expr)
	return templateVar.ReplaceAllString(expr, ".*")
}

// TestDashboardStructure checks the dashboard imports cleanly and every
// panel reads the selectable data source.
func TestDashboardStructure(t *testing.T) {
	d := loadDashboard(t)
	require.GreaterOrEqual(t, d.SchemaVersion, 39)
	require.Equal(t, "streamd", d.UID)

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	require.Equal(t, "datasource", vars["DS_PROMETHEUS"], "DS_PROMETHEUS must be a data source variable")

	var rows []string
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "panel %q is wider than the grid", p.Title)
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				other, ok := used[cell{x, y}]
				require.False(t, ok, "panels %q and %q overlap", p.Title, other)
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		require.Equal(t, dsRef, p.Datasource.UID, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			require.NotNil(t, tg.Datasource, "panel %q", p.Title)
			require.Equal(t, dsRef, tg.Datasource.UID, "panel %q", p.Title)
			require.NotContains(t, evaluable(tg.Expr), "$", "panel %q has an unknown variable", p.Title)
		}
	}
	require.Equal(t, []string{
		"Overview", "Sources", "Kafka", "Kinesis", "Event time", "Quality", "Windows", "Sinks", "Checkpoints",
		"Alerts", "Rules", "Go runtime", "Process",
	}, rows)
}

// rulesFile is the Prometheus rule file format.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// rulesTests is promtool's rule unit-test file format.
type rulesTests struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name          string                            `yaml:"name"`
		Interval      string                            `yaml:"interval"`
		InputSeries   []struct{ Series, Values string } `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func decodeYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yamlv3.NewDecoder(f)
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(v), path)
}

// TestAlertRulesStructure checks every alert is actionable (severity,
// summary, description) and has unit tests for both outcomes.
func TestAlertRulesStructure(t *testing.T) {
	var rf rulesFile
	decodeYAMLStrict(t, rulesPath, &rf)
	var rt rulesTests
	decodeYAMLStrict(t, rulesTestPath, &rt)

	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s has a recording rule; this file holds alerts", g.Name)
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			require.True(t, firing[r.Alert], "%s has no test where it fires", r.Alert)
			require.True(t, quiet[r.Alert], "%s has no test where it stays quiet", r.Alert)
		}
	}
	slices.Sort(alerts)
	require.Equal(t, []string{
		"StreamdCheckpointTooOld", "StreamdCheckpointsFailing", "StreamdDeadLettersSpiking", "StreamdDown",
		"StreamdKafkaLagGrowing", "StreamdKinesisBehind", "StreamdLateRecordsHigh", "StreamdNotReady",
		"StreamdParquetNoCommits", "StreamdPipelineRestarting", "StreamdRestarting", "StreamdRuleErrors", "StreamdRuleQuarantined",
		"StreamdStateBudgetReached", "StreamdWatermarkStalled",
	}, alerts)
}

// documentedMetrics returns the metric names listed in docs/metrics.md
// (planned ones excluded).
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile(metricsDoc)
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	require.NotEmpty(t, documented)
	return documented
}

var metricName = regexp.MustCompile(`\b(?:streamd|go|process)_[a-z0-9_]+\b`)

// TestMetricsDocumented checks that every metric the dashboard and the
// alert rules read is listed in docs/metrics.md, so the reference cannot
// fall behind what operators are shown.
func TestMetricsDocumented(t *testing.T) {
	documented := documentedMetrics(t)

	rules, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	var exprs []string
	for _, q := range dashboardQueries(loadDashboard(t)) {
		exprs = append(exprs, q.Expr)
	}
	exprs = append(exprs, string(rules))
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			require.True(t, documented[name] || documented[base], "%s is used but not documented in docs/metrics.md", name)
		}
	}
}
