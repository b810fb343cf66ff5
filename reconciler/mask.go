package reconciler

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// SecretMask hides the values of Secrets in what tandem prints. Each value
// is replaced by a keyed hash (HMAC-SHA256) under a key drawn at random for
// one report: within the report equal values show equal hashes, so a diff
// still says which keys changed and which Secrets share a value, but a hash
// published in one PR comment cannot be checked against guesses (a plain
// hash of a short password can be brute-forced offline) or compared with
// another report's.
type SecretMask struct {
	key [32]byte
}

// NewSecretMask returns a mask with a fresh random key; use one per report.
func NewSecretMask() *SecretMask {
	m := &SecretMask{}
	// crypto/rand.Read never fails on supported platforms (Go 1.24+: it
	// crashes the program rather than return an error).
	_, _ = rand.Read(m.key[:])
	return m
}

// hiddenField replaces a data or stringData field that is not a map of
// values: the API server refuses it, but a diff must not print it either.
const hiddenField = "(hidden)"

// Mask replaces, in place, every value of a v1 Secret's data and stringData
// with "(hidden, hmac <10 hex>)" of the decoded value, so the same value
// hashes alike in data and stringData. Other objects are left alone.
func (m *SecretMask) Mask(obj map[string]any) {
	if str(obj, "kind") != "Secret" || str(obj, "apiVersion") != "v1" {
		return
	}
	for _, field := range []string{"data", "stringData"} {
		v, present := obj[field]
		if !present || v == nil {
			continue
		}
		values, ok := v.(map[string]any)
		if !ok {
			obj[field] = hiddenField
			continue
		}
		for k, v := range values {
			s, _ := v.(string)
			raw := []byte(s)
			if field == "data" {
				if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
					raw = dec
				}
			}
			values[k] = "(hidden, hmac " + m.sum(raw) + ")"
		}
	}
}

func (m *SecretMask) sum(raw []byte) string {
	h := hmac.New(sha256.New, m.key[:])
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))[:10]
}
