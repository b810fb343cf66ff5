// Package render is tandem's adapter to Helm's chart side: it loads and caches
// charts (local directories, chart repositories, OCI registries), layers
// values, renders releases client-side exactly as `helm template` does, and
// applies the Active/Standby overlay as a Helm post-renderer, so that a render
// and a real install run the very same overlay code.
//
// render must not import client-go's cluster side, Helm's release side
// (action.Upgrade, storage), or any other tandem package: it knows nothing of
// manifests or clusters beyond the Request it is handed.
package render
