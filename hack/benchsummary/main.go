// Command benchsummary prints the median and p95 of each operation in critest's benchmark JSON
// files (LifecycleBenchmarksResultsSet), as a Markdown table.
//
//	go run ./hack/benchsummary bench/critest/*.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

type resultsSet struct {
	OperationsNames []string `json:"operationsNames"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

// Row is one operation's summary.
type Row struct {
	File, Op    string
	N           int
	Median, P95 time.Duration
}

// Summarize computes each operation's median and p95 (nearest rank).
func Summarize(file string, rs resultsSet) []Row {
	var rows []Row
	for i, op := range rs.OperationsNames {
		var ds []int64
		for _, dp := range rs.Datapoints {
			if i < len(dp.OperationsDurationsNs) && dp.OperationsDurationsNs[i] > 0 {
				ds = append(ds, dp.OperationsDurationsNs[i])
			}
		}
		if len(ds) == 0 {
			continue
		}
		sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
		rows = append(rows, Row{File: file, Op: op, N: len(ds),
			Median: time.Duration(percentile(ds, 50)), P95: time.Duration(percentile(ds, 95))})
	}
	return rows
}

func percentile(sorted []int64, p int) int64 {
	rank := (p*len(sorted) + 99) / 100 // nearest rank, 1-based
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func main() {
	fmt.Println("| benchmark | operation | n | median ms | p95 ms |")
	fmt.Println("|---|---|---|---|---|")
	for _, f := range os.Args[1:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var rs resultsSet
		if err := json.Unmarshal(b, &rs); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(1)
		}
		for _, r := range Summarize(filepath.Base(f), rs) {
			fmt.Printf("| %s | %s | %d | %.1f | %.1f |\n", r.File, r.Op, r.N,
				float64(r.Median)/1e6, float64(r.P95)/1e6)
		}
	}
}
