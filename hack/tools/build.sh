#!/usr/bin/env bash
# Builds the pinned control-plane and client binaries that tandem's tests and demo
# use, once, into a cache directory keyed by their versions. Prints that directory
# on the last line of stdout. A warm run takes well under a second.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
key="k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
dir=${TANDEM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem/tools/$key}
mkdir -p "$dir"

# Two test packages may need the tools at the same time; the second waits for the first.
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
fi

log() { printf '[tools] %s\n' "$*" >&2; }

build() { # build MODULE_DIR OUTPUT PACKAGE [LDFLAGS]
  local mod=$1 out=$2 pkg=$3 ldflags=${4:-}
  if [ -x "$dir/$out" ]; then return; fi
  log "building $out from $pkg (cold builds take minutes; cached afterwards in $dir)"
  local start=$SECONDS
  (cd "$here/$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/$out.tmp" "$pkg")
  mv "$dir/$out.tmp" "$dir/$out"
  log "built $out in $((SECONDS - start))s"
}

kube_ld="-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ld"
build kube kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ld"
build kube kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kube_ld"
build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kube_ld"
build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"

# kwok refuses to start without Stage objects: the module's fast node and pod stages.
# Only the Stage files: the directories also hold kustomization.yaml, which kwok rejects.
# A file made by an older version of this script (with a Kustomization in it) is rebuilt.
if [ ! -s "$dir/kwok-stages.yaml" ] || grep -q '^kind: Kustomization' "$dir/kwok-stages.yaml"; then
  src=$(cd "$here/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  {
    for f in "$src/kustomize/stage/node/fast/node-initialize.yaml" \
             "$src/kustomize/stage/node/heartbeat/node-heartbeat.yaml" \
             "$src"/kustomize/stage/pod/fast/pod-*.yaml; do
      cat "$f"; printf '\n---\n'
    done
  } > "$dir/kwok-stages.yaml.tmp"
  mv "$dir/kwok-stages.yaml.tmp" "$dir/kwok-stages.yaml"
fi
echo "$dir"
