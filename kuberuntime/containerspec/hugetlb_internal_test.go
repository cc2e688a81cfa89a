package containerspec

import (
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet sends hugepage limits for every container: on a host without the hugetlb controller
// that is said once at warning level, not once per container.
func TestHugetlbAbsentSaidOnce(t *testing.T) {
	hugetlbAbsentSaid.Store(false)
	hook := logtest.NewGlobal()
	defer hook.Reset()
	oldLevel := logrus.GetLevel()
	logrus.SetLevel(logrus.DebugLevel)
	defer logrus.SetLevel(oldLevel)
	host := Host{HugetlbAvailable: func() bool { return false }}
	res := &runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}}}
	for range 5 {
		if _, err := withResources(res, host); err != nil {
			t.Fatal(err)
		}
	}
	levels := map[logrus.Level]int{}
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "hugetlb") {
			levels[e.Level]++
		}
	}
	if levels[logrus.WarnLevel] != 1 || levels[logrus.DebugLevel] != 4 {
		t.Fatalf("hugetlb messages by level: %v, want 1 warning and 4 debug", levels)
	}
}
