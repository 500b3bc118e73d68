package redisadapter

import "testing"

// The mark comes from Redis, where any peer can write: ParsePosition must
// refuse junk with an error, and what it accepts must round-trip, since the
// Lua fence compares the String forms.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0000000000000100/00000000", "FFFFFFFFFFFFFFFF/FFFFFFFF", "", "/", "100/0", "000000000000010G/00000000", "000000000000010a/00000000", "+000000000000100/00000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("%q accepted as %v, whose form %q differs: the fence compares strings", s, p, p.String())
		}
	})
}
