package procstat

import "testing"

func TestParseSockstatTCPMem(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"typical", "sockets: used 34\nTCP: inuse 16 orphan 0 tw 3091 alloc 18 mem 250\nUDP: inuse 0 mem 0\n", 250 * 4096, false},
		{"no TCP line", "sockets: used 34\nUDP: inuse 0 mem 0\n", 0, true},
		{"TCP without mem", "TCP: inuse 16 orphan 0\n", 0, true},
		{"bad number", "TCP: inuse 1 mem x\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSockstatTCPMem([]byte(tt.in), 4096)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d, err %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTCPMemoryLive(t *testing.T) {
	if _, err := TCPMemory(); err != nil {
		t.Fatal(err)
	}
}
