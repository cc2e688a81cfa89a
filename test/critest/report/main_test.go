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

// A run on another runtime handler is a section of its own: its specs carry the handler's suffix,
// its counts a line of their own, and its baseline entries are enforced like the others.
func TestHandlerSection(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := write("junit.xml", sample)
	// On crun, B passes.
	i, j := strings.Index(sample, `<testcase name="[It] [k8s.io] B fails"`), strings.Index(sample, `<testcase name="[It] [k8s.io] C skips"`)
	crun := write("crun.xml", sample[:i]+`<testcase name="[It] [k8s.io] B fails" classname="CRI validation" status="passed"></testcase>
    `+sample[j:])
	out := dir + "/results.txt"
	var hs handlerReports
	if err := hs.Set("crun=" + crun); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"crun", "=x", "a b=x"} {
		if err := hs.Set(bad); err == nil {
			t.Errorf("--junit-handler %q accepted", bad)
		}
	}
	baseline := write("baseline.txt", "[k8s.io] A passes\n[k8s.io] A passes [crun]\n[k8s.io] B fails [crun]\n")
	if err := run(main, "", hs, out, baseline, "", "v1.37.0", false); err != nil {
		t.Fatalf("ratchet with the crun section: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"passed: 3\nfailed: 1\nskipped: 2\ncritest: v1.37.0\nhandler crun: passed 2, failed 0, skipped 1\n",
		"PASS [k8s.io] B fails [crun]\n", "FAIL [k8s.io] B fails -- "} {
		if !strings.Contains(text, want) {
			t.Errorf("results lack %q:\n%s", want, text)
		}
	}
	baseline = write("baseline2.txt", "[k8s.io] B fails [crun]\n[k8s.io] D benchmark [crun]\n")
	if err := run(main, "", hs, out, baseline, "", "v1.37.0", false); err == nil || !strings.Contains(err.Error(), "D benchmark [crun]") {
		t.Fatalf("a crun baseline spec that did not run passed the ratchet: %v", err)
	}
}

// TestRanOf: a focused run holds to the baseline only the specs that ran; a baseline spec that
// ran and failed still fails the ratchet.
func TestRanOf(t *testing.T) {
	results := []Result{{Name: "a", Status: "PASS"}, {Name: "b", Status: "FAIL"}, {Name: "c", Status: "SKIP"}}
	ran := RanOf(results, []string{"a", "b", "c", "d"})
	if strings.Join(ran, ",") != "a,b" {
		t.Fatalf("RanOf = %v, want a,b", ran)
	}
	if missing := Ratchet(results, ran); strings.Join(missing, ",") != "b" {
		t.Errorf("Ratchet over the specs that ran = %v, want b", missing)
	}
}
