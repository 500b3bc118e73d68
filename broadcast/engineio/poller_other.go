//go:build !linux

package engineio

// poller exists on Linux only; elsewhere an idle connection's reader waits
// on a goroutine of its own.
type poller struct{}

func newPoller() (*poller, error) { return nil, errNoPoller }

func (*poller) watch(*wsConn) bool { return false }
func (*poller) forget(*wsConn)     {}
func (*poller) watching() int      { return 0 }
func (*poller) close()             {}
