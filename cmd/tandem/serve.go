package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/netutil"

	"github.com/tandem-gitops/tandem/clusters"
	"github.com/tandem-gitops/tandem/daemon"
	"github.com/tandem-gitops/tandem/manifest"
	"github.com/tandem-gitops/tandem/reconciler"
	"github.com/tandem-gitops/tandem/render"
	"github.com/tandem-gitops/tandem/webhook"
)

// maxConnections bounds the daemon's open HTTP connections.
const maxConnections = 256

type serveFlags struct {
	source          sourceFlags
	apply           applyFlags
	interval        time.Duration
	resync          time.Duration
	listen          string
	webhookSecret   string
	webhookRate     float64
	webhookBurst    int
	logFormat       string
	shutdownTimeout time.Duration
	leaderElect     bool
	leaderContext   string
	leaderNamespace string
	leaderLease     string
	leaseDuration   time.Duration
	renewDeadline   time.Duration
	retryPeriod     time.Duration
	renderTimeout   time.Duration
}

func newServeCmd(g *globalFlags, s streams) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run as a daemon: follow a git branch and keep every cluster at its newest good commit",
		Long: `serve follows the manifest repository's branch (--repo/--ref) or a local working tree
(--manifest-dir, re-read every cycle). Every --interval (±10%) it asks the remote where the branch
points, one request, and reconciles when the commit moved; a signed webhook makes it ask at once.
Every --resync it reconciles again without a new commit. A commit that does not load, validate or
render is reported and never applied: the clusters stay at the last good commit.

It serves /healthz, /readyz, /metrics (Prometheus), /status (JSON) and, with --webhook-secret-file,
POST /hooks/github, /hooks/gitlab and /hooks/generic on --listen.

With --leader-elect, replicas elect a leader through a Lease (--leader-elect-namespace in the
cluster of --leader-elect-context): every replica serves HTTP, only the leader reconciles.
SIGTERM stops new runs, lets the run in flight finish within --shutdown-timeout (then cancels it
cleanly), releases the cluster locks and the Lease, and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			return f.run(cmd.Context(), g, s)
		},
	}
	f.source.register(cmd)
	f.apply.register(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&f.interval, "interval", time.Minute, "how often to ask the remote where the branch points (±10% jitter)")
	fl.DurationVar(&f.resync, "resync", 10*time.Minute, "reconcile again this often without a new commit (drift detection and correction as configured)")
	fl.StringVar(&f.listen, "listen", ":8080", "address for webhooks, /healthz, /readyz, /metrics and /status")
	fl.StringVar(&f.webhookSecret, "webhook-secret-file", "", "file holding the webhook secret; without it the hook paths answer 404")
	fl.Float64Var(&f.webhookRate, "webhook-rate", 1, "failed webhook authentications per second allowed per source address (burst --webhook-burst); signed requests are never rate-limited")
	fl.IntVar(&f.webhookBurst, "webhook-burst", 10, "failed webhook authentications a source may make at once")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "on SIGTERM, how long the run in flight may go on before it is cancelled")
	fl.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader among replicas through a Lease; only the leader reconciles")
	fl.StringVar(&f.leaderContext, "leader-elect-context", "", "kubeconfig context of the cluster holding the leader Lease (default: the current context)")
	fl.StringVar(&f.leaderNamespace, "leader-elect-namespace", clusters.SystemNamespace, "namespace of the leader Lease (must exist)")
	fl.StringVar(&f.leaderLease, "leader-elect-lease", clusters.DefaultLeaderLease, "name of the leader Lease")
	fl.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long followers wait after the leader last renewed before taking over")
	fl.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops reconciling")
	fl.DurationVar(&f.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the Lease is renewed or tried")
	fl.DurationVar(&f.renderTimeout, "render-timeout", render.DefaultOptions().Timeout, "bound one release's render; a template still running then is killed with its worker process")
	return cmd
}

func (f *serveFlags) check() error {
	if f.source.repo == "" && f.source.dir == "" {
		return errors.New("serve needs --repo (a git URL to follow) or --manifest-dir (a working tree)")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return fmt.Errorf("unknown --log-format %q (want text or json)", f.logFormat)
	}
	if f.interval <= 0 || f.resync <= 0 {
		return errors.New("--interval and --resync must be positive")
	}
	return f.apply.check()
}

// logger writes the daemon's logs to stderr at info level (-v: debug).
func (f *serveFlags) logger(g *globalFlags, s streams) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if g.verbosity > 0 {
		opts.Level = slog.LevelDebug
	}
	if f.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(s.Err, opts))
	}
	return slog.New(slog.NewTextHandler(s.Err, opts))
}

func (f *serveFlags) run(ctx context.Context, g *globalFlags, s streams) error {
	log := f.logger(g, s)
	var secret []byte
	if f.webhookSecret != "" {
		b, err := os.ReadFile(f.webhookSecret)
		if err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
		secret = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(secret) == 0 {
			return fmt.Errorf("--webhook-secret-file %s is empty", f.webhookSecret)
		}
	}

	metrics := daemon.NewMetrics()
	opts := daemon.DefaultOptions()
	opts.Interval, opts.Resync = f.interval, f.resync
	opts.Logger, opts.Metrics = log, metrics
	opts.RunOptions = f.apply.options
	iso, err := renderIsolation()
	if err != nil {
		return fmt.Errorf("render workers: %w", err)
	}
	connect := reconciler.ConnectOnce(connector(g, s, f.apply.qps, f.apply.burst))
	d := daemon.New(f.source.daemonSource(log), &freshRenders{connect: connect, iso: iso, timeout: f.renderTimeout}, opts)

	var hooks http.Handler
	if len(secret) > 0 {
		wo := webhook.DefaultOptions()
		wo.Secret = secret
		wo.Branch = ""
		if f.source.repo != "" {
			wo.Branch = strings.TrimPrefix(f.source.ref, "refs/heads/")
		}
		wo.Rate, wo.Burst = f.webhookRate, f.webhookBurst
		wo.Notify = func(h webhook.Hint) { d.Hint("webhook/" + h.Provider) }
		wo.Observe = metrics.Webhook
		wo.Logger = log
		hooks = webhook.New(wo)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	// Bounded connections: a flood of idle keep-alive connections cannot
	// use up the file descriptors git, the cluster clients and the render
	// workers need.
	ln = netutil.LimitListener(ln, maxConnections)
	srv := daemon.NewServer(f.listen, d.Handler(hooks), daemon.DefaultServerOptions())
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving", "listen", ln.Addr().String(), "ref", f.source.describe(), "webhooks", len(secret) > 0, "leaderElect", f.leaderElect)

	// ctx ends on SIGTERM or SIGINT: stop starting runs. The run in flight
	// goes on under hard, which ends --shutdown-timeout later.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		log.Info("shutting down: no new runs; the run in flight may take until the shutdown timeout", "timeout", f.shutdownTimeout)
		d.Drain()
		close(stop)
		t := time.NewTimer(f.shutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			log.Warn("shutdown timeout: cancelling the run in flight")
			cancelHard()
		case <-hard.Done():
		}
	}()

	if f.leaderElect {
		err = f.lead(hard, g, s, log, d, stop)
	} else {
		d.SetLeader("", true) // the only replica: it reconciles
		err = d.Run(hard, stop)
	}
	cancelHard()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// lead campaigns for the leader Lease and runs the daemon while it leads.
// Losing the Lease cancels the run in flight at once (the cluster locks
// still keep one writer per cluster if two replicas ever both believe they
// lead). After stop, the term ends once the run in flight has, and the
// Lease is released.
func (f *serveFlags) lead(ctx context.Context, g *globalFlags, s streams, log *slog.Logger, d *daemon.Daemon, stop <-chan struct{}) error {
	copts := clusters.DefaultOptions()
	copts.Kubeconfig = g.kubeconfig
	copts.Context = f.leaderContext
	copts.Logger = log
	name := f.leaderContext
	if name == "" {
		name = "leader-election"
	}
	cl, err := clusters.Connect(ctx, name, copts)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	lo := clusters.DefaultLeaderOptions()
	lo.Namespace, lo.Name = f.leaderNamespace, f.leaderLease
	lo.LeaseDuration, lo.RenewDeadline, lo.RetryPeriod = f.leaseDuration, f.renewDeadline, f.retryPeriod
	lo.Logger = log
	id := lo.Identity

	electCtx, cancelElect := context.WithCancel(ctx)
	defer cancelElect()
	var leading atomic.Bool
	go func() {
		select {
		case <-stop:
		case <-electCtx.Done():
			return
		}
		if !leading.Load() {
			cancelElect()
		}
	}()
	err = cl.Elect(electCtx, lo, clusters.LeaderCallbacks{
		OnStartedLeading: func(lctx context.Context) {
			leading.Store(true)
			defer leading.Store(false)
			select {
			case <-stop:
				cancelElect()
				return
			default:
			}
			log.Info("leading: reconciling", "identity", id)
			d.SetLeader(id, true)
			_ = d.Run(lctx, stop)
			select {
			case <-stop:
				cancelElect()
			default:
				if cause := context.Cause(lctx); cause != nil {
					log.Warn("stopped reconciling", "reason", cause)
				}
			}
		},
		OnStoppedLeading: func() { d.SetLeader("", false) },
		OnNewLeader: func(holder string) {
			d.SetLeader(holder, holder == id)
			if holder != "" && holder != id {
				log.Info("following", "leader", holder)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	return nil
}

// freshRenders gives each run a renderer of its own, so chart caches of
// commits long gone do not pile up in a daemon, while cluster connections
// (connect) live as long as the daemon.
type freshRenders struct {
	connect reconciler.Connector
	iso     *render.Isolation
	timeout time.Duration
}

func (p *freshRenders) pipeline() *reconciler.Pipeline {
	return &reconciler.Pipeline{Renderer: render.New(serveRenderOptions(p.iso, p.timeout)), Connect: p.connect}
}

func (p *freshRenders) Reconcile(ctx context.Context, m *manifest.Manifest, opts reconciler.Options) (*reconciler.Report, error) {
	return p.pipeline().Reconcile(ctx, m, opts)
}

func (p *freshRenders) Status(ctx context.Context, m *manifest.Manifest, sel reconciler.Selection) ([]reconciler.ClusterStatus, error) {
	return p.pipeline().Status(ctx, m, sel)
}

// serveRenderOptions are the render options of the daemon: templates run
// in worker processes (this binary's render-worker command), so that one
// running past its deadline is killed, not left burning a CPU for the life
// of the daemon.
func serveRenderOptions(iso *render.Isolation, timeout time.Duration) render.Options {
	o := renderOptions()
	o.Isolation = iso
	if timeout > 0 {
		o.Timeout = timeout
	}
	return o
}

// daemonSource is the source serve follows.
func (f *sourceFlags) daemonSource(log *slog.Logger) daemon.Source {
	if f.repo != "" {
		return &gitSource{opts: manifest.GitOptions{URL: f.repo, Ref: f.ref, CacheDir: filepath.Join(cacheDir(), "git"),
			TokenEnv: f.tokenEnv, SSHKeyFile: f.sshKeyFile, Logger: log}}
	}
	return &dirSource{dir: f.dir}
}

func (f *sourceFlags) describe() string {
	if f.repo != "" {
		return f.ref
	}
	return f.dir
}

// gitSource follows a branch of a remote repository.
type gitSource struct{ opts manifest.GitOptions }

func (g *gitSource) Head(ctx context.Context) (string, error) {
	return manifest.RemoteHead(ctx, g.opts)
}
func (g *gitSource) Ref() string    { return g.opts.Ref }
func (g *gitSource) Volatile() bool { return false }

func (g *gitSource) Load(ctx context.Context, commit string) (*manifest.Manifest, string, error) {
	co, err := manifest.FetchCommit(ctx, g.opts, commit)
	if err != nil {
		return nil, "", err
	}
	m, err := manifest.Load(co.Dir, manifest.DefaultLoadOptions())
	if err != nil {
		return nil, co.Commit, fmt.Errorf("commit %s: %w", shortSHA(co.Commit), err)
	}
	return m, co.Commit, nil
}

// dirSource is a local working tree, re-read every cycle.
type dirSource struct{ dir string }

func (d *dirSource) Ref() string    { return d.dir }
func (d *dirSource) Volatile() bool { return true }

func (d *dirSource) Head(context.Context) (string, error) {
	commit, dirty, err := manifest.DirRevision(d.dir)
	if err != nil {
		return "", err
	}
	if dirty {
		commit += "+dirty"
	}
	return commit, nil
}

// Load loads the working tree as it is now. The commit it returns is the
// bare SHA of HEAD: "+dirty" only tells Head's callers the tree changed, and
// the commit ends up in Helm release labels, where "+" is not allowed.
func (d *dirSource) Load(ctx context.Context, commit string) (*manifest.Manifest, string, error) {
	m, err := manifest.Load(d.dir, manifest.DefaultLoadOptions())
	return m, strings.TrimSuffix(commit, "+dirty"), err
}
