package drift

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandem-gitops/tandem/e2e/e2etest"
)

const (
	// desiredImage is the Example app's image as the manifest renders it: the
	// chart's repository with the release's `set: {image.tag: "1.2.3"}`, which
	// beats the values file's tag.
	desiredImage = "registry.local/shop/example:1.2.3"
	hackedImage  = "registry.local/shop/example:HACKED-by-hand"
	// The storefront Secret's value in the manifest copy, and the one typed in by
	// hand. Neither may ever be printed.
	desiredAPIKey = "desired-apikey-Q7vX2mLr"
	hackedAPIKey  = "hand-typed-apikey-K9pW4zTe"
)

// TestLiveDrift edits the clusters by hand, one thing at a time, and checks
// what `tandem diff` and `tandem reconcile` report, then that
// `reconcile --correct-drift` puts everything back without a Helm revision.
// The steps share the clusters' state and run in order; the first failure
// stops the rest.
func TestLiveDrift(t *testing.T) {
	env := clusters.Env(t)
	tdm := newRunner(t, env.Kubeconfig())
	kc := kubectl{bin: env.Tool("kubectl"), kubeconfig: env.Kubeconfig()}

	repo := e2etest.CopyExample(t)
	repo.Write(t, "values/storefront.yaml", repo.Read(t, "values/storefront.yaml")+"apiKey: "+desiredAPIKey+"\n")
	repo.Commit(t, "storefront: an API key of our own")
	src := []string{"--manifest-dir", repo.Dir}
	// The reconciles run without the Standby guard: the steps play a person
	// who scales the Standby by hand, which the guard would refuse
	// (e2e/guard tests the guard).

	started := time.Now()
	wantCode(t, tdm.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off"}, src...)...), 0)
	t.Logf("first reconcile took %s", time.Since(started).Round(time.Second))

	diff := func(t *testing.T, wantExit int, format string) e2etest.Result {
		t.Helper()
		res := tdm.run(t, diffTimeout, append([]string{"diff", "--exit-code", "-o", format}, src...)...)
		wantCode(t, res, wantExit)
		return res
	}
	diffJSON := func(t *testing.T, wantExit int) diffReport {
		t.Helper()
		var rep diffReport
		diff(t, wantExit, "json").JSON(t, &rep)
		if rep.Mode != "live" || len(rep.Clusters) != 2 || rep.Clusters[0].Name != "blue" || rep.Clusters[1].Name != "green" {
			t.Fatalf("want a live report of blue then green, got mode %q with %d clusters", rep.Mode, len(rep.Clusters))
		}
		for _, c := range rep.Clusters {
			if c.Error != "" {
				t.Fatalf("cluster %s: %s", c.Name, c.Error)
			}
		}
		return rep
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // later steps build on this one's state
		}
	}

	step("no drift exits 0", func(t *testing.T) {
		rep := diffJSON(t, 0)
		for _, c := range rep.Clusters {
			if got := c.changedNames(); len(got) > 0 {
				t.Errorf("%s right after a reconcile: want no differences, got %q", c.Name, got)
			}
		}
		text := diff(t, 0, "text").Stdout
		for _, c := range []string{"blue (active)", "green (standby)"} {
			if line := lineWithPrefix(text, c); !strings.HasSuffix(line, "no differences") {
				t.Errorf("want %q … no differences, got line %q in\n%s", c, line, text)
			}
		}
	})

	step("image edited on standby", func(t *testing.T) {
		kc.run(t, "green", "-n", "example", "set", "image", "deployment/example", "app="+hackedImage)

		text := diff(t, 2, "text").Stdout
		if line := lineWithPrefix(text, "green (standby)"); !strings.Contains(line, "release example") || !strings.Contains(line, "1 object changed") {
			t.Errorf("want a line green (standby) … release example … 1 object changed, got %q", line)
		}
		if line := lineWithPrefix(text, "blue (active)"); !strings.HasSuffix(line, "no differences") {
			t.Errorf("want blue (active) … no differences, got %q", line)
		}
		if !slices.Contains(strings.Split(text, "\n"), "  Deployment example/example") {
			t.Errorf("no line naming Deployment example/example in\n%s", text)
		}
		removed, added := diffMarks(text)
		if len(removed) != 1 || !strings.Contains(removed[0], "image: "+hackedImage) ||
			len(added) != 1 || !strings.Contains(added[0], "image: "+desiredImage) {
			t.Errorf("want exactly one - line with the hacked image and one + line with %s; got -%q +%q in\n%s", desiredImage, removed, added, text)
		}

		rep := diffJSON(t, 2)
		if got := rep.cluster(t, "blue").changedNames(); len(got) > 0 {
			t.Errorf("blue: want no differences, got %q", got)
		}
		want := []string{"example changed: Deployment example/example changed"}
		if d := cmp.Diff(want, rep.cluster(t, "green").changedNames()); d != "" {
			t.Fatalf("green's differences (-want +got):\n%s", d)
		}
		o := rep.cluster(t, "green").object(t, "example", "Deployment example/example")
		removed, added = diffMarks(o.Diff)
		if d := cmp.Diff([]string{"image: " + hackedImage, "image: " + desiredImage}, trimAll(removed, added)); d != "" {
			t.Errorf("want only the image field in the diff (-want +got):\n%s\nfull diff:\n%s", d, o.Diff)
		}
	})

	step("replicas an HPA set on active are not drift", func(t *testing.T) {
		if kc.run(t, "blue", "-n", "example", "get", "hpa", "example", "-o", "name") == "" {
			t.Fatal("blue has no HorizontalPodAutoscaler example/example: the premise of this step is gone")
		}
		kc.run(t, "blue", "-n", "example", "scale", "deployment/example", "--replicas=5")

		rep := diffJSON(t, 2)
		if got := rep.cluster(t, "blue").changedNames(); len(got) > 0 {
			t.Errorf("blue: want the HPA's replica count ignored, got %q", got)
		}
		if got := kc.run(t, "blue", "-n", "example", "get", "deployment/example", "-o", "jsonpath={.spec.replicas}"); got != "5" {
			t.Fatalf("blue's example has %s replicas, want the 5 set by hand (did the HPA move it?)", got)
		}
		want := []string{"example changed: Deployment example/example changed"}
		if d := cmp.Diff(want, rep.cluster(t, "green").changedNames()); d != "" {
			t.Errorf("green's differences (-want +got):\n%s", d)
		}
	})

	step("replicas on standby are drift", func(t *testing.T) {
		kc.run(t, "green", "-n", "example", "scale", "deployment/example", "--replicas=1")

		rep := diffJSON(t, 2)
		if got := rep.cluster(t, "blue").changedNames(); len(got) > 0 {
			t.Errorf("blue: want no differences, got %q", got)
		}
		want := []string{"example changed: Deployment example/example changed"}
		if d := cmp.Diff(want, rep.cluster(t, "green").changedNames()); d != "" {
			t.Fatalf("green's differences (-want +got):\n%s", d)
		}
		o := rep.cluster(t, "green").object(t, "example", "Deployment example/example")
		removed, added := diffMarks(o.Diff)
		// The Standby's HPA may already have raised 1 to its minimum of 2.
		if !hasLine(removed, "replicas: 1", "replicas: 2") || !hasLine(added, "replicas: 0") {
			t.Errorf("want - replicas: 1 (or the HPA's 2) and + replicas: 0 in\n%s", o.Diff)
		}
		if !hasLine(removed, "image: "+hackedImage) || !hasLine(added, "image: "+desiredImage) {
			t.Errorf("the image change went missing:\n%s", o.Diff)
		}
	})

	step("deleted configmap shown missing", func(t *testing.T) {
		kc.run(t, "blue", "-n", "shop", "delete", "configmap", "storefront-config")

		rep := diffJSON(t, 2)
		want := []string{"storefront changed: ConfigMap shop/storefront-config added"}
		if d := cmp.Diff(want, rep.cluster(t, "blue").changedNames()); d != "" {
			t.Fatalf("blue's differences (-want +got):\n%s", d)
		}
		o := rep.cluster(t, "blue").object(t, "storefront", "ConfigMap shop/storefront-config")
		removed, added := diffMarks(o.Diff)
		if len(removed) != 0 {
			t.Errorf("a missing object has nothing to remove, got %q", removed)
		}
		for _, w := range []string{"kind: ConfigMap", "name: storefront-config", "namespace: shop", "greeting: hello from the shop"} {
			if !hasLine(added, w) {
				t.Errorf("the whole desired object should be added; no + line %q in\n%s", w, o.Diff)
			}
		}
	})

	step("secret values are masked", func(t *testing.T) {
		kc.run(t, "blue", "-n", "shop", "patch", "secret", "storefront-secret", "--type=merge",
			"-p", `{"stringData":{"apiKey":"`+hackedAPIKey+`"}}`)
		if got := secretValue(t, kc, "blue", "shop", "storefront-secret", "apiKey"); got != hackedAPIKey {
			t.Fatalf("the hand edit did not take: apiKey is %q", got)
		}
		secrets := []string{desiredAPIKey, hackedAPIKey, base64.StdEncoding.EncodeToString([]byte(desiredAPIKey)), base64.StdEncoding.EncodeToString([]byte(hackedAPIKey))}
		// Values show as a keyed hash under a key random per report: never
		// the plain sha256 of the value (brute-forceable offline).
		plain := []string{shortHash(hackedAPIKey), shortHash(desiredAPIKey)}
		for _, format := range []string{"text", "json", "markdown"} {
			t.Run(format, func(t *testing.T) {
				res := diff(t, 2, format)
				if format == "markdown" && (!strings.HasPrefix(res.Stdout, marker+"\n") || unclosedFence(res.Stdout) != "") {
					t.Errorf("the drift comment should start with %s and close its fences:\n%s", marker, res.Stdout)
				}
				for _, s := range secrets {
					if strings.Contains(res.Stdout, s) || strings.Contains(res.Stderr, s) {
						t.Errorf("a Secret value (%d bytes) appears in the %s output", len(s), format)
					}
				}
				for _, h := range plain {
					if strings.Contains(res.Stdout, h) {
						t.Errorf("the %s output shows the plain sha256 of a Secret value", format)
					}
				}
				if !maskedValue.MatchString(res.Stdout) {
					t.Errorf("the %s output shows no masked value:\n%s", format, res.Stdout)
				}
				want := []string{"apiKey", "storefront-secret"}
				if format != "json" {
					want = append(want, "Secret shop/storefront-secret")
				}
				for _, w := range want {
					if !strings.Contains(res.Stdout, w) {
						t.Errorf("the %s output lacks %q:\n%s", format, w, res.Stdout)
					}
				}
			})
		}
		rep := diffJSON(t, 2)
		want := []string{"storefront changed: ConfigMap shop/storefront-config added, Secret shop/storefront-secret changed"}
		if d := cmp.Diff(want, rep.cluster(t, "blue").changedNames()); d != "" {
			t.Fatalf("blue's differences (-want +got):\n%s", d)
		}
		o := rep.cluster(t, "blue").object(t, "storefront", "Secret shop/storefront-secret")
		removed, added := diffMarks(o.Diff)
		lines := trimAll(removed, added)
		if len(lines) != 2 || !maskedLine.MatchString(lines[0]) || !maskedLine.MatchString(lines[1]) || lines[0] == lines[1] {
			t.Errorf("want only the key, old hash then new (two different hashes), got %q\nfull diff:\n%s", lines, o.Diff)
		}
		// Another report hashes the same values under another key.
		again := diffJSON(t, 2).cluster(t, "blue").object(t, "storefront", "Secret shop/storefront-secret")
		if r2, a2 := diffMarks(again.Diff); slices.Equal(trimAll(r2, a2), lines) {
			t.Errorf("two reports show the same hashes %q: the key is not random per report", lines)
		}
	})

	step("unreachable cluster exits 1, not 2", func(t *testing.T) {
		// A copy whose green context is not in the kubeconfig, while blue has drift:
		// an error outranks differences.
		bad := e2etest.CopyExample(t)
		bad.Replace(t, "tandem.yaml", "  - name: green\n    role: standby\n", "  - name: green\n    role: standby\n    context: no-such-context\n")
		bad.Commit(t, "green: a context the kubeconfig lacks")
		for _, format := range []string{"text", "json"} {
			res := tdm.run(t, diffTimeout, "diff", "--exit-code", "-o", format, "--manifest-dir", bad.Dir)
			wantCode(t, res, 1)
			if !strings.Contains(res.Stderr, "green") {
				t.Errorf("stderr does not name the cluster that failed:\n%s", res.Stderr)
			}
			if format == "text" {
				if line := lineWithPrefix(res.Stdout, "green (standby)"); !strings.Contains(line, "error:") || !strings.Contains(line, "no-such-context") {
					t.Errorf("want green (standby) … error: … no-such-context, got %q", line)
				}
				if line := lineWithPrefix(res.Stdout, "blue (active)"); !strings.Contains(line, "release storefront") {
					t.Errorf("blue should still be diffed and show its drift, got %q", line)
				}
				continue
			}
			var rep diffReport
			res.JSON(t, &rep)
			if rep.cluster(t, "green").Error == "" || rep.cluster(t, "blue").Error != "" {
				t.Errorf("want an error on green only, got blue %q, green %q", rep.cluster(t, "blue").Error, rep.cluster(t, "green").Error)
			}
			if len(rep.cluster(t, "blue").changed()) == 0 {
				t.Errorf("blue's drift should still be reported")
			}
		}

		// The real thing: green's kube-apiserver is down.
		if err := env.StopAPIServer("green"); err != nil {
			t.Fatal(err)
		}
		started := false
		startGreen := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := env.StartAPIServer(ctx, "green"); err != nil {
				t.Fatal(err)
			}
			started = true
		}
		t.Cleanup(func() {
			if !started {
				startGreen()
			}
		})
		res := tdm.run(t, diffTimeout, append([]string{"diff", "--exit-code", "-o", "json"}, src...)...)
		wantCode(t, res, 1)
		var rep diffReport
		res.JSON(t, &rep)
		if rep.cluster(t, "green").Error == "" || rep.cluster(t, "blue").Error != "" || len(rep.cluster(t, "blue").changed()) == 0 {
			t.Errorf("want an error on green and blue's drift, got blue %q %q, green %q",
				rep.cluster(t, "blue").Error, rep.cluster(t, "blue").changedNames(), rep.cluster(t, "green").Error)
		}
		startGreen()
	})

	wantDrift := map[string][]string{
		"blue/storefront": {"ConfigMap shop/storefront-config", "Secret shop/storefront-secret"},
		"green/example":   {"Deployment example/example"},
	}
	revisions := helmRevisions(t, kc)

	step("reconcile reports drift and leaves it", func(t *testing.T) {
		res := tdm.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off", "-o", "json"}, src...)...)
		wantCode(t, res, 0)
		var rep reconcileReport
		res.JSON(t, &rep)
		drifted, corrected := driftOf(t, rep)
		if d := cmp.Diff(wantDrift, drifted); d != "" {
			t.Errorf("drifted (-want +got):\n%s", d)
		}
		if len(corrected) > 0 {
			t.Errorf("nothing should be corrected without --correct-drift, got %v", corrected)
		}
		if got := image(t, kc, "green"); got != hackedImage {
			t.Errorf("green's image is %s, want it left at %s", got, hackedImage)
		}
		if got := kc.run(t, "blue", "-n", "shop", "get", "configmap", "storefront-config", "--ignore-not-found", "-o", "name"); got != "" {
			t.Errorf("the deleted ConfigMap came back without --correct-drift: %s", got)
		}
		if d := cmp.Diff(revisions, helmRevisions(t, kc)); d != "" {
			t.Errorf("Helm revisions changed (-before +after):\n%s", d)
		}
	})

	step("reconcile --correct-drift puts it back without a Helm revision", func(t *testing.T) {
		res := tdm.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off", "--correct-drift", "-o", "json"}, src...)...)
		wantCode(t, res, 0)
		var rep reconcileReport
		res.JSON(t, &rep)
		drifted, corrected := driftOf(t, rep)
		if d := cmp.Diff(wantDrift, drifted); d != "" {
			t.Errorf("drifted (-want +got):\n%s", d)
		}
		if d := cmp.Diff(wantDrift, corrected); d != "" {
			t.Errorf("corrected (-want +got):\n%s", d)
		}
		if d := cmp.Diff(revisions, helmRevisions(t, kc)); d != "" {
			t.Errorf("Helm revisions changed (-before +after):\n%s", d)
		}

		if got := image(t, kc, "green"); got != desiredImage {
			t.Errorf("green's image is %s, want %s back", got, desiredImage)
		}
		if got := kc.run(t, "green", "-n", "example", "get", "deployment/example", "-o", "jsonpath={.spec.replicas}"); got != "0" {
			t.Errorf("green's example has %s replicas, want 0 on Standby", got)
		}
		if got := kc.run(t, "blue", "-n", "shop", "get", "configmap", "storefront-config", "-o", "jsonpath={.data.greeting}"); got != "hello from the shop" {
			t.Errorf("blue's storefront-config greeting is %q after correction", got)
		}
		// A recreated object still belongs to its Helm release.
		if got := kc.run(t, "blue", "-n", "shop", "get", "configmap", "storefront-config", "-o",
			`jsonpath={.metadata.annotations.meta\.helm\.sh/release-name} {.metadata.labels.app\.kubernetes\.io/managed-by}`); got != "storefront Helm" {
			t.Errorf("recreated storefront-config lacks Helm's ownership markers: %q", got)
		}
		if got := secretValue(t, kc, "blue", "shop", "storefront-secret", "apiKey"); got != desiredAPIKey {
			t.Errorf("blue's storefront-secret was not put back (it holds %d bytes, not the desired value)", len(got))
		}
		if got := kc.run(t, "blue", "-n", "example", "get", "deployment/example", "-o", "jsonpath={.spec.replicas}"); got != "5" {
			t.Errorf("blue's example has %s replicas, want the HPA's 5 left alone", got)
		}
	})

	step("clean after correction", func(t *testing.T) {
		rep := diffJSON(t, 0)
		for _, c := range rep.Clusters {
			if got := c.changedNames(); len(got) > 0 {
				t.Errorf("%s after --correct-drift: want no differences, got %q", c.Name, got)
			}
		}
	})

	// A reconcile records the resourceVersions it found in the desired state
	// and the next one skips the dry runs of objects that have not moved: an
	// edit after that must still be seen.
	step("drift after a clean check is still seen", func(t *testing.T) {
		for i := range 2 {
			res := tdm.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off", "-o", "json"}, src...)...)
			wantCode(t, res, 0)
			var rep reconcileReport
			res.JSON(t, &rep)
			if drifted, _ := driftOf(t, rep); len(drifted) > 0 {
				t.Fatalf("run %d: no drift expected, got %v", i, drifted)
			}
		}
		kc.run(t, "green", "-n", "example", "set", "image", "deployment/example", "app="+hackedImage)
		res := tdm.run(t, reconcileTimeout, append([]string{"reconcile", "--standby-guard=off", "-o", "json"}, src...)...)
		wantCode(t, res, 0)
		var rep reconcileReport
		res.JSON(t, &rep)
		drifted, _ := driftOf(t, rep)
		if d := cmp.Diff(map[string][]string{"green/example": {"Deployment example/example"}}, drifted); d != "" {
			t.Errorf("drifted after a recorded clean check (-want +got):\n%s", d)
		}
	})
}

// driftOf collects, per "cluster/release", the objects a reconcile report
// lists as drifted and as corrected, and checks that no release was
// installed, upgraded or given a new revision.
func driftOf(t *testing.T, rep reconcileReport) (drifted, corrected map[string][]string) {
	t.Helper()
	drifted, corrected = map[string][]string{}, map[string][]string{}
	for _, c := range rep.Clusters {
		if c.Error != "" {
			t.Errorf("cluster %s: %s", c.Name, c.Error)
		}
		for _, r := range c.Releases {
			if r.Action != "unchanged" || r.Outcome != "ok" || r.Revision != r.FromRevision {
				t.Errorf("%s/%s: action %s outcome %s rev %d→%d %s; want unchanged, ok, same revision", c.Name, r.Name, r.Action, r.Outcome, r.FromRevision, r.Revision, r.Error)
			}
			if len(r.Drifted) > 0 {
				drifted[c.Name+"/"+r.Name] = sorted(r.Drifted)
			}
			if len(r.Corrected) > 0 {
				corrected[c.Name+"/"+r.Name] = sorted(r.Corrected)
			}
		}
	}
	return drifted, corrected
}

// kubectl runs the pinned kubectl against the local clusters.
type kubectl struct{ bin, kubeconfig string }

func (k kubectl) run(t *testing.T, cluster string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--context", cluster}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl --context %s %s: %v\n%s", cluster, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func image(t *testing.T, kc kubectl, cluster string) string {
	t.Helper()
	return kc.run(t, cluster, "-n", "example", "get", "deployment/example", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
}

// secretValue reads one decoded value of a Secret; the tests compare it and never print it.
func secretValue(t *testing.T, kc kubectl, cluster, namespace, name, key string) string {
	t.Helper()
	enc := kc.run(t, cluster, "-n", namespace, "get", "secret", name, "-o", "jsonpath={.data."+key+"}")
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("secret %s/%s key %s is not base64", namespace, name, key)
	}
	return string(b)
}

// helmRevisions lists every Helm release revision stored on both clusters as
// "cluster namespace/release vN status".
func helmRevisions(t *testing.T, kc kubectl) []string {
	t.Helper()
	var out []string
	for _, c := range []string{"blue", "green"} {
		s := kc.run(t, c, "get", "secrets", "-A", "-l", "owner=helm", "-o",
			`jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.labels.name} v{.metadata.labels.version} {.metadata.labels.status}{"\n"}{end}`)
		for _, l := range strings.Split(s, "\n") {
			if l != "" {
				out = append(out, c+" "+l)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Helm release found on the clusters")
	}
	sort.Strings(out)
	return out
}

var (
	maskedValue = regexp.MustCompile(`apiKey: \(hidden, hmac [0-9a-f]{10}\)`)
	maskedLine  = regexp.MustCompile(`^apiKey: \(hidden, hmac [0-9a-f]{10}\)$`)
)

// shortHash is how tandem named a Secret value before the keyed hash: the
// first 10 hex digits of its sha256, which must not appear.
func shortHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])[:10]
}

// lineWithPrefix returns the first line of s starting with prefix, or "".
func lineWithPrefix(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// hasLine reports whether any line, trimmed, equals one of want.
func hasLine(lines []string, want ...string) bool {
	for _, l := range lines {
		if slices.Contains(want, strings.TrimSpace(l)) {
			return true
		}
	}
	return false
}

// trimAll joins lists of diff lines, each trimmed.
func trimAll(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
