package redisstats

import "testing"

func TestParseAndDiff(t *testing.T) {
	before, err := Parse("# Commandstats\r\ncmdstat_xadd:calls=3,usec=30,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\ncmdstat_ping:calls=1,usec=1,usec_per_call=1.00\r\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := Parse("cmdstat_xadd:calls=5,usec=50,usec_per_call=10.00\ncmdstat_ping:calls=1,usec=1\ncmdstat_evalsha:calls=2,usec=40\n")
	if err != nil {
		t.Fatal(err)
	}
	d := Diff(before, after)
	want := map[string]Stat{"xadd": {2, 20}, "evalsha": {2, 40}}
	if len(d) != len(want) || d["xadd"] != want["xadd"] || d["evalsha"] != want["evalsha"] {
		t.Fatalf("diff = %v, want %v", d, want)
	}
	for _, bad := range []string{"cmdstat_xadd calls=1", "cmdstat_xadd:calls=x,usec=1", "cmdstat_xadd:calls=1,usec=1e3"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want an error", bad)
		}
	}
}
