// Package redisadapter joins walcast instances (and Node socket.io servers)
// through Redis: socketio.Adapter implementations whose broadcasts reach the
// sockets of every instance. Pass Streams.NewAdapter or PubSub.NewAdapter as
// socketio.Config.NewAdapter; NewClient opens the Redis client from a
// redis:// or rediss:// URL (ACL user and password in the userinfo).
//
// # Redis Streams (default), wire-compatible with @socket.io/redis-streams-adapter 0.3.1
//
// A broadcast is one XADD to the stream (default key "socket.io") with the
// fields uid, nsp, type ("3", BROADCAST) and data: the JSON text
// {"packet":{"type":2,"data":[event, args...],"nsp":nsp},"opts":{"rooms":[],
// "except":[],"flags":{}}}, or, when an argument is binary, that object as
// msgpack in base64 (binary values as msgpack bin), as the Node adapter
// decides with hasBinary. Every instance reads the stream with XREAD from the
// last id it saw and delivers to its own sockets, this one included, so local
// and remote sockets see one order; the packet is encoded for the sockets once
// per event. Entries of type 4/5/6 (socketsJoin, socketsLeave,
// disconnectSockets from Node peers) are applied too. Appends run a Lua script
// that trims by age (XADD MINID ~, now - Window, by Redis's clock) and, given
// a Fence, appends only above a high-water mark and raises it in the same
// step; the entry then carries the extra field "walcast-pos" (Node adapters
// ignore unknown fields). PublishBatch fences a whole transaction in one
// script: all its entries (positions LSN/0, LSN/1, ...) or none, the mark then
// at the last (PublishBatches does the same for several transactions in one
// call, fencing each on its own, so a reader that fell behind appends what it
// has read in one round trip); walcast keeps that mark at "walcast:mark:<slot>" and reads it
// back (ReadMark) to resume replication after it. A batch item with
// Disconnect is a disconnectSockets entry (type 6, data
// {"opts":{"rooms":[...],"except":[...],"flags":{}},"close":true}, as the
// Node adapter writes it): walcast revokes a user's sockets on every
// instance that way, fenced and ordered with the transaction's events. With
// close true walcast closes the sockets' connections without a DISCONNECT
// packet (socketio.Socket.Disconnect), so the official client reconnects
// and meets the handshake's check; Node peers send the DISCONNECT first. A
// batch item with State is a walcast-only entry {uid, walcast-state,
// walcast-pos} without nsp, which Node's adapter skips (it hands only
// entries with an nsp to its namespaces) and StreamsOptions.OnState
// receives. Like the 0.3 Node adapter, each namespace also
// subscribes to the pub/sub channels "socket.io#<nsp>#" and
// "socket.io#<nsp>#<uid>#" that carry requests and responses (and through
// which Node peers count servers with PUBSUB NUMSUB); walcast answers
// fetchSockets and acknowledged broadcasts there, not serverSideEmit.
//
// # Redis pub/sub, wire-compatible with @socket.io/redis-adapter 8.x
//
// A broadcast is PUBLISH of the msgpack tuple [uid, packet, opts] on
// "socket.io#<nsp>#", or "socket.io#<nsp>#<room>#" when it targets exactly one
// room; every instance PSUBSCRIBEs "socket.io#<nsp>#*" and delivers what it
// receives, its own messages included, so @socket.io/redis-emitter reaches
// walcast's clients with all-clients as well as room broadcasts. Join, leave
// and disconnect requests with opts on "socket.io-request#<nsp>#" (what the
// emitter's socketsJoin/socketsLeave/disconnectSockets send) are applied, and
// Node peers' fetchSockets, allRooms and sockets requests are answered on
// "socket.io-response#<nsp>#"; PublishState hands walcast-only state to
// every walcast instance on "socket.io-walcast#<nsp>#", a channel no Node
// adapter subscribes to. RequestDisconnect publishes such a disconnect
// request itself (walcast's revocations in pub/sub mode); every instance,
// the sender included, applies it.
// Pub/sub keeps nothing: what is published while an instance is cut off from
// Redis never reaches its sockets. An application that still emits its own
// events through the same Redis doubles them and bypasses walcast's audiences.
//
// # Trust
//
// Redis is a trust boundary: any client allowed on those keys and channels
// can broadcast into any room, reserved ones (user:, role:) included, and
// disconnect sockets. Entries and messages that do not decode are logged and
// skipped; nothing read from Redis can panic the server. Restrict access with
// an ACL user limited to the keys "socket.io*" (plus the mark) and the
// channels "socket.io*"; PSUBSCRIBE patterns are checked literally, so the
// pub/sub adapter also needs "&socket.io#/#*" (one per namespace).
//
// # Not supported
//
// serverSideEmit from Node peers is not answered (a Node caller waiting for
// acknowledgements times out when walcast is in the cluster); acknowledged
// broadcasts over the pub/sub adapter, and socket-id based remoteJoin/Leave/
// Disconnect requests, are skipped. Apart from the disconnect requests
// above, walcast sends no requests: its Sockets/SocketsJoin/DisconnectSockets
// stay local.
//
// # Connection state recovery
//
// With socketio.Config.Recovery set, the streams adapter is the shared
// history: a broadcast's offset (the extra last argument clients keep) is its
// stream entry id, a session is stored as JSON {sid,pid,owner,rooms} at
// "<StreamName>:session:<nsp>#<pid>" (SET with the window as TTL; saved when the
// socket connects, when its rooms change, periodically and at disconnect, so
// a SIGKILLed instance's sessions survive), and any instance restores it by
// reading the entries after the offset (XRANGE) that the session's rooms
// select. An offset no longer in the stream (trimmed by Window, which must
// be at least the recovery window) or a disconnectSockets entry for the
// session since the offset make the restore fail: the client gets a fresh
// session. A session resumed on one instance while its old socket is still
// connected on another is taken over there at once: the restoring instance
// publishes JSON {uid, sid, gen} on "<ChannelPrefix>-walcast#<nsp>#", a
// channel no Node adapter subscribes to, and the instance holding the old
// socket closes it without a DISCONNECT packet and without saving or dropping
// the session (see takeover.go). The pub/sub adapter keeps no shared history:
// it recovers from each instance's memory only, so a client that comes back
// to another instance starts afresh, and no takeover notice is needed (the
// old socket can only be on the instance that restores).
package redisadapter
