// Command demo shows `tandem serve` at work on the local clusters: it serves a
// copy of examples/manifest from a git server on loopback, starts the daemon
// against it, waits for both clusters to be applied, pushes one commit,
// announces it with a signed GitHub webhook, and waits until both clusters
// hold it. `make demo` runs it; it is not part of tandem.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	tandem := flag.String("tandem", "bin/tandem", "the tandem binary")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the local clusters")
	example := flag.String("manifest", "examples/manifest", "the manifest to serve")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *tandem, *kubeconfig, *example)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, tandem, kubeconfig, example string) error {
	tmp, err := os.MkdirTemp("", "tandem-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tandem, err = filepath.Abs(tandem)
	if err != nil {
		return err
	}

	// A git server on loopback holding the manifest repository.
	root, work := filepath.Join(tmp, "git"), filepath.Join(tmp, "work")
	git := func(dir string, args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=demo", "GIT_AUTHOR_EMAIL=demo@example.com",
			"GIT_COMMITTER_NAME=demo", "GIT_COMMITTER_EMAIL=demo@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := git(root, "init", "-q", "--bare", "-b", "main", "manifest.git"); err != nil {
		return err
	}
	if err := git(filepath.Join(root, "manifest.git"), "config", "http.receivepack", "true"); err != nil {
		return err
	}
	if err := os.CopyFS(work, os.DirFS(example)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return err
	}
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"}, Dir: root, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null"}}
	gitSrv := &http.Server{Handler: backend, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = gitSrv.Serve(ln) }()
	defer gitSrv.Close()
	url := "http://" + ln.Addr().String() + "/manifest.git"
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "the shop, as in examples/manifest"},
		{"remote", "add", "origin", url}, {"push", "-q", "origin", "main"}} {
		if err := git(work, args...); err != nil {
			return err
		}
	}
	first, err := headOf(ctx, work)
	if err != nil {
		return err
	}
	fmt.Printf("git server  %s  main at %s\n", url, first[:7])

	// The daemon.
	secret := "demo-webhook-secret"
	secretFile := filepath.Join(tmp, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	serve := exec.Command(tandem, "serve", "--repo", url, "--ref", "main", "--listen", listen,
		"--webhook-secret-file", secretFile, "--interval", "1h", "--kubeconfig", kubeconfig)
	serve.Env = append(os.Environ(), "TANDEM_CACHE_DIR="+filepath.Join(tmp, "cache"))
	logs, err := serve.StderrPipe()
	if err != nil {
		return err
	}
	fmt.Printf("starting    tandem serve --repo %s --ref main --listen %s --webhook-secret-file … --interval 1h\n", url, listen)
	if err := serve.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			fmt.Println("  serve |", sc.Text())
		}
		exited <- serve.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped { // an early return: do not leave the daemon running
			_ = serve.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + listen

	start := time.Now()
	if err := waitApplied(ctx, base, first, 5*time.Minute); err != nil {
		return err
	}
	fmt.Printf("applied     %s on blue and green %.1fs after start (first run: installs, or a no-op on clusters already at it)\n", first[:7], time.Since(start).Seconds())

	// One commit: the Example app's image tag, on both clusters.
	path := filepath.Join(work, "tandem.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tag := fmt.Sprintf("1.2.%d", time.Now().Unix()%1000+4)
	edited := strings.Replace(string(b), `set: {image.tag: "1.2.3"}`, fmt.Sprintf(`set: {image.tag: %q}`, tag), 1)
	if edited == string(b) {
		return errors.New("examples/manifest/tandem.yaml no longer sets image.tag \"1.2.3\"; update the demo")
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		return err
	}
	if err := git(work, "commit", "-q", "-am", "example: image "+tag); err != nil {
		return err
	}
	if err := git(work, "push", "-q", "origin", "main"); err != nil {
		return err
	}
	second, err := headOf(ctx, work)
	if err != nil {
		return err
	}
	pushed := time.Now()
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": second})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	fmt.Printf("pushed      %s (example: image %s); signed GitHub webhook answered %d\n", second[:7], tag, res.StatusCode)
	if err := waitApplied(ctx, base, second, 3*time.Minute); err != nil {
		return err
	}
	fmt.Printf("applied     %s on blue and green %.1fs after the push\n\n", second[:7], time.Since(pushed).Seconds())

	status := exec.CommandContext(ctx, tandem, "status", "--repo", url, "--ref", "main", "--kubeconfig", kubeconfig)
	status.Env = serve.Env
	status.Stdout, status.Stderr = os.Stdout, os.Stderr
	if err := status.Run(); err != nil {
		return fmt.Errorf("tandem status: %w", err)
	}

	fmt.Println("\nstopping    SIGTERM: the daemon finishes any run in flight, releases its locks and exits")
	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fmt.Errorf("tandem serve exited: %w", err)
		}
	case <-time.After(30 * time.Second):
		return errors.New("tandem serve did not stop within 30s of SIGTERM")
	}
	return nil
}

// waitApplied polls /status until every cluster has applied commit.
func waitApplied(ctx context.Context, base, commit string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var st struct {
			Clusters []struct {
				Name          string `json:"name"`
				CommitApplied string `json:"commitApplied"`
				LastError     string `json:"lastError"`
			} `json:"clusters"`
			Rejected *struct{ Error string } `json:"rejected"`
		}
		res, err := http.Get(base + "/status")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
		}
		if err == nil && len(st.Clusters) > 0 {
			done := true
			for _, c := range st.Clusters {
				if c.CommitApplied != commit {
					done = false
				}
			}
			if done {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clusters did not reach %s within %s: %+v", commit[:7], timeout, st)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func headOf(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	return strings.TrimSpace(string(out)), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
