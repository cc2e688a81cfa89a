// Command report turns critest's JUnit report into test/critest/results.txt and enforces the
// ratchet: every spec listed in the baseline must pass.
//
//	go run ./test/critest/report --junit junit.xml --out results.txt --baseline baseline.txt \
//	    [--junit-websocket ws.xml] [--junit-handler crun=crun.xml ...] [--notes notes.txt] \
//	    [--critest-version v1.37.0]
//
// A run on another runtime handler is its own section: its specs carry the suffix " [<handler>]",
// in the results, the notes and the baseline alike.
//
// results.txt starts with the counts (passed, failed, skipped, critest version; then each
// handler section's own), then one line per spec: "PASS <name>", "FAIL <name> -- <reason>" or "SKIP <name> -- <reason>". A failing or skipped
// spec's reason comes from notes.txt ("<name> -- <reason>" lines, for what we know cannot pass here)
// or else from critest's own failure or skip message.
package main

import (
	"bufio"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type junitTestsuites struct {
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Cases []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name    string        `xml:"name,attr"`
	Status  string        `xml:"status,attr"`
	Failure *junitMessage `xml:"failure"`
	Error   *junitMessage `xml:"error"`
	Skipped *junitMessage `xml:"skipped"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// Result is one spec's outcome.
type Result struct {
	Name   string
	Status string // PASS, FAIL or SKIP
	Reason string
}

func main() {
	junit := flag.String("junit", "", "critest JUnit report")
	junitWS := flag.String("junit-websocket", "", "JUnit report of the Streaming specs run over websockets (recorded with a \" [websocket]\" suffix)")
	out := flag.String("out", "", "results file to write")
	baseline := flag.String("baseline", "", "specs that must pass")
	notes := flag.String("notes", "", "known reasons for failing or skipped specs")
	version := flag.String("critest-version", "v1.37.0", "critest version, for the header")
	var handlers handlerReports
	ranOnly := flag.Bool("baseline-ran-only", false, "a part of the suite ran (a focus): only the baseline's specs that ran and did not pass fail the ratchet")
	flag.Var(&handlers, "junit-handler", "NAME=PATH: the JUnit report of a run on runtime handler NAME (recorded with a \" [NAME]\" suffix); repeatable")
	flag.Parse()
	if err := run(*junit, *junitWS, handlers, *out, *baseline, *notes, *version, *ranOnly); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// handlerReports are the --junit-handler flags: runtime handler name -> JUnit report.
type handlerReports []handlerReport

type handlerReport struct{ name, path string }

func (h *handlerReports) String() string { return fmt.Sprint(*h) }

func (h *handlerReports) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" || strings.ContainsAny(name, " []") {
		return fmt.Errorf("%q is not NAME=PATH", v)
	}
	*h = append(*h, handlerReport{name, path})
	return nil
}

// HandlerSuffix marks the results of a run on runtime handler name.
func HandlerSuffix(name string) string { return " [" + name + "]" }

func run(junitPath, junitWSPath string, handlers handlerReports, outPath, baselinePath, notesPath, version string, ranOnly bool) error {
	results, err := parseFile(junitPath, "")
	if err != nil {
		return err
	}
	extra := []handlerReport{}
	if junitWSPath != "" {
		extra = append(extra, handlerReport{"websocket", junitWSPath})
	}
	extra = append(extra, handlers...)
	var sections []string
	for _, h := range extra {
		more, err := parseFile(h.path, HandlerSuffix(h.name))
		if err != nil {
			return err
		}
		results = append(results, more...)
		if h.name != "websocket" {
			sections = append(sections, h.name)
		}
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Name < results[j].Name })
	known, err := readNotes(notesPath)
	if err != nil {
		return err
	}
	for i, r := range results {
		if reason, ok := known[r.Name]; ok && r.Status != "PASS" {
			results[i].Reason = reason
		}
	}
	text := Format(results, version, sections...)
	if outPath != "" {
		if err := os.WriteFile(outPath, []byte(text), 0o644); err != nil {
			return err
		}
	}
	p, fl, s := Counts(results)
	fmt.Printf("critest: %d passed, %d failed, %d skipped\n", p, fl, s)
	if baselinePath == "" {
		return nil
	}
	want, err := readLines(baselinePath)
	if err != nil {
		return err
	}
	if ranOnly {
		want = RanOf(results, want)
	}
	if missing := Ratchet(results, want); len(missing) > 0 {
		return fmt.Errorf("%d baseline spec(s) did not pass:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	fmt.Printf("ratchet: all %d baseline specs passed\n", len(want))
	return nil
}

// WebsocketSuffix marks the results of the Streaming specs run over websockets.
var WebsocketSuffix = HandlerSuffix("websocket")

// parseFile parses a JUnit report, appending suffix to every spec name.
func parseFile(path, suffix string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	results, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("%s: no specs ran", path)
	}
	for i := range results {
		results[i].Name += suffix
	}
	return results, nil
}

// Parse reads a ginkgo JUnit report. Suite-level nodes ([BeforeSuite] ...) are left out, and so are
// specs that critest filtered out without running them (the benchmarks in validation mode).
func Parse(r io.Reader) ([]Result, error) {
	var ts junitTestsuites
	if err := xml.NewDecoder(r).Decode(&ts); err != nil {
		return nil, err
	}
	var out []Result
	seen := map[string]bool{}
	for _, s := range ts.Suites {
		for _, c := range s.Cases {
			name := strings.TrimSpace(strings.TrimPrefix(c.Name, "[It] "))
			if strings.HasPrefix(name, "[") && strings.Contains(name, "Suite]") {
				// [BeforeSuite], [SynchronizedBeforeSuite], [AfterSuite] ...: a failure there fails
				// every spec, which the specs themselves report.
				continue
			}
			res := Result{Name: name}
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" ||
				c.Status == "timedout" || c.Status == "interrupted" || c.Status == "aborted":
				res.Status = "FAIL"
				m := c.Failure
				if m == nil {
					m = c.Error
				}
				if m != nil {
					res.Reason = oneLine(firstNonEmpty(m.Message, m.Body))
				}
				if res.Reason == "" {
					res.Reason = c.Status
				}
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				msg := ""
				if c.Skipped != nil {
					msg = c.Skipped.Message
				}
				msg = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(msg, "skipped"), " -"))
				if msg == "" || c.Status == "pending" {
					// Not run at all: filtered out by critest's focus/skip.
					continue
				}
				res.Status, res.Reason = "SKIP", oneLine(msg)
			default:
				res.Status = "PASS"
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Counts returns how many passed, failed and were skipped.
func Counts(results []Result) (passed, failed, skipped int) {
	for _, r := range results {
		switch r.Status {
		case "PASS":
			passed++
		case "FAIL":
			failed++
		case "SKIP":
			skipped++
		}
	}
	return
}

// Format renders results.txt: the counts of all results, then those of each handler section's.
func Format(results []Result, version string, sections ...string) string {
	var b strings.Builder
	p, f, s := Counts(results)
	fmt.Fprintf(&b, "passed: %d\nfailed: %d\nskipped: %d\ncritest: %s\n", p, f, s, version)
	for _, name := range sections {
		var in []Result
		for _, r := range results {
			if strings.HasSuffix(r.Name, HandlerSuffix(name)) {
				in = append(in, r)
			}
		}
		p, f, s := Counts(in)
		fmt.Fprintf(&b, "handler %s: passed %d, failed %d, skipped %d\n", name, p, f, s)
	}
	for _, r := range results {
		if r.Status == "PASS" {
			fmt.Fprintf(&b, "PASS %s\n", r.Name)
		} else {
			fmt.Fprintf(&b, "%s %s -- %s\n", r.Status, r.Name, r.Reason)
		}
	}
	return b.String()
}

// Ratchet returns the baseline specs that did not pass (including those that did not run).
func Ratchet(results []Result, baseline []string) []string {
	passed := map[string]bool{}
	for _, r := range results {
		if r.Status == "PASS" {
			passed[r.Name] = true
		}
	}
	var missing []string
	for _, name := range baseline {
		if !passed[name] {
			missing = append(missing, name)
		}
	}
	return missing
}

// RanOf returns the baseline specs that ran (passed or failed; not skipped, not absent): those a
// focused run can hold to the baseline.
func RanOf(results []Result, baseline []string) []string {
	ran := map[string]bool{}
	for _, r := range results {
		if r.Status == "PASS" || r.Status == "FAIL" {
			ran[r.Name] = true
		}
	}
	var out []string
	for _, name := range baseline {
		if ran[name] {
			out = append(out, name)
		}
	}
	return out
}

func readNotes(path string) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	lines, err := readLines(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		return nil, err
	}
	for _, l := range lines {
		name, reason, ok := strings.Cut(l, " -- ")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not \"<spec> -- <reason>\"", path, l)
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(reason)
	}
	return out, nil
}

// readLines returns the non-empty lines of a file that are not # comments.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// gomegaNoise matches what gomega prints around an error value: type and address, which would make
// results.txt change on every run.
var gomegaNoise = regexp.MustCompile(`<[^<>]*\| 0x[0-9a-f]+>:?\s*`)

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = gomegaNoise.ReplaceAllString(s, "")
	if i := strings.Index(s, " { "); i > 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}
