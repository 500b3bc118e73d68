//go:build linux

package engineio

import (
	"net"
	"syscall"
	"unsafe"
)

// The kernel, called directly: a write that never waits, so a write shard
// can write to any socket from its own loop, and a read that never waits,
// so a reader can tell that the client has nothing more to say and leave
// the connection to the poller. A write or read the kernel cannot take now
// reports errWouldBlock instead of parking the goroutine. Reads go through
// syscall.RawConn, which keeps the descriptor open while they run; writes,
// which are many, use the connection's own guard (wsConn.fdMu).

// rawConnOf returns c's descriptor access, nil when it has none.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawWriter writes without waiting. It is scratch space, one per write
// shard, so connections carry none of it.
type rawWriter struct {
	bufs [][]byte
	iov  []syscall.Iovec
	n    int
	err  error
}

func newRawWriter() *rawWriter { return &rawWriter{} }

// write writes bufs to c in one system call, as much of them as the
// kernel's send buffer takes; a full buffer is errWouldBlock with nothing
// written.
func (w *rawWriter) write(c *wsConn, bufs [][]byte) (int, error) {
	iov := w.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iov = append(iov, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
	}
	w.iov = iov
	w.n, w.err = 0, nil
	c.fdMu.Lock()
	if c.fdClosed || c.fd < 0 {
		c.fdMu.Unlock()
		clear(iov)
		return 0, net.ErrClosed
	}
	w.writev(uintptr(c.fd))
	c.fdMu.Unlock()
	// The vectors point into packets shared by every session: the
	// scratch must not keep the last ones alive.
	clear(iov)
	return w.n, w.err
}

func (w *rawWriter) writev(fd uintptr) {
	for {
		var n uintptr
		var errno syscall.Errno
		if len(w.iov) == 1 {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(w.iov[0].Base)), uintptr(w.iov[0].Len))
		} else {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
		}
		switch errno {
		case 0:
			w.n = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			w.err = errWouldBlock
		default:
			w.err = errno
		}
		return
	}
}

// readNow reads what has arrived into p, at most len(p) bytes: nothing
// yet is errWouldBlock, the peer's FIN (0, nil).
func readNow(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			k, err := syscall.Read(int(fd), p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				rerr = errWouldBlock
			case err != nil:
				rerr = err
			default:
				n = k
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}
