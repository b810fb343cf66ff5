package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
)

// github verifies X-Hub-Signature-256 only. GitHub still sends the SHA-1
// X-Hub-Signature beside it for old receivers; accepting it alone would let
// anyone who can find a SHA-1 HMAC weakness downgrade us, so a request with
// only that header is unauthorized.
func (h *handler) github() provider {
	return provider{
		name: "github",
		mayAuthenticate: func(r *http.Request) bool {
			return wellFormedSignature(r.Header.Get("X-Hub-Signature-256"))
		},
		authenticate: func(r *http.Request, body []byte) bool {
			return verifySignature(h.secret, body, r.Header.Get("X-Hub-Signature-256"))
		},
		parse: h.parseGitHub,
	}
}

func (h *handler) parseGitHub(r *http.Request, body []byte) (outcome, error) {
	payload, err := githubPayload(r, body)
	if err != nil {
		return outcome{}, err
	}
	switch event := r.Header.Get("X-GitHub-Event"); event {
	case "":
		return outcome{}, errors.New("missing X-GitHub-Event")
	case "ping":
		return outcome{code: http.StatusOK, msg: "pong"}, nil
	case "push":
		var push struct {
			Ref   string `json:"ref"`
			After string `json:"after"`
		}
		if err := json.Unmarshal(payload, &push); err != nil {
			return outcome{}, fmt.Errorf("push payload: %w", err)
		}
		return h.pushOutcome("github", push.Ref, push.After, deliveryID(r.Header.Get("X-GitHub-Delivery"))), nil
	default:
		return outcome{code: http.StatusOK, msg: "ignored: not a push event"}, nil
	}
}

// githubPayload returns the JSON document of a GitHub delivery. A hook whose
// content type is application/x-www-form-urlencoded sends it as the form
// field "payload"; the signature covers the raw body either way.
func githubPayload(r *http.Request, body []byte) ([]byte, error) {
	payload := body
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("form body: %w", err)
		}
		if !form.Has("payload") {
			return nil, errors.New("form body without payload")
		}
		payload = []byte(form.Get("payload"))
	}
	if !json.Valid(payload) {
		return nil, errors.New("payload is not JSON")
	}
	return payload, nil
}
