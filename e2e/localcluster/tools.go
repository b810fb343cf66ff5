package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Binaries that Start runs or tests call; EnsureTools checks they all exist.
var toolNames = []string{
	"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
	"kubectl", "kwok", "helm",
}

// kwokStages is the file of kwok Stage objects that hack/tools/build.sh writes.
const kwokStages = "kwok-stages.yaml"

// EnsureTools returns the directory holding the pinned binaries, building them
// with hack/tools/build.sh when they are missing (minutes when cold, with progress
// lines on log; well under a second when warm). TANDEM_TOOLS_DIR, when set and
// complete, is used as is.
func EnsureTools(ctx context.Context, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	if dir := os.Getenv("TANDEM_TOOLS_DIR"); dir != "" && checkTools(dir) == nil {
		return dir, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("tools: %w", err)
	}
	script := filepath.Join(root, "hack", "tools", "build.sh")
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tools: %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("tools: %s printed no directory", script)
	}
	if err := checkTools(dir); err != nil {
		return "", fmt.Errorf("tools: after %s: %w", script, err)
	}
	return dir, nil
}

// checkTools reports which binaries dir lacks.
func checkTools(dir string) error {
	var missing []string
	for _, name := range append(toolNames[:len(toolNames):len(toolNames)], kwokStages) {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %s", dir, strings.Join(missing, ", "))
	}
	return nil
}

// moduleRoot finds the tandem checkout: from this source file when the test
// binary was built from it (the usual case), else from `go env GOMOD` run in the
// current directory.
func moduleRoot(ctx context.Context) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "hack", "tools", "build.sh")); err == nil {
			return filepath.Clean(root), nil
		}
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find module root: not inside the tandem module (set TANDEM_TOOLS_DIR)")
	}
	root := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(root, "hack", "tools", "build.sh")); err != nil {
		return "", fmt.Errorf("find module root: %s has no hack/tools/build.sh (set TANDEM_TOOLS_DIR)", root)
	}
	return root, nil
}
