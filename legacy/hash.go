package legacy

import (
	"hash/fnv"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// HashContainer returns a stable hash of the container's whole spec: any change of a field changes
// it. It is stored as a label and tells whether a running container still matches its spec.
func HashContainer(container *runtime.ContainerConfig) uint64 {
	h := fnv.New64a()
	if container == nil {
		return h.Sum64()
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(container)
	if err != nil {
		// A ContainerConfig always marshals; fall back to its text form all the same.
		b = []byte(container.String())
	}
	h.Write(b)
	return h.Sum64()
}
