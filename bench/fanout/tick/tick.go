// Package tick is the event the fan-out benchmark broadcasts: a JSON object
// of a chosen size that carries the rung it belongs to and the wall-clock send
// time, in a fixed field order so the load client can read both without a
// JSON parser:
//
//	{"rung":3,"seq":17,"ts":1732572366123456789,"pad":"xxxx…"}
//
// The Node reference server (bench/fanout/node/server.js) writes the same
// layout; the Socket.IO servers emit it as the event ["tick", <object>], the
// Centrifuge server publishes the object itself to channel "bench".
package tick

import (
	"errors"
	"strconv"
)

// Event is the name both servers emit.
const Event = "tick"

// Append appends the JSON object for one event to dst. The object is size
// bytes long unless size is smaller than the fixed fields need.
func Append(dst []byte, rung, seq int, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"rung":`...)
	dst = strconv.AppendInt(dst, int64(rung), 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"pad":"`...)
	pad := size - (len(dst) - start) - len(`"}`)
	for ; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// eventPrefix is how a Socket.IO EVENT for the default namespace carrying a
// tick starts, after the Engine.IO message type "4".
const eventPrefix = `2["tick",`

// PushPrefix is how a Centrifuge JSON push of a tick published to channel
// "bench" starts: the publication's data is the tick object itself.
const PushPrefix = `{"push":{"channel":"bench","pub":{"data":`

var errNotTick = errors.New("not a tick event")

// Header reads rung and ts from an Engine.IO message payload such as
// `42["tick",{"rung":3,"seq":17,"ts":…`. It looks only at the fixed prefix,
// so it costs a few dozen byte comparisons, not a JSON parse.
func Header(msg []byte) (rung int, ts int64, err error) {
	if len(msg) < 1+len(eventPrefix) || msg[0] != '4' || string(msg[1:1+len(eventPrefix)]) != eventPrefix {
		return 0, 0, errNotTick
	}
	return Fields(msg[1+len(eventPrefix):])
}

// PushHeader reads rung and ts from one Centrifuge JSON push of a tick
// (PushPrefix, then the object).
func PushHeader(msg []byte) (rung int, ts int64, err error) {
	if len(msg) < len(PushPrefix) || string(msg[:len(PushPrefix)]) != PushPrefix {
		return 0, 0, errNotTick
	}
	return Fields(msg[len(PushPrefix):])
}

// Fields reads rung and ts from the start of a tick object,
// `{"rung":3,"seq":17,"ts":…`, whatever follows them.
func Fields(obj []byte) (rung int, ts int64, err error) {
	rest, err := skipLiteral(obj, `{"rung":`)
	if err != nil {
		return 0, 0, errNotTick
	}
	r, rest, err := leadingInt(rest)
	if err != nil {
		return 0, 0, err
	}
	rest, err = skipLiteral(rest, `,"seq":`)
	if err != nil {
		return 0, 0, err
	}
	if _, rest, err = leadingInt(rest); err != nil {
		return 0, 0, err
	}
	if rest, err = skipLiteral(rest, `,"ts":`); err != nil {
		return 0, 0, err
	}
	t, _, err := leadingInt(rest)
	if err != nil {
		return 0, 0, err
	}
	if r > int64(^uint(0)>>1) {
		return 0, 0, errors.New("tick rung out of range")
	}
	return int(r), t, nil
}

// leadingInt parses the non-negative decimal at the start of b.
func leadingInt(b []byte) (int64, []byte, error) {
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if v > (1<<63-1-d)/10 {
			return 0, nil, errors.New("tick field overflows int64")
		}
		v = v*10 + d
	}
	if i == 0 {
		return 0, nil, errors.New("tick field: expected digits")
	}
	return v, b[i:], nil
}

func skipLiteral(b []byte, lit string) ([]byte, error) {
	if len(b) < len(lit) || string(b[:len(lit)]) != lit {
		return nil, errors.New("tick: expected " + lit)
	}
	return b[len(lit):], nil
}
