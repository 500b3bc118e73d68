//go:build !linux

package engineio

// rawIO exists on Linux only; elsewhere every WebSocket connection writes
// through a writer goroutine and reads on a goroutine of its own.
type rawIO struct{}

func newRawIO(any) *rawIO { return nil }

func (*rawIO) writeNow([][]byte) (int, error) { return 0, errWouldBlock }

func (*rawIO) readNow([]byte) (int, error) { return 0, errWouldBlock }
