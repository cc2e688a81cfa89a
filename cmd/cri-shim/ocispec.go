package main

import (
	"encoding/json"
	"flag"
	"io"

	"github.com/cri-shim/cri-shim/kuberuntime"
)

// ociSpecMain is `cri-shim config oci-spec`: containerd's default OCI spec as JSON, to edit into a
// handler's base_runtime_spec.
func ociSpecMain(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("config oci-spec", flag.ContinueOnError)
	version := fs.String("oci-version", "", "the spec's ociVersion (e.g. 1.0.2 for Debian 12's crun 1.8.1, which refuses later ones); empty: the runtime-spec module's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := kuberuntime.DefaultBaseSpec(*version)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
