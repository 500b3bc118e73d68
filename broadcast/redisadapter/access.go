package redisadapter

import (
	"strings"

	"github.com/walcast/walcast/internal/redisprobe"
)

// probeName stands for names that exist only for a probe: no instance,
// namespace or session of walcast or Node uses it.
const probeName = "walcast-check"

// noScript is a script id no script has: EVALSHA of it is refused with
// NOSCRIPT once the ACL check let it through.
var noScript = strings.Repeat("0", 40)

// StreamsAccessProbes are the rights the streams adapter needs, with
// opts' stream and channel names and the fence's mark key (walcast
// check).
func StreamsAccessProbes(opts StreamsOptions, markKey string) []redisprobe.Probe {
	opts.defaults()
	stream, prefix := opts.StreamName, opts.ChannelPrefix
	session := stream + ":session:/#" + probeName
	return []redisprobe.Probe{
		// MINID as walcast trims: a Redis before 6.2 answers a syntax
		// error, which Run reports.
		{What: "append events to the stream", Args: []any{"xadd", stream, "MINID", "~", "not-an-id", "*", probeName, "1"}, Rejected: "Invalid stream ID"},
		{What: "read the stream", Args: []any{"xread", "COUNT", "1", "STREAMS", stream, "$"}},
		{What: "read missed events back (connection state recovery)", Args: []any{"xrange", stream, "-", "-", "COUNT", "1"}},
		{What: "run the fenced publish script", Args: []any{"evalsha", noScript, "2", stream, markKey}, Rejected: "NOSCRIPT"},
		{What: "read the clock (the script trims the stream by it)", Args: []any{"time"}},
		{What: "read the high-water mark", Args: []any{"get", markKey}},
		{What: "raise the high-water mark", Args: []any{"set", markKey, "x", "EX", "not-a-number"}, Rejected: "not an integer"},
		{What: "save recovery sessions", Args: []any{"set", session, "x", "EX", "not-a-number"}, Rejected: "not an integer"},
		{What: "load recovery sessions", Args: []any{"get", session}},
		{What: "see how long a recovery session lives", Args: []any{"pttl", session}},
		{What: "know its stream reader's connection", Args: []any{"client", "id"}},
		{What: "ask the other instances (fetchSockets, disconnects)", Args: []any{"publish", prefix + "#/" + probeName + "#", "x"}},
		{What: "hand a resumed session over to another instance", Args: []any{"publish", prefix + "-walcast#/" + probeName + "#", "x"}},
		{What: "hear requests and session hand-overs", Kind: redisprobe.Subscribe, Args: []any{prefix + "#/#", prefix + "-walcast#/#"}},
	}
}

// PubSubAccessProbes are the rights the pub/sub adapter needs with opts'
// channel names (walcast check).
func PubSubAccessProbes(opts PubSubOptions) []redisprobe.Probe {
	key := opts.Key
	if key == "" {
		key = "socket.io" // NewPubSub's default
	}
	return []redisprobe.Probe{
		{What: "broadcast events", Args: []any{"publish", key + "#/" + probeName + "#", "x"}},
		{What: "ask the other instances (disconnects, fetchSockets)", Args: []any{"publish", key + "-request#/" + probeName + "#", "x"}},
		{What: "answer the other instances", Args: []any{"publish", key + "-response#/" + probeName + "#", "x"}},
		{What: "carry account changes to the other instances", Args: []any{"publish", key + "-walcast#/" + probeName + "#", "x"}},
		{What: "hear broadcasts", Kind: redisprobe.PSubscribe, Args: []any{key + "#/#*"}},
		{What: "hear requests, answers and account changes", Kind: redisprobe.Subscribe, Args: []any{key + "-request#/#", key + "-response#/#", key + "-walcast#/#"}},
	}
}
