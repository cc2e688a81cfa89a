package standalone

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"
)

// MaxEventsPerPod is the number of events kept per pod (the oldest go first); a repeated event
// (same type, reason and message as the last one) counts up instead of being added.
const MaxEventsPerPod = 100

// Event is one event of a pod, with how often it repeated in a row.
type Event struct {
	FirstTime time.Time `json:"firstTime"`
	LastTime  time.Time `json:"lastTime"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Count     int       `json:"count"`
}

// PodRecord is what the daemon tells the CLI about a standalone pod beyond CRI: its events, the
// readiness of its containers and its last sync error. It is kept in memory and written (small,
// atomically) to <state dir>/standalone/pods/<namespace>_<name>.json.
type PodRecord struct {
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	UID       string          `json:"uid"`
	Source    string          `json:"source,omitempty"`
	Events    []Event         `json:"events"`
	Ready     map[string]bool `json:"ready,omitempty"`
	SyncError string          `json:"syncError,omitempty"`
}

// RecordDir is where the pod records are under the daemon's state dir.
func RecordDir(stateDir string) string { return filepath.Join(stateDir, "standalone", "pods") }

// RecordPath is the record file of namespace/name.
func RecordPath(stateDir, namespace, name string) string {
	return filepath.Join(RecordDir(stateDir), namespace+"_"+name+".json")
}

// ReadRecord reads the record of namespace/name that the daemon wrote.
func ReadRecord(stateDir, namespace, name string) (*PodRecord, error) {
	b, err := os.ReadFile(RecordPath(stateDir, namespace, name))
	if err != nil {
		return nil, err
	}
	var r PodRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("pod record %s/%s: %w", namespace, name, err)
	}
	return &r, nil
}

// Records keeps the records of the standalone pods and is the EventRecorder of their SyncPod,
// image puller and probes: an event about "pod/NAMESPACE/NAME" goes to that pod's record.
type Records struct {
	stateDir string
	clock    clock.PassiveClock

	mu   sync.Mutex
	pods map[string]*PodRecord // namespace/name
}

// NewRecords returns the records persisted under stateDir ("" keeps them in memory only).
func NewRecords(stateDir string, clk clock.PassiveClock) *Records {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Records{stateDir: stateDir, clock: clk, pods: map[string]*PodRecord{}}
}

var _ legacy.EventRecorder = (*Records)(nil)

// Add starts (or keeps) the record of pod.
func (r *Records) Add(pod *Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.pods[pod.Key()]
	if rec == nil || rec.UID != string(pod.UID) {
		rec = &PodRecord{Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID)}
		r.pods[pod.Key()] = rec
	}
	rec.Source = pod.Source
	r.saveLocked(rec)
}

// Remove forgets the record of namespace/name and deletes its file.
func (r *Records) Remove(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, namespace+"/"+name)
	if r.stateDir != "" {
		if err := os.Remove(RecordPath(r.stateDir, namespace, name)); err != nil && !os.IsNotExist(err) {
			logrus.WithError(err).Warn("remove standalone pod record")
		}
	}
}

// Get returns a copy of the record of namespace/name.
func (r *Records) Get(namespace, name string) (PodRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.pods[namespace+"/"+name]
	if !ok {
		return PodRecord{}, false
	}
	cp := *rec
	cp.Events = append([]Event(nil), rec.Events...)
	cp.Ready = map[string]bool{}
	for k, v := range rec.Ready {
		cp.Ready[k] = v
	}
	return cp, true
}

// Eventf records an event; objects other than pods are only logged.
func (r *Records) Eventf(object, eventType, reason, messageFmt string, args ...any) {
	msg := messageFmt
	if len(args) > 0 {
		msg = fmt.Sprintf(messageFmt, args...)
	}
	entry := logrus.WithFields(logrus.Fields{"object": object, "type": eventType, "reason": reason})
	log := func(repeat bool) {
		if eventType == legacy.EventTypeWarning && !repeat {
			entry.Info(msg)
		} else {
			entry.Debug(msg)
		}
	}
	key, ok := strings.CutPrefix(object, "pod/")
	if !ok {
		log(false)
		return
	}
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.pods[key]
	if rec == nil {
		log(false)
		return
	}
	if n := len(rec.Events); n > 0 {
		last := &rec.Events[n-1]
		if last.Type == eventType && last.Reason == reason && last.Message == msg {
			last.Count++
			last.LastTime = now
			r.saveLocked(rec)
			log(true)
			return
		}
	}
	log(false)
	rec.Events = append(rec.Events, Event{FirstTime: now, LastTime: now, Type: eventType, Reason: reason, Message: msg, Count: 1})
	if len(rec.Events) > MaxEventsPerPod {
		rec.Events = append([]Event(nil), rec.Events[len(rec.Events)-MaxEventsPerPod:]...)
	}
	r.saveLocked(rec)
}

// SetReady records the readiness of a container.
func (r *Records) SetReady(namespace, name, container string, ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.pods[namespace+"/"+name]
	if rec == nil {
		return
	}
	if rec.Ready == nil {
		rec.Ready = map[string]bool{}
	}
	if old, ok := rec.Ready[container]; ok && old == ready {
		return
	}
	rec.Ready[container] = ready
	r.saveLocked(rec)
}

// SetSyncError records the last sync's error ("" for success).
func (r *Records) SetSyncError(namespace, name, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.pods[namespace+"/"+name]
	if rec == nil || rec.SyncError == msg {
		return
	}
	rec.SyncError = msg
	r.saveLocked(rec)
}

// saveLocked writes the record atomically (mode 0600); failures are logged.
func (r *Records) saveLocked(rec *PodRecord) {
	if r.stateDir == "" {
		return
	}
	dir := RecordDir(r.stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logrus.WithError(err).Warn("standalone pod record dir")
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	if err := writeFileAtomic(RecordPath(r.stateDir, rec.Namespace, rec.Name), b, 0o600); err != nil {
		logrus.WithError(err).Warn("write standalone pod record")
	}
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteFileAtomic is writeFileAtomic for the CLI (pods apply).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(path, data, perm)
}
