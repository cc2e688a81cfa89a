package kmsgoom

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/kmsgoom/kmsgoomtest"
)

func TestParseRecord(t *testing.T) {
	for rec, want := range map[string]string{
		// Debian 12's 6.1 kernel, a container scope of the systemd driver.
		"6,1234,5678901,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-shim-ab12.scope,mems_allowed=0,oom_memcg=/kubepods.slice/kubepods-pod1.slice,task_memcg=/kubepods.slice/kubepods-pod1.slice/cri-shim-ab12.scope,task=dd,pid=38287,uid=0\n SUBSYSTEM=x\n": "/kubepods.slice/kubepods-pod1.slice/cri-shim-ab12.scope",
		// cgroupfs driver, cgroup v1's memory hierarchy.
		"6,9,10,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kp/id1,task_memcg=/kp/id1,task=tail,pid=5,uid=0": "/kp/id1",
		"6,9,10,-;Memory cgroup out of memory: Killed process 38287 (dd) total-vm:21724kB":                                                                 "",
		"4,9,10,-;oom-kill:constraint=CONSTRAINT_NONE,task_memcg=,task=x,pid=1,uid=0":                                                                      "",
		"garbage":                              "",
		"6,1,2,-;something else task_memcg=/x": "",
	} {
		got, ok := ParseRecord([]byte(rec))
		if got != want || ok != (want != "") {
			t.Errorf("ParseRecord(%q) = %q, %v; want %q", rec, got, ok, want)
		}
	}
}

// Watch reports the OOM kills logged after it started, skips the rest, and returns when its
// context ends (a FIFO stands in for /dev/kmsg: a pollable file, one record per write).
func TestWatch(t *testing.T) {
	fifo, w := kmsgoomtest.FakeLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	killed := make(chan string, 4)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, fifo, func(m string) { killed <- m }) }()
	time.Sleep(100 * time.Millisecond) // let it open the FIFO
	w.Write([]byte("6,1,2,-;eth0: link up\n"))
	time.Sleep(50 * time.Millisecond)
	w.Write([]byte("6,2,3,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a/b,task=dd,pid=9,uid=0\n"))
	select {
	case m := <-killed:
		if m != "/a/b" {
			t.Fatalf("reported %q, want /a/b", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the OOM kill was not reported")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch ended with %v when its context ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return when its context ended")
	}
	if err := Watch(context.Background(), filepath.Join(t.TempDir(), "absent"), func(string) {}); err == nil {
		t.Fatal("no error for a log that cannot be opened")
	}
}

// On the real /dev/kmsg: Watch opens it at its end and returns when its context ends, although
// nothing is logged meanwhile (Close ends the pending read).
func TestWatchKmsgEnds(t *testing.T) {
	f, err := os.Open(Path)
	if err != nil {
		t.Skipf("%s cannot be read here: %v", Path, err)
	}
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, Path, func(string) {}) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch on /dev/kmsg did not return when its context ended")
	}
}

// A process in a container names its task (comm) and, when it may make cgroups, its cpuset
// cgroup: both appear in the record. Neither can hand another container's cgroup in as
// task_memcg: the first task_memcg field is the kernel's, and a cgroup name cannot hold '/'.
func TestParseRecordHostileNames(t *testing.T) {
	rec := "6,1,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x,task_memcg=victim,mems_allowed=0,oom_memcg=/a,task_memcg=/a/mine,task=,task_memcg=/v,pid=9,uid=0"
	if got, ok := ParseRecord([]byte(rec)); ok && got != "/a/mine" {
		t.Fatalf("ParseRecord took %q from a name the container chose", got)
	}
}

// FuzzParseRecord: any kmsg record; an accepted one names an absolute cgroup path that appears
// in it as a whole task_memcg field.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("6,9,10,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kp/id1,task_memcg=/kp/id1,task=tail,pid=5,uid=0"))
	f.Add([]byte("6,9,10,-;Memory cgroup out of memory: Killed process 1 (dd)\n SUBSYSTEM=x"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		got, ok := ParseRecord(rec)
		if !ok {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.ContainsAny(got, ",\n") || !strings.Contains(string(rec), "task_memcg="+got) {
			t.Fatalf("ParseRecord(%q) = %q", rec, got)
		}
	})
}
