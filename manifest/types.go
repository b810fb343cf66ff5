package manifest

import "time"

// FileName is the manifest file at the root of a manifest repository.
const FileName = "tandem.yaml"

// Role is a cluster's part in an Active/Standby pair.
type Role string

const (
	// RoleActive clusters run workloads and receive DNS traffic.
	RoleActive Role = "active"
	// RoleStandby clusters hold every object but run no application pods and get DNS weight 0.
	RoleStandby Role = "standby"
)

// StandbyMode says what a Standby cluster does with a release's workloads.
type StandbyMode string

const (
	// StandbyScaleToZero scales workloads to zero and suspends CronJobs on Standby clusters (the default).
	StandbyScaleToZero StandbyMode = "scale-to-zero"
	// StandbyKeep runs the release on Standby clusters as on Active ones (ingress controllers, DNS agents).
	StandbyKeep StandbyMode = "keep"
)

// StandbyHooks says whether a release's Helm hooks run on a Standby cluster
// where its workloads are scaled to zero.
type StandbyHooks string

const (
	// StandbyHooksSkip installs and upgrades without hooks on such a
	// Standby cluster (the default): Helm does not post-render hooks, so a
	// hook Job (a database migration) would run there at full strength.
	StandbyHooksSkip StandbyHooks = "skip"
	// StandbyHooksRun runs the hooks on every cluster, as Helm would.
	StandbyHooksRun StandbyHooks = "run"
)

// Rollout says how a release change is spread over the clusters.
type Rollout string

const (
	// RolloutParallel applies to every cluster at once (the default).
	RolloutParallel Rollout = "parallel"
	// RolloutStandbyFirst applies to Standby clusters, waits for health, then to Active clusters.
	RolloutStandbyFirst Rollout = "standby-first"
)

// OnFailure says what reconcile does with a release whose upgrade failed.
type OnFailure string

const (
	// OnFailureRollback rolls a failed upgrade back to the last deployed revision (the default).
	OnFailureRollback OnFailure = "rollback"
	// OnFailureKeep leaves the failed revision in place for inspection.
	OnFailureKeep OnFailure = "keep"
)

// Defaults applied by Load when a field is omitted.
const (
	DefaultAnnotationPrefix = "external-dns.alpha.kubernetes.io/"
	DefaultActiveWeight     = 100
	// DefaultDrainSeconds is how long a switchover waits after the source's DNS weight goes to 0.
	DefaultDrainSeconds = 60
	DefaultTimeout      = "5m"
	// DefaultID is the ID of a manifest that declares none.
	DefaultID = "default"
)

// Manifest is a loaded, validated and defaulted tandem.yaml.
// The JSON tags are the on-disk contract: fields may be added, never renamed or re-meant.
type Manifest struct {
	// ID names this manifest on the clusters it manages: the releases it installs carry it
	// (Helm release label tandem.dev/manifest) and only releases carrying it are pruned, so
	// two manifests (two teams, two repositories) can share a cluster without pruning each
	// other's releases. A DNS label of at most 40 characters; it must never change once used.
	// Defaults to DefaultID, which also owns releases installed before manifests had IDs.
	ID           string       `json:"id,omitempty"`
	Clusters     []Cluster    `json:"clusters"`
	DNS          DNS          `json:"dns,omitempty"`
	Repositories []Repository `json:"repositories,omitempty"`
	Releases     []Release    `json:"releases,omitempty"`

	// Dir is the absolute path of the manifest repository's root (not part of the file).
	Dir string `json:"-"`
	// Options are the limits Load applied (not part of the file); ReadFile and CheckTree
	// apply the same ones. Zero fields mean the defaults.
	Options LoadOptions `json:"-"`
	// NoRegistryLogin (not part of the file), set by DropUnreviewedCredentials, holds the
	// repositories (by name) and the oci:// chart references that get no credentials from
	// Helm's or Docker's registry login: nil means every one does.
	NoRegistryLogin map[string]bool `json:"-"`
}

// Cluster is one Kubernetes cluster tandem keeps in step.
type Cluster struct {
	// Name is a DNS label, unique in the manifest.
	Name string `json:"name"`
	// Role is active or standby.
	Role Role `json:"role"`
	// Context is the kubeconfig context; defaults to Name.
	Context string `json:"context,omitempty"`
	// Releases, when set, is the staged-enablement list: only these releases go to this cluster.
	// nil means every release; an empty list means none.
	Releases []string `json:"releases,omitempty"`
	// KubeVersion is the cluster's Kubernetes version as templates see it in
	// .Capabilities.KubeVersion, written as `helm template --kube-version` takes it: "v1.31.0",
	// "1.31" (quoted in YAML, or it is a number). It is for renders made without connecting to
	// the cluster (tandem diff --against in CI, without credentials), so that charts choosing
	// API versions by Kubernetes version, or requiring one, render as they will on the cluster;
	// a run connected to the cluster uses the version the cluster reports. Empty means the
	// Kubernetes version tandem is built against.
	KubeVersion string `json:"kubeVersion,omitempty"`
	// APIVersions are API versions the cluster serves beyond the built-in ones, as templates see
	// them in .Capabilities.APIVersions, written as `helm template --api-versions` takes them:
	// "group/version" or "group/version/Kind", e.g. "monitoring.coreos.com/v1" or
	// "monitoring.coreos.com/v1/ServiceMonitor" ("v1/Service" for the core group). Charts that
	// render a CRD's objects only where the CRD is served check for them. Like KubeVersion, they
	// are for renders made without connecting to the cluster.
	APIVersions []string `json:"apiVersions,omitempty"`
}

// DNS configures the ExternalDNS weighted-record overlay.
type DNS struct {
	// AnnotationPrefix is the ExternalDNS annotation prefix; defaults to DefaultAnnotationPrefix.
	AnnotationPrefix string `json:"annotationPrefix,omitempty"`
	// ActiveWeight is the record weight on Active clusters, 1..255; defaults to DefaultActiveWeight.
	ActiveWeight int `json:"activeWeight,omitempty"`
	// DrainSeconds is how long a switchover waits after setting the source
	// cluster's DNS weight to 0 before it moves the singletons and scales
	// the source down, 0..3600; nil means DefaultDrainSeconds (Load leaves
	// it nil, so that an omitted field stays omitted; read it with Drain). It must
	// cover the records' TTL (resolvers keep answering with the old weights
	// until it expires) plus the load balancer's deregistration delay
	// (connections already open keep going to the source until then).
	DrainSeconds *int `json:"drainSeconds,omitempty"`
}

// Drain is the switchover's drain wait: DrainSeconds, or DefaultDrainSeconds.
func (d DNS) Drain() time.Duration {
	if d.DrainSeconds == nil {
		return DefaultDrainSeconds * time.Second
	}
	return time.Duration(*d.DrainSeconds) * time.Second
}

// Repository is a chart repository (https:// index or oci://), and how to reach it.
// tandem.yaml names where credentials are (environment variables, files outside the
// repository), never the credentials themselves.
type Repository struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Insecure allows an http:// URL, or an OCI registry served over plain HTTP. Without it
	// every request, redirects included, is HTTPS.
	Insecure bool `json:"insecure,omitempty"`
	// Username is the basic-auth user; UsernameEnv names an environment variable holding it
	// instead. At most one of them.
	Username    string `json:"username,omitempty"`
	UsernameEnv string `json:"usernameEnv,omitempty"`
	// PasswordEnv names an environment variable, PasswordFile an absolute path of a file,
	// holding the password or token. At most one of them, and only with a user.
	PasswordEnv  string `json:"passwordEnv,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// CAFile is a PEM bundle of CAs trusted besides the system's: an absolute path, or a path
	// inside the manifest repository (a CA certificate is no secret).
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, absolute paths, both or
	// neither.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// HasCredentials reports whether the repository sends a user and password.
func (r Repository) HasCredentials() bool {
	return r.Username != "" || r.UsernameEnv != "" || r.PasswordEnv != "" || r.PasswordFile != ""
}

// Release is one Helm release that tandem deploys to every cluster that enables it.
type Release struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Chart is a path inside the manifest repository (starting with ./), repo/chart, or an oci:// reference.
	Chart   string `json:"chart"`
	Version string `json:"version,omitempty"`
	// Digest pins a remote chart's archive: "sha256:" followed by the hex SHA-256 of the
	// .tgz (for OCI, the chart layer's digest, as `helm push` prints it). A download that
	// does not match fails the render, so what was reviewed is what is applied.
	Digest string `json:"digest,omitempty"`
	// Values are files inside the manifest repository, merged in order.
	Values []string `json:"values,omitempty"`
	// Set holds dotted keys like helm --set; values may be any YAML scalar.
	Set map[string]any `json:"set,omitempty"`
	// Clusters holds per-cluster overlays keyed by cluster name.
	Clusters map[string]Overlay `json:"clusters,omitempty"`
	// Wave orders releases within a cluster: lower waves first.
	Wave int `json:"wave,omitempty"`
	// Needs names releases that must be healthy before this one is applied.
	Needs []string `json:"needs,omitempty"`
	// Standby is scale-to-zero (default) or keep.
	Standby StandbyMode `json:"standby,omitempty"`
	// StandbyHooks is skip (default) or run: whether Helm hooks run on a
	// Standby cluster where the release is scaled to zero.
	StandbyHooks StandbyHooks `json:"standbyHooks,omitempty"`
	// Rollout is parallel (default) or standby-first.
	Rollout Rollout `json:"rollout,omitempty"`

	// Timeout bounds install/upgrade plus the health wait, as a Go duration; defaults to DefaultTimeout.
	Timeout string `json:"timeout,omitempty"`
	// Adopt lets tandem take over a same-named Helm release it does not own yet.
	Adopt bool `json:"adopt,omitempty"`
	// Force recreates objects whose immutable fields changed.
	Force bool `json:"force,omitempty"`
	// OnFailure is rollback (default) or keep.
	OnFailure OnFailure `json:"onFailure,omitempty"`
	// DriftCorrection re-applies objects that drifted from the deployed release on every reconcile.
	DriftCorrection bool `json:"driftCorrection,omitempty"`
	// AllowAdmissionPolicies lets the chart render admission policies and
	// their bindings, and webhook configurations whose rules match what
	// tandem writes on every run (Leases, ConfigMaps, Secrets, Namespaces),
	// which are refused otherwise: one applies to the whole cluster and can
	// refuse tandem's own writes there.
	AllowAdmissionPolicies bool `json:"allowAdmissionPolicies,omitempty"`
	// Ignore lists fields that diff and drift detection leave out.
	Ignore []IgnoreRule `json:"ignore,omitempty"`
}

// Overlay is a per-cluster layer of values on top of a release's own.
type Overlay struct {
	Values []string       `json:"values,omitempty"`
	Set    map[string]any `json:"set,omitempty"`
}

// IgnoreRule leaves JSON-pointer paths of matching objects out of diffs.
type IgnoreRule struct {
	// Kind matches the object kind; empty matches every kind.
	Kind string `json:"kind,omitempty"`
	// Name matches the object name; empty matches every name.
	Name string `json:"name,omitempty"`
	// Paths are RFC 6901 JSON pointers, e.g. /spec/replicas.
	Paths []string `json:"paths"`
}
