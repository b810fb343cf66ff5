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
}

// APIError is a response with a status other than 2xx.
type APIError struct {
	Method string
	// URL is the request's address; it never holds credentials (they travel in headers).
	URL        string
	StatusCode int
	// Message is what the API said, shortened; any occurrence of the token is replaced.
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
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

// client is one authenticated REST conversation.
type client struct {
	http *http.Client
	// base is the API root; pagination links are followed only to its scheme and host,
	// so the token is never sent anywhere else.
	base *url.URL
	// auth sets the authentication headers on a request.
	auth  func(http.Header)
	token string
	// timeout bounds each request; it is applied through the request's
	// context, so it holds whatever HTTP client the caller supplied.
	timeout time.Duration
}

func newClient(hc *http.Client, timeout time.Duration, baseURL, token string, auth func(http.Header)) (client, error) {
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
	return client{http: hc, base: u, auth: auth, token: token, timeout: timeout}, nil
}

// do sends one request, with in (if not nil) as its JSON body, and decodes a
// 2xx response's JSON into out (if not nil). It returns the response headers.
// The request, reading its response included, gets c.timeout.
func (c client) do(ctx context.Context, method, rawURL string, in, out any) (http.Header, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	h, err := c.send(rctx, method, rawURL, in, out)
	if err != nil && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return h, fmt.Errorf("no complete response within %s: %w", c.timeout, err)
	}
	return h, err
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
		return nil, c.redactErr(err)
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
				return shorten(v)
			default:
				b, _ := json.Marshal(v)
				return shorten(string(b))
			}
		}
	}
	return shorten(strings.TrimSpace(string(raw)))
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

// withMarker returns body with marker as its first line unless it already holds it.
func withMarker(body, marker string) string {
	if strings.Contains(body, marker) {
		return body
	}
	return marker + "\n" + body
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
