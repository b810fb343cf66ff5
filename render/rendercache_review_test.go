//go:build linux

package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inlineChartRequest writes a chart with one template and returns a request
// for it, capabilities discovered (an install's render, as reconcile makes).
func inlineChartRequest(t *testing.T, name, template string) Request {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml":           "apiVersion: v2\nname: " + name + "\nversion: 0.1.0\n",
		"templates/thing.yaml": template,
	}
	for p, s := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Request{Cluster: "blue", Release: "r", Namespace: "ns", Chart: ChartSource{Dir: dir},
		Overlay:      Overlay{Release: "r", Cluster: "blue", Role: RoleActive, DNSPrefix: prefix, ActiveWeight: 100},
		Capabilities: Capabilities{KubeVersion: "1.31", APIVersions: []string{"v1", "apps/v1", "batch/v1"}, Discovered: true}}
}

// TestRenderCacheDateFunctionsNotKept: sprig's date functions print the
// current time when their date argument is not a time or an integer (a
// value that is not set, a string, a number from values.yaml, Helm 2's
// .Release.Time), and durationRound of a time is the time since it: a
// render that calls them is not a function of its input, and must be
// rendered afresh each time, as the generating functions are.
func TestRenderCacheDateFunctionsNotKept(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	for name, expr := range map[string]string{
		"date":           `date "2006-01-02T15:04:05.000000000" .Values.unset`,
		"dateInZone":     `dateInZone "2006-01-02T15:04:05.000000000" .Release.Time "UTC"`,
		"date_in_zone":   `date_in_zone "2006-01-02T15:04:05.000000000" "" "UTC"`,
		"htmlDate":       `htmlDate .Values.unset`,
		"htmlDateInZone": `htmlDateInZone .Values.unset "UTC"`,
		"durationRound":  `"2020-01-01" | toDate "2006-01-02" | durationRound`,
	} {
		t.Run(name, func(t *testing.T) {
			req := inlineChartRequest(t, "dates", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dates\ndata:\n  at: {{ "+expr+" | quote }}\n")
			var first string
			for i := range 2 {
				res, n := renderCounting(t, opts, []Request{req})
				if n == 0 {
					t.Errorf("render %d started no worker: served from the cache", i+1)
				}
				if i == 0 {
					first = res[0].Manifest
				} else if name == "date" && res[0].Manifest == first {
					t.Errorf("two renders printed the same time (the first one's, from the cache):\n%s", first)
				}
			}
		})
	}
	if files := cacheFiles(t, opts.RenderCacheDir); len(files) != 0 {
		t.Errorf("entries stored for renders that print the time: %v", files)
	}
}

// TestRenderCacheInstallFitsItsOwnLimits: an install render that a worker
// can answer within Isolation.MaxOutput and Options.Timeout succeeds with
// the cache on as with it off; the upgrade render the cache asks for on the
// side is left out rather than pushing the answer past a bound.
func TestRenderCacheInstallFitsItsOwnLimits(t *testing.T) {
	t.Run("output", func(t *testing.T) {
		// About 40 KiB rendered, the limit 64 KiB: install and upgrade
		// together are 80.
		req := inlineChartRequest(t, "big", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: {{ repeat 40000 \"x\" | quote }}\n")
		for _, cache := range []bool{false, true} {
			opts := isolated(t, "serve")
			opts.Isolation.MaxOutput = 64 << 10
			if cache {
				opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
			}
			if _, err := New(opts).RenderAll(context.Background(), []Request{req}); err != nil {
				t.Errorf("cache %v: %v", cache, err)
			}
		}
	})
	t.Run("time", func(t *testing.T) {
		// Renders at once on install, runs away on upgrade.
		req := inlineChartRequest(t, "slowupgrade", "{{- if .Release.IsUpgrade }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: slow\n")
		for _, cache := range []bool{false, true} {
			opts := isolated(t, "serve")
			opts.Timeout = 4 * time.Second
			if cache {
				opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
			}
			r := New(opts)
			workers := watchWorkers(r)
			if _, err := r.RenderAll(context.Background(), []Request{req}); err != nil {
				t.Errorf("cache %v: %v", cache, err)
			}
			if pids := workers.all(); len(pids) > 0 {
				assertReaped(t, pids)
			}
			if cache {
				for _, f := range cacheFiles(t, opts.RenderCacheDir) {
					if strings.Contains(f, ".tmp-") {
						t.Errorf("temporary file left: %s", f)
					}
				}
			}
		}
	})
}

// TestRenderCacheTimeZoneFile: templates' dates are in the worker's local
// time zone (toDate parses in it), which it reads from a file: TZ's, or
// /etc/localtime without TZ. A zone file that changed (the host's zone set
// anew, a tzdata update) renders afresh.
func TestRenderCacheTimeZoneFile(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "zone")
	copyZone := func(name string) {
		b, err := os.ReadFile(filepath.Join("/usr/share/zoneinfo", name))
		if err != nil {
			t.Skipf("no zoneinfo: %v", err)
		}
		if err := os.WriteFile(zone, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := isolated(t, "serve")
	iso := *opts.Isolation
	iso.Env = append(append([]string(nil), iso.Env...), "TZ="+zone)
	opts.Isolation = &iso
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	req := inlineChartRequest(t, "zoned", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zoned\ndata:\n  epoch: {{ toDate \"2006-01-02\" \"2020-01-01\" | unixEpoch | quote }}\n")

	copyZone("UTC")
	res, _ := renderCounting(t, opts, []Request{req})
	if !strings.Contains(res[0].Manifest, `"1577836800"`) {
		t.Fatalf("in UTC:\n%s", res[0].Manifest)
	}
	copyZone("Asia/Tokyo")
	res, n := renderCounting(t, opts, []Request{req})
	if !strings.Contains(res[0].Manifest, `"1577804400"`) {
		t.Errorf("in Tokyo (%d workers started):\n%s", n, res[0].Manifest)
	}
}

// TestRenderCacheHitWithinOutputLimit: an entry stored under a larger
// Isolation.MaxOutput is not served to a renderer with a smaller one (nor
// read whole into memory): it renders, and fails as a fresh render does.
func TestRenderCacheHitWithinOutputLimit(t *testing.T) {
	req := inlineChartRequest(t, "big", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: {{ repeat 40000 \"x\" | quote }}\n")
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	renderCounting(t, opts, []Request{req})
	small := *opts.Isolation
	small.MaxOutput = 16 << 10
	opts.Isolation = &small
	_, err := New(opts).RenderAll(context.Background(), []Request{req})
	if err == nil || !strings.Contains(err.Error(), "Isolation.MaxOutput") {
		t.Errorf("got %v, want the output limit's error", err)
	}
}

// TestRenderCacheDirectoryNoOneElseCanSwap: a private cache directory in
// a directory another user owns, or reached through a link to one there,
// is not used: that user can put a directory of theirs, with entries of
// theirs, in its place (as with a tandem-cache directory they made first
// under the temporary directory, the cache's fallback). A private one is
// used, also in a directory root made that all can write (a pod's
// emptyDir). Giving a directory to another user takes root.
func TestRenderCacheDirectoryNoOneElseCanSwap(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to make a directory another user owns")
	}
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	mine := filepath.Join(base, "mine")
	emptyDir := filepath.Join(base, "emptydir")
	for _, d := range []string{filepath.Join(theirs, "tandem", "renders"), filepath.Join(theirs, "target"), mine, emptyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(emptyDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(theirs, "target"), filepath.Join(mine, "linked")); err != nil {
		t.Fatal(err)
	}
	req := cacheableRequests(t)[:1]
	for _, c := range []struct {
		dir  string
		used bool
	}{
		{filepath.Join(theirs, "tandem", "renders"), false},
		{filepath.Join(mine, "linked"), false},
		{filepath.Join(mine, "renders"), true},
		{filepath.Join(emptyDir, "renders"), true},
	} {
		opts := isolated(t, "serve")
		opts.RenderCacheDir = c.dir
		renderCounting(t, opts, req)
		if n := len(cacheFiles(t, c.dir+"/")); (n > 0) != c.used { // "/": the link's target
			t.Errorf("%s: %d entries, want it used: %v", c.dir, n, c.used)
		}
	}
}
