package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as tandem.yaml. Load must never panic, must return
// either a manifest or an error, and its errors must be a *ValidationError or name the file.
// The seed corpus is every fixture in testdata plus testdata/fuzz/FuzzLoad, so `go test` runs
// them all; `go test -fuzz FuzzLoad ./manifest` explores further.
func FuzzLoad(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range fixtures {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// One repository per fuzzing process: the fuzz function runs sequentially within it.
	dir := f.TempDir()
	copyDir(f, filepath.Join("testdata", "repo"), dir)
	manifestPath := filepath.Join(dir, FileName)

	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(manifestPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir, LoadOptions{MaxYAMLNodes: 5000})
		if err != nil {
			if m != nil {
				t.Fatalf("Load returned a manifest with an error: %v", err)
			}
			var ve *ValidationError
			if errors.As(err, &ve) {
				if len(ve.Problems) == 0 {
					t.Fatal("ValidationError without problems")
				}
				for _, p := range ve.Problems {
					if p.File == "" || p.Message == "" || p.Line < 0 {
						t.Fatalf("incomplete problem %#v", p)
					}
				}
			} else if !strings.Contains(err.Error(), FileName) {
				t.Fatalf("error neither a ValidationError nor naming %s: %v", FileName, err)
			}
			return
		}
		if m == nil {
			t.Fatal("Load returned neither a manifest nor an error")
		}
		// What Load accepts is defaulted and consistent.
		active := false
		for _, c := range m.Clusters {
			active = active || c.Role == RoleActive
			if c.Context == "" {
				t.Fatalf("cluster %q has no context", c.Name)
			}
		}
		if !active {
			t.Fatal("accepted a manifest without an active cluster")
		}
		if m.DNS.ActiveWeight < 1 || m.DNS.ActiveWeight > 255 || m.DNS.AnnotationPrefix == "" {
			t.Fatalf("DNS not defaulted or out of range: %+v", m.DNS)
		}
		for _, r := range m.Releases {
			if r.Standby == "" || r.Rollout == "" || r.OnFailure == "" || r.TimeoutDuration() <= 0 {
				t.Fatalf("release %q not defaulted: %+v", r.Key(), r)
			}
			if r.Local() {
				if _, err := m.Path(r.Chart); err != nil {
					t.Fatalf("accepted local chart %q: %v", r.Chart, err)
				}
			}
			for _, v := range r.Values {
				if _, err := m.ReadFile(v); err != nil {
					t.Fatalf("accepted values file %q: %v", v, err)
				}
			}
		}
	})
}
