package comment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Actions a Result reports.
const (
	ActionCreated = "created"
	ActionUpdated = "updated"
)

// Result says what Upsert did.
type Result struct {
	// Action is "created" or "updated".
	Action string `json:"action"`
	// ID is the comment's (GitHub) or note's (GitLab) id.
	ID int64 `json:"id"`
	// URL is the comment's web address, when the API tells it or it can be derived.
	URL string `json:"url,omitempty"`
	// Author is the identity whose comments are tandem's, as the API spells it.
	Author string `json:"author,omitempty"`
	// Removed are further comments of tandem's holding the marker (left by
	// two runs that raced), deleted so that no stale plan stays on the page.
	Removed []int64 `json:"removed,omitempty"`
}

// APIError is a response with a status other than 2xx.
type APIError struct {
	Method string
	// URL is the request's address; it never holds credentials (they travel in headers).
	URL        string
	StatusCode int
	// Message is what the API said, shortened; any occurrence of the token is replaced.
	Message string
	// Attempts is how many times the request was sent.
	Attempts int
	// AskedWait, when not zero, is the wait the API asked for before a retry,
	// refused because it is longer than MaxWait.
	AskedWait, MaxWait time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	switch {
	case e.AskedWait > 0:
		s += fmt.Sprintf(" (the API asked to wait %s, more than the %s tandem waits)", e.AskedWait, e.MaxWait)
	case e.Attempts > 1:
		s += fmt.Sprintf(" (gave up after %d attempts)", e.Attempts)
	}
	return s
}

// ConnError is a request that got no answer: the connection was refused,
// reset or closed before a response came (not a timeout, which is not tried again).
type ConnError struct {
	Err error
	// Attempts is how many times the request was sent.
	Attempts int
}

func (e *ConnError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("%v (gave up after %d attempts)", e.Err, e.Attempts)
	}
	return e.Err.Error()
}

func (e *ConnError) Unwrap() error { return e.Err }

// serverError reports whether err is a passing failure a later try may not
// get again (500, 502, 503, 504, or no answer at all), after which a create
// may have been carried out all the same.
func serverError(err error) bool {
	var connErr *ConnError
	if errors.As(err, &connErr) {
		return true
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.StatusCode {
	case 500, 502, 503, 504:
		return true
	}
	return false
}

// notFound reports whether err is the API's 404.
func notFound(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound
}

// maxPages bounds pagination, so a server that always answers with a next
// link cannot keep us looping: 100 pages of 100 comments.
const maxPages = 100

// maxResponse bounds how much of one response is read.
const maxResponse = 32 << 20

// DefaultRequestTimeout bounds one request to the API, response body
// included, when GitHub.Timeout or GitLab.Timeout is zero. An API that stops
// answering must fail the comment step, not hang a CI job until its own
// limit (http.DefaultClient has no timeout at all).
const DefaultRequestTimeout = 30 * time.Second

// RetryOptions bound how a request the API refused for now (429, 5xx, a rate
// limit) is tried again. The zero value means DefaultRetryOptions.
type RetryOptions struct {
	// Attempts is how many times one request is sent, the first included;
	// 1 turns retries off.
	Attempts int
	// Backoff is the first wait when the API does not say how long to wait;
	// it doubles with every attempt.
	Backoff time.Duration
	// MaxWait bounds one wait. An API that asks for longer (Retry-After, a
	// rate limit's reset) fails the request at once instead.
	MaxWait time.Duration

	// sleep waits d or until ctx ends; tests replace it to record the waits.
	sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRetryOptions try a request 4 times, waiting 1 s, 2 s and 4 s unless
// the API says otherwise, and never more than a minute at a time.
func DefaultRetryOptions() RetryOptions {
	return RetryOptions{Attempts: 4, Backoff: time.Second, MaxWait: time.Minute}
}

// client is one authenticated REST conversation.
type client struct {
	http *http.Client
	// base is the API root; pagination links and redirects are followed only
	// to its scheme and host, so the token is never sent anywhere else.
	base *url.URL
	// auth sets the authentication headers on a request.
	auth  func(http.Header)
	token string
	// timeout bounds each request; it is applied through the request's
	// context, so it holds whatever HTTP client the caller supplied.
	timeout time.Duration
	retry   RetryOptions
}

func newClient(hc *http.Client, timeout time.Duration, retry RetryOptions, baseURL, token string, auth func(http.Header)) (client, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	if token == "" {
		return client{}, errors.New("no token")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return client{}, errors.New("token contains spaces or control characters")
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return client{}, fmt.Errorf("base URL %q: want http(s)://host[/path]", baseURL)
	}
	def := DefaultRetryOptions()
	if retry.Attempts <= 0 {
		retry.Attempts = def.Attempts
	}
	if retry.Backoff <= 0 {
		retry.Backoff = def.Backoff
	}
	if retry.MaxWait <= 0 {
		retry.MaxWait = def.MaxWait
	}
	if retry.sleep == nil {
		retry.sleep = sleep
	}
	// A copy of the caller's client that follows a redirect only on the API's
	// own scheme and host. Go's client sends custom headers (GitLab's
	// PRIVATE-TOKEN) to any host it is redirected to, and Authorization to
	// the same host name on another port; neither may carry the token away.
	own := *hc
	next := hc.CheckRedirect
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != u.Scheme || req.URL.Host != u.Host {
			return &redirectError{fmt.Errorf("refusing to follow a redirect to %s://%s: not the API's host %s://%s, and the token would go with it", req.URL.Scheme, req.URL.Host, u.Scheme, u.Host)}
		}
		if next != nil {
			if err := next(req, via); err != nil {
				return &redirectError{err}
			}
			return nil
		}
		if len(via) >= 10 {
			return &redirectError{errors.New("stopped after 10 redirects")}
		}
		return nil
	}
	return client{http: &own, base: u, auth: auth, token: token, timeout: timeout, retry: retry}, nil
}

// do sends one request, with in (if not nil) as its JSON body, and decodes a
// 2xx response's JSON into out (if not nil). It returns the response headers.
// Each attempt, reading its response included, gets c.timeout. A request the
// API refused for now is sent again (see retryWait); the last error is returned.
func (c client) do(ctx context.Context, method, rawURL string, in, out any) (http.Header, error) {
	for attempt := 1; ; attempt++ {
		h, err := c.attempt(ctx, method, rawURL, in, out)
		if err == nil {
			return h, nil
		}
		if ctx.Err() != nil {
			return h, err
		}
		wait, again := c.retryWait(method, h, err, attempt)
		if !again {
			return h, err
		}
		if serr := c.retry.sleep(ctx, wait); serr != nil {
			return h, fmt.Errorf("%w (stopped waiting %s to try again: %w)", err, wait, serr)
		}
	}
}

func (c client) attempt(ctx context.Context, method, rawURL string, in, out any) (http.Header, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	h, err := c.send(rctx, method, rawURL, in, out)
	if err != nil && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		// A slow API is not tried again: each attempt would wait as long.
		var connErr *ConnError
		if errors.As(err, &connErr) {
			err = connErr.Err
		}
		return h, fmt.Errorf("no complete response within %s: %w", c.timeout, err)
	}
	return h, err
}

// retryWait decides whether a failed attempt is tried again, and after how
// long. Tried again: 429, a rate limit's 403 (GitHub's secondary limits), and
// 500, 502, 503, 504 or no answer at all (a refused, reset or closed
// connection) unless the request was a POST, which may have been carried out
// all the same (Upsert lists again instead of creating twice).
// The wait is what the API asks for (Retry-After; a rate limit's reset), else
// Backoff doubled per attempt; a longer wait than MaxWait fails at once.
// It records the attempts and a refused wait on the APIError.
func (c client) retryWait(method string, h http.Header, err error, attempt int) (time.Duration, bool) {
	var connErr *ConnError
	if errors.As(err, &connErr) {
		connErr.Attempts = attempt
		if method == http.MethodPost || attempt >= c.retry.Attempts {
			return 0, false
		}
		return c.retry.Backoff << (attempt - 1), true
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	apiErr.Attempts = attempt
	switch s := apiErr.StatusCode; {
	case s == http.StatusTooManyRequests, s == http.StatusForbidden && rateLimited(h):
	case s == 500 || s == 502 || s == 503 || s == 504:
		if method == http.MethodPost {
			return 0, false
		}
	default:
		return 0, false
	}
	if attempt >= c.retry.Attempts {
		return 0, false
	}
	wait, told := askedWait(h, time.Now())
	if !told {
		wait = c.retry.Backoff << (attempt - 1)
	}
	if wait > c.retry.MaxWait {
		apiErr.AskedWait, apiErr.MaxWait = wait, c.retry.MaxWait
		return 0, false
	}
	return wait, true
}

// rateLimited tells a rate limit's 403 from a permission's: GitHub sends
// Retry-After with a secondary limit and X-RateLimit-Remaining: 0 with the primary one.
func rateLimited(h http.Header) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0"
}

// askedWait is how long the API asked to wait: Retry-After (seconds or an
// HTTP date), else the reset time of an exhausted rate limit (GitHub's
// X-RateLimit-Reset, GitLab's RateLimit-Reset, Unix seconds).
func askedWait(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	for _, p := range []string{"X-", ""} {
		if h.Get(p+"RateLimit-Remaining") != "0" {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(h.Get(p+"RateLimit-Reset")), 10, 64); err == nil {
			return max(time.Unix(n, 0).Sub(now), 0), true
		}
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c client) send(ctx context.Context, method, rawURL string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, rawURL, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "tandem")
	c.auth(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		err = c.redactErr(err)
		var redirect *redirectError
		if errors.As(err, &redirect) {
			return nil, err
		}
		return nil, &ConnError{Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
		return resp.Header, &APIError{Method: method, URL: rawURL, StatusCode: resp.StatusCode, Message: c.redact(apiMessage(raw))}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return resp.Header, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return resp.Header, fmt.Errorf("%s %s: decode response: %w", method, rawURL, err)
	}
	return resp.Header, nil
}

// sameOrigin resolves a pagination link against the page it came from and
// refuses one that points to another scheme or host.
func (c client) sameOrigin(from, link string) (string, error) {
	f, err := url.Parse(from)
	if err != nil {
		return "", err
	}
	u, err := f.Parse(link)
	if err != nil {
		return "", fmt.Errorf("pagination link %q: %w", link, err)
	}
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return "", fmt.Errorf("refusing to follow pagination link to %s://%s, not the API's host %s", u.Scheme, u.Host, c.base.Host)
	}
	return u.String(), nil
}

// redirectError is a redirect refused: an answer, not a connection failing,
// so it is never tried again.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

// redact replaces the token wherever it appears in s.
func (c client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[token]")
}

// redactErr keeps err as is unless its text holds the token (it never should:
// the token travels in a header), in which case only the redacted text survives.
func (c client) redactErr(err error) error {
	if c.token != "" && strings.Contains(err.Error(), c.token) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}

// apiMessage extracts the human part of an error response: GitHub and GitLab
// both answer {"message": ...} (GitLab sometimes an object of field errors),
// OAuth-style errors {"error": ...}. It falls back to the start of the text.
func apiMessage(raw []byte) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		for _, k := range []string{"message", "error_description", "error"} {
			switch v := m[k].(type) {
			case nil:
			case string:
				return shorten(v + fieldErrors(m["errors"]))
			default:
				b, _ := json.Marshal(v)
				return shorten(string(b))
			}
		}
	}
	return shorten(strings.TrimSpace(string(raw)))
}

// fieldErrors is what GitHub's "errors" list of a 422 says ("Validation
// Failed" alone does not say that the body is too long), as ": a; b".
func fieldErrors(v any) string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		switch e := e.(type) {
		case string:
			out = append(out, e)
		case map[string]any:
			if msg, _ := e["message"].(string); msg != "" {
				out = append(out, msg)
			} else if code, _ := e["code"].(string); code != "" {
				field, _ := e["field"].(string)
				out = append(out, strings.TrimSpace(field+" "+code))
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return ": " + strings.Join(out, "; ")
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// nextLink returns the rel="next" target of an RFC 8288 Link header, or "".
func nextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			start, end := strings.Index(part, "<"), strings.Index(part, ">")
			if start != 0 || end < 0 {
				continue
			}
			for _, param := range strings.Split(part[end+1:], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return part[1:end]
					}
				}
			}
		}
	}
	return ""
}

// withMarker returns body with marker as its first line unless it already
// starts with it: tandem's comments are found again by a marker that opens
// them (see opensWith).
func withMarker(body, marker string) string {
	if opensWith(body, marker) {
		return body
	}
	return marker + "\n" + body
}

// opensWith reports whether body starts with marker, leading blank space
// aside. tandem writes the marker as its comments' first line; a comment that
// holds it further down (another workflow quoting a pull request's text under
// the same bot identity, say) is not tandem's.
func opensWith(body, marker string) bool {
	return strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), marker)
}

func checkArgs(n int, body, marker string) error {
	switch {
	case n <= 0:
		return fmt.Errorf("number %d: want a positive number", n)
	case strings.TrimSpace(marker) == "":
		return errors.New("empty marker: the sticky comment could not be found again")
	case strings.TrimSpace(body) == "":
		return errors.New("empty body")
	}
	return nil
}
