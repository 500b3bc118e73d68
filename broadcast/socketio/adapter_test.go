package socketio

import (
	"slices"
	"testing"
)

// TestMemoryAdapterOwnRoom pins the membership rules of a socket's own-id
// room, which the adapter keeps apart from other rooms: it is listed,
// selectable, leavable, and a socket that left it still gets broadcasts
// to all.
func TestMemoryAdapterOwnRoom(t *testing.T) {
	a := NewMemoryAdapter()
	x, y := &Socket{id: "x"}, &Socket{id: "y"}
	a.AddAll(x, []string{"x"})
	a.AddAll(y, []string{"y", "r", "x"}) // y also joins a room named like x's id

	ids := func(ss []*Socket) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.id)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(rs []string) []string { slices.Sort(rs); return rs }

	steps := []struct {
		name  string
		do    func()
		rooms []string // query for Sockets
		want  []string
	}{
		{"own room", nil, []string{"x"}, []string{"x", "y"}},
		{"all", nil, nil, []string{"x", "y"}},
		{"room", nil, []string{"r"}, []string{"y"}},
		{"x leaves own room", func() { a.Del(x, "x") }, []string{"x"}, []string{"y"}},
		{"x still in all", nil, nil, []string{"x", "y"}},
		{"y leaves room x", func() { a.Del(y, "x") }, []string{"x"}, nil},
		{"y removed", func() { a.DelAll(y) }, []string{"y", "r"}, nil},
		{"only x left", nil, nil, []string{"x"}},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		if got := ids(a.Sockets(st.rooms)); !slices.Equal(got, st.want) {
			t.Fatalf("%s: Sockets(%v) = %v, want %v", st.name, st.rooms, got, st.want)
		}
	}
	if got := a.SocketRooms(x); len(got) != 0 {
		t.Fatalf("x's rooms %v after leaving its own", got)
	}
	a.AddAll(x, []string{"x", "q"})
	if got := sorted(a.SocketRooms(x)); !slices.Equal(got, []string{"q", "x"}) {
		t.Fatalf("x's rooms %v", got)
	}
	a.DelAll(x)
	if len(a.sids) != 0 || len(a.rooms) != 0 || len(a.own) != 0 {
		t.Fatalf("adapter not empty: %d sockets, %d rooms, %d own", len(a.sids), len(a.rooms), len(a.own))
	}
}
