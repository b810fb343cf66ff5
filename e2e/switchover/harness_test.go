package switchover_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/e2e/e2etest"
	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

// runTimeout bounds one tandem run.
const runTimeout = 4 * time.Minute

// lockDuration is the runs' lock lease: short, so a killed run's lock
// expires soon, yet long enough that renewals survive a loaded machine
// (at 6 s, and at 10 s under a load average of 20, they missed their
// deadline on 2 busy cores).
const lockDuration = "15s"

type harness struct {
	env   *localcluster.Env
	bin   string
	cache string
	kube  map[string]kubernetes.Interface
	repo  *e2etest.ManifestRepo
}

// newHarness copies examples/manifest with green running every release
// (a switchover needs the target to run what the source runs), a 1 s
// drain, and converges both clusters to it: blue Active, green Standby.
func newHarness(t *testing.T) *harness {
	t.Helper()
	env := suite.Env(t)
	h := &harness{env: env, bin: tandem.Path(t), cache: t.TempDir()}
	kube, err := env.Clientsets()
	if err != nil {
		t.Fatal(err)
	}
	h.kube = kube
	h.repo = e2etest.CopyExample(t)
	h.repo.Replace(t, "tandem.yaml", "    releases: [platform, example]\n", "")
	h.repo.Replace(t, "tandem.yaml", "  activeWeight: 100\n", "  activeWeight: 100\n  drainSeconds: 1\n")
	h.repo.Commit(t, "green runs every release; 1 s drain")
	// An earlier test may have left either role in effect, or a switchover
	// half way (a failed test): converge to whatever the state records say
	// first, by setting the roles to them (the reconcile finishes it).
	active := "blue"
	for _, c := range []string{"blue", "green"} {
		if st := h.state(t, c); st != nil && st.Switchover != nil && len(st.Switchover.To) == 1 {
			active = st.Switchover.To[0]
			break
		} else if st != nil && st.Role == "active" {
			active = c
		}
	}
	if active == "green" {
		h.switchTo(t, "green")
	}
	if res := h.reconcile(t, "--allow-mass-prune"); res.Code != 0 {
		t.Fatalf("converging: exit %d\n%s", res.Code, res.Stderr)
	}
	return h
}

func (h *harness) tandemEnv() []string {
	return []string{"KUBECONFIG=" + h.env.Kubeconfig(), "TANDEM_CACHE_DIR=" + h.cache}
}

func (h *harness) reconcileArgs(args []string) []string {
	return append([]string{"reconcile", "--manifest-dir", h.repo.Dir, "-o", "json", "--lock-duration", lockDuration, "--detect-drift=false"}, args...)
}

func (h *harness) reconcile(t *testing.T, args ...string) e2etest.Result {
	t.Helper()
	return e2etest.Run(t, h.bin, runTimeout, h.tandemEnv(), h.reconcileArgs(args)...)
}

// switchTo runs `tandem switchover --to name` and commits the edit.
func (h *harness) switchTo(t *testing.T, name string) {
	t.Helper()
	res := e2etest.Run(t, h.bin, time.Minute, h.tandemEnv(), "switchover", "--to", name, "--manifest-dir", h.repo.Dir)
	if res.Code != 0 {
		t.Fatalf("tandem switchover --to %s: exit %d\n%s", name, res.Code, res.Stderr)
	}
	h.repo.Commit(t, "switch over to "+name)
}

// state reads a cluster's state record as tandem does.
func (h *harness) state(t *testing.T, cluster string) *clusters.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cm, err := h.kube[cluster].CoreV1().ConfigMaps(clusters.SystemNamespace).Get(ctx, clusters.StateConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	st, err := clusters.DecodeState(cm)
	if err != nil {
		t.Fatalf("%s: state record: %v", cluster, err)
	}
	return st
}

// process is a tandem run in the background.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

func (h *harness) start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command(h.bin, h.reconcileArgs(args)...)
	p.cmd.Env = append(os.Environ(), h.tandemEnv()...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// roles are what the state records say is in effect, "blue=active green=standby".
func (h *harness) roles(t *testing.T) string {
	t.Helper()
	var parts []string
	for _, c := range []string{"blue", "green"} {
		role := "-"
		if st := h.state(t, c); st != nil {
			role = st.Role
			if st.Switchover != nil {
				role += "(switchover)"
			}
		}
		parts = append(parts, c+"="+role)
	}
	return strings.Join(parts, " ")
}

// active is the cluster whose state record says it is Active.
func (h *harness) active(t *testing.T) string {
	t.Helper()
	if st := h.state(t, "green"); st != nil && st.Role == "active" {
		return "green"
	}
	return "blue"
}

// other is the cluster that is not name.
func other(name string) string {
	if name == "blue" {
		return "green"
	}
	return "blue"
}

// helmRevisions is the latest revision of a release in Helm's storage (the
// Secrets helm history reads): the highest version label, not their count,
// which Helm's history limit caps.
func (h *harness) helmRevisions(t *testing.T, cluster, namespace, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := h.kube[cluster].CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	latest := 0
	for _, sec := range list.Items {
		n, _ := strconv.Atoi(sec.Labels["version"])
		latest = max(latest, n)
	}
	return latest
}
