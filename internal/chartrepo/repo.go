package chartrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Chart is a chart archive a server offers.
type Chart struct {
	Name, Version string
	// Archive is the .tgz; Package makes one.
	Archive []byte
	// ListedDigest, when set, is the digest ("sha256:<hex>") the index
	// lists instead of the archive's: an archive replaced on the server
	// after its index entry was written.
	ListedDigest string
	// URL, when set, is the URL the index lists for the archive (an
	// oci://host/path:version reference, say), instead of the file name
	// or RepoOptions.ArchiveURL.
	URL string
}

// Digest is the archive's "sha256:<hex>", as a release's digest: pins it.
func (c Chart) Digest() string {
	sum := sha256.Sum256(c.Archive)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Package makes a chart archive holding Chart.yaml and the given templates
// (file name to content), byte for byte the same on every call.
func Package(name, version string, templates map[string]string) []byte {
	files := map[string]string{
		"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
	}
	for f, body := range templates {
		files["templates/"+f] = body
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range names {
		body := files[f]
		_ = tw.WriteHeader(&tar.Header{Name: name + "/" + f, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// RepoOptions say what a chart repository server asks of its clients.
type RepoOptions struct {
	// Username and Password, when set, are required (basic auth) on every request.
	Username, Password string
	// ClientCert requires a client certificate the PKI's CA signed.
	ClientCert bool
	// ArchiveURL, when set, is the URL the index gives for each archive,
	// with %s for the file name (an absolute URL elsewhere: another host, or
	// plain http); otherwise archives are relative to the index.
	ArchiveURL string
}

// Request is what a server saw of one request.
type Request struct {
	Path string
	// Auth is the Authorization header.
	Auth string
}

// Repo is a chart repository served over HTTPS on loopback.
type Repo struct {
	// URL is the repository's base URL (https://127.0.0.1:port).
	URL string

	mu       sync.Mutex
	charts   []Chart
	requests []Request
}

// StartRepo serves charts as a Helm chart repository (index.yaml and
// archives) over HTTPS with the PKI's server certificate, until t ends.
func StartRepo(t testing.TB, p *PKI, opts RepoOptions, charts ...Chart) *Repo {
	t.Helper()
	r := &Repo{charts: charts}
	srv := httptest.NewUnstartedServer(r.handler(opts))
	srv.TLS = p.ServerTLS(opts.ClientCert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Requests returns the requests served so far.
func (r *Repo) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// SetCharts replaces what the repository offers (a chart republished).
func (r *Repo) SetCharts(charts ...Chart) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.charts = charts
}

func (r *Repo) handler(opts RepoOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, Request{Path: req.URL.Path, Auth: req.Header.Get("Authorization")})
		charts := r.charts
		r.mu.Unlock()
		if opts.Username != "" {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(opts.Username+":"+opts.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if req.URL.Path == "/index.yaml" {
			_, _ = w.Write(index(charts, opts.ArchiveURL))
			return
		}
		for _, c := range charts {
			if req.URL.Path == "/"+archiveName(c) {
				_, _ = w.Write(c.Archive)
				return
			}
		}
		http.NotFound(w, req)
	})
}

func archiveName(c Chart) string { return c.Name + "-" + c.Version + ".tgz" }

func index(charts []Chart, archiveURL string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nentries:\n")
	byName := map[string][]Chart{}
	var names []string
	for _, c := range charts {
		if _, ok := byName[c.Name]; !ok {
			names = append(names, c.Name)
		}
		byName[c.Name] = append(byName[c.Name], c)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s:\n", n)
		for _, c := range byName[n] {
			u := archiveName(c)
			if archiveURL != "" {
				u = fmt.Sprintf(archiveURL, u)
			}
			if c.URL != "" {
				u = c.URL
			}
			digest := c.Digest()
			if c.ListedDigest != "" {
				digest = c.ListedDigest
			}
			fmt.Fprintf(&b, "    - apiVersion: v2\n      name: %s\n      version: %s\n      digest: %s\n      urls: [%q]\n",
				c.Name, c.Version, strings.TrimPrefix(digest, "sha256:"), u)
		}
	}
	return []byte(b.String())
}
