//go:build !linux

package engineio

import (
	"net"
	"syscall"
)

// Off Linux every WebSocket connection writes through a writer goroutine
// and reads on a goroutine of its own.

func rawConnOf(net.Conn) syscall.RawConn { return nil }

type rawWriter struct{ bufs [][]byte }

func newRawWriter() *rawWriter { return &rawWriter{} }

func (*rawWriter) write(*wsConn, [][]byte) (int, error) { return 0, errWouldBlock }

func readNow(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
