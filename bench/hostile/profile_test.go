package main

import "testing"

// TestMemStat reads the statistics the way net/http/pprof prints them: a
// misread would put another figure in the breakdown without an error.
func TestMemStat(t *testing.T) {
	text := []byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# HeapIdle = 3080192\n# HeapInuse = 786432\n# HeapReleased = 3080190\n# Stack = 327680 / 393216\n")
	for _, tt := range []struct {
		name string
		want int64
	}{{"HeapIdle", 3080192}, {"HeapInuse", 786432}, {"HeapReleased", 3080190}, {"Stack", 327680}} {
		if got, err := memStat(text, tt.name); err != nil || got != tt.want {
			t.Errorf("%s = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := memStat(text, "Heap"); err == nil {
		t.Error("a name that is only a prefix of others was found")
	}
}
