package main

import "testing"

func TestSummarize(t *testing.T) {
	var rs resultsSet
	rs.OperationsNames = []string{"A", "B"}
	for i := int64(1); i <= 20; i++ {
		rs.Datapoints = append(rs.Datapoints, struct {
			OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
		}{OperationsDurationsNs: []int64{i * 1e6, 0}})
	}
	rows := Summarize("f", rs)
	if len(rows) != 1 || rows[0].Op != "A" || rows[0].N != 20 || rows[0].Median.Milliseconds() != 10 || rows[0].P95.Milliseconds() != 19 {
		t.Fatalf("%+v", rows)
	}
}
