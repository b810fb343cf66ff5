package localcluster

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr []string // substrings, in order of appearance; nil = valid
	}{
		{name: "defaults", opts: DefaultOptions()},
		{name: "zero value gets defaults", opts: Options{}.withDefaults()},
		{name: "one cluster", opts: Options{Names: []string{"solo"}, Nodes: 1}},
		{name: "duplicate name", opts: Options{Names: []string{"blue", "blue"}, Nodes: 1},
			wantErr: []string{`cluster name "blue": given twice`}},
		{name: "not a DNS label", opts: Options{Names: []string{"Blue_1"}, Nodes: 1},
			wantErr: []string{`cluster name "Blue_1"`}},
		{name: "no nodes and negative timeout", opts: Options{Names: []string{"a"}, Nodes: -1, ReadyTimeout: -time.Second},
			wantErr: []string{"nodes: -1", "ready timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil, want errors containing %q", tt.wantErr)
			}
			msg := err.Error()
			for _, want := range tt.wantErr {
				i := strings.Index(msg, want)
				if i < 0 {
					t.Fatalf("validate() = %q, want it to contain %q", msg, want)
				}
				msg = msg[i+len(want):]
			}
		})
	}
}

func TestAuthorityIssue(t *testing.T) {
	ca, err := newAuthority("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newAuthority("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	tests := []struct {
		name      string
		issuer    *authority
		spec      certSpec
		verify    x509.VerifyOptions
		wantValid bool
		wantCN    string
		wantOrg   []string
	}{
		{
			name:      "admin client in system:masters",
			issuer:    ca,
			spec:      certSpec{commonName: "tandem-admin", organization: []string{"system:masters"}},
			verify:    x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			wantValid: true, wantCN: "tandem-admin", wantOrg: []string{"system:masters"},
		},
		{
			name:      "server for loopback",
			issuer:    ca,
			spec:      certSpec{commonName: "kube-apiserver", server: true, dnsNames: []string{"localhost"}, ips: []net.IP{net.ParseIP("127.0.0.1")}},
			verify:    x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
			wantValid: true, wantCN: "kube-apiserver",
		},
		{
			name:   "client certificate is no server certificate",
			issuer: ca,
			spec:   certSpec{commonName: "someone"},
			verify: x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
			wantCN: "someone",
		},
		{
			name:   "another cluster's CA is not trusted",
			issuer: other,
			spec:   certSpec{commonName: "tandem-admin", organization: []string{"system:masters"}},
			verify: x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			wantCN: "tandem-admin", wantOrg: []string{"system:masters"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := tt.issuer.issue(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			if block == nil {
				t.Fatal("certificate is not PEM")
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if kb, _ := pem.Decode(keyPEM); kb == nil {
				t.Fatal("key is not PEM")
			} else if _, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
				t.Fatalf("key: %v", err)
			}
			if diff := cmp.Diff(tt.wantCN, cert.Subject.CommonName); diff != "" {
				t.Errorf("common name (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantOrg, cert.Subject.Organization); diff != "" {
				t.Errorf("organization (-want +got):\n%s", diff)
			}
			_, err = cert.Verify(tt.verify)
			if got := err == nil; got != tt.wantValid {
				t.Errorf("Verify() = %v, want valid=%v", err, tt.wantValid)
			}
		})
	}
}

func TestKubeconfig(t *testing.T) {
	entries := []kubeconfigEntry{
		{Context: "blue", User: "tandem-admin", Server: "https://127.0.0.1:1001", CA: []byte("ca-blue"), Cert: []byte("cert-blue"), Key: []byte("key-blue")},
		{Context: "green", User: "tandem-admin", Server: "https://127.0.0.1:1002", CA: []byte("ca-green"), Cert: []byte("cert-green"), Key: []byte("key-green")},
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := writeKubeconfig(kubeconfig(entries), path); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type ctx struct{ Server, User, CA, Cert, Key, Namespace string }
	got := map[string]ctx{}
	for name, c := range cfg.Contexts {
		cl, user := cfg.Clusters[c.Cluster], cfg.AuthInfos[c.AuthInfo]
		if cl == nil || user == nil {
			t.Fatalf("context %q refers to a missing cluster or user", name)
		}
		got[name] = ctx{cl.Server, c.AuthInfo, string(cl.CertificateAuthorityData), string(user.ClientCertificateData), string(user.ClientKeyData), c.Namespace}
	}
	want := map[string]ctx{
		"blue":  {"https://127.0.0.1:1001", "tandem-admin@blue", "ca-blue", "cert-blue", "key-blue", "default"},
		"green": {"https://127.0.0.1:1002", "tandem-admin@green", "ca-green", "cert-green", "key-green", "default"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("contexts (-want +got):\n%s", diff)
	}
	if cfg.CurrentContext != "blue" {
		t.Errorf("current context = %q, want blue", cfg.CurrentContext)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("kubeconfig holds private keys: mode %v (%v), want no group/other access", st.Mode(), err)
	}
}

func TestNodeNotSchedulable(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	tests := []struct {
		name string
		node corev1.Node
		want string
	}{
		{name: "ready and untainted", node: corev1.Node{Status: corev1.NodeStatus{Conditions: ready}}, want: ""},
		{name: "no conditions yet", node: corev1.Node{}, want: "not Ready"},
		{name: "not ready", node: corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}}}, want: "not Ready"},
		{name: "ready but still carrying the not-ready taint", node: corev1.Node{
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Conditions: ready},
		}, want: "tainted node.kubernetes.io/not-ready"},
		{name: "prefer-no-schedule taint is fine", node: corev1.Node{
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}},
			Status: corev1.NodeStatus{Conditions: ready},
		}, want: ""},
		{name: "cordoned", node: corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}, Status: corev1.NodeStatus{Conditions: ready}}, want: "cordoned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeNotSchedulable(tt.node); got != tt.want {
				t.Errorf("nodeNotSchedulable() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPortsAreFreeAndDistinct(t *testing.T) {
	var p ports
	seen := map[int]bool{}
	for range 50 {
		port, err := p.free()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] || port < portMin || port >= portMax {
			t.Fatalf("port %d: repeated or outside %d-%d", port, portMin, portMax)
		}
		seen[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		_ = l.Close()
	}
}

func TestSweepStaleWorkDirs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a process")
	}
	root := t.TempDir()
	// A process that has exited and been reaped: its pid is free.
	dead, err := startProcess("test/true", "/bin/true", nil, filepath.Join(root, "true.log"))
	if err != nil {
		t.Fatal(err)
	}
	<-dead.done
	mk := func(name, owner string) string {
		dir := filepath.Join(root, strings.Replace(workDirPattern, "*", name, 1))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	stale := mk("stale", strconv.Itoa(dead.pid()))
	live := mk("live", strconv.Itoa(os.Getpid()))
	unowned := mk("unowned", "")
	sweepStaleWorkDirs(root, &syncWriter{w: testLogWriter{t}})
	for dir, wantExists := range map[string]bool{stale: false, live: true, unowned: true} {
		_, err := os.Stat(dir)
		if got := err == nil; got != wantExists {
			t.Errorf("%s exists = %v, want %v", filepath.Base(dir), got, wantExists)
		}
	}
}

func TestProcessStopKillsItsGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes")
	}
	logPath := filepath.Join(t.TempDir(), "sh.log")
	// The shell starts a grandchild in its process group and reports its pid.
	p, err := startProcess("test/sh", "/bin/sh", []string{"-c", "sleep 300 & echo $!; wait"}, logPath)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		_ = p.stop()
		t.Fatal("shell did not report its child's pid")
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Error("process not reaped after stop")
	}
	waitGone(t, child)
	if err := p.stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// waitGone fails t unless pid is gone within a few seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Errorf("pid %d still running", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEnsureToolsCompletesADirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs hack/tools/build.sh")
	}
	src, err := EnsureTools(t.Context(), testLogWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	// A directory with every binary but without the kwok stages: build.sh must
	// write the stages and build nothing.
	dir := t.TempDir()
	for _, name := range toolNames {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TANDEM_TOOLS_DIR", dir)
	got, err := EnsureTools(t.Context(), testLogWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if got != dir {
		t.Errorf("EnsureTools() = %s, want %s", got, dir)
	}
	stages, err := os.ReadFile(filepath.Join(dir, kwokStages))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, line := range strings.Split(string(stages), "\n") {
		if k, ok := strings.CutPrefix(line, "kind: "); ok {
			kinds = append(kinds, k)
		}
	}
	want := []string{"Stage", "Stage", "Stage", "Stage", "Stage"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("kinds in %s (-want +got):\n%s", kwokStages, diff)
	}
}
