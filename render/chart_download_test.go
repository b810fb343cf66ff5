package render

import (
	"crypto/rand"
	"fmt"
	"github.com/tandem-gitops/tandem/internal/silentserver"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// silentServer accepts connections and never answers, like a chart
// repository behind a stuck proxy. It returns its base URL.
func silentServer(t *testing.T) string {
	return "http://" + silentserver.Start(t)
}

// repoServer serves a chart repository whose index lists chart "web" 1.0.0
// at /web-1.0.0.tgz; the handlers decide what the index and archive are.
func repoServer(t *testing.T, index, archive http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/index.yaml", index)
	mux.HandleFunc("/web-1.0.0.tgz", archive)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func validIndex(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, `apiVersion: v1
entries:
  web:
    - apiVersion: v2
      name: web
      version: 1.0.0
      urls: [web-1.0.0.tgz]
`)
}

// randomBody writes n incompressible bytes.
func randomBody(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		_, _ = w.Write(b)
	}
}

// TestChartDownloadBounded covers issue 8 item 11 (chart download): a
// repository that never answers, or answers without end, or too much, fails
// the chart's load with an error saying which bound it hit. The test's own
// deadline only catches a hang; it says nothing about speed.
func TestChartDownloadBounded(t *testing.T) {
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	short := DownloadOptions{ConnectTimeout: time.Second, ResponseTimeout: 300 * time.Millisecond, Timeout: time.Second,
		MaxIndexBytes: 64 << 10, MaxChartBytes: 64 << 10}
	tests := []struct {
		name string
		url  func(t *testing.T) string
		want string
	}{
		{
			name: "repository never answers",
			url:  silentServer,
			want: "timeout awaiting response headers",
		},
		{
			name: "index trickles without end",
			url: func(t *testing.T) string {
				stop := make(chan struct{})
				url := repoServer(t, func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprint(w, "apiVersion: v1\nentries:\n")
					for {
						w.(http.Flusher).Flush()
						select {
						case <-stop:
							return
						case <-r.Context().Done():
							return
						case <-time.After(50 * time.Millisecond):
							fmt.Fprint(w, "# still here\n")
						}
					}
				}, randomBody(1))
				// Registered after the server's Close, so it runs first and
				// Close does not wait for this handler for ever.
				t.Cleanup(func() { close(stop) })
				return url
			},
			want: "did not finish within 1s",
		},
		{
			name: "index too large",
			url:  func(t *testing.T) string { return repoServer(t, randomBody(1<<20), randomBody(1)) },
			want: "repository index is larger than 65536 bytes",
		},
		{
			name: "archive too large",
			url:  func(t *testing.T) string { return repoServer(t, validIndex, randomBody(1<<20)) },
			want: "chart archive is larger than 65536 bytes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &chartCache{dir: t.TempDir(), dl: short, entries: map[string]*chartEntry{}}
			src := ChartSource{RepoURL: tc.url(t), Name: "web", Version: "1.0.0", Access: Access{Insecure: true}}
			done := make(chan error, 1)
			go func() {
				_, err := c.load(src)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "download chart "+src.String()) {
					t.Fatalf("load() = %v, want an error naming the chart and containing %q", err, tc.want)
				}
				t.Log(err)
			case <-time.After(30 * time.Second):
				t.Fatal("load() did not return")
			}
		})
	}
}

func TestDownloadOptionsDefaults(t *testing.T) {
	got := DownloadOptions{Timeout: time.Second}.withDefaults()
	want := DefaultDownloadOptions()
	want.Timeout = time.Second
	if got != want {
		t.Errorf("withDefaults() = %+v, want %+v", got, want)
	}
	if d := DefaultDownloadOptions(); d.ConnectTimeout <= 0 || d.ResponseTimeout <= 0 || d.Timeout <= 0 || d.MaxIndexBytes <= 0 || d.MaxChartBytes <= 0 {
		t.Errorf("DefaultDownloadOptions() leaves a bound unset: %+v", d)
	}
}
