package webhook

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Options configures the handler New builds. A zero or negative limit means
// its default (see DefaultOptions), so a forgotten field never turns a limit
// off; to disable rate limiting, set Rate to math.Inf(1).
type Options struct {
	// Secret is the shared secret: the HMAC key for GitHub and generic hooks
	// and the token GitLab sends. Empty disables webhooks: every path answers
	// 404. New copies it.
	Secret []byte

	// Branch is the branch tandem follows, e.g. "main". A push to
	// refs/heads/<Branch> is a hint; a push to any other ref is acknowledged
	// and ignored. Empty accepts a push to any branch (tags are still ignored).
	Branch string

	// MaxBodyBytes is the largest body accepted; larger gets 413 and is never
	// read past MaxBodyBytes+1 bytes. Default 1 MiB: a push payload is a few
	// to tens of KiB (GitHub lists at most 20 commits), though GitHub's own
	// cap is 25 MB.
	MaxBodyBytes int64

	// MaxInFlight is how many requests may be reading or checking a body at
	// once; more get 503 with Retry-After. It bounds the memory bodies hold to
	// MaxInFlight × MaxBodyBytes. Default 16.
	MaxInFlight int

	// MaxInFlightPerSource is how many of those MaxInFlight slots one source
	// may hold; more from the same source get 503 with Retry-After, without
	// touching the shared slots. Default 2. Behind a proxy that does not
	// buffer request bodies, every client shares the proxy's address and so
	// these slots: there the proxy should buffer bodies (ingress-nginx does by
	// default) or this should be raised.
	MaxInFlightPerSource int

	// BodyReadTimeout is how long a request may take to send its body once it
	// has a slot. The handler sets it as the connection's read deadline
	// (http.ResponseController), replacing the server's ReadTimeout for the
	// body, so a client that trickles a body frees its slot quickly; a body
	// not complete in time gets 408. A push payload of tens of KiB takes
	// milliseconds. Default 5s. A ResponseWriter that cannot set deadlines
	// (e.g. httptest.ResponseRecorder) leaves the server's timeouts alone.
	BodyReadTimeout time.Duration

	// Rate is how many failed authentications per second each source may
	// make in the long run, and Burst how many it may make at once; past
	// that a failed request gets 429 with Retry-After instead of 401. A
	// correctly signed request is never refused for rate, so a source that
	// shares an address with strangers (every client behind a proxy does)
	// cannot be locked out by them. A source is the client IP of RemoteAddr
	// (IPv6: its /64). Defaults 1 per second, burst 10.
	Rate  float64
	Burst int

	// MaxSources is how many sources the rate limiter remembers; when full,
	// the one seen least recently is forgotten. It bounds the limiter's memory
	// however many addresses a flood comes from. Default 10,000.
	MaxSources int

	// Notify receives each accepted hint. It is called on the request's
	// goroutine before the response is written, so it MUST NOT block: send
	// on a buffered channel with select/default, or set a flag. nil drops
	// hints.
	Notify func(Hint)

	// Observe is called once per request with the provider ("github",
	// "gitlab", "generic", or "unknown" for any other path) and the final
	// status code, for tandem_webhook_requests_total{provider,code}. nil
	// is allowed. Like Notify, it must not block.
	Observe func(provider string, code int)

	// Logger receives one line per request: Info for an accepted hint, Warn
	// for a failed signature, Debug for the rest. nil discards. It never
	// receives the secret, a signature, a token or a body.
	Logger *slog.Logger
}

// DefaultOptions returns the limits New uses for unset fields. Secret is
// empty, so webhooks are disabled until the caller sets one.
func DefaultOptions() Options {
	return Options{
		Branch:               "main",
		MaxBodyBytes:         1 << 20,
		MaxInFlight:          16,
		MaxInFlightPerSource: 2,
		BodyReadTimeout:      5 * time.Second,
		Rate:                 1,
		Burst:                10,
		MaxSources:           10000,
	}
}

// Hint is one accepted push: the daemon should check the remote now.
type Hint struct {
	// Provider is "github", "gitlab" or "generic".
	Provider string
	// Ref is the pushed ref, e.g. "refs/heads/main".
	Ref string
	// After is the pushed commit if the payload gave one ("" for a deleted
	// branch or a generic hook without it).
	After string
	// Delivery is the provider's delivery ID (X-GitHub-Delivery,
	// X-Gitlab-Event-UUID, X-Delivery) if it is a plain short token, else "".
	// It is not covered by the signature: use it to correlate logs only.
	Delivery string
}

// outcome is what a provider decided about an authenticated request.
type outcome struct {
	code int
	msg  string
	hint *Hint // non-nil: send to Notify
}

// provider is one hook path. mayAuthenticate looks at the headers only and
// is false when no body could make the request authentic (no signature, or
// one that is not "sha256=<64 hex>"; a wrong GitLab token); it must never be
// false for a request authenticate would accept. authenticate sees the raw
// body; parse runs only on an authenticated request and returns an error
// for a malformed body.
type provider struct {
	name            string
	mayAuthenticate func(r *http.Request) bool
	authenticate    func(r *http.Request, body []byte) bool
	parse           func(r *http.Request, body []byte) (outcome, error)
}

type handler struct {
	secret      []byte
	branch      string
	maxBody     int64
	bodyTimeout time.Duration
	slots       *slots
	limiter     *sources
	now         func() time.Time
	notify      func(Hint)
	observe     func(string, int)
	log         *slog.Logger
	paths       map[string]provider
}

// New returns the handler for /hooks/github, /hooks/gitlab and
// /hooks/generic. Mount it on "/hooks/" without stripping the prefix.
func New(opts Options) http.Handler {
	return newHandler(opts, time.Now)
}

// newHandler is New with the clock the rate limiter reads, for tests.
func newHandler(opts Options, now func() time.Time) *handler {
	def := DefaultOptions()
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = def.MaxBodyBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = def.MaxInFlight
	}
	if opts.MaxInFlightPerSource <= 0 {
		opts.MaxInFlightPerSource = def.MaxInFlightPerSource
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = def.BodyReadTimeout
	}
	if opts.Rate <= 0 || math.IsNaN(opts.Rate) {
		opts.Rate = def.Rate
	}
	if opts.Burst <= 0 {
		opts.Burst = def.Burst
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = def.MaxSources
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		secret:      append([]byte(nil), opts.Secret...),
		branch:      opts.Branch,
		maxBody:     opts.MaxBodyBytes,
		bodyTimeout: opts.BodyReadTimeout,
		slots:       newSlots(opts.MaxInFlight, opts.MaxInFlightPerSource),
		limiter:     newSources(rate.Limit(opts.Rate), opts.Burst, opts.MaxSources),
		now:         now,
		notify:      opts.Notify,
		observe:     opts.Observe,
		log:         log,
	}
	h.paths = map[string]provider{
		"/hooks/github":  h.github(),
		"/hooks/gitlab":  h.gitlab(),
		"/hooks/generic": h.generic(),
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, known := h.paths[r.URL.Path]
	name := "unknown" // never the path: metric labels stay bounded
	if known {
		name = p.name
	}
	code := h.serve(w, r, p, known)
	if h.observe != nil {
		h.observe(name, code)
	}
}

// serve runs the checks in the order doc.go explains and returns the status
// it wrote.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, p provider, known bool) int {
	if !known || len(h.secret) == 0 {
		return reply(w, http.StatusNotFound, "not found")
	}
	src := sourceOf(r.RemoteAddr)
	log := h.log.With("provider", p.name, "source", src.String())
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return reply(w, http.StatusMethodNotAllowed, "method not allowed")
	}
	if r.ContentLength > h.maxBody {
		log.Debug("webhook body too large", "contentLength", r.ContentLength)
		return reply(w, http.StatusRequestEntityTooLarge, "body too large")
	}
	// Only a request that cannot be authentic is refused here: a signed one
	// from an address strangers have exhausted (a proxy's) must get through.
	if !p.mayAuthenticate(r) {
		if over, wait := h.limiter.exhausted(src, h.now()); over {
			log.Debug("webhook rate limited", "reason", "unauthenticated and over the failure budget")
			return tooMany(w, wait)
		}
	}
	if !h.slots.take(src) {
		log.Debug("webhook busy")
		w.Header().Set("Retry-After", "1")
		return reply(w, http.StatusServiceUnavailable, "busy")
	}
	defer h.slots.release(src)
	body, code := h.readBody(w, r, log)
	if code != 0 {
		return code
	}
	if !p.authenticate(r, body) {
		if ok, wait := h.limiter.allow(src, h.now()); !ok {
			log.Debug("webhook rate limited", "reason", "signature missing or invalid, over the failure budget")
			return tooMany(w, wait)
		}
		log.Warn("webhook signature missing or invalid")
		return reply(w, http.StatusUnauthorized, "unauthorized")
	}
	out, err := p.parse(r, body)
	if err != nil {
		log.Debug("webhook payload malformed", "error", err)
		return reply(w, http.StatusBadRequest, "malformed payload")
	}
	if out.hint != nil {
		log.Info("webhook push hint", "ref", out.hint.Ref, "commit", out.hint.After, "delivery", out.hint.Delivery)
		if h.notify != nil {
			h.notify(*out.hint)
		}
	} else {
		log.Debug("webhook acknowledged", "result", out.msg)
	}
	return reply(w, out.code, out.msg)
}

// readBody reads at most maxBody+1 bytes of the body within bodyTimeout. On
// failure it writes the answer and returns its code; on success code is 0.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, log *slog.Logger) (body []byte, code int) {
	// The wall clock, not h.now: a connection deadline is real time. A
	// writer without deadlines (a test recorder, some wrappers) returns an
	// error; the server's own ReadTimeout then still applies. The deadline
	// is left in place: net/http sets the connection's deadlines afresh
	// before the next request on it, and until then it also bounds the
	// server's own draining of a body the handler did not finish (clearing
	// it would let a stalled body hang that drain).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err == nil {
		return body, 0
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		log.Debug("webhook body too large")
		return nil, reply(w, http.StatusRequestEntityTooLarge, "body too large")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		log.Debug("webhook body too slow", "timeout", h.bodyTimeout)
		return nil, reply(w, http.StatusRequestTimeout, "body too slow")
	}
	log.Debug("webhook body unreadable", "error", err)
	return nil, reply(w, http.StatusBadRequest, "unreadable body")
}

func tooMany(w http.ResponseWriter, wait time.Duration) int {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
	return reply(w, http.StatusTooManyRequests, "too many requests")
}

// pushOutcome turns a verified push of ref into a hint, or into an
// acknowledgement when ref is not the followed branch.
func (h *handler) pushOutcome(provider, ref, after, delivery string) outcome {
	followed := ref == "refs/heads/"+h.branch
	if h.branch == "" {
		followed = strings.HasPrefix(ref, "refs/heads/")
	}
	if !followed {
		return outcome{code: http.StatusOK, msg: "ignored: not the followed branch"}
	}
	if strings.Trim(after, "0") == "" {
		after = "" // all zeros: the branch was deleted
	}
	return outcome{
		code: http.StatusAccepted,
		msg:  "hint accepted",
		hint: &Hint{Provider: provider, Ref: ref, After: after, Delivery: delivery},
	}
}

// deliveryID keeps a delivery header only if it is a short plain token: it
// is not signed, and it ends up in logs and in the hint.
func deliveryID(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return ""
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return ""
		}
	}
	return s
}

// reply writes a short plain-text answer; it never echoes the request.
func reply(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	return code
}
