package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// serviceCIDR and podCIDR must not overlap: kwok hands out pod IPs itself.
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1" // the kubernetes.default Service, in the serving certificate
	podCIDR     = "10.244.0.0/16"
	// kwokNodeAnnotation marks the nodes kwok plays the kubelet for.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// startAttempts bounds retries of a process whose port was taken meanwhile.
	startAttempts = 5
	addrInUse     = "address already in use"
)

// cluster is one control plane and its files under dir.
type cluster struct {
	name     string
	dir      string
	toolsDir string
	nodes    int
	qps      float32 // Options.ControllerQPS
	ports    *ports
	logf     func(format string, args ...any)

	ca                  *authority
	adminCert, adminKey []byte

	// Fixed once start has returned; StartAPIServer reuses apiPort.
	etcdPort, etcdPeerPort, apiPort int

	mu        sync.Mutex // guards the process fields: StopAPIServer and Stop may race
	stopped   bool       // set by stopAll; no process starts after it
	etcd      *process
	apiserver *process
	kcm       *process
	scheduler *process
	kwok      *process
	launched  []*process // every process started, for CPUTimes; stopped ones too
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// start brings the control plane up and returns once the nodes are Ready and
// schedulable and the default ServiceAccount exists (pods can be created).
func (c *cluster) start(ctx context.Context) error {
	t0 := time.Now()
	if err := c.writePKI(); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServerFirst(ctx); err != nil {
		return err
	}
	c.logf("%s: apiserver ready on https://127.0.0.1:%d after %s", c.name, c.apiPort, time.Since(t0).Round(time.Millisecond))
	if err := c.writeComponentKubeconfigs(); err != nil {
		return err
	}
	if err := c.startControllers(); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.restConfig())
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.createNodes(ctx, client); err != nil {
		return err
	}
	c.mu.Lock()
	watch := []*process{c.etcd, c.apiserver, c.kcm, c.scheduler, c.kwok}
	c.mu.Unlock()
	if err := waitUntil(ctx, "nodes Ready and schedulable", 200*time.Millisecond, func(ctx context.Context) error {
		return c.nodesSchedulable(ctx, client)
	}, watch...); err != nil {
		return err
	}
	if err := waitUntil(ctx, "default ServiceAccount", 200*time.Millisecond, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}, watch...); err != nil {
		return err
	}
	c.logf("%s: ready after %s", c.name, time.Since(t0).Round(time.Millisecond))
	return nil
}

// writePKI makes the cluster's CA, the apiserver's serving certificate, the
// client certificates of the admin and the components, and the service account
// key.
func (c *cluster) writePKI() error {
	for _, d := range []string{"pki", "logs", "etcd"} {
		if err := os.MkdirAll(c.path(d), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	ca, err := newAuthority(c.name + "-ca")
	if err != nil {
		return err
	}
	c.ca = ca
	files := map[string][]byte{"ca.crt": ca.certPEM}
	serving, servingKey, err := ca.issue(certSpec{
		commonName: "kube-apiserver",
		server:     true,
		dnsNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ips:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
	})
	if err != nil {
		return err
	}
	files["apiserver.crt"], files["apiserver.key"] = serving, servingKey
	c.adminCert, c.adminKey, err = ca.issue(certSpec{commonName: "tandem-admin", organization: []string{"system:masters"}})
	if err != nil {
		return err
	}
	for _, comp := range components {
		cert, key, err := ca.issue(certSpec{commonName: comp.user, organization: comp.groups})
		if err != nil {
			return err
		}
		files[comp.name+".crt"], files[comp.name+".key"] = cert, key
	}
	files["sa.key"], files["sa.pub"], err = newServiceAccountKey()
	if err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(c.path("pki", name), b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// components are the clients of the apiserver besides the admin, with the
// identities the bootstrap RBAC policy expects. kwok plays every kubelet, so it
// gets the admin's group rather than one node's narrow rights.
var components = []struct {
	name, user string
	groups     []string
}{
	{name: "kube-controller-manager", user: "system:kube-controller-manager"},
	{name: "kube-scheduler", user: "system:kube-scheduler"},
	{name: "kwok", user: "kwok", groups: []string{"system:masters"}},
}

func (c *cluster) writeComponentKubeconfigs() error {
	server := c.server()
	for _, comp := range components {
		cert, err := os.ReadFile(c.path("pki", comp.name+".crt"))
		if err != nil {
			return fmt.Errorf("kubeconfig of %s: %w", comp.name, err)
		}
		key, err := os.ReadFile(c.path("pki", comp.name+".key"))
		if err != nil {
			return fmt.Errorf("kubeconfig of %s: %w", comp.name, err)
		}
		cfg := kubeconfig([]kubeconfigEntry{{
			Context: c.name, User: comp.user, Server: server, CA: c.ca.certPEM, Cert: cert, Key: key,
		}})
		if err := writeKubeconfig(cfg, c.path(comp.name+".kubeconfig")); err != nil {
			return fmt.Errorf("kubeconfig of %s: %w", comp.name, err)
		}
	}
	return nil
}

func (c *cluster) server() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.apiPort))
}

// restConfig is the admin's: user tandem-admin in group system:masters.
func (c *cluster) restConfig() *rest.Config {
	return c.userConfig(c.adminCert, c.adminKey)
}

func (c *cluster) userConfig(cert, key []byte) *rest.Config {
	return &rest.Config{
		Host: c.server(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.ca.certPEM, CertData: cert, KeyData: key,
		},
		// client-go's default of 5 requests per second makes tests wait on the
		// client, not the cluster.
		QPS:   50,
		Burst: 100,
	}
}

func (c *cluster) startEtcd(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		var err error
		if c.etcdPort, err = c.ports.free(); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		if c.etcdPeerPort, err = c.ports.free(); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort)
		peer := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPeerPort)
		// A failed attempt may have bootstrapped a member with other URLs.
		if err := os.RemoveAll(c.path("etcd")); err != nil {
			return fmt.Errorf("etcd: clear data dir: %w", err)
		}
		p, err := c.launch("etcd", []string{
			"--name=" + c.name,
			"--data-dir=" + c.path("etcd"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=" + c.name + "=" + peer,
			// Throwaway data: durability buys nothing and fsync costs seconds on a busy disk.
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		})
		if err != nil {
			return err
		}
		c.setProcess(&c.etcd, p)
		err = waitUntil(ctx, "etcd health", 50*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, http.DefaultClient, client+"/health", `"health":"true"`)
		}, p)
		if err == nil {
			return nil
		}
		if attempt < startAttempts && p.exited() && p.logContains(addrInUse) {
			continue
		}
		return fmt.Errorf("etcd: %w", err)
	}
}

func (c *cluster) apiserverArgs() []string {
	return []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses a loopback address for the kubernetes
		// Service, and nothing here runs in a pod that could use it.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--cert-dir=" + c.path("pki"),
		"--tls-cert-file=" + c.path("pki", "apiserver.crt"),
		"--tls-private-key-file=" + c.path("pki", "apiserver.key"),
		"--client-ca-file=" + c.path("pki", "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("pki", "sa.pub"),
		"--service-account-signing-key-file=" + c.path("pki", "sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		"--profiling=false",
	}
}

// startAPIServerFirst starts the apiserver on a fresh port, retrying with another
// port if that one was taken meanwhile.
func (c *cluster) startAPIServerFirst(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		var err error
		if c.apiPort, err = c.ports.free(); err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
		err = c.startAPIServer(ctx)
		if err == nil {
			return nil
		}
		c.mu.Lock()
		p := c.apiserver
		c.mu.Unlock()
		if attempt < startAttempts && p != nil && p.exited() && p.logContains(addrInUse) {
			continue
		}
		return err
	}
}

// startAPIServer starts the apiserver on c.apiPort and waits for /readyz.
func (c *cluster) startAPIServer(ctx context.Context) error {
	p, err := c.launch("kube-apiserver", c.apiserverArgs())
	if err != nil {
		return err
	}
	c.setProcess(&c.apiserver, p)
	hc, err := c.httpClient()
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	defer hc.CloseIdleConnections()
	url := c.server() + "/readyz"
	if err := waitUntil(ctx, "kube-apiserver /readyz", 100*time.Millisecond, func(ctx context.Context) error {
		return httpOK(ctx, hc, url, "ok")
	}, p); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

func (c *cluster) startControllers() error {
	kcm := c.path("kube-controller-manager.kubeconfig")
	sched := c.path("kube-scheduler.kubeconfig")
	specs := []struct {
		bin  string
		args []string
		slot **process
	}{
		{"kube-controller-manager", append([]string{
			"--kubeconfig=" + kcm,
			"--authentication-kubeconfig=" + kcm,
			"--authorization-kubeconfig=" + kcm,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			// No serving port: nothing probes it, and a port not taken is one no
			// other test can take first.
			"--secure-port=0",
			"--cluster-name=" + c.name,
			"--service-account-private-key-file=" + c.path("pki", "sa.key"),
			"--root-ca-file=" + c.path("pki", "ca.crt"),
			// As kubeadm does: each controller acts with its own service account.
			"--use-service-account-credentials=true",
			"--profiling=false",
		}, c.qpsFlags()...), &c.kcm},
		{"kube-scheduler", append([]string{
			"--kubeconfig=" + sched,
			"--authentication-kubeconfig=" + sched,
			"--authorization-kubeconfig=" + sched,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--profiling=false",
		}, c.qpsFlags()...), &c.scheduler},
		{"kwok", []string{
			"--kubeconfig=" + c.path("kwok.kubeconfig"),
			"--config=" + filepath.Join(c.toolsDir, kwokStages),
			"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
			// Node leases, as kubelets keep them: the node lifecycle controller
			// then sees the nodes alive between the heartbeat stage's updates.
			"--node-lease-duration-seconds=40",
			"--cidr=" + podCIDR,
		}, &c.kwok},
	}
	for _, s := range specs {
		p, err := c.launch(s.bin, s.args)
		if err != nil {
			return err
		}
		c.setProcess(s.slot, p)
	}
	return nil
}

// qpsFlags raise the controllers' and the scheduler's client rate limits
// when Options.ControllerQPS asks for it (the scheduler takes the flags as
// long as it is given no --config).
func (c *cluster) qpsFlags() []string {
	if c.qps <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("--kube-api-qps=%g", c.qps), fmt.Sprintf("--kube-api-burst=%d", int(2*c.qps))}
}

// createNodes registers the kwok nodes. The node lifecycle controller removes the
// not-ready taint that admission puts on a new Node once kwok reports it Ready.
func (c *cluster) createNodes(ctx context.Context, client kubernetes.Interface) error {
	for i := range c.nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
				Annotations: map[string]string{
					kwokNodeAnnotation:             "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
			},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

// nodesSchedulable is nil once every kwok node is Ready and untainted.
func (c *cluster) nodesSchedulable(ctx context.Context, client kubernetes.Interface) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var waiting []string
	for _, n := range nodes.Items {
		if reason := nodeNotSchedulable(n); reason != "" {
			waiting = append(waiting, n.Name+" "+reason)
		}
	}
	if len(nodes.Items) < c.nodes {
		waiting = append(waiting, fmt.Sprintf("%d of %d nodes registered", len(nodes.Items), c.nodes))
	}
	if len(waiting) > 0 {
		return errors.New(strings.Join(waiting, "; "))
	}
	return nil
}

// nodeNotSchedulable says why a node takes no pods yet, or "" if it does.
func nodeNotSchedulable(n corev1.Node) string {
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return "not Ready"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return "tainted " + t.Key
		}
	}
	if n.Spec.Unschedulable {
		return "cordoned"
	}
	return ""
}

// launch starts one of the cluster's binaries with its log in logs/.
func (c *cluster) launch(bin string, args []string) (*process, error) {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return nil, fmt.Errorf("%s: cluster is stopped", bin)
	}
	p, err := startProcess(c.name+"/"+bin, filepath.Join(c.toolsDir, bin), args, c.path("logs", bin+".log"))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.launched = append(c.launched, p)
	c.mu.Unlock()
	return p, nil
}

// setProcess records p in *slot, or kills p if the cluster was stopped
// meanwhile: Stop must never miss a process.
func (c *cluster) setProcess(slot **process, p *process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = p.stop()
		return
	}
	*slot = p
}

// stopAPIServer kills the apiserver; the rest of the cluster keeps running.
func (c *cluster) stopAPIServer() error {
	c.mu.Lock()
	p := c.apiserver
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop()
}

// apiserverRunning reports whether the apiserver process is alive.
func (c *cluster) apiserverRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiserver != nil && !c.apiserver.exited()
}

// stopAll kills every process of the cluster, the apiserver's clients first so
// they do not log a storm of connection errors.
func (c *cluster) stopAll() error {
	c.mu.Lock()
	c.stopped = true
	procs := []*process{c.kwok, c.scheduler, c.kcm, c.apiserver, c.etcd}
	c.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if p != nil {
			if err := p.stop(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// pids lists the processes currently recorded, running or not.
func (c *cluster) pids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, p := range []*process{c.etcd, c.apiserver, c.kcm, c.scheduler, c.kwok} {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

// httpClient trusts the cluster's CA and presents the admin certificate.
func (c *cluster) httpClient() (*http.Client, error) {
	pair, err := tls.X509KeyPair(c.adminCert, c.adminKey)
	if err != nil {
		return nil, fmt.Errorf("admin key pair: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.cert)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}}, nil
}

// httpOK is nil when url answers 200 with a body containing want.
func httpOK(ctx context.Context, hc *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
