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
// without body or rate limits are what it must not repeat. Two more things
// it must not allow, found in review: strangers who share an address with a
// git host (behind an Ingress every client has the proxy's address) must not
// be able to spend the budget the host's signed pushes need, and one client
// must not be able to hold every slot with slow bodies. Checks run cheapest
// first, and every one runs before any work a stranger could make expensive:
//
//  1. unknown path → 404; webhooks disabled (empty secret) → 404, so a
//     disabled daemon looks like it has no hooks at all;
//  2. method other than POST → 405 with Allow: POST;
//  3. Content-Length over MaxBodyBytes → 413 without reading a byte;
//  4. a request whose headers alone show it cannot be authentic (no
//     signature, one that is not "sha256=<64 hex>", a wrong GitLab token)
//     from a source that has spent its failure budget → 429 with
//     Retry-After, before it takes a slot or a byte of its body is read.
//     Only such requests: a well-formed signature can be checked only
//     against the body, and a correctly signed request is never refused
//     for rate;
//  5. the source already holds MaxInFlightPerSource slots → 503 with
//     Retry-After, without touching the shared pool; all MaxInFlight slots
//     held → 503. The per-source cap comes first so one client's slow
//     connections cannot take the slots every provider needs;
//  6. the body is read within BodyReadTimeout (the connection's read
//     deadline, set through http.ResponseController) → 408 when it is
//     late, so a trickled body frees its slot in seconds, not at the
//     server's ReadTimeout; and through http.MaxBytesReader, which stops
//     after MaxBodyBytes+1 bytes → 413 for a chunked body over the limit.
//     Memory is bounded for every request, signed or not: at most
//     MaxInFlight × MaxBodyBytes of bodies are held at once;
//  7. missing or bad signature/token → the source's failure budget (Rate,
//     Burst) is charged: 401 while it lasts, 429 with Retry-After once it is
//     spent. Only failures are charged, so guessing a secret or a signature
//     is throttled while a git host's signed pushes, however many and from
//     whatever shared address, are not;
//  8. a signed body that is not the JSON the provider sends → 400;
//  9. 202 for an accepted hint, 200 for a ping or a push that is
//     acknowledged and ignored (another branch, a tag, another event).
//
// The handler answers at once: it hands the hint to Options.Notify, which
// must not block, and never waits for a reconcile. Responses are short plain
// text and never echo the request. Logs never hold the secret, a signature,
// a token or a body.
//
// The source of a request is the client IP from RemoteAddr. X-Forwarded-For
// is not trusted: anyone can send it. Behind a reverse proxy every request
// shares the proxy's failure budget and its MaxInFlightPerSource slots.
// Signed pushes are unaffected by the budget; the slots are safe when the
// proxy buffers request bodies (ingress-nginx does by default), else raise
// MaxInFlightPerSource. IPv6 sources are keyed by their /64, because one host
// usually holds a whole /64 and could otherwise spread a flood over it.
//
// What the caller's http.Server must do (the handler cannot): set
// ReadHeaderTimeout (for example 5s), since the handler only runs once the
// headers are in, and ReadTimeout as the bound where the ResponseWriter
// cannot take BodyReadTimeout; and serve TLS (directly or behind a proxy) so
// the GitLab token is not sent in the clear. Mount the handler on "/hooks/"
// without stripping the prefix: it matches the full path.
//
// webhook imports no other tandem package; the daemon imports it and turns a
// Hint into "fetch now".
package webhook
