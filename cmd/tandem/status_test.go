package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/reconciler"
)

// deadKubeconfig writes a kubeconfig whose contexts blue and green point at
// a loopback port nothing listens on: an unreachable cluster without any
// cluster running.
func deadKubeconfig(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: closed
    cluster:
      server: https://%s
      insecure-skip-tls-verify: true
users:
  - name: nobody
    user:
      token: not-a-real-token
contexts:
  - name: blue
    context: {cluster: closed, user: nobody}
  - name: green
    context: {cluster: closed, user: nobody}
current-context: blue
`, addr)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStatusUnreachableExitsOne covers issue 8 item 9 (exit codes): `tandem
// status` exits 1 when a cluster is unreachable, whatever the output format,
// and still prints what it knows (the JSON names each cluster's error).
func TestStatusUnreachableExitsOne(t *testing.T) {
	kubeconfig := deadKubeconfig(t)
	for _, format := range []string{"", "json"} {
		t.Run("output "+format, func(t *testing.T) {
			args := []string{"status", "--manifest-dir", "../../examples/manifest", "--kubeconfig", kubeconfig}
			if format != "" {
				args = append(args, "-o", format)
			}
			out, errOut, code := runCLI(t, args...)
			if code != exitFailure {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailure, errOut)
			}
			if format == "json" {
				var rows []reconciler.ClusterStatus
				decodeJSON(t, out, &rows)
				if len(rows) != 2 {
					t.Fatalf("want a row per cluster, got %d:\n%s", len(rows), out)
				}
				for _, r := range rows {
					if !strings.Contains(r.Error, "unreachable") {
						t.Errorf("cluster %s: error %q, want it to say unreachable", r.Name, r.Error)
					}
				}
			} else if !strings.Contains(out, "unreachable") {
				t.Errorf("table does not say a cluster is unreachable:\n%s", out)
			}
			if !strings.Contains(errOut, `error: cluster "blue"`) || !strings.Contains(errOut, `error: cluster "green"`) {
				t.Errorf("stderr does not name each unreachable cluster:\n%s", errOut)
			}
			if strings.Contains(out+errOut, "not-a-real-token") {
				t.Error("output holds the kubeconfig's token")
			}
		})
	}
}

// TestStatusUnknownOutput refuses a format it cannot write rather than
// falling back to the table.
func TestStatusUnknownOutput(t *testing.T) {
	_, errOut, code := runCLI(t, "status", "--manifest-dir", "../../examples/manifest", "--kubeconfig", deadKubeconfig(t), "-o", "yaml")
	if code != exitFailure || !strings.Contains(errOut, `unknown output format "yaml"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestStatusAppliedColumn: APPLIED names a commit only when the last run
// applied all of it; a run that failed part-way (or applied only some
// releases) shows its commit as partial, not as applied.
func TestStatusAppliedColumn(t *testing.T) {
	rows := []statusRow{
		{ClusterStatus: reconciler.ClusterStatus{Name: "blue", Role: "active",
			State: &clusters.State{Commit: "3f2c1ab9d0e1", AppliedCommit: "3f2c1ab9d0e1"}}},
		{ClusterStatus: reconciler.ClusterStatus{Name: "green", Role: "standby",
			State: &clusters.State{Commit: "9d81e07aa1b2", LastError: "release shop/web failed"}}},
		{ClusterStatus: reconciler.ClusterStatus{Name: "red", Role: "standby"}},
	}
	var b strings.Builder
	if err := writeStatus(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"blue": "3f2c1ab", "green": "9d81e07 (partial)", "red": "-"}
	lines := strings.Split(b.String(), "\n")
	header := lines[0]
	col := strings.Index(header, "APPLIED")
	end := strings.Index(header, "AT ")
	for _, l := range lines[1:4] {
		name := strings.Fields(l)[0]
		if got := strings.TrimSpace(l[col:end]); got != want[name] {
			t.Errorf("%s: APPLIED %q, want %q\n%s", name, got, want[name], b.String())
		}
	}
}
