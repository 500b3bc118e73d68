// Package jsonstr writes JSON string literals: the one encoder behind
// payload column names (route), row values (cdc), Socket.IO packets
// (socketio/parser) and the Redis adapters' messages (redisadapter).
//
// Its output is what JavaScript's JSON.stringify writes for the same text:
// only '"', '\\' and control characters are escaped (not '<', '>', '&', which
// encoding/json escapes for HTML), so Node peers and walcast agree byte for
// byte. Invalid UTF-8 becomes U+FFFD, as encoding/json does, so the output
// is valid JSON for any input.
package jsonstr

import "unicode/utf8"

// Append appends s as a JSON string literal.
func Append(dst []byte, s string) []byte { return appendString(dst, s) }

// AppendBytes appends s as a JSON string literal.
func AppendBytes(dst, s []byte) []byte { return appendString(dst, s) }

// safe marks the ASCII bytes that go into a JSON string unescaped.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		size := validRuneLen(s[i:min(i+utf8.UTFMax, len(s))])
		if size == 0 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validRuneLen is the length of the valid UTF-8 sequence starting p (at
// most utf8.UTFMax bytes), 0 when p does not start with one.
func validRuneLen[T string | []byte](p T) int {
	// For a []byte of at most 4 bytes the conversion is copied on the
	// stack; for a string it is free.
	r, size := utf8.DecodeRuneInString(string(p))
	if r == utf8.RuneError && size == 1 {
		return 0
	}
	return size
}
