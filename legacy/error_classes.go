package legacy

// The classes of the model's errors: what the CRI server turns into gRPC codes. The model names
// them itself, so that it imports nothing of containerd; each class carries the method by which
// github.com/containerd/errdefs recognizes its own, so errdefs.IsNotFound(err) and
// errors.Is(err, errdefs.ErrNotFound) hold for an error wrapping ErrNotFound, and IsNotFound (below)
// holds for errors of containerd's client. The implementation may wrap either.
var (
	ErrInvalidArgument    error = errInvalidArgument{}
	ErrNotFound           error = errNotFound{}
	ErrAlreadyExists      error = errAlreadyExists{}
	ErrFailedPrecondition error = errFailedPrecondition{}
	ErrNotImplemented     error = errNotImplemented{}
)

type (
	errInvalidArgument    struct{}
	errNotFound           struct{}
	errAlreadyExists      struct{}
	errFailedPrecondition struct{}
	errNotImplemented     struct{}
)

// The interfaces errdefs classes errors by.
type (
	invalidArgumentClass    interface{ InvalidParameter() }
	notFoundClass           interface{ NotFound() }
	alreadyExistsClass      interface{ AlreadyExists() }
	failedPreconditionClass interface{ FailedPrecondition() }
	notImplementedClass     interface{ NotImplemented() }
)

func (errInvalidArgument) Error() string    { return "invalid argument" }
func (errNotFound) Error() string           { return "not found" }
func (errAlreadyExists) Error() string      { return "already exists" }
func (errFailedPrecondition) Error() string { return "failed precondition" }
func (errNotImplemented) Error() string     { return "not implemented" }

func (errInvalidArgument) InvalidParameter()      {}
func (errNotFound) NotFound()                     {}
func (errAlreadyExists) AlreadyExists()           {}
func (errFailedPrecondition) FailedPrecondition() {}
func (errNotImplemented) NotImplemented()         {}

// Is makes errors.Is(err, ErrInvalidArgument) hold for the model's class.
func (errInvalidArgument) Is(target error) bool    { return isClass[invalidArgumentClass](target) }
func (errNotFound) Is(target error) bool           { return isClass[notFoundClass](target) }
func (errAlreadyExists) Is(target error) bool      { return isClass[alreadyExistsClass](target) }
func (errFailedPrecondition) Is(target error) bool { return isClass[failedPreconditionClass](target) }
func (errNotImplemented) Is(target error) bool     { return isClass[notImplementedClass](target) }

func isClass[C any](target error) bool {
	_, ok := target.(C)
	return ok
}

// hasClass tells whether err or an error it wraps is of class C (the model's or errdefs').
func hasClass[C any](err error) bool {
	for err != nil {
		if _, ok := err.(C); ok {
			return true
		}
		switch x := err.(type) {
		case interface{ Unwrap() error }:
			err = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				if hasClass[C](e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// IsInvalidArgument, IsNotFound, IsAlreadyExists, IsFailedPrecondition and IsNotImplemented tell
// an error's class, whether the model or containerd's client made it.
func IsInvalidArgument(err error) bool    { return hasClass[invalidArgumentClass](err) }
func IsNotFound(err error) bool           { return hasClass[notFoundClass](err) }
func IsAlreadyExists(err error) bool      { return hasClass[alreadyExistsClass](err) }
func IsFailedPrecondition(err error) bool { return hasClass[failedPreconditionClass](err) }
func IsNotImplemented(err error) bool     { return hasClass[notImplementedClass](err) }
