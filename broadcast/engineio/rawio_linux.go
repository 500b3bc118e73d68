//go:build linux

package engineio

import (
	"syscall"
	"unsafe"
)

// rawIO is the part of a WebSocket connection that calls the kernel
// directly: a write that never waits, so a broadcaster can write to a
// socket from its own goroutine, and a read that never waits, so a reader
// can tell that the client has nothing more to say and leave the
// connection to the poller. Both go through syscall.RawConn, which keeps
// the descriptor open while they run; a write or read the kernel cannot
// take now reports errWouldBlock instead of parking the goroutine.
type rawIO struct {
	rc syscall.RawConn
	// A reader and a writer use the connection at once: each has its own
	// fields.
	iov  []syscall.Iovec
	wn   int
	werr error
	buf  []byte // what readNow fills
	rn   int
	rerr error
	// made once per connection, so a call allocates nothing
	writeFn func(fd uintptr) bool
	readFn  func(fd uintptr) bool
}

func newRawIO(c any) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{rc: rc}
	r.writeFn = r.writev
	r.readFn = r.read
	return r
}

// writeNow writes bufs in one system call, as much of them as the kernel's
// send buffer takes; a full buffer is errWouldBlock with nothing written.
func (r *rawIO) writeNow(bufs [][]byte) (int, error) {
	iov := r.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			iov = append(iov, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
	}
	r.iov = iov
	r.wn, r.werr = 0, nil
	err := r.rc.Write(r.writeFn)
	// The vectors point into packets shared by every session; an idle
	// connection must not keep the last ones alive.
	clear(iov)
	if err != nil {
		return 0, err
	}
	return r.wn, r.werr
}

func (r *rawIO) writev(fd uintptr) bool {
	for {
		var n uintptr
		var errno syscall.Errno
		if len(r.iov) == 1 {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(r.iov[0].Base)), uintptr(r.iov[0].Len))
		} else {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
		}
		switch errno {
		case 0:
			r.wn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.werr = errWouldBlock
		default:
			r.werr = errno
		}
		// true: never wait for the socket to become writable here
		return true
	}
}

// readNow reads what has arrived into p, at most len(p) bytes; nothing
// arrived yet is errWouldBlock, the peer's FIN io.EOF-like (0, nil).
func (r *rawIO) readNow(p []byte) (int, error) {
	r.buf, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	r.buf = nil
	if err != nil {
		return 0, err
	}
	return r.rn, r.rerr
}

func (r *rawIO) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.rerr = errWouldBlock
		case err != nil:
			r.rerr = err
		default:
			r.rn = n
		}
		return true
	}
}

// fd runs f with the connection's descriptor, which stays open meanwhile
// (a closed connection's number may already belong to another one).
func (r *rawIO) fd(f func(fd uintptr)) error { return r.rc.Control(f) }
