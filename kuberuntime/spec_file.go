package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
)

// The verbose ContainerStatus and PodSandboxStatus report the OCI runtime spec. Loading it from
// containerd costs a round trip and a JSON decode and re-encode on every call; the daemon keeps no
// copy in memory (about 5 KB per container). So the spec's JSON, as stored in containerd, is written
// once at creation into the container's (or sandbox's) root dir, without fsync: the file is only a
// cache. A missing or unreadable file (a container made by an older version, a crash while
// writing) is read from containerd once and written again.

// specFile, in a container's or sandbox's root dir, is its OCI runtime spec (JSON).
const specFile = "runtime-spec.json"

// saveSpecFile writes the spec of the containerd container cntr, as created (no round trip), into
// dir. Best effort: the verbose status falls back to containerd without it.
func saveSpecFile(ctx context.Context, dir string, cntr containerd.Container) {
	info, err := cntr.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil || info.Spec == nil {
		return
	}
	saveSpecJSON(dir, info.Spec.GetValue())
}

// saveSpecJSON writes spec (JSON, as in the container record) into dir, made when missing. Best
// effort, as saveSpecFile.
func saveSpecJSON(dir string, spec []byte) {
	if len(spec) == 0 {
		return
	}
	// A sandbox's root dir may not exist yet (its files are written meanwhile): made as they make it.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	writeSpecFile(dir, spec, false)
}

// writeSpecFile writes spec (JSON) into dir: in a temporary file moved into place, so a reader
// never sees it half written; not synced. With keep, a file already there stays (the status's
// fallback must not overwrite what a concurrent UpdateContainerResources wrote).
func writeSpecFile(dir string, spec []byte, keep bool) {
	if len(spec) == 0 || dir == "" {
		return
	}
	tmp, err := os.CreateTemp(dir, "."+specFile+".tmp")
	if err != nil {
		logrus.WithError(err).WithField("dir", dir).Debug("write runtime spec file")
		return
	}
	_, err = tmp.Write(spec)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if keep {
			if err = os.Link(tmp.Name(), filepath.Join(dir, specFile)); os.IsExist(err) {
				err = nil
			}
			os.Remove(tmp.Name())
		} else {
			err = os.Rename(tmp.Name(), filepath.Join(dir, specFile))
		}
	}
	if err != nil {
		os.Remove(tmp.Name())
		logrus.WithError(err).WithField("dir", dir).Debug("write runtime spec file")
	}
}

// runtimeSpecJSON returns the OCI runtime spec (JSON) of the containerd container id whose root
// dir is dir: from the spec file, else from containerd (one round trip), writing the file for the
// next call. nil when neither has it.
func (r *ContainerdRuntime) runtimeSpecJSON(ctx context.Context, dir, id string) json.RawMessage {
	b, err := os.ReadFile(filepath.Join(dir, specFile))
	if err == nil && json.Valid(b) {
		return b
	}
	missing := err != nil // else damaged: replaced
	if r.client == nil {
		return nil
	}
	rec, err := r.client.ContainerService().Get(r.withNS(ctx), id)
	if err != nil || rec.Spec == nil || !json.Valid(rec.Spec.GetValue()) {
		return nil
	}
	b = rec.Spec.GetValue()
	if _, err := os.Stat(dir); err == nil {
		writeSpecFile(dir, b, missing)
	}
	return b
}

// withRawField adds the field key: raw (valid JSON, not checked again) at the end of the JSON
// object obj. encoding/json would scan and copy the 5 KB spec twice more for a json.RawMessage.
func withRawField(obj []byte, key string, raw []byte) []byte {
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(obj)+len(k)+len(raw)+2)
	out = append(out, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, raw...)
	return append(out, '}')
}
