package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// generic is for any other git server or a script: X-Signature carries the
// same "sha256=<hex>" HMAC as GitHub's (Sign computes it). The body may be
// empty, meaning "the followed branch moved", or {"ref": "refs/heads/main"}
// with an optional "after" commit.
func (h *handler) generic() provider {
	return provider{
		name: "generic",
		mayAuthenticate: func(r *http.Request) bool {
			return wellFormedSignature(r.Header.Get("X-Signature"))
		},
		authenticate: func(r *http.Request, body []byte) bool {
			return verifySignature(h.secret, body, r.Header.Get("X-Signature"))
		},
		parse: h.parseGeneric,
	}
}

func (h *handler) parseGeneric(r *http.Request, body []byte) (outcome, error) {
	var push struct {
		Ref   string `json:"ref"`
		After string `json:"after"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &push); err != nil {
			return outcome{}, fmt.Errorf("generic payload: %w", err)
		}
	}
	if push.Ref == "" && h.branch != "" {
		push.Ref = "refs/heads/" + h.branch
	}
	delivery := deliveryID(r.Header.Get("X-Delivery"))
	if push.Ref == "" { // no ref and any branch followed: still a hint
		return outcome{code: http.StatusAccepted, msg: "hint accepted",
			hint: &Hint{Provider: "generic", After: push.After, Delivery: delivery}}, nil
	}
	return h.pushOutcome("generic", push.Ref, push.After, delivery), nil
}
