package legacy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ContainerID identifies a container to the runtime that runs it: its Type is the runtime's type
// (the scheme, "containerd") and ID the runtime's own ID. It prints and parses as "type://id".
type ContainerID struct {
	// Type is the type of the container runtime, e.g. "containerd".
	Type string
	// ID is the runtime's identification of the container.
	ID string
}

// BuildContainerID returns the ContainerID of typ and id.
func BuildContainerID(typ, id string) ContainerID {
	return ContainerID{Type: typ, ID: id}
}

// ParseContainerID parses "type://id"; a malformed string gives an empty ContainerID.
func ParseContainerID(containerID string) ContainerID {
	var id ContainerID
	if err := id.ParseString(containerID); err != nil {
		return ContainerID{}
	}
	return id
}

// ParseString parses "type://id" into c.
func (c *ContainerID) ParseString(data string) error {
	typ, id, ok := strings.Cut(data, "://")
	if !ok || typ == "" || id == "" {
		return fmt.Errorf("invalid container ID %q: want type://id", data)
	}
	c.Type, c.ID = typ, id
	return nil
}

// String returns "type://id".
func (c ContainerID) String() string {
	return fmt.Sprintf("%s://%s", c.Type, c.ID)
}

// IsEmpty tells whether c is the zero ContainerID.
func (c ContainerID) IsEmpty() bool {
	return c == ContainerID{}
}

// MarshalJSON encodes c as the JSON string "type://id" (the empty ID as "").
func (c ContainerID) MarshalJSON() ([]byte, error) {
	if c.IsEmpty() {
		return []byte(`""`), nil
	}
	return json.Marshal(c.String())
}

// UnmarshalJSON decodes the JSON string "type://id"; "" gives the empty ID.
func (c *ContainerID) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("container ID: %w", err)
	}
	if s == "" {
		*c = ContainerID{}
		return nil
	}
	return c.ParseString(s)
}
