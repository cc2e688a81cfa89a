package crilog

import (
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// viaLineWriter writes input into a new log through a LineWriter, in chunks of the given sizes
// (cycled), and returns the log's entries.
func viaLineWriter(t *testing.T, max int, input string, chunks []int) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lw.log")
	w, err := Open(path, WithClock(clock), WithMaxLineSize(max))
	if err != nil {
		t.Fatal(err)
	}
	lw := w.NewLineWriter(Stdout)
	for i := 0; len(input) > 0; i++ {
		n := min(chunks[i%len(chunks)], len(input))
		if _, err := lw.Write([]byte(input[:n])); err != nil {
			t.Fatal(err)
		}
		input = input[n:]
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return readLog(t, path)
}

// viaCopy writes input into a new log through Copy (the reference).
func viaCopy(t *testing.T, max int, input string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.log")
	w, err := Open(path, WithClock(clock), WithMaxLineSize(max))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Copy(Stdout, strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return readLog(t, path)
}

func TestLineWriterMatchesCopy(t *testing.T) {
	inputs := map[string]string{
		"full lines":     "hello\nworld\n",
		"crlf":           "a\r\nb\r\n\r\n",
		"partial at end": "a\nno newline",
		"empty lines":    "\n\nx\n",
		"long line":      strings.Repeat("a", 45) + "\n",
		"exactly max":    strings.Repeat("b", 20) + "\nc\n",
		"twice max":      strings.Repeat("e", 40) + "\n",
		"long partial":   strings.Repeat("d", 30),
		"max then crlf":  strings.Repeat("f", 20) + "\r\n" + "g\n",
		"mixed":          "x\n" + strings.Repeat("y", 57) + "\nz\r\n\n" + strings.Repeat("w", 19) + "\n" + "tail",
	}
	for name, in := range inputs {
		want := viaCopy(t, 20, in)
		for _, chunks := range [][]int{{1 << 20}, {1}, {3}, {7, 1, 13}, {20}, {21}} {
			got := viaLineWriter(t, 20, in, chunks)
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("%s in chunks %v:\ngot  %q\nwant %q", name, chunks, got, want)
			}
		}
	}
}

func TestLineWriterRandomMatchesCopy(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	alphabet := "ab\r\n"
	for i := 0; i < 300; i++ {
		var sb strings.Builder
		for j := rnd.Intn(200); j > 0; j-- {
			sb.WriteByte(alphabet[rnd.Intn(len(alphabet))])
		}
		in := sb.String()
		// Lines of up to 16 bytes (Copy's read buffer is at least 16, so its splitting of
		// a longer line depends on its buffer; within it both must agree).
		want := viaCopy(t, 16, in)
		got := viaLineWriter(t, 16, in, []int{1 + rnd.Intn(40), 1 + rnd.Intn(5)})
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("input %q:\ngot  %q\nwant %q", in, got, want)
		}
	}
}

func TestLineWriterOneWritePerChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	lw := w.NewLineWriter(Stderr)
	lw.Write([]byte("one\ntwo\nthr"))
	w.Flush()
	equal(t, readLog(t, path), []string{ts + " stderr F one", ts + " stderr F two"})
	if len(lw.pending) != 3 {
		t.Fatalf("pending %q, want the 3 bytes of the unfinished line", lw.pending)
	}
	lw.Write([]byte("ee\n"))
	if lw.pending != nil {
		t.Fatalf("pending kept after the line ended: %q", lw.pending)
	}
	w.Flush()
	equal(t, readLog(t, path), []string{ts + " stderr F one", ts + " stderr F two", ts + " stderr F three"})
}

func TestLineWriterAfterWriterClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	lw := w.NewLineWriter(Stdout)
	lw.Write([]byte("a\n"))
	w.Close()
	if n, err := lw.Write([]byte("b\n")); n != 2 || err != nil {
		t.Fatalf("Write after close: %d %v, want the output consumed", n, err)
	}
	if err := lw.Close(); !IsClosed(err) {
		t.Fatalf("Close: %v, want ErrClosed", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != ts+" stdout F a\n" {
		t.Fatalf("log %q", b)
	}
}

func TestLineWriterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lw := w.NewLineWriter(Stdout)
	lw.Write([]byte("before\nhalf"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	lw.Write([]byte(" line\n"))
	w.Flush()
	equal(t, readLog(t, path+".1"), []string{ts + " stdout F before"})
	equal(t, readLog(t, path), []string{ts + " stdout F half line"})
}

func BenchmarkLineWriter(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "0.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	chunk := []byte(strings.Repeat(strings.Repeat("x", 99)+"\n", 40))
	lw := w.NewLineWriter(Stdout)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		lw.Write(chunk)
		if wait := w.Backlog(); wait != nil {
			<-wait // as the pump does: no more while the file does not keep up
		}
	}
	w.Flush()
	reportCPU(b, cpu)
}

var _ io.Writer = (*LineWriter)(nil)
