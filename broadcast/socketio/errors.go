package socketio

import "errors"

// ConnectError is what a middleware returns to refuse a connection with
// extra data: the client's connect_error handler receives an Error whose
// message is Message and whose data property is Data. Any other error refuses
// the connection with its Error() text as the message.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return e.Message }

// Errors reported to emitters and ack callbacks.
var (
	ErrDisconnected = errors.New("socket disconnected")
	ErrAckTimeout   = errors.New("ack timeout")
	ErrBadNamespace = errors.New("unknown namespace")
)

// Disconnect reasons, as the reference server names them. The ones a
// browser's "disconnect" handler sees are its own: "io server disconnect"
// after a server-side Disconnect, "transport close" and so on.
const (
	ReasonTransportClose         = "transport close"
	ReasonTransportError         = "transport error"
	ReasonPingTimeout            = "ping timeout"
	ReasonParseError             = "parse error"
	ReasonServerShuttingDown     = "server shutting down"
	ReasonForcedClose            = "forced close"
	ReasonForcedServerClose      = "forced server close"
	ReasonClientNamespaceDisconn = "client namespace disconnect"
	ReasonServerNamespaceDisconn = "server namespace disconnect"
)
