package locks

import (
	"strings"

	"github.com/walcast/walcast/internal/redisprobe"
)

// RedisAccessProbes are the rights the Redis lock store needs on its keys
// (walcast check). The probes name a lock type no application has.
func RedisAccessProbes() []redisprobe.Probe {
	r := Resource{Type: "walcast-check", ID: "0"}
	lock, holders, user := r.Key(), holdersKey(r), userKeyPrefix+"walcast-check"
	return []redisprobe.Probe{
		{What: "run the lock scripts", Args: []any{"evalsha", strings.Repeat("0", 40), "4", lock, deadlinesKey, user, holders}, Rejected: "NOSCRIPT"},
		{What: "read the clock (the scripts date locks by it)", Args: []any{"time"}},
		{What: "read locks", Args: []any{"get", lock}},
		{What: "take locks", Args: []any{"set", lock, "x", "EX", "not-a-number"}, Rejected: "not an integer"},
		{What: "extend locks", Args: []any{"pexpire", lock, "not-a-number"}, Rejected: "not an integer"},
		{What: "schedule lock expiries", Args: []any{"zadd", deadlinesKey, "not-a-number", "x"}, Rejected: "not a valid float"},
		{What: "find expired locks", Args: []any{"zrangebyscore", deadlinesKey, "-inf", "-inf"}},
		{What: "count a user's locks", Args: []any{"zcard", user}},
		{What: "track the tabs holding a lock", Args: []any{"srem", holders, "walcast-check"}},
	}
}
