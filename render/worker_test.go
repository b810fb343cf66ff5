package render

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// pipeWorker runs ServeWorker on a goroutine of the test process, so that
// the race detector sees both sides of the conversation (a worker process
// is out of its sight), and returns the parent's side of it.
func pipeWorker(t *testing.T, ctx context.Context) (w *worker, in *io.PipeWriter, served <-chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := ServeWorker(ctx, inR, outW)
		_ = outW.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		_ = outR.Close()
		_ = inR.Close()
	})
	return &worker{in: bufio.NewWriter(inW), out: bufio.NewReader(outR), charts: map[uint64]bool{}, maxOutput: maxFrame}, inW, done
}

// TestServeWorkerConversation: requests, lookups and answers through
// ServeWorker, twice on one worker (the chart sent once), give what
// Renderer.template gives in process.
func TestServeWorkerConversation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	w, in, served := pipeWorker(t, ctx)
	pool := &workerPool{charts: map[*chart.Chart]*wire{}}

	req := testdataRequest(t, "lookuplist")
	ch, err := loader.LoadDir(req.Chart.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cw, err := pool.chartWire(ch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		vals := map[string]any{"round": int64(i)}
		req.Lookup = newListLookup()
		var r Renderer
		want, err := r.template(ctx, req, ch, vals)
		if err != nil {
			t.Fatal(err)
		}
		parentLookup := newListLookup()
		rest, err := (&renderJob{release: req.Release, namespace: req.Namespace, overlay: req.Overlay, values: vals, lookup: true}).encodeRest()
		if err != nil {
			t.Fatal(err)
		}
		a, err := w.converse(ctx, cw, rest, 0, parentLookup)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if a.err != "" {
			t.Fatalf("round %d: %s", i, a.err)
		}
		if diff := cmp.Diff(want, a.rendered, cmp.AllowUnexported(rendered{})); diff != "" {
			t.Errorf("round %d (-in process +worker):\n%s", i, diff)
		}
		if len(parentLookup.log()) == 0 {
			t.Errorf("round %d: no lookup reached the parent's provider", i)
		}
	}
	_ = in.Close()
	if err := <-served; err != nil {
		t.Errorf("ServeWorker after its input ended: %v", err)
	}
}

// TestServeWorkerRefusesProtocolErrors: a parent that breaks the protocol
// ends the worker with an error saying how.
func TestServeWorkerRefusesProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		send func(w *bufio.Writer) error
		want string
	}{
		{name: "lookup reply while idle", send: func(w *bufio.Writer) error { return writeFrame(w, msgLookupReply, nil) },
			want: "unexpected message 'q' while idle"},
		{name: "chart never sent", send: func(w *bufio.Writer) error {
			e := &encoder{}
			e.uvarint(42)
			e.chart(nil)
			rest, _ := (&renderJob{release: "r"}).encodeRest()
			e.buf = append(e.buf, rest...)
			e.bool(false) // alsoUpgrade
			return writeFrame(w, msgRender, e.buf)
		}, want: "chart 42, which was never sent"},
		{name: "garbled request", send: func(w *bufio.Writer) error { return writeFrame(w, msgRender, []byte{1, 2, 3}) },
			want: "render request"},
		{name: "garbled frame", send: func(w *bufio.Writer) error {
			_, err := w.Write([]byte{0xff, 0xff, 0xff, 0xff, msgRender})
			return errors.Join(err, w.Flush())
		}, want: "garbled frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Checked after pipeWorker's cleanup ends the reader ServeWorker
			// leaves blocked on its input (in a worker, the process ends).
			ign := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ign) })
			w, _, served := pipeWorker(t, context.Background())
			if _, _, err := readFrame(w.out); err != nil {
				t.Fatal(err)
			}
			go func() { _ = tt.send(w.in) }()
			select {
			case err := <-served:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want an error mentioning %q", err, tt.want)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ServeWorker did not return")
			}
		})
	}

	t.Run("ctx done while idle", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w, in, served := pipeWorker(t, ctx)
		if _, _, err := readFrame(w.out); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		_ = in.Close() // ends the reader ServeWorker left behind
	})
}
