package kuberuntime

import "google.golang.org/protobuf/proto"

// encoded is a cached CRI list entry's protobuf encoding, made once with the entry, for the server
// to write as it is (server/list_encoding.go).
type encoded struct {
	wire   []byte
	wireOK bool // false when the entry could not be encoded
}

func encode(m proto.Message) encoded {
	b, err := proto.Marshal(m)
	return encoded{wire: b, wireOK: err == nil}
}

// encodedList collects a List call's entries and their encodings; wire turns nil, for good, at the
// first entry without one (the server then encodes the entries itself).
type encodedList[T any] struct {
	entries []T
	wire    [][]byte
}

func newEncodedList[T any](n int) *encodedList[T] {
	return &encodedList[T]{entries: make([]T, 0, n), wire: make([][]byte, 0, n)}
}

func (l *encodedList[T]) add(entry T, enc encoded) {
	l.entries = append(l.entries, entry)
	if l.wire != nil && enc.wireOK {
		l.wire = append(l.wire, enc.wire)
	} else {
		l.wire = nil
	}
}
