package locks

import (
	"bytes"
	"encoding/json"
	"errors"
)

// maxPayload bounds what we are willing to parse for one lock request; a
// valid one is well under 300 bytes.
const maxPayload = 4096

var errInvalidResource = errors.New("invalid resource")

// parseResource reads {resourceType, resourceId} from a lock event's first
// argument and checks it against the allowed types. It runs before any
// store call: whatever a client sends, a bad payload changes nothing.
//
// resourceId may be a string or a non-negative JSON integer: GraceGiver's
// donations and users have serial ids, and a client passing donation.id
// sends a number, which the original server turned into lock:donation:42.
// The integer is used in its decimal form, so 42 and "42" are one lock.
func parseResource(raw json.RawMessage, types map[string]bool) (Resource, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || len(raw) > maxPayload || raw[0] != '{' {
		return Resource{}, errInvalidResource
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Resource{}, errInvalidResource
	}
	var typ string
	if err := json.Unmarshal(fields["resourceType"], &typ); err != nil || !types[typ] {
		return Resource{}, errInvalidResource
	}
	id, ok := resourceID(fields["resourceId"])
	if !ok {
		return Resource{}, errInvalidResource
	}
	return Resource{Type: typ, ID: id}, nil
}

func resourceID(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || !validID(s) {
			return "", false
		}
		return s, true
	}
	// A bare integer: digits only (no sign, fraction or exponent), so its
	// text is already its canonical decimal form, bar leading zeros.
	for _, c := range raw {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	if len(raw) > 1 && raw[0] == '0' || len(raw) > 19 {
		return "", false
	}
	return string(raw), true
}
