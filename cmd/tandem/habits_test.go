package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every command refuses an -o value it does not support, before it does
// anything; commands without output formats refuse every -o.
func TestOutputFormatRefusedEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "--manifest-dir", "../../examples/manifest", "-o", "json"},
		{"version", "-o", "yaml"},
		{"render", "--manifest-dir", "../../examples/manifest", "-o", "text"},
		{"status", "--manifest-dir", "../../examples/manifest", "-o", "wide"},
		{"reconcile", "--manifest-dir", "../../examples/manifest", "-o", "markdown"},
		{"diff", "--manifest-dir", "../../examples/manifest", "-o", "yaml"},
	} {
		t.Run(args[0], func(t *testing.T) {
			out, errOut, code := runCLI(t, args...)
			if code != 1 || out != "" || !strings.Contains(errOut, "output format") {
				t.Errorf("tandem %s: exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, an output format error", strings.Join(args, " "), code, out, errOut)
			}
		})
	}
	// Every command of the tree, serve included (not run here: without the
	// check it would start serving), is checked before it runs.
	root := newRootCmd(streams{})
	for _, c := range root.Commands() {
		if err := checkOutput(c, "bogus"); err == nil {
			t.Errorf("tandem %s accepts -o bogus", c.Name())
		}
	}
	out, errOut, code := runCLI(t, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"version": "dev"`) {
		t.Errorf("version -o json: exit %d, %q %q", code, out, errOut)
	}
}

// Shell completion offers the manifest's clusters and releases and each
// command's output formats.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"render", "--manifest-dir", "../../examples/manifest", "--cluster", ""}, []string{"blue\tactive", "green\tstandby"}},
		{[]string{"reconcile", "--manifest-dir", "../../examples/manifest", "--release", ""}, []string{"platform\tplatform", "cache\tshop", "example\texample", "storefront\tshop", "orders-worker\tshop"}},
		{[]string{"status", "--manifest-dir", "../../examples/manifest", "--cluster", ""}, []string{"blue\tactive", "green\tstandby"}},
		{[]string{"diff", "-o", ""}, []string{"text", "json", "markdown"}},
		{[]string{"render", "-o", ""}, []string{"yaml", "json"}},
		{[]string{"render", "--manifest-dir", "testdata/no-such-dir", "--cluster", ""}, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"__complete"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
				t.Fatalf("no directive line: %q", out)
			}
			got := lines[:len(lines)-1]
			if len(got) == 0 {
				got = nil
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("completions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	mod := func(v string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/tandem-gitops/tandem", Version: v}}
	}
	for _, tc := range []struct {
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{"v1.4.0", mod("v1.3.0"), "v1.4.0"}, // make build stamps it
		{"dev", mod("v1.3.0"), "v1.3.0"},    // go install …@v1.3.0
		{"dev", mod("(devel)"), "dev"},      // go build in a checkout
		{"dev", nil, "dev"},
	} {
		if got := versionOf(tc.stamped, tc.bi); got != tc.want {
			t.Errorf("versionOf(%q, %v) = %q, want %q", tc.stamped, tc.bi, got, tc.want)
		}
	}
}
