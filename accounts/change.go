package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Change is one account row's change as the WAL reported it: deleted, or
// the values it now has. A nil field was not in the row and keeps its
// value.
type Change struct {
	ID          string
	Deleted     bool
	Role        *string
	MemberID    *string    // "" for NULL
	LockedUntil *time.Time // zero for none
}

// MaxIDLength bounds an id on the wire; ids are rows' keys, not text.
const MaxIDLength = 256

// wireChange is Change on the wire: JSON, every field but id optional.
type wireChange struct {
	ID          string  `json:"id"`
	Deleted     bool    `json:"deleted,omitempty"`
	Role        *string `json:"role,omitempty"`
	Member      *string `json:"member,omitempty"`
	LockedUntil *string `json:"lockedUntil,omitempty"` // RFC 3339, "" for none
}

// Encode writes a transaction's changes for the other instances (the
// payload of a walcast-only entry on the Redis stream or channel).
func Encode(changes []Change) ([]byte, error) {
	w := make([]wireChange, len(changes))
	for i, c := range changes {
		if c.ID == "" || len(c.ID) > MaxIDLength {
			return nil, fmt.Errorf("encode account change: id %q: want 1-%d bytes", c.ID, MaxIDLength)
		}
		w[i] = wireChange{ID: c.ID, Deleted: c.Deleted, Role: c.Role, Member: c.MemberID}
		if c.LockedUntil != nil {
			s := ""
			if !c.LockedUntil.IsZero() {
				s = c.LockedUntil.UTC().Format(time.RFC3339Nano)
			}
			w[i].LockedUntil = &s
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode account changes: %w", err)
	}
	return b, nil
}

// Decode reads what Encode wrote. It comes from Redis, which other
// programs can write: anything else is an error, never a panic.
func Decode(b []byte) ([]Change, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w []wireChange
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode account changes: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode account changes: data after the list")
	}
	out := make([]Change, len(w))
	for i, c := range w {
		if c.ID == "" || len(c.ID) > MaxIDLength {
			return nil, fmt.Errorf("decode account changes: change %d: id %q: want 1-%d bytes", i, c.ID, MaxIDLength)
		}
		if c.Deleted && (c.Role != nil || c.Member != nil || c.LockedUntil != nil) {
			return nil, fmt.Errorf("decode account changes: change %d deletes user %q and sets values", i, c.ID)
		}
		out[i] = Change{ID: c.ID, Deleted: c.Deleted, Role: c.Role, MemberID: c.Member}
		if c.LockedUntil != nil {
			var t time.Time
			if *c.LockedUntil != "" {
				var err error
				if t, err = time.Parse(time.RFC3339Nano, *c.LockedUntil); err != nil {
					return nil, fmt.Errorf("decode account changes: change %d: lockedUntil: %w", i, err)
				}
			}
			out[i].LockedUntil = &t
		}
	}
	return out, nil
}
