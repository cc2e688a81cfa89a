package main

import (
	"os"
	"strings"
	"testing"
)

const sample = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5">
  <testsuite name="CRI validation" tests="5">
    <testcase name="[SynchronizedBeforeSuite]" classname="CRI validation" status="passed"></testcase>
    <testcase name="[It] [k8s.io] A passes" classname="CRI validation" status="passed"></testcase>
    <testcase name="[It] [k8s.io] B fails" classname="CRI validation" status="failed">
      <failure message="Unexpected error:&#xA;    &lt;*fmt.wrapError | 0xc000123&gt;: &#xA;    boom happened&#xA;    {&#xA; msg: &quot;x&quot;}" type="failed">long body</failure>
    </testcase>
    <testcase name="[It] [k8s.io] C skips" classname="CRI validation" status="skipped">
      <skipped message="skipped - AppArmor is not enabled"></skipped>
    </testcase>
    <testcase name="[It] [k8s.io] D benchmark" classname="CRI validation" status="skipped">
      <skipped message="skipped"></skipped>
    </testcase>
  </testsuite>
</testsuites>`

func TestParseFormatRatchet(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("want 3 specs (suite nodes and filtered specs left out), got %+v", res)
	}
	out := Format(res, "v1.37.0")
	want := "passed: 1\nfailed: 1\nskipped: 1\ncritest: v1.37.0\n" +
		"PASS [k8s.io] A passes\n" +
		"FAIL [k8s.io] B fails -- Unexpected error: boom happened\n" +
		"SKIP [k8s.io] C skips -- AppArmor is not enabled\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	missing := Ratchet(res, []string{"[k8s.io] A passes", "[k8s.io] B fails", "[k8s.io] not run"})
	if len(missing) != 2 || missing[0] != "[k8s.io] B fails" || missing[1] != "[k8s.io] not run" {
		t.Fatalf("ratchet: %v", missing)
	}
}

func TestParseFileSuffix(t *testing.T) {
	p := t.TempDir() + "/ws.xml"
	if err := os.WriteFile(p, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := parseFile(p, WebsocketSuffix)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !strings.HasSuffix(r.Name, " [websocket]") {
			t.Fatalf("name without suffix: %q", r.Name)
		}
	}
}
