// Package render is tandem's adapter to Helm's chart side: it loads and caches
// charts (local directories, chart repositories, OCI registries), layers
// values, and renders releases client-side as `helm template` does, but with
// each cluster's capabilities (Kubernetes version, API versions) and, when
// the caller has a cluster at hand, a live read-only lookup, so that the plan
// sees what an install would. It applies the Active/Standby overlay as a Helm
// post-renderer, and gives installs the Planned post-renderer, which hands
// Helm the planned manifest: what is applied is byte for byte what was
// rendered, digested and diffed.
//
// render must not import client-go's cluster side, Helm's release side
// (action.Upgrade, storage), or any other tandem package: it knows nothing of
// manifests or clusters beyond the Request it is handed. The lookup provider
// comes in as Helm's engine.ClientProvider interface; render only names
// client-go's dynamic interface types and never builds a client.
//
// With Options.Isolation, Helm's template engine runs in worker processes
// (ServeWorker is their side): a template past its deadline is killed with
// its process. A worker reads nothing but its stdin — the parent sends the
// loaded chart and answers its lookups — and inherits no credentials. Its
// memory, output and number are bounded (Isolation's fields).
package render
