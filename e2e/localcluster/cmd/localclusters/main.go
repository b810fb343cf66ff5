// Command localclusters starts local Kubernetes clusters (see package localcluster)
// and keeps them running until SIGTERM or SIGINT, for manual work and the demo.
// `make clusters-up` runs it in the background and `make clusters-down` stops it.
//
// In its state directory it writes localclusters.pid when it starts and
// kubeconfig once every cluster is ready; it removes both, and the clusters' work
// directory, when it stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/tandem-gitops/tandem/e2e/localcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localclusters:", err)
		os.Exit(1)
	}
}

// flags are the command line of localclusters.
type flags struct {
	stateDir string
	names    string
	nodes    int
	qps      float64
	toolsDir string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := localcluster.DefaultOptions()
	var f flags
	fs := flag.NewFlagSet("localclusters", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.stateDir, "state-dir", filepath.Join(".cache", "clusters"), "directory for the pid file, the kubeconfig and the clusters' data")
	fs.StringVar(&f.names, "names", strings.Join(def.Names, ","), "comma-separated cluster names; each is a kubeconfig context")
	fs.IntVar(&f.nodes, "nodes", def.Nodes, "kwok nodes per cluster")
	fs.Float64Var(&f.qps, "controller-qps", 0, "client rate limit of kube-controller-manager and kube-scheduler (0: their defaults)")
	fs.StringVar(&f.toolsDir, "tools-dir", "", "directory of the pinned binaries (default: build or find them with hack/tools/build.sh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	state, err := filepath.Abs(f.stateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	pidFile := filepath.Join(state, "localclusters.pid")
	kubeconfig := filepath.Join(state, "kubeconfig")
	workDir := filepath.Join(state, "work")

	if pid, ok := runningPID(pidFile); ok && pid != os.Getpid() {
		return fmt.Errorf("already running as pid %d (state dir %s)", pid, state)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer os.Remove(pidFile)
	// Whatever a killed predecessor left: its processes died with it.
	_ = os.Remove(kubeconfig)
	if err := os.RemoveAll(workDir); err != nil {
		return fmt.Errorf("clear %s: %w", workDir, err)
	}

	opts := def
	opts.Names = strings.Split(f.names, ",")
	opts.Nodes = f.nodes
	opts.ControllerQPS = float32(f.qps)
	opts.WorkDir = workDir
	opts.ToolsDir = f.toolsDir
	opts.Log = stderr
	env, err := localcluster.Start(ctx, opts)
	if err != nil {
		return errors.Join(err, os.RemoveAll(workDir))
	}
	stopErr := func() error {
		_ = os.Remove(kubeconfig)
		return errors.Join(env.Stop(), os.RemoveAll(workDir))
	}

	// The kubeconfig appears in the state dir only now, whole: clusters-up waits for it.
	b, err := os.ReadFile(env.Kubeconfig())
	if err == nil {
		err = writeFileAtomic(kubeconfig, b)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("kubeconfig: %w", err), stopErr())
	}
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", kubeconfig)
	fmt.Fprintf(stderr, "[localclusters] running as pid %d; contexts %s; logs in %s/*/logs; stop with SIGTERM (make clusters-down)\n",
		os.Getpid(), strings.Join(env.Names(), ", "), workDir)

	<-ctx.Done()
	fmt.Fprintln(stderr, "[localclusters] stopping")
	return stopErr()
}

// runningPID reads a pid file and reports whether that process is alive.
func runningPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = syscall.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, syscall.EPERM)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
