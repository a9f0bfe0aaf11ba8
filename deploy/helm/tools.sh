#!/usr/bin/env bash
# The chart's tools, each built only when missing: helm from the Go module proxy, and the
# manifest validator (deploy/helm/validate/). Prints `helm=<path>` and `validate=<path>`.
# Everything goes to $CONDUCTOR_CACHE (default ~/.cache/conductor): bin/, and go/ for the Go
# module and build caches. From nothing it takes about two and a half minutes; then well under
# a second.
#
#   deploy/helm/tools.sh            # install what is missing, print the paths
#   eval "$(deploy/helm/tools.sh)"; "$helm" lint deploy/helm/conductor
set -euo pipefail

HELM_VERSION=v3.22.0
# helm's Makefile sets these from its go.mod's k8s.io/client-go (v0.37 -> Kubernetes 1.37):
# the version `helm template` renders for and `helm lint` checks deprecations against. A plain
# `go install` would leave them at 1.20.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${CONDUCTOR_CACHE:-$HOME/.cache/conductor}
bin=$cache/bin
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
if [[ ! -x $go ]]; then
  echo "tools.sh: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go; GO= names one)" >&2
  exit 3
fi
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOTOOLCHAIN=local
export GOFLAGS="-modcacherw -buildvcs=false"  # a cache that rm -rf can remove; no git stamping
mkdir -p "$bin"

# One install at a time: two test runs starting together share the cache.
exec 9>"$bin/.tools.lock"
flock 9

helm=$bin/helm
if [[ ! -x $helm ]] || [[ $("$helm" version --template '{{.Version}}' 2>/dev/null) != "$HELM_VERSION" ]]; then
  echo "tools.sh: installing helm $HELM_VERSION into $bin (Go module proxy)" >&2
  start=$SECONDS
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=$HELM_K8S_MAJOR -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  GOBIN=$bin "$go" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "tools.sh: helm installed in $((SECONDS - start)) s" >&2
fi

# The validator's binary is named by a hash of its sources: a change rebuilds it, a checkout
# that did not change it reuses the build.
src=$here/validate
sum=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)
validate=$bin/k8s-validate-$sum
if [[ ! -x $validate ]]; then
  echo "tools.sh: building the manifest validator ($src)" >&2
  start=$SECONDS
  (cd "$src" && "$go" build -trimpath -o "$validate.tmp" . && mv "$validate.tmp" "$validate")
  find "$bin" -maxdepth 1 -name 'k8s-validate-*' ! -name "k8s-validate-$sum" -mtime +1 -delete
  echo "tools.sh: validator built in $((SECONDS - start)) s" >&2
fi

echo "helm=$helm"
echo "validate=$validate"
