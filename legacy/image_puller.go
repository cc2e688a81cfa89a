package legacy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/imageservice/pullprogress"
	"github.com/distribution/reference"
	"golang.org/x/sync/semaphore"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// PullPolicy says when an image is pulled.
// PullProgress is a snapshot of a pull in progress.
type PullProgress = pullprogress.Progress

type PullPolicy string

// The pull policies of a container.
const (
	// PullAlways pulls the image every time (a moved tag is followed).
	PullAlways PullPolicy = "Always"
	// PullIfNotPresent pulls the image only when no local image has its name.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullNever never pulls: a missing image is ErrImageNeverPull.
	PullNever PullPolicy = "Never"
)

// Image pull backoff: 10 s after the first failure, doubling up to 5 min; an image not tried for
// twice the maximum is forgotten.
const (
	ImagePullBackoffInitial = 10 * time.Second
	ImagePullBackoffMax     = 300 * time.Second
)

// ImageBackend is what an ImagePuller pulls through, and the images of a Runtime (BackendImages).
type ImageBackend interface {
	// ImageRef returns the ID of the local image spec names, "" when there is none. An error
	// means presence could not be told.
	ImageRef(ctx context.Context, spec ImageSpec) (string, error)
	// PullImage pulls the image with the credentials auth (nil: anonymous) and returns its
	// ID. An error that means the registry could not be reached wraps RegistryUnavailable.
	// progress, when not nil, is called with snapshots of the pull.
	PullImage(ctx context.Context, spec ImageSpec, auth *runtime.AuthConfig, progress func(PullProgress)) (string, error)
	// ListImages returns the local images.
	ListImages(ctx context.Context) ([]Image, error)
	// RemoveImage removes the image spec names with all its names; an absent image is no error.
	RemoveImage(ctx context.Context, spec ImageSpec) error
}

// PullRequest asks an ImagePuller for an image.
type PullRequest struct {
	Image ImageSpec
	// PullPolicy defaults to IfNotPresent.
	PullPolicy PullPolicy
	// Auths are the credentials to try, in order (the pod's pull secrets); none: anonymous.
	Auths []*runtime.AuthConfig
	// Object is what the events are recorded against; default "image/<reference>".
	Object string
	// BackoffKey keys the backoff; default the image reference.
	BackoffKey string
	// Progress, when not nil, receives snapshots of the pull (from another goroutine).
	Progress func(PullProgress)
}

// ImagePuller makes sure an image is present: it checks for it, applies the pull policy and the
// backoff, pulls, and records the events (Pulling, Pulled, Failed, BackOff, InspectFailed,
// ErrImageNeverPull) against the request's object.
type ImagePuller interface {
	// PullImage returns the image ID, or a *PullError wrapping one of ErrImageInspect,
	// ErrInvalidImageName, ErrImageNeverPull, ErrImagePullBackOff, ErrImagePull or
	// RegistryUnavailable.
	PullImage(ctx context.Context, req PullRequest) (string, error)
}

// PullError is the error of ImagePuller.PullImage: Reason is the model's sentinel, Message the
// message the kubelet would show, Err the underlying failure (may be nil).
type PullError struct {
	Reason  error
	Message string
	Err     error
}

func (e *PullError) Error() string { return e.Message }

// Unwrap makes errors.Is find the sentinel and the cause.
func (e *PullError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// PullerOption configures an ImagePuller.
type PullerOption func(*imagePuller)

// WithMaxParallelPulls bounds the pulls running at once (0: unlimited, 1: serialized).
func WithMaxParallelPulls(n int) PullerOption {
	return func(p *imagePuller) {
		if n > 0 {
			p.slots = semaphore.NewWeighted(int64(n))
		} else {
			p.slots = nil
		}
	}
}

// NewImagePuller returns a puller that runs pulls in parallel. A nil backoff is a new image pull
// backoff on the real clock; a nil recorder drops events.
func NewImagePuller(recorder EventRecorder, backend ImageBackend, backoff *Backoff, opts ...PullerOption) ImagePuller {
	if recorder == nil {
		recorder = NopRecorder{}
	}
	if backoff == nil {
		backoff = NewImagePullBackoff(nil)
	}
	p := &imagePuller{recorder: recorder, backend: backend, backoff: backoff, calls: map[string]*pullCall{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// NewSerializedImagePuller returns a puller that runs one pull at a time, in the order they were
// asked for (concurrent requests for the same image still share one pull).
func NewSerializedImagePuller(recorder EventRecorder, backend ImageBackend, backoff *Backoff, opts ...PullerOption) ImagePuller {
	return NewImagePuller(recorder, backend, backoff, append(opts, WithMaxParallelPulls(1))...)
}

type imagePuller struct {
	recorder EventRecorder
	backend  ImageBackend
	backoff  *Backoff
	slots    *semaphore.Weighted

	mu    sync.Mutex
	calls map[string]*pullCall
}

func (p *imagePuller) PullImage(ctx context.Context, req PullRequest) (string, error) {
	ref := req.Image.Image
	obj := req.Object
	if obj == "" {
		obj = "image/" + ref
	}
	policy := req.PullPolicy
	if policy == "" {
		policy = PullIfNotPresent
	}
	if err := ValidImageName(ref); err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", ref, err)
		p.recorder.Eventf(obj, EventTypeWarning, FailedToInspectImage, "%s", msg)
		return "", &PullError{Reason: ErrInvalidImageName, Message: msg, Err: err}
	}

	id, err := p.backend.ImageRef(ctx, req.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to inspect image %q: %v", ref, err)
		p.recorder.Eventf(obj, EventTypeWarning, FailedToInspectImage, "%s", msg)
		return "", &PullError{Reason: ErrImageInspect, Message: msg, Err: err}
	}
	present := id != ""
	if !shouldPullImage(policy, present) {
		if present {
			p.recorder.Eventf(obj, EventTypeNormal, PulledImage, "Container image %q already present on machine", ref)
			return id, nil
		}
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", ref)
		p.recorder.Eventf(obj, EventTypeWarning, ErrImageNeverPullPolicy, "%s", msg)
		return "", &PullError{Reason: ErrImageNeverPull, Message: msg}
	}

	key := req.BackoffKey
	if key == "" {
		key = ref
	}
	clk := p.backoff.Clock()
	if p.backoff.IsInBackOffSinceUpdate(key, clk.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", ref)
		p.recorder.Eventf(obj, EventTypeNormal, BackOffPullImage, "%s", msg)
		return "", &PullError{Reason: ErrImagePullBackOff, Message: msg}
	}

	p.recorder.Eventf(obj, EventTypeNormal, PullingImage, "Pulling image %q", ref)
	start := clk.Now()
	id, call, err := p.pullMerged(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			// The request ended; that says nothing about the image: no backoff.
			msg := fmt.Sprintf("Pulling image %q cancelled: %v", ref, ctx.Err())
			return "", &PullError{Reason: ErrImagePull, Message: msg, Err: err}
		}
		p.recorder.Eventf(obj, EventTypeWarning, FailedToPullImage, "Failed to pull image %q: %v", ref, err)
		if call.firstFailureOf(key) {
			// Requests merged into one pull count as one failure.
			p.backoff.Next(key, clk.Now())
		}
		if errors.Is(err, RegistryUnavailable) {
			msg := fmt.Sprintf("image pull failed for %s because the registry is unavailable: %v", ref, err)
			return "", &PullError{Reason: RegistryUnavailable, Message: msg, Err: err}
		}
		return "", &PullError{Reason: ErrImagePull, Message: fmt.Sprintf("Failed to pull image %q: %v", ref, err), Err: err}
	}
	p.recorder.Eventf(obj, EventTypeNormal, PulledImage, "Successfully pulled image %q in %s", ref, clk.Since(start).Round(time.Millisecond))
	p.backoff.Reset(key)
	p.backoff.GC()
	return id, nil
}

func shouldPullImage(policy PullPolicy, present bool) bool {
	switch policy {
	case PullNever:
		return false
	case PullAlways:
		return true
	default:
		return !present
	}
}

// validImageName accepts what the image service can look up: a reference or an image ID.
func ValidImageName(ref string) error {
	if strings.TrimSpace(ref) == "" {
		return errors.New("image reference is empty")
	}
	if hexPart, ok := strings.CutPrefix(ref, "sha256:"); ok && len(hexPart) == 64 {
		if _, err := hex.DecodeString(hexPart); err == nil {
			return nil
		}
	}
	if _, err := reference.ParseDockerRef(ref); err != nil {
		if len(ref) == 64 {
			if _, herr := hex.DecodeString(ref); herr == nil {
				return nil // a bare image ID
			}
		}
		return err
	}
	return nil
}

// pullCall is one pull shared by concurrent requests for the same image and credentials.
type pullCall struct {
	cancel  context.CancelFunc
	waiters int
	done    chan struct{}
	id      string
	err     error

	subMu   sync.Mutex
	subs    map[*func(PullProgress)]struct{}
	counted map[string]bool
}

// firstFailureOf tells whether the failure of c has not been counted against key yet.
func (c *pullCall) firstFailureOf(key string) bool {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.counted[key] {
		return false
	}
	if c.counted == nil {
		c.counted = map[string]bool{}
	}
	c.counted[key] = true
	return true
}

func (c *pullCall) emit(pr PullProgress) {
	c.subMu.Lock()
	fns := make([]func(PullProgress), 0, len(c.subs))
	for fn := range c.subs {
		fns = append(fns, *fn)
	}
	c.subMu.Unlock()
	for _, fn := range fns {
		fn(pr)
	}
}

func mergeKey(req PullRequest) string {
	h := sha256.New()
	for _, a := range req.Auths {
		for _, f := range []string{a.GetUsername(), a.GetPassword(), a.GetAuth(), a.GetServerAddress(), a.GetIdentityToken(), a.GetRegistryToken()} {
			h.Write([]byte(f))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return req.Image.Image + "\x00" + req.Image.RuntimeHandler + "\x00" + hex.EncodeToString(h.Sum(nil))
}

// pullMerged joins the pull of the same image in flight or starts one. The pull goes on while
// any request waits for it.
func (p *imagePuller) pullMerged(ctx context.Context, req PullRequest) (string, *pullCall, error) {
	key := mergeKey(req)
	p.mu.Lock()
	c := p.calls[key]
	if c == nil {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &pullCall{cancel: cancel, done: make(chan struct{}), subs: map[*func(PullProgress)]struct{}{}}
		p.calls[key] = c
		go p.run(cctx, key, c, req)
	}
	c.waiters++
	var sub *func(PullProgress)
	if req.Progress != nil {
		fn := req.Progress
		sub = &fn
		c.subMu.Lock()
		c.subs[sub] = struct{}{}
		c.subMu.Unlock()
	}
	p.mu.Unlock()
	defer func() {
		if sub != nil {
			c.subMu.Lock()
			delete(c.subs, sub)
			c.subMu.Unlock()
		}
	}()

	select {
	case <-c.done:
		return c.id, c, c.err
	case <-ctx.Done():
		p.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
			if p.calls[key] == c {
				delete(p.calls, key)
			}
		}
		p.mu.Unlock()
		return "", c, ctx.Err()
	}
}

func (p *imagePuller) run(ctx context.Context, key string, c *pullCall, req PullRequest) {
	defer func() {
		p.mu.Lock()
		if p.calls[key] == c {
			delete(p.calls, key)
		}
		p.mu.Unlock()
		c.cancel()
		close(c.done)
	}()
	if p.slots != nil {
		if err := p.slots.Acquire(ctx, 1); err != nil {
			c.err = err
			return
		}
		defer p.slots.Release(1)
	}
	auths := req.Auths
	if len(auths) == 0 {
		auths = []*runtime.AuthConfig{nil}
	}
	var errs []error
	for _, auth := range auths {
		id, err := p.backend.PullImage(ctx, req.Image, auth, c.emit)
		if err == nil {
			c.id = id
			return
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		c.err = errs[0]
	} else {
		c.err = errors.Join(errs...)
	}
}

// Backoff is a per-key exponential backoff: Next after each failure doubles the key's delay from
// the initial one up to the maximum; a key not updated for twice the maximum starts over, and GC
// forgets such keys.
type Backoff struct {
	clock   clock.PassiveClock
	initial time.Duration
	max     time.Duration

	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	backoff    time.Duration
	lastUpdate time.Time
}

// NewBackoff returns a backoff on clk (nil: the real clock).
func NewBackoff(initial, max time.Duration, clk clock.PassiveClock) *Backoff {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Backoff{clock: clk, initial: initial, max: max, entries: map[string]*backoffEntry{}}
}

// NewImagePullBackoff returns the image pull backoff: 10 s doubling to 300 s.
func NewImagePullBackoff(clk clock.PassiveClock) *Backoff {
	return NewBackoff(ImagePullBackoffInitial, ImagePullBackoffMax, clk)
}

// Clock returns the backoff's clock.
func (b *Backoff) Clock() clock.PassiveClock { return b.clock }

// Get returns the current delay of id (0 when none).
func (b *Backoff) Get(id string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[id]; ok {
		return e.backoff
	}
	return 0
}

// Next records a failure of id at now and grows its delay.
func (b *Backoff) Next(id string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok || b.expired(e, now) {
		b.entries[id] = &backoffEntry{backoff: b.initial, lastUpdate: now}
		return
	}
	e.backoff = min(2*e.backoff, b.max)
	e.lastUpdate = now
}

// IsInBackOffSinceUpdate tells whether now is still within id's delay from its last failure.
func (b *Backoff) IsInBackOffSinceUpdate(id string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok || b.expired(e, now) {
		return false
	}
	return now.Sub(e.lastUpdate) < e.backoff
}

// Reset forgets id.
func (b *Backoff) Reset(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, id)
}

// GC forgets the keys not updated for twice the maximum delay.
func (b *Backoff) GC() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	for id, e := range b.entries {
		if b.expired(e, now) {
			delete(b.entries, id)
		}
	}
}

// Len is the number of keys remembered.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

func (b *Backoff) expired(e *backoffEntry, now time.Time) bool {
	return now.Sub(e.lastUpdate) > 2*b.max
}
