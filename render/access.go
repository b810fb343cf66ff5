package render

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Access says how to reach a chart repository or registry: whether plain
// HTTP is allowed, and the credentials and TLS material to use. The fields
// name where secrets are (environment variables, files); Access itself
// holds none, so it may be logged, compared and cached by.
type Access struct {
	// Insecure allows plain HTTP: an http:// repository, or an OCI registry
	// served without TLS. Without it every request, redirects included, is
	// HTTPS.
	Insecure bool
	// Username is the basic-auth user, or UsernameEnv the environment
	// variable holding it.
	Username    string
	UsernameEnv string
	// PasswordEnv is the environment variable, or PasswordFile the file,
	// holding the basic-auth password (or token).
	PasswordEnv  string
	PasswordFile string
	// CAFile is a PEM bundle of CAs trusted besides the system's.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key.
	CertFile string
	KeyFile  string
	// NoRegistryLogin pulls an OCI chart without the credentials of Helm's or
	// Docker's registry login (a pull request's plan, for a registry the
	// reviewed manifest does not use); a user and password above still apply.
	NoRegistryLogin bool
}

// HasCredentials reports whether a user and password are configured.
func (a Access) HasCredentials() bool {
	return (a.Username != "" || a.UsernameEnv != "") && (a.PasswordEnv != "" || a.PasswordFile != "")
}

// maxSecretFile bounds a password or key file: real ones are a few KiB.
const maxSecretFile = 64 << 10

// basicAuth reads the user and password where Access says they are. Errors
// name the variable or file, never what it holds.
func (a Access) basicAuth(getenv func(string) string) (user, password string, err error) {
	if !a.HasCredentials() {
		return "", "", nil
	}
	user = a.Username
	if a.UsernameEnv != "" {
		if user = getenv(a.UsernameEnv); user == "" {
			return "", "", fmt.Errorf("credentials: environment variable %s (usernameEnv) is empty or unset", a.UsernameEnv)
		}
	}
	switch {
	case a.PasswordEnv != "":
		if password = getenv(a.PasswordEnv); password == "" {
			return "", "", fmt.Errorf("credentials: environment variable %s (passwordEnv) is empty or unset", a.PasswordEnv)
		}
	default:
		b, err := readSecretFile(a.PasswordFile)
		if err != nil {
			return "", "", fmt.Errorf("credentials: passwordFile: %w", err)
		}
		// A trailing newline is how files end, never part of a password.
		if password = strings.TrimRight(string(b), "\r\n"); password == "" {
			return "", "", fmt.Errorf("credentials: passwordFile %s is empty", a.PasswordFile)
		}
	}
	return user, password, nil
}

// readSecretFile reads a small file. Its errors name the file; they never
// quote its content.
func readSecretFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, scrubPathError(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, scrubPathError(err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is over %d bytes", p, maxSecretFile)
	}
	return b, nil
}

// scrubPathError keeps an *os.PathError's operation, path and cause, which
// is all it ever holds; other errors pass.
func scrubPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// tlsConfig is the TLS client configuration Access asks for: the system's
// roots plus CAFile, and the client certificate. nil means Go's defaults.
func (a Access) tlsConfig() (*tls.Config, error) {
	if a.CAFile == "" && a.CertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.CAFile != "" {
		pem, err := readSecretFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s holds no PEM certificate", a.CAFile)
		}
		cfg.RootCAs = pool
	}
	if a.CertFile != "" {
		certPEM, err := readSecretFile(a.CertFile)
		if err != nil {
			return nil, fmt.Errorf("certFile: %w", err)
		}
		keyPEM, err := readSecretFile(a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("keyFile: %w", err)
		}
		// X509KeyPair's errors describe the PEM blocks, never their bytes.
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("certFile %s and keyFile %s: %w", a.CertFile, a.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// scrubSecret replaces every occurrence of secret in err's message. Helm and
// the registry client quote URLs and server answers in their errors; a
// server that echoes the Authorization header, or a user who put the
// password somewhere it is echoed, must not put it in tandem's output.
func scrubSecret(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if len(s) >= 4 && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "***")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return scrubbed{msg: msg, err: err}
}

// scrubbed is an error whose message had a secret removed; errors.Is and
// errors.As still reach the original.
type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }
