package chartrepo

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"golang.org/x/crypto/bcrypt"

	// The registry's parts register themselves by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Registry is distribution's OCI registry (the one Docker Hub and most
// private registries run), in memory, over HTTPS on loopback.
type Registry struct {
	// Host is host:port, for oci://Host/... references.
	Host string

	mu       sync.Mutex
	requests []Request
}

// StartRegistry serves a registry with the PKI's server certificate until t
// ends. With a username, every request needs that user and password (the
// htpasswd access controller: basic auth).
func StartRegistry(t testing.TB, p *PKI, username, password string) *Registry {
	t.Helper()
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
	}
	cfg.HTTP.Secret = "tandem-test"
	if username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "tandem-test", "path": htpasswd}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	app := handlers.NewApp(ctx, cfg)
	r := &Registry{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, Request{Path: req.URL.Path, Auth: req.Header.Get("Authorization")})
		r.mu.Unlock()
		app.ServeHTTP(w, req)
	}))
	srv.TLS = p.ServerTLS(false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "https://")
	return r
}

// Requests returns the requests served so far.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Ref is the oci:// reference of a repository path in the registry.
func (r *Registry) Ref(path string) string { return fmt.Sprintf("oci://%s/%s", r.Host, path) }
