package cdc

import "encoding/json"

// validJSON reports whether s is one JSON value (RFC 8259), like
// json.Valid, which a profile showed to be a third of the decoder's time on
// rows with a jsonb column: its scanner calls a state function per byte.
// This one runs tight loops over strings and numbers and keeps the open
// containers in a fixed stack; documents nested deeper than that stack are
// handed to json.Valid.
func validJSON(s []byte) bool {
	var stack [32]byte // '{' or '[' of each open container
	depth := 0
	i := skipJSONSpace(s, 0)
	for {
		// A value is expected at s[i].
		if i >= len(s) {
			return false
		}
		switch c := s[i]; {
		case c == '{' || c == '[':
			if depth == len(stack) {
				return json.Valid(s)
			}
			stack[depth] = c
			depth++
			i = skipJSONSpace(s, i+1)
			if i < len(s) && s[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				depth--
				i++
				break
			}
			if c == '{' {
				if i = jsonString(s, i); i < 0 {
					return false
				}
				if i = skipJSONSpace(s, i); i >= len(s) || s[i] != ':' {
					return false
				}
				i = skipJSONSpace(s, i+1)
			}
			continue
		case c == '"':
			if i = jsonString(s, i); i < 0 {
				return false
			}
		case c == '-' || isDigit(c):
			if i = jsonNumber(s, i); i < 0 {
				return false
			}
		case c == 't':
			if i = jsonLiteral(s, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = jsonLiteral(s, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = jsonLiteral(s, i, "null"); i < 0 {
				return false
			}
		default:
			return false
		}
		// After a value: close containers, or a separator and the next value.
		for {
			i = skipJSONSpace(s, i)
			if depth == 0 {
				return i == len(s)
			}
			if i >= len(s) {
				return false
			}
			open := stack[depth-1]
			if s[i] == open+2 {
				depth--
				i++
				continue
			}
			if s[i] != ',' {
				return false
			}
			i = skipJSONSpace(s, i+1)
			if open == '{' {
				if i = jsonString(s, i); i < 0 {
					return false
				}
				if i = skipJSONSpace(s, i); i >= len(s) || s[i] != ':' {
					return false
				}
				i = skipJSONSpace(s, i+1)
			}
			break
		}
	}
}

func skipJSONSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// jsonString checks the string starting at s[i] (a '"') and returns the
// index after its closing quote, or -1.
func jsonString(s []byte, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(s) {
				return -1
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) {
					return -1
				}
				for _, h := range s[i+1 : i+5] {
					if _, ok := unhex(h); !ok {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// jsonNumber returns the index after the number starting at s[i], or -1.
func jsonNumber(s []byte, i int) int {
	j := i
	if s[j] == '-' {
		j++
	}
	for j < len(s) && (isDigit(s[j]) || s[j] == '.' || s[j] == 'e' || s[j] == 'E' || s[j] == '+' || s[j] == '-') {
		j++
	}
	if !isJSONNumber(s[i:j]) {
		return -1
	}
	return j
}

func jsonLiteral(s []byte, i int, lit string) int {
	if len(s)-i < len(lit) || string(s[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
