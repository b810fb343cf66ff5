package serve_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tandem-gitops/tandem/daemon"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/webhook"
)

// serveProc is one `tandem serve` process. Its logs are JSON lines
// (--log-format json) kept in log; it listens on a loopback port of the
// kernel's choosing, read from its "serving" log line.
type serveProc struct {
	name string
	cmd  *exec.Cmd
	args []string
	log  *logBuffer
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
	addr string
	http *http.Client
}

// startServe starts `tandem serve` with args, after the flags every test
// daemon has (a loopback port, JSON logs, a cache directory of its own), and
// waits until it serves HTTP. The test's cleanup kills its process group if
// it still runs, and logs its output if the test failed.
func (h *harness) startServe(t *testing.T, name string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{
		name: name,
		args: append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...),
		log:  &logBuffer{},
		done: make(chan struct{}),
		http: &http.Client{Timeout: 10 * time.Second},
	}
	p.cmd = exec.Command(h.bin, p.args...)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+h.env.Kubeconfig(), "TANDEM_CACHE_DIR="+t.TempDir())
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			killGroup(p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon %s: tandem %s\n%s", p.name, strings.Join(p.args, " "), p.log.String())
		}
	})
	waitFor(t, "daemon "+name+" serves HTTP", time.Minute, []*serveProc{p}, func() error {
		r := p.log.find("serving", nil)
		if r == nil {
			return errors.New(`no "serving" log line yet`)
		}
		addr, _ := r["listen"].(string)
		if addr == "" {
			return fmt.Errorf(`"serving" log line without listen: %v`, r)
		}
		p.addr = addr
		return nil
	})
	return p
}

func (p *serveProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 kills the daemon's process group with SIGKILL, as a node losing the
// pod does, and waits for the exit.
func (p *serveProc) kill9(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("daemon %s exited (%v) before it was killed", p.name, p.err)
	}
	killGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// sigterm sends SIGTERM to the daemon (not its group: the kubelet signals a
// container's first process).
func (p *serveProc) sigterm(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("daemon %s: SIGTERM: %v", p.name, err)
	}
}

// waitExit waits up to timeout for the daemon to exit and returns its exit
// code (-1 when a signal ended it).
func (p *serveProc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("daemon %s did not exit within %s", p.name, timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("daemon %s: %v", p.name, p.err)
		return -1
	}
}

func (p *serveProc) url(path string) string { return "http://" + p.addr + path }

// request sends one HTTP request to the daemon and returns the status code
// and body.
func (p *serveProc) request(method, path string, header http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, p.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("daemon %s: %s %s: %w", p.name, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// tryStatus reads /status.
func (p *serveProc) tryStatus() (daemon.Status, error) {
	var st daemon.Status
	code, body, err := p.request(http.MethodGet, "/status", nil, nil)
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("daemon %s: GET /status: %d %s", p.name, code, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("daemon %s: /status: %w\n%s", p.name, err, body)
	}
	return st, nil
}

func (p *serveProc) status(t *testing.T) daemon.Status {
	t.Helper()
	st, err := p.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// applied says whether the status shows commit applied to every cluster of
// names, and why not.
func applied(st daemon.Status, commit string, names []string) error {
	for _, n := range names {
		i := -1
		for j, c := range st.Clusters {
			if c.Name == n {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("/status has no cluster %s yet (rejected: %+v, last run: %+v)", n, st.Rejected, st.LastRun)
		}
		if c := st.Clusters[i]; c.CommitApplied != commit {
			return fmt.Errorf("cluster %s: commit applied %q, want %q (last error %q; rejected: %+v)", n, short(c.CommitApplied), short(commit), c.LastError, st.Rejected)
		}
	}
	return nil
}

// waitApplied waits until /status shows commit applied to every cluster.
func (p *serveProc) waitApplied(t *testing.T, commit string, timeout time.Duration) daemon.Status {
	t.Helper()
	var st daemon.Status
	waitFor(t, fmt.Sprintf("daemon %s applies %s", p.name, short(commit)), timeout, []*serveProc{p}, func() error {
		var err error
		if st, err = p.tryStatus(); err != nil {
			return err
		}
		return applied(st, commit, []string{"blue", "green"})
	})
	return st
}

// metricFamilies is a parsed scrape of /metrics.
type metricFamilies map[string]*dto.MetricFamily

// tryMetrics scrapes /metrics in the text format and parses it with
// Prometheus's own parser.
func (p *serveProc) tryMetrics() (metricFamilies, error) {
	code, body, err := p.request(http.MethodGet, "/metrics", http.Header{"Accept": {"text/plain;version=0.0.4"}}, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("daemon %s: GET /metrics: %d %s", p.name, code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("daemon %s: parse /metrics: %w", p.name, err)
	}
	return mf, nil
}

func (p *serveProc) metrics(t *testing.T) metricFamilies {
	t.Helper()
	m, err := p.tryMetrics()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// series is one sample of a counter or gauge with its labels.
type series struct {
	Labels map[string]string
	Value  float64
}

// series lists the samples of a counter or gauge family.
func (m metricFamilies) series(name string) []series {
	mf, ok := m[name]
	if !ok {
		return nil
	}
	var out []series
	for _, s := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		v := s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
		out = append(out, series{labels, v})
	}
	return out
}

// sum adds the samples of a counter or gauge whose labels include match.
func (m metricFamilies) sum(name string, match map[string]string) float64 {
	var v float64
	for _, s := range m.series(name) {
		if matches(s.Labels, match) {
			v += s.Value
		}
	}
	return v
}

func matches(labels, match map[string]string) bool {
	for k, want := range match {
		if labels[k] != want {
			return false
		}
	}
	return true
}

// pushBody is a GitHub push event payload (the part tandem reads, and a
// little more, as GitHub sends).
func pushBody(ref, after string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref":        ref,
		"before":     strings.Repeat("0", 40),
		"after":      after,
		"repository": map[string]any{"full_name": "e2e/manifest"},
		"pusher":     map[string]any{"name": "e2e"},
	})
	return b
}

// githubHeader is what GitHub sends with a push event, signed with secret
// (no signature header when secret is empty).
func githubHeader(secret string, body []byte) http.Header {
	h := http.Header{
		"Content-Type":      {"application/json"},
		"X-Github-Event":    {"push"},
		"X-Github-Delivery": {"e2e-delivery"},
	}
	if secret != "" {
		h.Set("X-Hub-Signature-256", webhook.Sign([]byte(secret), body))
	}
	return h
}

// githubPush sends a correctly signed GitHub push event for ref and returns
// the status code.
func (p *serveProc) githubPush(t *testing.T, ref, after string) int {
	t.Helper()
	body := pushBody(ref, after)
	code, resp, err := p.request(http.MethodPost, "/hooks/github", githubHeader(webhookSecret, body), body)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("daemon %s: POST /hooks/github push %s %s → %d %s", p.name, ref, short(after), code, strings.TrimSpace(string(resp)))
	return code
}

// logBuffer keeps a daemon's JSON log; safe for concurrent use.
type logBuffer struct{ e2etest.SyncBuffer }

func (l *logBuffer) records() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// find returns the first log record with message msg whose attributes
// include attrs (compared as strings), or nil.
func (l *logBuffer) find(msg string, attrs map[string]string) map[string]any {
	for _, r := range l.records() {
		if r["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			if fmt.Sprint(r[k]) != v {
				ok = false
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
