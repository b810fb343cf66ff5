package clusters

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTermValidity is item 4's "lost once no renewal has succeeded within
// RenewDeadline of the start of the last successful renewal".
func TestTermValidity(t *testing.T) {
	t0 := time.Now() // monotonic, like the Lock's own readings
	const rd = 20 * time.Second
	tm := newTerm(t0, rd)
	if got := tm.deadline(); !got.Equal(t0.Add(rd)) {
		t.Errorf("deadline after claim = %v, want claim start + renew deadline", got.Sub(t0))
	}
	tm.renewed(t0.Add(5 * time.Second))
	if got := tm.deadline(); !got.Equal(t0.Add(25 * time.Second)) {
		t.Errorf("deadline after renewal = %v, want 25s (renewal start + renew deadline)", got.Sub(t0))
	}
	tm.renewed(t0.Add(2 * time.Second)) // a slow renewal finishing after a later one
	if got := tm.deadline(); !got.Equal(t0.Add(25 * time.Second)) {
		t.Errorf("an older renewal moved the deadline to %v", got.Sub(t0))
	}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{24 * time.Second, false}, {25*time.Second - time.Nanosecond, false}, {25 * time.Second, true}, {time.Minute, true}} {
		if got := tm.expired(t0.Add(tc.at)); got != tc.want {
			t.Errorf("expired(+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestTermAdmit is the deadline computation: a write admitted at any time
// while valid must finish by the validity; none is admitted after it, or
// once the term ended.
func TestTermAdmit(t *testing.T) {
	t0 := time.Now()
	tm := newTerm(t0, 10*time.Second)
	deadline, done, err := tm.admit(t0.Add(3 * time.Second))
	if err != nil || !deadline.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("admit(+3s) = %v, %v; want deadline +10s", deadline.Sub(t0), err)
	}
	done()
	done() // idempotent
	if _, _, err := tm.admit(t0.Add(10 * time.Second)); err == nil || !strings.Contains(err.Error(), "renew deadline") {
		t.Errorf("admit(at validity) = %v, want refused for the renew deadline", err)
	}
	tm.renewed(t0.Add(5 * time.Second))
	if _, _, err := tm.admit(t0.Add(14 * time.Second)); err != nil {
		t.Errorf("admit after renewal = %v", err)
	}
	if !tm.end(errors.New("lock released")) || tm.end(errors.New("again")) {
		t.Error("end() should end the term exactly once")
	}
	if _, _, err := tm.admit(t0.Add(6 * time.Second)); err == nil || err.Error() != "lock released" {
		t.Errorf("admit after end = %v, want the end reason", err)
	}
}

func TestTermDrainWaitsForWritesInFlight(t *testing.T) {
	t0 := time.Now()
	tm := newTerm(t0, time.Minute)
	if err := tm.drain(t.Context()); err != nil {
		t.Fatalf("drain() with nothing in flight = %v", err)
	}
	_, done, err := tm.admit(t0)
	if err != nil {
		t.Fatal(err)
	}
	tm.end(errors.New("lock released"))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := tm.drain(ctx); err == nil || !strings.Contains(err.Error(), "1 writes still in flight") {
		t.Errorf("drain() with a write in flight = %v, want it to wait until ctx ends", err)
	}
	drained := make(chan error, 1)
	go func() { drained <- tm.drain(t.Context()) }()
	done()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("drain() = %v after the write finished", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("drain() did not return after the write finished")
	}
}

// recordingTransport stands in for the network: it records what reached it.
type recordingTransport struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// TestFencingTransport is item 4's fence at the transport level.
func TestFencingTransport(t *testing.T) {
	const url = "https://blue.example/api/v1/namespaces/tandem-system/configmaps/tandem-state"
	t0 := time.Now()
	valid := func() *term { return newTerm(t0, time.Hour) }
	ended := func() *term {
		tm := newTerm(t0, time.Hour)
		tm.end(errors.New("lock lost: lease taken by another holder"))
		return tm
	}
	expired := func() *term { return newTerm(t0.Add(-time.Hour), time.Minute) }
	tests := []struct {
		name     string
		term     func() *term // nil: never locked
		method   string
		url      string
		lease    bool
		refused  bool
		deadline bool // the request reaching the network carries the term's validity as deadline
	}{
		{"never locked: writes pass", nil, http.MethodPatch, url, false, false, false},
		{"valid: write passes with the validity as deadline", valid, http.MethodPatch, url, false, false, true},
		{"valid: read passes untouched", valid, http.MethodGet, url, false, false, false},
		{"lost: POST refused", ended, http.MethodPost, url, false, true, false},
		{"lost: PUT refused", ended, http.MethodPut, url, false, true, false},
		{"lost: PATCH refused", ended, http.MethodPatch, url, false, true, false},
		{"lost: DELETE refused", ended, http.MethodDelete, url, false, true, false},
		{"validity passed before the renew loop noticed: refused", expired, http.MethodPut, url, false, true, false},
		{"lost: GET passes", ended, http.MethodGet, url, false, false, false},
		{"lost: dry run passes", ended, http.MethodPatch, url + "?dryRun=All&fieldManager=tandem", false, false, false},
		{"lost: the lock's own lease request passes", ended, http.MethodPut, url, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &recordingTransport{}
			f := &fence{cluster: "blue"}
			var tm *term
			if tt.term != nil {
				tm = tt.term()
				f.arm(tm)
			}
			ctx := t.Context()
			if tt.lease {
				ctx = leaseRequest(ctx)
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, tt.url, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&fencingTransport{next: next, fence: f}).RoundTrip(req)
			if tt.refused {
				var fe *FencedError
				if !errors.Is(err, ErrFenced) || !errors.As(err, &fe) || fe.Cluster != "blue" {
					t.Fatalf("RoundTrip() = %v, want a *FencedError for blue", err)
				}
				if !strings.Contains(err.Error(), `cluster "blue": write refused: lock lost`) {
					t.Errorf("error %q does not say the cluster and that the lock was lost", err)
				}
				if len(next.reqs) != 0 {
					t.Error("a refused request reached the network")
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip() = %v", err)
			}
			_ = resp.Body.Close()
			if len(next.reqs) != 1 {
				t.Fatalf("%d requests reached the network, want 1", len(next.reqs))
			}
			got, ok := next.reqs[0].Context().Deadline()
			if tt.deadline != ok || (ok && !got.Equal(tm.deadline())) {
				t.Errorf("request deadline = %v (set %v), want set %v at the validity", got, ok, tt.deadline)
			}
			if tm != nil {
				if err := tm.drain(t.Context()); err != nil {
					t.Errorf("write still counted in flight after its response: %v", err)
				}
			}
		})
	}
}
