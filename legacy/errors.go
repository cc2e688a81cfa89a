package legacy

import "errors"

// The model's sentinel errors. Callers test them with errors.Is; the errors returned by the
// model wrap them with the details.
var (
	// ErrCrashLoopBackOff: the container terminated and its restart is backing off.
	ErrCrashLoopBackOff = errors.New("CrashLoopBackOff")

	// ErrImagePullBackOff: pulling the image failed before and is backing off.
	ErrImagePullBackOff = errors.New("ImagePullBackOff")
	// ErrImageInspect: whether the image is present could not be told.
	ErrImageInspect = errors.New("ImageInspectError")
	// ErrImagePull: the image pull failed.
	ErrImagePull = errors.New("ErrImagePull")
	// ErrImageNeverPull: the image is absent and the pull policy is Never.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
	// ErrInvalidImageName: the image reference does not parse.
	ErrInvalidImageName = errors.New("InvalidImageName")
	// RegistryUnavailable: the pull failed because the registry could not be reached.
	RegistryUnavailable = errors.New("RegistryUnavailable")

	// ErrRunContainer: creating or starting the container failed.
	ErrRunContainer = errors.New("RunContainerError")
	// ErrKillContainer: stopping the container failed.
	ErrKillContainer = errors.New("KillContainerError")
	// ErrVerifyNonRoot: the container must run as non-root and its user is root or unknown.
	ErrVerifyNonRoot = errors.New("VerifyNonRootError")
	// ErrCreateContainerConfig: the container's configuration could not be generated.
	ErrCreateContainerConfig = errors.New("CreateContainerConfigError")
	// ErrCreateContainer: the runtime failed to create the container.
	ErrCreateContainer = errors.New("CreateContainerError")
	// ErrPreStartHook: the pre-start hook failed.
	ErrPreStartHook = errors.New("PreStartHookError")
	// ErrPostStartHook: the post-start lifecycle hook failed.
	ErrPostStartHook = errors.New("PostStartHookError")

	// ErrSetupNetwork: setting up the pod network failed.
	ErrSetupNetwork = errors.New("SetupNetworkError")
	// ErrTeardownNetwork: tearing down the pod network failed.
	ErrTeardownNetwork = errors.New("TeardownNetworkError")
)
