// Package webhook is the HTTP handler for git push webhooks to the tandem
// daemon. A webhook is only a hint: it makes the daemon check the remote at
// once instead of at its next poll. The daemon always verifies the remote
// itself, so a hint carries no authority beyond "look now", and a lost hint
// costs one poll interval, never correctness.
//
// It serves exactly three paths, POST only:
//
//	/hooks/github   X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body> (no SHA-1 fallback)
//	/hooks/gitlab   X-Gitlab-Token: <secret> (compared as fixed-length digests, in constant time)
//	/hooks/generic  X-Signature: sha256=<hex HMAC-SHA256 of the body>; body empty or {"ref": "refs/heads/main"}
//
// The handler is meant to face the open internet. Argo CD's CVE-2024-40634
// (an oversized unauthenticated payload exhausted memory) and Flux receivers
// without body or rate limits are what it must not repeat. Checks run
// cheapest first, and every one runs before any work a stranger could make
// expensive:
//
//  1. unknown path → 404; webhooks disabled (empty secret) → 404, so a
//     disabled daemon looks like it has no hooks at all;
//  2. method other than POST → 405 with Allow: POST;
//  3. body over MaxBodyBytes → 413, before anything else reads it: a
//     Content-Length over the limit is refused without reading a byte, a
//     body without one (chunked) is read through http.MaxBytesReader, which
//     stops after MaxBodyBytes+1 bytes. Size comes before all so memory is
//     bounded for every request, signed or not; MaxInFlight bounds how many
//     bodies are held at once (503 beyond it), so the whole handler holds at
//     most MaxInFlight × MaxBodyBytes of bodies;
//  4. over the source's rate → 429 with Retry-After. Rate comes before the
//     signature so that guessing a secret or a signature is throttled, and
//     so a flood costs one token-bucket lookup instead of an HMAC;
//  5. missing or bad signature/token → 401;
//  6. a signed body that is not the JSON the provider sends → 400;
//  7. 202 for an accepted hint, 200 for a ping or a push that is
//     acknowledged and ignored (another branch, a tag, another event).
//
// The handler answers at once: it hands the hint to Options.Notify, which
// must not block, and never waits for a reconcile. Responses are short plain
// text and never echo the request. Logs never hold the secret, a signature,
// a token or a body.
//
// The source of a request is the client IP from RemoteAddr. X-Forwarded-For
// is not trusted: anyone can send it. Behind a reverse proxy every request
// shares the proxy's bucket, so there the proxy should rate-limit, or Rate
// should be raised. IPv6 sources are keyed by their /64, because one host
// usually holds a whole /64 and could otherwise spread a flood over it.
//
// What the caller's http.Server must do (the handler cannot): set
// ReadHeaderTimeout and ReadTimeout (for example 10s each), so a client that
// trickles a body cannot hold one of the MaxInFlight slots for long, and
// serve TLS (directly or behind a proxy) so the GitLab token is not sent in
// the clear. Mount the handler on "/hooks/" without stripping the prefix:
// it matches the full path.
//
// webhook imports no other tandem package; the daemon imports it and turns a
// Hint into "fetch now".
package webhook
