package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Env is a set of running clusters. Its methods are safe for concurrent use.
type Env struct {
	workDir     string
	ownsWorkDir bool
	toolsDir    string
	kubeconfig  string
	names       []string
	clusters    map[string]*cluster // fixed once Start returns
	log         *syncWriter

	stopOnce sync.Once
	stopErr  error
}

// workDirPattern names the directories Start creates, so a later Start can find
// and remove those a killed test binary left behind.
const (
	workDirPattern = "tandem-localcluster-*"
	ownerFile      = "owner.pid"
)

// Start brings up the clusters opts names, concurrently, and returns once all of
// them are ready: apiserver serving, controllers and scheduler running, every
// kwok node Ready and schedulable. On error everything started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	log := &syncWriter{w: opts.Log}
	t0 := time.Now()
	toolsDir := opts.ToolsDir
	if toolsDir == "" {
		if toolsDir, err = EnsureTools(ctx, log); err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
	} else if err := checkTools(toolsDir); err != nil {
		return nil, fmt.Errorf("localcluster: tools: %w", err)
	}

	env := &Env{toolsDir: toolsDir, names: opts.Names, log: log, clusters: make(map[string]*cluster, len(opts.Names))}
	if opts.WorkDir == "" {
		sweepStaleWorkDirs(os.TempDir(), log)
		if env.workDir, err = os.MkdirTemp("", workDirPattern); err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		env.ownsWorkDir = true
		if err := os.WriteFile(filepath.Join(env.workDir, ownerFile), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			_ = os.RemoveAll(env.workDir)
			return nil, fmt.Errorf("localcluster: %w", err)
		}
	} else {
		if env.workDir, err = filepath.Abs(opts.WorkDir); err != nil {
			return nil, fmt.Errorf("localcluster: work dir: %w", err)
		}
		if err := os.MkdirAll(env.workDir, 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
	}
	env.kubeconfig = filepath.Join(env.workDir, "kubeconfig")
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()

	ps := &ports{}
	for _, name := range opts.Names {
		env.clusters[name] = &cluster{
			name:     name,
			dir:      filepath.Join(env.workDir, name),
			toolsDir: toolsDir,
			nodes:    opts.Nodes,
			qps:      opts.ControllerQPS,
			ports:    ps,
			logf:     log.printf,
		}
	}
	log.printf("starting clusters %s in %s", strings.Join(opts.Names, ", "), env.workDir)
	// A plain group: one cluster's failure is reported alongside, not instead of,
	// another's.
	errs := make([]error, len(opts.Names))
	var wg sync.WaitGroup
	for i, name := range opts.Names {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
			defer cancel()
			if err := env.clusters[name].start(cctx); err != nil {
				errs[i] = fmt.Errorf("cluster %q: %w", name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if err := env.writeKubeconfig(); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	log.printf("clusters %s ready in %s; KUBECONFIG=%s", strings.Join(opts.Names, ", "), time.Since(t0).Round(time.Millisecond), env.kubeconfig)
	return env, nil
}

func (e *Env) writeKubeconfig() error {
	entries := make([]kubeconfigEntry, 0, len(e.names))
	for _, name := range e.names {
		c := e.clusters[name]
		entries = append(entries, kubeconfigEntry{
			Context: name, User: "tandem-admin", Server: c.server(), CA: c.ca.certPEM, Cert: c.adminCert, Key: c.adminKey,
		})
	}
	return writeKubeconfig(kubeconfig(entries), e.kubeconfig)
}

// Names returns the clusters' names in the order Options gave them.
func (e *Env) Names() []string { return append([]string(nil), e.names...) }

// Kubeconfig returns the path of the kubeconfig file: one context per cluster,
// named after it, each with the cluster's admin (group system:masters). The first
// cluster's context is current.
func (e *Env) Kubeconfig() string { return e.kubeconfig }

// WorkDir returns the directory holding the clusters' data and process logs
// (NAME/logs/*.log).
func (e *Env) WorkDir() string { return e.workDir }

// Tool returns the absolute path of a binary in the tools directory: "helm",
// "kubectl", "kube-apiserver", ...
func (e *Env) Tool(name string) string { return filepath.Join(e.toolsDir, name) }

// RESTConfig returns the admin's client configuration for cluster name.
func (e *Env) RESTConfig(name string) (*rest.Config, error) {
	c, err := e.cluster(name)
	if err != nil {
		return nil, err
	}
	return c.restConfig(), nil
}

// Clientsets returns an admin clientset for every cluster, by name.
func (e *Env) Clientsets() (map[string]kubernetes.Interface, error) {
	out := make(map[string]kubernetes.Interface, len(e.names))
	for _, name := range e.names {
		cfg, err := e.RESTConfig(name)
		if err != nil {
			return nil, err
		}
		if out[name], err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, fmt.Errorf("cluster %q: %w", name, err)
		}
	}
	return out, nil
}

// UserConfig returns a client configuration for cluster name that authenticates
// as user in groups, with a freshly issued client certificate. Such a user has
// only the rights RBAC gives it: a new user name has none.
func (e *Env) UserConfig(name, user string, groups ...string) (*rest.Config, error) {
	c, err := e.cluster(name)
	if err != nil {
		return nil, err
	}
	cert, key, err := c.ca.issue(certSpec{commonName: user, organization: groups})
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	return c.userConfig(cert, key), nil
}

// StopAPIServer kills cluster name's kube-apiserver: clients get connection
// refused until StartAPIServer. etcd, the controllers and kwok keep running.
func (e *Env) StopAPIServer(name string) error {
	c, err := e.cluster(name)
	if err != nil {
		return err
	}
	if err := c.stopAPIServer(); err != nil {
		return fmt.Errorf("cluster %q: %w", name, err)
	}
	e.log.printf("%s: apiserver stopped", name)
	return nil
}

// StartAPIServer starts cluster name's kube-apiserver again, on the same port with
// the same certificates, and waits for /readyz. It does nothing if it is running.
func (e *Env) StartAPIServer(ctx context.Context, name string) error {
	c, err := e.cluster(name)
	if err != nil {
		return err
	}
	if c.apiserverRunning() {
		return nil
	}
	if err := c.startAPIServer(ctx); err != nil {
		return fmt.Errorf("cluster %q: %w", name, err)
	}
	e.log.printf("%s: apiserver started again on %s", name, c.server())
	return nil
}

// Stop kills every process of every cluster and waits for them to be gone, then
// removes the work directory if Start created it. Calling it again returns the
// first call's result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		errs := make([]error, len(e.names))
		var wg sync.WaitGroup
		for i, name := range e.names {
			c := e.clusters[name]
			wg.Go(func() {
				if err := c.stopAll(); err != nil {
					errs[i] = fmt.Errorf("cluster %q: %w", name, err)
				}
			})
		}
		wg.Wait()
		if e.ownsWorkDir {
			if err := os.RemoveAll(e.workDir); err != nil {
				errs = append(errs, fmt.Errorf("remove work dir: %w", err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			e.stopErr = fmt.Errorf("localcluster: stop: %w", err)
		}
		e.log.printf("clusters %s stopped", strings.Join(e.names, ", "))
	})
	return e.stopErr
}

func (e *Env) cluster(name string) (*cluster, error) {
	c, ok := e.clusters[name]
	if !ok {
		return nil, fmt.Errorf("localcluster: no cluster %q (have %s)", name, strings.Join(e.names, ", "))
	}
	return c, nil
}

// sweepStaleWorkDirs removes work directories under dir whose owning process is
// gone: a test binary killed by a timeout or a panic cannot run Stop. Its
// processes died with it (the parent-death signal); only files remain.
func sweepStaleWorkDirs(dir string, log *syncWriter) {
	matches, _ := filepath.Glob(filepath.Join(dir, workDirPattern))
	for _, m := range matches {
		b, err := os.ReadFile(filepath.Join(m, ownerFile))
		if err != nil {
			continue // not ours, or being created right now
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(m); err == nil {
			log.printf("removed %s, left behind by pid %d", m, pid)
		}
	}
}

// syncWriter serializes progress lines from the clusters' goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(s, "[localcluster] "+format+"\n", args...)
}
