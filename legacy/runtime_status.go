package legacy

// RuntimeCondition is one condition of the runtime's status, as CRI reports it.
type RuntimeCondition struct {
	Type    string
	Status  bool
	Reason  string
	Message string
}

// The condition types the kubelet reads.
const (
	RuntimeReady = "RuntimeReady"
	NetworkReady = "NetworkReady"
)

// NetworkStatuser reports whether the node's pod network is usable (nil) or why not.
type NetworkStatuser interface {
	Status() error
}
