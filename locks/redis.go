package locks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys besides the locks themselves. They are outside the lock:{type}:{id}
// namespace so no resource can ever collide with them.
const (
	// deadlinesKey is a sorted set: member = lock key, score = the epoch ms
	// at which the current grant expires. It is how expiry gets announced
	// without keyspace notifications (which need a server config change and
	// would fire on every instance).
	deadlinesKey = "walcast:locks:deadlines"
	// userKeyPrefix + UserID.JSON() is a sorted set of the locks a user holds,
	// scored by deadline, for the per-user cap. Entries whose score has passed
	// are stale by construction and pruned before counting.
	userKeyPrefix = "walcast:locks:user:"
	// holdersKeyPrefix + "type:id" is the set of lock sessions holding a
	// lock, kept only when locks are released on disconnect; it lives as
	// long as the lock.
	holdersKeyPrefix = "walcast:locks:holders:"
)

// The scripts read the clock with TIME so every instance shares Redis's
// clock (no skew between hosts) and the key's PX and its deadline score are
// computed from the same instant. The owner is recognised by the value's
// prefix {"userId":<json>, which this package always writes first (as did
// the original Node server), so no JSON decoding happens inside Redis.
// The sweep touches keys it finds in the deadline set, which is fine on a
// single Redis or a primary with replicas; Redis Cluster is not supported.

// acquireScript: KEYS = lock, deadlines, user set, holders. ARGV = userId
// JSON, username JSON, ttl ms, limit (0 = none), mode ("acquire" |
// "extend"), lock session ("" = not tracked).
// Reply: {code, value}; code 1 refreshed, 2 taken, 3 held by other,
// 4 limit reached, 5 not held.
var acquireScript = redis.NewScript(`
-- Every entry of a user set expires within ttl of its last write, so the
-- set may go then too: a user who never returns leaves nothing behind.
-- (Instances configured with different TTLs could expire it early, which
-- only loosens the cap; the locks themselves are unaffected.)
-- Ordered so the common answers call Redis as little as possible: a lock
-- held by someone else is one GET; the cap's set is pruned of expired
-- entries only when it looks full.
local ttl = tonumber(ARGV[3])
local prefix = '{"userId":' .. ARGV[1] .. ','
-- The lock sessions holding the grant (only when walcast releases locks
-- on disconnect): a session ending frees it only when it was the last.
local function hold(ttl)
  if ARGV[6] ~= '' then
    redis.call('SADD', KEYS[4], ARGV[6])
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
end
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #prefix) ~= prefix then
  return {3, cur}
end
if not cur and ARGV[5] == 'extend' then
  return {5}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if cur then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
  redis.call('ZADD', KEYS[3], now + ttl, KEYS[1])
  redis.call('PEXPIRE', KEYS[3], ttl)
  hold(ttl)
  return {1, cur}
end
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('ZCARD', KEYS[3]) >= limit then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= limit then
    return {4}
  end
end
local val = prefix .. '"username":' .. ARGV[2] .. ',"acquiredAt":' .. string.format('%d', now) .. '}'
redis.call('SET', KEYS[1], val, 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
redis.call('ZADD', KEYS[3], now + ttl, KEYS[1])
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('DEL', KEYS[4]) -- holders of an earlier, expired grant
hold(ttl)
return {2, val}
`)

// releaseIfOwner is the body of both release scripts: KEYS = lock,
// deadlines, user set, holders; ARGV[1] = userId JSON. Reply: {code,
// value}; code 1 released, 2 was free, 3 not owner.
const releaseIfOwner = `
local cur = redis.call('GET', KEYS[1])
if not cur then
  return {2}
end
local prefix = '{"userId":' .. ARGV[1] .. ','
if string.sub(cur, 1, #prefix) ~= prefix then
  return {3, cur}
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return {1, cur}
`

// releaseScript frees the lock if the caller holds it (releaseIfOwner).
var releaseScript = redis.NewScript(releaseIfOwner)

// releaseSessionScript: as releaseScript, with ARGV[2] = lock session,
// after forgetting the session among the holders and only if no other
// session holds the lock (reply {4}: kept).
var releaseSessionScript = redis.NewScript(`
redis.call('SREM', KEYS[4], ARGV[2])
if redis.call('SCARD', KEYS[4]) > 0 then
  return {4}
end
` + releaseIfOwner)

// sweepScript: KEYS = deadlines. ARGV = limit. Returns the lock keys whose
// grant expired, each removed from the deadline set in the same atomic step,
// which is the exactly-once claim: a second instance running the sweep
// afterwards no longer finds them. A key still alive (its deadline was moved
// by a refresh from an older walcast, or PTTL rounding) is rescored instead.
var sweepScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local gone = {}
for _, k in ipairs(due) do
  local pttl = redis.call('PTTL', k)
  if pttl >= 0 then
    -- Still there. 0 means "less than a millisecond left" (the deadline is
    -- in whole milliseconds of TIME, the key's expiry finer): dropping the
    -- entry then would lose the announcement for good.
    redis.call('ZADD', KEYS[1], now + pttl + 1, k)
  else
    redis.call('ZREM', KEYS[1], k)
    if pttl == -2 then
      table.insert(gone, k)
    end
  end
end
return gone
`)

// heldScript counts the grants whose deadline is still ahead, by Redis's
// clock. KEYS = deadlines.
var heldScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// RedisStore keeps locks in Redis so every walcast instance sharing it sees
// the same locks.
type RedisStore struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewRedisStore uses rdb (a *redis.Client, or anything with scripting and
// GET). ttl <= 0 means DefaultTTL. Scripts are sent with EVALSHA and re-sent
// with EVAL on NOSCRIPT, so a restarted (emptied) Redis needs nothing from us.
func NewRedisStore(rdb redis.UniversalClient, ttl time.Duration) *RedisStore {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &RedisStore{rdb: rdb, ttl: ttl}
}

// NewRedisClient opens a client for REDIS_URL with timeouts fit for lock
// acks: a browser waits for the ack, so a dead Redis must turn into an
// error within about a second instead of a long retry loop.
func NewRedisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	opt.DialTimeout = 500 * time.Millisecond
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	// One retry covers the pooled connection that went stale when Redis
	// restarted; more would only delay the "unavailable" ack.
	opt.MaxRetries = 1
	// go-redis retries a failed dial 5 times 100ms apart by default: half a
	// second per ack while Redis is down. Refused connections are final.
	opt.DialerRetries = 2
	opt.DialerRetryTimeout = 20 * time.Millisecond
	return redis.NewClient(opt), nil
}

// TTL implements Store.
func (s *RedisStore) TTL() time.Duration { return s.ttl }

func userKey(u UserID) string { return userKeyPrefix + u.raw }

// holdersKey is the set of lock sessions holding r (see ReleaseSession).
func holdersKey(r Resource) string { return holdersKeyPrefix + r.Type + ":" + r.ID }

// Acquire implements Store.
func (s *RedisStore) Acquire(ctx context.Context, r Resource, o Owner, limit int) (AcquireResult, error) {
	res, err := s.acquire(ctx, r, o, limit, "acquire")
	if err != nil {
		return AcquireResult{}, fmt.Errorf("acquire %s: %w", r, err)
	}
	return res, nil
}

// Extend implements Store.
func (s *RedisStore) Extend(ctx context.Context, r Resource, o Owner) (AcquireResult, error) {
	res, err := s.acquire(ctx, r, o, 0, "extend")
	if err != nil {
		return AcquireResult{}, fmt.Errorf("extend %s: %w", r, err)
	}
	return res, nil
}

func (s *RedisStore) acquire(ctx context.Context, r Resource, o Owner, limit int, mode string) (AcquireResult, error) {
	if o.UserID.IsZero() {
		return AcquireResult{}, ErrBadUserID
	}
	nameJSON, err := json.Marshal(o.Username)
	if err != nil {
		return AcquireResult{}, fmt.Errorf("encode username: %w", err)
	}
	reply, err := acquireScript.Run(ctx, s.rdb,
		[]string{r.Key(), deadlinesKey, userKey(o.UserID), holdersKey(r)},
		o.UserID.raw, string(nameJSON), s.ttl.Milliseconds(), limit, mode, o.Session,
	).Slice()
	if err != nil {
		return AcquireResult{}, err
	}
	code, val, err := scriptReply(reply)
	if err != nil {
		return AcquireResult{}, err
	}
	var out AcquireResult
	switch code {
	case 1:
		out.Outcome = Refreshed
	case 2:
		out.Outcome = Taken
	case 3:
		out.Outcome = HeldByOther
	case 4:
		return AcquireResult{Outcome: LimitReached}, nil
	case 5:
		return AcquireResult{Outcome: NotHeld}, nil
	default:
		return AcquireResult{}, fmt.Errorf("acquire script: unknown reply code %d", code)
	}
	if out.Holder, err = decodeHolder([]byte(val)); err != nil {
		return AcquireResult{}, err
	}
	return out, nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, r Resource, u UserID) (ReleaseResult, error) {
	if u.IsZero() {
		return ReleaseResult{}, fmt.Errorf("release %s: %w", r, ErrBadUserID)
	}
	reply, err := releaseScript.Run(ctx, s.rdb,
		[]string{r.Key(), deadlinesKey, userKey(u), holdersKey(r)}, u.raw).Slice()
	if err != nil {
		return ReleaseResult{}, fmt.Errorf("release %s: %w", r, err)
	}
	res, _, err := releaseReply(r, reply)
	return res, err
}

// ReleaseSession implements Store.
func (s *RedisStore) ReleaseSession(ctx context.Context, r Resource, u UserID, session string) (ReleaseResult, bool, error) {
	if u.IsZero() {
		return ReleaseResult{}, false, fmt.Errorf("release %s: %w", r, ErrBadUserID)
	}
	reply, err := releaseSessionScript.Run(ctx, s.rdb,
		[]string{r.Key(), deadlinesKey, userKey(u), holdersKey(r)}, u.raw, session).Slice()
	if err != nil {
		return ReleaseResult{}, false, fmt.Errorf("release %s for a session: %w", r, err)
	}
	return releaseReply(r, reply)
}

// releaseReply reads the reply of releaseScript or releaseSessionScript.
func releaseReply(r Resource, reply []any) (ReleaseResult, bool, error) {
	code, val, err := scriptReply(reply)
	if err != nil {
		return ReleaseResult{}, false, fmt.Errorf("release %s: %w", r, err)
	}
	var out ReleaseResult
	switch code {
	case 4:
		return ReleaseResult{}, true, nil
	case 1:
		out.Outcome = Released
	case 2:
		return ReleaseResult{Outcome: WasFree}, false, nil
	case 3:
		out.Outcome = NotOwner
	default:
		return ReleaseResult{}, false, fmt.Errorf("release %s: unknown reply code %d", r, code)
	}
	if out.Holder, err = decodeHolder([]byte(val)); err != nil {
		// Released is done either way; a foreign value only costs the name.
		if out.Outcome == Released {
			return out, false, nil
		}
		return ReleaseResult{}, false, fmt.Errorf("release %s: %w", r, err)
	}
	return out, false, nil
}

// Check implements Store.
func (s *RedisStore) Check(ctx context.Context, r Resource) (Holder, bool, error) {
	val, err := s.rdb.Get(ctx, r.Key()).Bytes()
	if errors.Is(err, redis.Nil) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("check %s: %w", r, err)
	}
	h, err := decodeHolder(val)
	if err != nil {
		return Holder{}, false, fmt.Errorf("check %s: %w", r, err)
	}
	return h, true, nil
}

// SweepExpired implements Store.
func (s *RedisStore) SweepExpired(ctx context.Context, limit int) ([]Resource, error) {
	if limit <= 0 {
		limit = 1000
	}
	keys, err := sweepScript.Run(ctx, s.rdb, []string{deadlinesKey}, limit).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("sweep expired locks: %w", err)
	}
	out := make([]Resource, 0, len(keys))
	for _, k := range keys {
		r, err := ParseKey(k)
		if err != nil {
			continue // not ours to announce; already removed from the set
		}
		out = append(out, r)
	}
	return out, nil
}

// Held implements Store: the grants in the deadline set not yet expired.
func (s *RedisStore) Held(ctx context.Context) (int, error) {
	n, err := heldScript.Run(ctx, s.rdb, []string{deadlinesKey}).Int()
	if err != nil {
		return 0, fmt.Errorf("count held locks: %w", err)
	}
	return n, nil
}

// scriptReply unpacks {code[, value]}.
func scriptReply(reply []any) (int64, string, error) {
	if len(reply) == 0 {
		return 0, "", errors.New("empty script reply")
	}
	code, ok := reply[0].(int64)
	if !ok {
		return 0, "", fmt.Errorf("script reply code %T, want integer", reply[0])
	}
	if len(reply) < 2 {
		return code, "", nil
	}
	val, ok := reply[1].(string)
	if !ok {
		return 0, "", fmt.Errorf("script reply value %T, want string", reply[1])
	}
	return code, val, nil
}

// Interface check.
var (
	_ Store = (*RedisStore)(nil)
	_ Store = (*MemoryStore)(nil)
)
