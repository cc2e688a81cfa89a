# Sourced by the scripts that build from k8s.io/kubernetes (hack/kubelet/build.sh,
# hack/node-e2e/build.sh). k8s.io/kubernetes cannot be built as a plain module: its go.mod replaces
# the k8s.io staging modules with ./staging/src paths that its module zip lacks. So a throwaway
# wrapper module requires k8s.io/kubernetes and replaces each staging module with its published
# release of the same minor (v1.37.2 -> v0.37.2), the list read from that go.mod.

# k8s_wrapper_module NAME VERSION: writes go.mod of module NAME in the current directory and sets
# K8S_GOMOD to the path of k8s.io/kubernetes@VERSION's own go.mod (from the module proxy).
k8s_wrapper_module() {
  local name=$1 version=$2 goversion m
  local staging=v0.${version#v1.}
  K8S_GOMOD=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -f "$K8S_GOMOD" ] || { echo "no go.mod for k8s.io/kubernetes@$version" >&2; return 1; }
  goversion=$(awk '$1 == "go" { print $2; exit }' "$K8S_GOMOD")
  local mods=()
  mapfile -t mods < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$K8S_GOMOD")
  ((${#mods[@]})) || { echo "no staging replacements found in $K8S_GOMOD" >&2; return 1; }
  {
    echo "module $name"
    echo
    echo "go $goversion"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    for m in "${mods[@]}"; do echo "	$m => $m $staging"; done
    echo ")"
  } >go.mod
}
