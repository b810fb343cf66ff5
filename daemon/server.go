package daemon

import (
	"encoding/json"
	"net/http"
	"time"
)

// Handler serves the daemon's endpoints: /healthz (the process answers),
// /readyz (503 once a shutdown began), /metrics, /status (JSON), and
// hooks under /hooks/ (nil: every hook path answers 404).
func (d *Daemon) Handler(hooks http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if d.Status().Draining {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.Status())
	})
	if d.opts.Metrics != nil {
		mux.Handle("GET /metrics", d.opts.Metrics.Handler())
	}
	if hooks != nil {
		mux.Handle("/hooks/", hooks)
	}
	return mux
}

// ServerOptions bound what one client may hold of the server: a slow or
// hostile client (slowloris, a huge header) cannot pin a connection or
// memory. Bodies are bounded by the webhook handler.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// DefaultServerOptions returns the bounds `tandem serve` uses.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// NewServer returns an http.Server for addr with the bounds of opts.
func NewServer(addr string, h http.Handler, opts ServerOptions) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
	}
}
