package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetRoles(t *testing.T) {
	const in = `# The shop's clusters.
clusters:
  - name: blue
    role: active   # serves today
    context: prod-blue
  - {name: green, role: "standby"}

dns:
  activeWeight: 100 # role: active stays text
`
	tests := []struct {
		name    string
		roles   map[string]Role
		want    string
		changed []string
		err     string
	}{
		{"swap", map[string]Role{"blue": RoleStandby, "green": RoleActive},
			strings.NewReplacer("role: active   #", "role: standby   #", `role: "standby"`, "role: active").Replace(in),
			[]string{"blue", "green"}, ""},
		{"already so", map[string]Role{"blue": RoleActive}, in, nil, ""},
		{"unknown cluster", map[string]Role{"red": RoleActive}, "", nil, "no cluster named red"},
		{"bad role", map[string]Role{"blue": "primary"}, "", nil, "neither active nor standby"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(in), 0o640); err != nil {
				t.Fatal(err)
			}
			changed, err := SetRoles(path, tc.roles)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				got, _ := os.ReadFile(path)
				if string(got) != in {
					t.Errorf("the file changed on error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.changed, changed); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
			got, _ := os.ReadFile(path)
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
			}
		})
	}
}

func TestDrainSecondsDefaultAndBounds(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const head = "clusters:\n  - {name: blue, role: active}\n"
	write(head)
	m, err := Load(dir, DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if m.DNS.Drain() != DefaultDrainSeconds*time.Second {
		t.Errorf("default drain = %s, want %ds", m.DNS.Drain(), DefaultDrainSeconds)
	}
	if w := m.Warnings(); len(w) > 0 {
		t.Errorf("default drain warns: %v", w)
	}
	// 0 is allowed (local clusters, tests) but never silently: a
	// switchover would move the CronJobs and scale the source down while
	// resolvers still send it traffic.
	write(head + "dns: {drainSeconds: 0}\n")
	if m, err = Load(dir, DefaultLoadOptions()); err != nil || m.DNS.Drain() != 0 {
		t.Errorf("explicit 0: %v, %v", err, m.DNS.Drain())
	}
	if w := m.Warnings(); len(w) != 1 || !strings.Contains(w[0], "tandem.yaml: dns.drainSeconds: 0") || !strings.Contains(w[0], "TTL") ||
		!strings.Contains(w[0], "deregistration") {
		t.Errorf("explicit 0: warnings %q, want one naming tandem.yaml's dns.drainSeconds, the TTL and the deregistration delay", w)
	}
	write(head + "dns: {drainSeconds: 3601}\n")
	if _, err = Load(dir, DefaultLoadOptions()); err == nil || !strings.Contains(err.Error(), "dns.drainSeconds") {
		t.Errorf("3601 s: err = %v, want a dns.drainSeconds problem", err)
	}
}
