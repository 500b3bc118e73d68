package route

import (
	"fmt"
	"strings"

	"github.com/walcast/walcast/cdc"
)

// roomTemplate is a room name with "{column}" holes filled from a row.
type roomTemplate struct {
	raw   string
	parts []roomPart
}

type roomPart struct {
	literal string
	column  string // set for a hole
}

func parseRoomTemplate(s string) (roomTemplate, error) {
	t := roomTemplate{raw: s}
	if s == "" {
		return t, fmt.Errorf("empty room in audience")
	}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, fmt.Errorf("room %q: unmatched }", s)
			}
			t.parts = append(t.parts, roomPart{literal: rest})
			break
		}
		if open > 0 {
			lit := rest[:open]
			if strings.IndexByte(lit, '}') >= 0 {
				return t, fmt.Errorf("room %q: unmatched }", s)
			}
			t.parts = append(t.parts, roomPart{literal: lit})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, fmt.Errorf("room %q: unclosed {", s)
		}
		col := rest[open+1 : open+end]
		if col == "" {
			return t, fmt.Errorf("room %q: empty {}", s)
		}
		t.parts = append(t.parts, roomPart{column: col})
		rest = rest[open+end+1:]
	}
	return t, nil
}

func (t roomTemplate) columns() []string {
	var cols []string
	for _, p := range t.parts {
		if p.column != "" {
			cols = append(cols, p.column)
		}
	}
	return cols
}

func (t roomTemplate) static() bool { return len(t.columns()) == 0 }

// prefix is the fixed text a filled room starts with: the whole name of a
// static room, the literal before the first hole otherwise.
func (t roomTemplate) prefix() string {
	if len(t.parts) == 0 {
		return ""
	}
	return t.parts[0].literal
}

// fill renders the room from row; ok is false when a column is NULL or not
// in the row (a key-only old row, say).
func (t roomTemplate) fill(row []cdc.Column) (string, bool) {
	if t.static() {
		return t.raw, true
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.column == "" {
			b.WriteString(p.literal)
			continue
		}
		c := findColumn(row, p.column)
		if c == nil || c.Null {
			return "", false
		}
		b.Write(c.Text)
	}
	return b.String(), true
}

func findColumn(row []cdc.Column, name string) *cdc.Column {
	for i := range row {
		if row[i].Name == name {
			return &row[i]
		}
	}
	return nil
}
