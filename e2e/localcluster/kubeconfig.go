package localcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigEntry is one context: a cluster entry named Context, a user entry
// named User@Context, and a context joining them.
type kubeconfigEntry struct {
	Context string
	User    string
	Server  string
	CA      []byte
	Cert    []byte
	Key     []byte
}

// kubeconfig builds a kubeconfig with one context per entry; the first is current.
func kubeconfig(entries []kubeconfigEntry) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	for i, e := range entries {
		user := e.User + "@" + e.Context
		cfg.Clusters[e.Context] = &clientcmdapi.Cluster{Server: e.Server, CertificateAuthorityData: e.CA}
		cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Cert, ClientKeyData: e.Key}
		cfg.Contexts[e.Context] = &clientcmdapi.Context{Cluster: e.Context, AuthInfo: user, Namespace: "default"}
		if i == 0 {
			cfg.CurrentContext = e.Context
		}
	}
	return cfg
}

// writeKubeconfig writes cfg to path atomically: a reader sees the old file or
// the new one, never half of one (clusters-up waits for this file to appear).
func writeKubeconfig(cfg *clientcmdapi.Config, path string) error {
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
