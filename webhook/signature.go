package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Sign returns the signature header value tandem expects for body:
// "sha256=" and the hex HMAC-SHA256 of body keyed with secret. GitHub's
// X-Hub-Signature-256 and the generic X-Signature use it.
func Sign(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, body))
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// verifySignature reports whether header is "sha256=<hex>" of the HMAC of
// body. Only the length of the attacker's own value can leak, not the secret.
func verifySignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return false
	}
	return hmac.Equal(mac(secret, body), sig)
}

// wellFormedSignature reports whether header has the form verifySignature
// accepts, "sha256=" and 64 hex digits, without looking at a body.
func wellFormedSignature(header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexSig) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(hexSig)
	return err == nil
}
