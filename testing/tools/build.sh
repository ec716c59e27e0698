#!/usr/bin/env bash
# build.sh NAME... — builds the test tools from the Go module proxy, once.
#
# Each tool is built from the small module in testing/tools/NAME (its go.mod pins
# the version) into a cache outside the checkout, keyed by tool, version and Go
# version, so a fresh clone on the same machine (and CI) reuses it:
#   ${TOLLGATE_CACHE:-~/.cache/tollgate}/tools/NAME-VERSION-goX.Y.Z/NAME
# bin/NAME in the checkout is a symlink to the cached binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/tools
gover=$(go env GOVERSION)
mkdir -p "$cache" "$root/bin"

# tool NAME -> main package, version, extra ldflags
pkg_of() {
  case $1 in
    kube-apiserver) echo k8s.io/kubernetes/cmd/kube-apiserver ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    cosign) echo github.com/sigstore/cosign/v2/cmd/cosign ;;
    cosign3) echo github.com/sigstore/cosign/v3/cmd/cosign ;;
    helm) echo helm.sh/helm/v3/cmd/helm ;;
    controller-gen) echo sigs.k8s.io/controller-tools/cmd/controller-gen ;;
    fulcio) echo github.com/sigstore/fulcio ;;
    rekor-server|rekor-cli) echo github.com/sigstore/rekor/cmd/$1 ;;
    trillian_log_server|trillian_log_signer) echo github.com/google/trillian/cmd/$1 ;;
    local-kms) echo github.com/nsmithuk/local-kms ;;
    tekton-controller|tekton-webhook|tekton-resolvers) echo github.com/tektoncd/pipeline/cmd/${1#tekton-} ;;
    spire-server|spire-agent) echo github.com/spiffe/spire/cmd/$1 ;;
    oidc-discovery-provider) echo github.com/spiffe/spire/support/oidc-discovery-provider ;;
    gatekeeper) echo github.com/open-policy-agent/gatekeeper/v3 ;;
    *) echo "build.sh: unknown tool $1 (known: $all)" >&2; return 2 ;;
  esac
}

all="kube-apiserver etcd cosign cosign3 helm controller-gen fulcio rekor-server rekor-cli trillian_log_server trillian_log_signer local-kms tekton-controller tekton-webhook tekton-resolvers spire-server spire-agent oidc-discovery-provider gatekeeper"

# The keyless servers share one module (testing/tools/sigstore), so their
# builds share compiled packages.
dir_of() {
  case $1 in
    fulcio|rekor-server|rekor-cli|trillian_log_server|trillian_log_signer|local-kms) echo "$here/sigstore" ;;
    tekton-controller|tekton-webhook|tekton-resolvers) echo "$here/tekton" ;;
    spire-server|spire-agent|oidc-discovery-provider) echo "$here/spire" ;;
    *) echo "$here/$1" ;;
  esac
}

mod_of() {
  case $1 in
    kube-apiserver) echo k8s.io/kubernetes ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    cosign) echo github.com/sigstore/cosign/v2 ;;
    cosign3) echo github.com/sigstore/cosign/v3 ;;
    helm) echo helm.sh/helm/v3 ;;
    controller-gen) echo sigs.k8s.io/controller-tools ;;
    fulcio) echo github.com/sigstore/fulcio ;;
    rekor-server|rekor-cli) echo github.com/sigstore/rekor ;;
    trillian_log_server|trillian_log_signer) echo github.com/google/trillian ;;
    local-kms) echo github.com/nsmithuk/local-kms ;;
    tekton-controller|tekton-webhook|tekton-resolvers) echo github.com/tektoncd/pipeline ;;
    spire-server|spire-agent|oidc-discovery-provider) echo github.com/spiffe/spire ;;
    gatekeeper) echo github.com/open-policy-agent/gatekeeper/v3 ;;
  esac
}

ldflags_of() {
  local v=$2
  case $1 in
    kube-apiserver)
      local minor=${v#v1.}; minor=${minor%%.*}
      echo "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" ;;
    cosign|cosign3|fulcio|rekor-server|rekor-cli)
      echo "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$v" ;;
    helm)
      echo "-s -w -X helm.sh/helm/v3/internal/version.version=$v" ;;
    *) echo "-s -w" ;;
  esac
}

# Trillian links every storage backend unless told one: PostgreSQL only
# (and etcd, its default quota/election helper), as the harness runs it.
tags_of() {
  case $1 in
    trillian_log_server|trillian_log_signer) echo postgresql,etcd ;;
  esac
}

build() {
  local name=$1 pkg mod version dir out lock start
  pkg=$(pkg_of "$name")
  mod=$(mod_of "$name")
  dir=$(dir_of "$name")
  version=$(cd "$dir" && go list -m -f '{{.Version}}' "$mod")
  # TEKTON_VERSION=vX.Y.Z builds another Tekton Pipelines release than
  # testing/tools/tekton pins (its own cache entry; bin/ points at it).
  local other=""
  if [[ $name == tekton-* && -n ${TEKTON_VERSION:-} && $TEKTON_VERSION != "$version" ]]; then
    version=$TEKTON_VERSION other=1
  fi
  out="$cache/$name-$version-$gover"
  if [ -x "$out/$name" ]; then
    ln -sfn "$out/$name" "$root/bin/$name"
    echo "tools: $name $version cached ($out/$name)"
    return 0
  fi
  mkdir -p "$out"
  lock="$out.lock"
  # One build at a time per tool, even from two checkouts.
  exec 9>"$lock"
  if ! flock -n 9; then
    echo "tools: $name $version is being built by another process; waiting..."
    flock 9
  fi
  if [ -x "$out/$name" ]; then
    ln -sfn "$out/$name" "$root/bin/$name"
    echo "tools: $name $version cached ($out/$name)"
    return 0
  fi
  echo "tools: building $name $version from the Go module proxy (once; cached in $out)"
  case $name in
    kube-apiserver) echo "tools:   this takes about 10 minutes on 2 cores" ;;
    cosign|cosign3) echo "tools:   this takes about 5 minutes on 2 cores" ;;
  esac
  start=$(date +%s)
  if [ -n "$other" ]; then
    local tmp
    tmp=$(mktemp -d)
    cp "$dir/go.mod" "$dir/go.sum" "$tmp/"
    dir=$tmp
    (cd "$dir" && go get "$mod@$version" && go mod tidy)
  fi
  (
    cd "$dir"
    go mod download
    # -v prints each package as it is compiled: progress for a long build.
    go build -trimpath -v -tags "$(tags_of "$name")" -ldflags "$(ldflags_of "$name" "$version")" -o "$out/$name.tmp" "$pkg" 2>&1 |
      awk -v n="$name" '{ c++; if (c % 100 == 0) printf "tools:   %s: %d packages compiled\n", n, c; fflush() }
                        /^# |\.go:[0-9]+/ { print; fflush() }'
    test "${PIPESTATUS[0]}" -eq 0
  )
  mv "$out/$name.tmp" "$out/$name"
  ln -sfn "$out/$name" "$root/bin/$name"
  echo "tools: built $name $version in $(( $(date +%s) - start ))s"
}

if [ $# -eq 0 ]; then
  echo "usage: build.sh NAME... ($all)" >&2
  exit 2
fi
for t in "$@"; do build "$t"; done
