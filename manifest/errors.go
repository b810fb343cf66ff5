package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels callers may test with errors.Is.
var (
	// ErrOutsideRepo means a path leaves the manifest repository, by "..", by being absolute,
	// or through a symlink that resolves outside the repository's root.
	ErrOutsideRepo = errors.New("outside the manifest repository")
	// ErrTooLarge means a file is over its size limit.
	ErrTooLarge = errors.New("file is too large")
	// ErrUnknownRef means a git ref names no branch, tag or commit of the remote.
	ErrUnknownRef = errors.New("unknown ref")
	// ErrGitAuth means the git server refused the credentials (or asked for some).
	ErrGitAuth = errors.New("git authentication failed")
	// ErrGitRepoNotFound means the git server has no repository at the URL.
	ErrGitRepoNotFound = errors.New("git repository not found")
)

// Problem is one thing wrong with a manifest.
type Problem struct {
	// File is the file the problem is in, relative to the repository root (tandem.yaml).
	File string `json:"file"`
	// Field is the path of the offending field, e.g. releases[2].clusters.purple; empty for the whole file.
	Field string `json:"field,omitempty"`
	// Line is the 1-based line of the field in File, or 0 if unknown.
	Line int `json:"line,omitempty"`
	// Message says what is wrong; it never holds a secret.
	Message string `json:"message"`
}

// String formats the problem as "file:line: field: message", leaving out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError lists every problem Load found in a manifest. Callers get at it with errors.As.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
