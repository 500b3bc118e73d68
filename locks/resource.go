// Package locks keeps record locks ("who is editing this member?") so two
// staff members cannot overwrite each other's edits. A lock is owned by a
// user (the token's id claim), not by a socket, and lives for a TTL; the
// Store keeps it (in memory for one instance, in Redis for several) and the
// Service turns the contract's lock:acquire/release/check payloads into
// store calls, acks and lock:update announcements.
package locks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resource is one lockable record, e.g. {member, 3f2a...}.
type Resource struct {
	Type string
	ID   string
}

// Key is the storage key from the contract: lock:{type}:{id}.
func (r Resource) Key() string { return "lock:" + r.Type + ":" + r.ID }

// Event is the Socket.IO event that announces changes of this lock.
func (r Resource) Event() string { return "lock:update:" + r.Type + ":" + r.ID }

func (r Resource) String() string { return r.Type + ":" + r.ID }

// ParseKey is the inverse of Key. It only splits; validation against the
// configured types is the Service's job.
func ParseKey(key string) (Resource, error) {
	rest, ok := strings.CutPrefix(key, "lock:")
	if !ok {
		return Resource{}, fmt.Errorf("lock key %q: missing lock: prefix", key)
	}
	typ, id, ok := strings.Cut(rest, ":")
	if !ok || typ == "" || !validID(id) {
		return Resource{}, fmt.Errorf("lock key %q: want lock:{type}:{id}", key)
	}
	return Resource{Type: typ, ID: id}, nil
}

// maxIDLen bounds resource ids: long enough for any UUID or serial, short
// enough that a client cannot make us store arbitrary blobs as keys.
const maxIDLen = 128

// validID: 1-128 of [A-Za-z0-9_-]. Excluding ':' keeps keys unambiguous and
// '*' keeps them from being glob patterns anywhere they end up.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// UserID identifies a lock owner. It keeps the id's JSON form, as the
// stored lock value carries it ("userId": 1 as the contract shows, or
// "u-7"). An id is normalised once: an integer is a JSON number with all
// its digits (1 and "1" are the same user; ids above 2^53 are not rounded
// through a float), anything else a JSON string.
type UserID struct{ raw string }

// ErrBadUserID is returned for claims that cannot identify a user.
var ErrBadUserID = errors.New("user id must be a non-empty string or an integer")

// NumericUserID is a user id that is a JSON number.
func NumericUserID(n int64) UserID { return UserID{raw: strconv.FormatInt(n, 10)} }

// StringUserID is a user id given as text: an integer in canonical decimal
// form ("1", "-3", not "01" or "+1") is that number, the same user as a
// numeric claim; any other non-empty text is a JSON string.
func StringUserID(s string) (UserID, error) {
	if s == "" {
		return UserID{}, ErrBadUserID
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(n, 10) == s {
		return UserID{raw: s}, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return UserID{}, fmt.Errorf("encode user id: %w", err)
	}
	return UserID{raw: string(b)}, nil
}

// UserIDFromClaim converts a decoded JWT claim value (float64, json.Number,
// string or an integer type) into a UserID.
func UserIDFromClaim(v any) (UserID, error) {
	switch v := v.(type) {
	case string:
		return StringUserID(v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return UserID{}, ErrBadUserID
		}
		return NumericUserID(int64(v)), nil
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return UserID{}, ErrBadUserID
		}
		return NumericUserID(n), nil
	case int:
		return NumericUserID(int64(v)), nil
	case int64:
		return NumericUserID(v), nil
	case int32:
		return NumericUserID(int64(v)), nil
	default:
		return UserID{}, ErrBadUserID
	}
}

// userIDFromJSON reads a userId as found in a stored lock value.
func userIDFromJSON(raw json.RawMessage) (UserID, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return UserID{}, fmt.Errorf("user id: %w", err)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return UserID{}, fmt.Errorf("user id: %w", err)
	}
	return UserIDFromClaim(v)
}

// IsZero reports whether u is the zero UserID (no owner).
func (u UserID) IsZero() bool { return u.raw == "" }

// JSON is the id's JSON text, exactly as stored in a lock value.
func (u UserID) JSON() string { return u.raw }

func (u UserID) String() string { return u.raw }

// MarshalJSON writes the id in its original JSON type.
func (u UserID) MarshalJSON() ([]byte, error) {
	if u.raw == "" {
		return []byte("null"), nil
	}
	return []byte(u.raw), nil
}

// Holder is who holds a lock: the stored value {"userId","username","acquiredAt"}.
type Holder struct {
	UserID     UserID
	Username   string
	AcquiredAt int64 // epoch milliseconds
}

// encodeHolder writes the value with a fixed field order. The Redis scripts
// recognise the owner by the prefix {"userId":<id>, so the order matters; it
// is also the order the original Node server's JSON.stringify produced, so
// locks it left behind are recognised too.
func encodeHolder(h Holder) string {
	name, _ := json.Marshal(h.Username) // a Go string always marshals
	return ownerPrefix(h.UserID) + `"username":` + string(name) + `,"acquiredAt":` + strconv.FormatInt(h.AcquiredAt, 10) + "}"
}

func ownerPrefix(u UserID) string { return `{"userId":` + u.raw + "," }

// decodeHolder reads a stored lock value. The bytes come from Redis, which
// other programs can write, so anything malformed is an error, never a panic.
func decodeHolder(b []byte) (Holder, error) {
	var v struct {
		UserID     json.RawMessage `json:"userId"`
		Username   *string         `json:"username"`
		AcquiredAt *json.Number    `json:"acquiredAt"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Holder{}, fmt.Errorf("decode lock value: %w", err)
	}
	if v.UserID == nil || v.Username == nil || v.AcquiredAt == nil {
		return Holder{}, errors.New("decode lock value: want userId, username and acquiredAt")
	}
	id, err := userIDFromJSON(v.UserID)
	if err != nil {
		return Holder{}, fmt.Errorf("decode lock value: %w", err)
	}
	at, err := v.AcquiredAt.Int64()
	if err != nil {
		f, ferr := v.AcquiredAt.Float64()
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
			return Holder{}, fmt.Errorf("decode lock value: acquiredAt %q: %w", *v.AcquiredAt, err)
		}
		at = int64(f)
	}
	return Holder{UserID: id, Username: *v.Username, AcquiredAt: at}, nil
}
