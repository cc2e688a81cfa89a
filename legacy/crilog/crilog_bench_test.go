package crilog

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkCopy measures the log writer's throughput (MB/s of container output turned into CRI log
// entries in a file): short lines, 1 KiB lines, and lines longer than the maximum (split into P
// entries).
func BenchmarkCopy(b *testing.B) {
	cases := []struct {
		name string
		line string
	}{
		{"80B-lines", strings.Repeat("x", 79) + "\n"},
		{"1KiB-lines", strings.Repeat("y", 1023) + "\n"},
		{"40KiB-lines", strings.Repeat("z", 40<<10-1) + "\n"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			input := []byte(strings.Repeat(c.line, max(1, (1<<20)/len(c.line)))) // ~1 MiB per Copy
			w, err := Open(filepath.Join(b.TempDir(), "0.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.SetBytes(int64(len(input)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				if err := w.Copy(Stdout, bytes.NewReader(input)); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkWriteEntry is one short entry written (the per-line cost).
func BenchmarkWriteEntry(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "0.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	line := []byte(strings.Repeat("x", 79))
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	cpu := processCPU()
	for range b.N {
		if err := w.WriteEntry(Stderr, TagFull, line); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush() // what is queued is part of the cost
	reportCPU(b, cpu)
}
