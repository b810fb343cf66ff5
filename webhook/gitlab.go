package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// gitlab checks X-Gitlab-Token, which GitLab sends as the secret itself (it
// does not sign the body). Both sides are hashed to fixed-length digests
// before the constant-time compare, so the time taken leaks neither the
// secret's length nor how many leading bytes matched.
func (h *handler) gitlab() provider {
	want := sha256.Sum256(h.secret)
	token := func(r *http.Request) bool {
		got := sha256.Sum256([]byte(r.Header.Get("X-Gitlab-Token")))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	return provider{
		name:            "gitlab",
		mayAuthenticate: token, // the token is the whole proof: no body needed
		authenticate:    func(r *http.Request, _ []byte) bool { return token(r) },
		parse:           h.parseGitLab,
	}
}

func (h *handler) parseGitLab(r *http.Request, body []byte) (outcome, error) {
	if !json.Valid(body) {
		return outcome{}, errors.New("payload is not JSON")
	}
	switch event := r.Header.Get("X-Gitlab-Event"); event {
	case "":
		return outcome{}, errors.New("missing X-Gitlab-Event")
	case "Push Hook":
		var push struct {
			Ref         string  `json:"ref"`
			After       string  `json:"after"`
			CheckoutSHA *string `json:"checkout_sha"` // null when the branch was deleted
		}
		if err := json.Unmarshal(body, &push); err != nil {
			return outcome{}, fmt.Errorf("push payload: %w", err)
		}
		after := push.After
		if push.CheckoutSHA != nil && *push.CheckoutSHA != "" {
			after = *push.CheckoutSHA
		}
		return h.pushOutcome("gitlab", push.Ref, after, deliveryID(r.Header.Get("X-Gitlab-Event-UUID"))), nil
	default: // "Tag Push Hook", merge requests, pipelines...
		return outcome{code: http.StatusOK, msg: "ignored: not a branch push"}, nil
	}
}
