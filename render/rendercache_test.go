//go:build linux

package render

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sync/errgroup"
)

// cacheableRequests are renders the cache may keep: no generating
// function, no lookup, no error.
func cacheableRequests(t *testing.T) []Request {
	t.Helper()
	var reqs []Request
	for _, name := range []string{"apiversions", "cronjob", "hooks", "installonly", "kubeversion"} {
		reqs = append(reqs, testdataRequest(t, name))
	}
	types := testdataRequest(t, "valuetypes")
	types.Values = []ValuesLayer{
		{Source: "values.yaml", File: []byte("extra: {a: 1, b: [x, y], c: {d: e}}\n")},
		{Source: "set", Set: map[string]any{"big": 1000000, "flag": true, "word": `a,b\c`}},
	}
	reqs = append(reqs, types, exampleRequest(t, "blue", RoleStandby), exampleRequest(t, "green", RoleActive))
	for i := range reqs {
		reqs[i].Capabilities = Capabilities{KubeVersion: "1.31", APIVersions: []string{"v1", "apps/v1", "batch/v1"}, Discovered: true}
	}
	return reqs
}

// renderCounting renders reqs with a new Renderer and returns the results
// and how many workers it started.
func renderCounting(t *testing.T, opts Options, reqs []Request) ([]*Result, int) {
	t.Helper()
	r := New(opts)
	workers := watchWorkers(r)
	res, err := r.RenderAll(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	pids := workers.all()
	if len(pids) > 0 {
		assertReaped(t, pids)
	}
	return res, len(pids)
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderCacheHit: a second Renderer rendering the very same requests
// starts no worker and returns results equal to the fresh ones; a change to
// any input (values, capabilities, the Standby overlay, the workers'
// environment) renders afresh. (Upgrade: TestRenderCacheInstallThenUpgrade.)
func TestRenderCacheHit(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")

	fresh, n := renderCounting(t, opts, cacheableRequests(t))
	if n == 0 {
		t.Fatal("the first render started no worker")
	}
	// Each install render also keeps its upgrade's.
	if got := len(cacheFiles(t, opts.RenderCacheDir)); got != 2*len(fresh) {
		t.Fatalf("%d cache entries after %d install renders, want %d", got, len(fresh), 2*len(fresh))
	}
	cached, n := renderCounting(t, opts, cacheableRequests(t))
	if n != 0 {
		t.Errorf("the second render of the same requests started %d workers, want 0", n)
	}
	if diff := cmp.Diff(fresh, cached, cmpopts.IgnoreFields(Result{}, "Chart")); diff != "" {
		t.Errorf("cached results differ from fresh ones (-fresh +cached):\n%s", diff)
	}

	inProcess, err := New(DefaultOptions()).RenderAll(context.Background(), cacheableRequests(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct {
		name   string
		change func(*Request)
		opts   func(*Options)
	}{
		{"values", func(r *Request) {
			r.Values = append(r.Values, ValuesLayer{Source: "set", Set: map[string]any{"replicaCount": 5}})
		}, nil},
		{"capabilities", func(r *Request) { r.Capabilities.KubeVersion = "1.32" }, nil},
		{"overlay", func(r *Request) { r.Overlay.Role, r.Overlay.Cluster = RoleStandby, "green" }, nil},
		{"release name", func(r *Request) { r.Release, r.Overlay.Release = "other", "other" }, nil},
		{"worker environment", nil, func(o *Options) {
			iso := *o.Isolation
			iso.Env = append(append([]string(nil), iso.Env...), "TZ=Asia/Tokyo")
			o.Isolation = &iso
		}},
	} {
		t.Run(change.name, func(t *testing.T) {
			reqs, o := cacheableRequests(t), opts
			if change.change != nil {
				for i := range reqs {
					change.change(&reqs[i])
				}
			}
			if change.opts != nil {
				change.opts(&o)
			}
			got, n := renderCounting(t, o, reqs)
			if n == 0 {
				t.Fatal("a changed input was served from the cache: no worker started")
			}
			if change.change == nil {
				return
			}
			want, err := New(DefaultOptions()).RenderAll(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Result{}, "Chart")); diff != "" {
				t.Errorf("results differ from an in-process render (-in-process +isolated):\n%s", diff)
			}
			changed := false
			for i := range got {
				changed = changed || got[i].Manifest != inProcess[i].Manifest
			}
			if !changed {
				t.Errorf("the change made no difference to any manifest: the case tests nothing")
			}
		})
	}
}

// TestRenderCacheNeverKeeps: renders whose answer is not a function of
// what the worker was sent are rendered every time — a chart that calls a
// generating function (in a template, or in a value a template passes to
// tpl), and a render that called lookup.
func TestRenderCacheNeverKeeps(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	generating := testdataRequest(t, "password") // randAlphaNum
	looking := testdataRequest(t, "lookuplist")
	looking.Lookup = newListLookup()
	tpl := testdataRequest(t, "valuetypes")
	tpl.Values = []ValuesLayer{{Source: "values.yaml", File: []byte("word: '{{ randAlphaNum 8 }}'\n")}}
	for name, req := range map[string]Request{"generating template": generating, "lookup": looking, "generating value": tpl} {
		t.Run(name, func(t *testing.T) {
			for i := range 2 {
				if i == 1 && req.Lookup != nil {
					req.Lookup = newListLookup()
				}
				if _, n := renderCounting(t, opts, []Request{req}); n == 0 {
					t.Errorf("render %d started no worker: served from the cache", i+1)
				}
			}
		})
	}
	if files := cacheFiles(t, opts.RenderCacheDir); len(files) != 0 {
		t.Errorf("entries stored for renders that must not be kept: %v", files)
	}
}

// TestRenderCacheBadEntries: an entry that does not hold what was stored
// (torn, edited, another key's) is a miss, rendered afresh and replaced.
func TestRenderCacheBadEntries(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	reqs := cacheableRequests(t)
	fresh, _ := renderCounting(t, opts, reqs)
	files := cacheFiles(t, opts.RenderCacheDir)
	if len(files) < 3 {
		t.Fatalf("%d entries", len(files))
	}
	// Every entry spoiled, in turn: truncated, a manifest byte changed,
	// swapped with another entry.
	contents := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		contents[i] = b
	}
	for i, f := range files {
		b := slices.Clone(contents[i])
		switch i % 3 {
		case 0:
			b = b[:len(b)/2]
		case 1:
			b[len(renderCacheFormat)+40] ^= 1
		case 2:
			b = contents[(i+1)%len(files)]
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, n := renderCounting(t, opts, cacheableRequests(t))
	if n == 0 {
		t.Error("bad entries were served: no worker started")
	}
	if diff := cmp.Diff(fresh, got, cmpopts.IgnoreFields(Result{}, "Chart")); diff != "" {
		t.Errorf("results after bad entries differ (-fresh +got):\n%s", diff)
	}
	if _, n := renderCounting(t, opts, cacheableRequests(t)); n != 0 {
		t.Errorf("bad entries were not replaced: %d workers on the next render", n)
	}
}

// TestRenderCacheSharedDirectoryUnused: a directory other users can write
// is not used (its entries could be anyone's).
func TestRenderCacheSharedDirectoryUnused(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	if err := os.MkdirAll(opts.RenderCacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(opts.RenderCacheDir, 0o777); err != nil {
		t.Fatal(err)
	}
	reqs := cacheableRequests(t)
	renderCounting(t, opts, reqs)
	if files := cacheFiles(t, opts.RenderCacheDir); len(files) != 0 {
		t.Errorf("a world-writable cache directory was used: %v", files)
	}
}

// TestRenderCachePrune: past its bound the cache drops the least recently
// used entries, down to three quarters of the bound.
func TestRenderCachePrune(t *testing.T) {
	dir := t.TempDir()
	c := &renderCache{dir: dir, max: 10 << 10}
	keys := make([][32]byte, 40)
	base := time.Now().Add(-time.Hour)
	for i := range keys {
		copy(keys[i][:], fmt.Sprintf("entry-%02d", i))
		c.put(keys[i], rendered{manifest: string(make([]byte, 1000))})
		// Used in the reverse order of writing: the first written is the newest.
		used := base.Add(time.Duration(len(keys)-i) * time.Second)
		if err := os.Chtimes(c.path(keys[i]), used, used); err != nil {
			t.Fatal(err)
		}
	}
	c.prune()
	if _, ok := c.get(keys[0]); !ok {
		t.Error("the most recently used entry was pruned")
	}
	if _, ok := c.get(keys[len(keys)-1]); ok {
		t.Error("the least recently used entry was kept")
	}
	var total int64
	for _, f := range cacheFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > c.max*3/4 || total == 0 {
		t.Errorf("%d bytes left after pruning to %d", total, c.max*3/4)
	}
}

// TestRenderCacheInstallThenUpgrade: an install's render (upgrade false,
// capabilities discovered) also caches the release rendered as an upgrade,
// which is what the next run asks for; that answer is the upgrade's own
// (a chart that renders an object on install only leaves it out).
func TestRenderCacheInstallThenUpgrade(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	reqs := cacheableRequests(t) // capabilities discovered, upgrade false
	if _, n := renderCounting(t, opts, reqs); n == 0 {
		t.Fatal("the install render started no worker")
	}
	upgrades := cacheableRequests(t)
	for i := range upgrades {
		upgrades[i].Upgrade = true
	}
	got, n := renderCounting(t, opts, upgrades)
	if n != 0 {
		t.Errorf("the upgrade renders after the install started %d workers, want 0", n)
	}
	want, err := New(DefaultOptions()).RenderAll(context.Background(), upgrades)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Result{}, "Chart")); diff != "" {
		t.Errorf("cached upgrade renders differ from in-process ones (-in-process +cached):\n%s", diff)
	}
	install, err := New(DefaultOptions()).RenderAll(context.Background(), cacheableRequests(t))
	if err != nil {
		t.Fatal(err)
	}
	differs, same := false, false
	for i := range install {
		differs = differs || install[i].Manifest != want[i].Manifest
		same = same || install[i].Manifest == want[i].Manifest && install[i].Hooks == want[i].Hooks
	}
	if !differs {
		t.Error("no chart renders differently on upgrade: the comparison tests nothing")
	}
	if !same {
		t.Error("every chart renders differently on upgrade: an upgrade stored with its install's objects is not tested")
	}

	// A chart that calls lookup only as an upgrade: its install render is
	// kept, its upgrade's is not (it depends on the cluster).
	req := testdataRequest(t, "upgradelookup")
	req.Capabilities = reqs[0].Capabilities
	req.Lookup = newListLookup() // as live renders have, install or upgrade
	if _, n := renderCounting(t, opts, []Request{req}); n == 0 {
		t.Fatal("no worker for a new chart")
	}
	req.Upgrade = true
	req.Lookup = newListLookup()
	if _, n := renderCounting(t, opts, []Request{req}); n == 0 {
		t.Error("an upgrade render that calls lookup was served from the cache")
	}
}

// TestRenderCacheSharedByCalls: the calls of one Renderer share one worker
// set-up and render cache (made by the first), also when they run at once
// (run it with -race): each call's renders are stored, and a later call of
// the same Renderer is served from them.
func TestRenderCacheSharedByCalls(t *testing.T) {
	opts := isolated(t, "serve")
	opts.RenderCacheDir = filepath.Join(t.TempDir(), "renders")
	r := New(opts)
	workers := watchWorkers(r)
	reqs := cacheableRequests(t)
	half := len(reqs) / 2
	var g errgroup.Group
	for _, part := range [][]Request{reqs[:half], reqs[half:]} {
		g.Go(func() error {
			_, err := r.RenderAll(context.Background(), part)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	started := len(workers.all())
	if started == 0 {
		t.Fatal("the first calls started no worker")
	}
	setup := r.workerSetup()
	if setup.cache == nil {
		t.Fatal("no render cache")
	}
	if _, err := r.RenderAll(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if n := len(workers.all()) - started; n != 0 {
		t.Errorf("the same requests again started %d workers, want 0", n)
	}
	if r.workerSetup() != setup || r.workerSetup().cache != setup.cache {
		t.Error("a later call set the workers up again")
	}
}
