package socketio

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// credentialWords mark header and query names whose values are, or may be,
// credentials (Authorization, Cookie, a token in the query string...).
var credentialWords = []string{"auth", "cookie", "token", "secret", "password", "passwd", "session", "key", "signature", "jwt", "credential"}

// IsCredentialName reports whether a header or query parameter name looks
// like it carries a credential.
func IsCredentialName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// WithoutCredentials returns a copy of the handshake fit to leave the
// process (the Redis adapters' fetchSockets answers, the Admin UI): the
// auth object empty ({}), and no header or query parameter whose name
// looks like a credential (IsCredentialName: Authorization, Cookie, ...).
// What a peer needs to describe the socket stays: address, time, the
// other headers and query parameters.
func (h *Handshake) WithoutCredentials() Handshake {
	out := Handshake{Auth: json.RawMessage("{}"), RemoteAddr: h.RemoteAddr, Time: h.Time,
		Header: make(http.Header, len(h.Header)), Query: make(url.Values, len(h.Query))}
	for k, v := range h.Header {
		if !IsCredentialName(k) {
			out.Header[k] = v
		}
	}
	for k, v := range h.Query {
		if !IsCredentialName(k) {
			out.Query[k] = v
		}
	}
	return out
}
