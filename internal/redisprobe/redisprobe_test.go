package redisprobe_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/broadcast/redisadapter"
	"github.com/walcast/walcast/internal/redisprobe"
	"github.com/walcast/walcast/internal/redistest"
	"github.com/walcast/walcast/locks"
)

// TestProbesAgainstACLUsers: with a real Redis, the user README
// recommends may do everything walcast does, and users lacking keys,
// channels, scripting or writes are denied exactly the probes that need
// them; no probe writes anything. Redis matches a PSUBSCRIBE pattern
// literally against the user's channel patterns, so &socket.io* alone
// does not allow the pub/sub adapter's socket.io#/#*.
func TestProbesAgainstACLUsers(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer admin.Close()
	users := map[string][]any{
		"readme":     {"~socket.io*", "~walcast:*", "~lock:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous"},
		"nopattern":  {"~socket.io*", "~walcast:*", "~lock:*", "&socket.io*", "+@all", "-@dangerous"},
		"nokeys":     {"~other:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous"},
		"nochannels": {"~socket.io*", "~walcast:*", "~lock:*", "resetchannels", "+@all", "-@dangerous"},
		"noscripts":  {"~socket.io*", "~walcast:*", "~lock:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous", "-@scripting"},
		"readonly":   {"%R~socket.io*", "%R~walcast:*", "%R~lock:*", "&socket.io*", "&socket.io#/#*", "+@all", "-@dangerous"},
	}
	for name, rules := range users {
		args := append([]any{"acl", "setuser", name, "on", ">pw"}, rules...)
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("create ACL user %s: %v", name, err)
		}
	}
	lists := map[string][]redisprobe.Probe{
		"streams": redisadapter.StreamsAccessProbes(redisadapter.StreamsOptions{}, "walcast:mark:walcast"),
		"pubsub":  redisadapter.PubSubAccessProbes(redisadapter.PubSubOptions{}),
		"locks":   locks.RedisAccessProbes(),
	}
	usesKey := func(p redisprobe.Probe) bool {
		switch strings.ToLower(p.Args[0].(string)) {
		case "time", "client", "publish":
			return false
		}
		return p.Kind == redisprobe.Command
	}
	usesChannel := func(p redisprobe.Probe) bool {
		return p.Kind != redisprobe.Command || strings.EqualFold(p.Args[0].(string), "publish")
	}
	writes := func(p redisprobe.Probe) bool {
		if p.Kind != redisprobe.Command {
			return false
		}
		switch strings.ToLower(p.Args[0].(string)) {
		case "xadd", "set", "pexpire", "zadd", "srem", "evalsha":
			return true
		}
		return false
	}
	want := map[string]func(redisprobe.Probe) bool{
		"readme":     func(redisprobe.Probe) bool { return false },
		"nopattern":  func(p redisprobe.Probe) bool { return p.Kind == redisprobe.PSubscribe },
		"nokeys":     usesKey,
		"nochannels": usesChannel,
		"noscripts":  func(p redisprobe.Probe) bool { return p.Kind == redisprobe.Command && p.Args[0] == "evalsha" },
		"readonly":   writes,
	}
	for user, denied := range want {
		c := redis.NewClient(&redis.Options{Addr: rs.Addr(), Username: user, Password: "pw"})
		for list, probes := range lists {
			got, err := redisprobe.Run(ctx, c, probes)
			if err != nil {
				t.Errorf("%s, %s: %v", user, list, err)
				continue
			}
			var gotNames, wantNames []string
			for _, d := range got {
				gotNames = append(gotNames, d.Probe.Command())
				if !strings.HasPrefix(d.Answer, "NOPERM") {
					t.Errorf("%s, %s: denial %q", user, list, d.Answer)
				}
			}
			for _, p := range probes {
				if denied(p) {
					wantNames = append(wantNames, p.Command())
				}
			}
			if !slices.Equal(gotNames, wantNames) {
				t.Errorf("%s, %s: denied %q, want %q", user, list, gotNames, wantNames)
			}
		}
		c.Close()
	}
	if n, err := admin.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("the probes left %d keys (%v)", n, err)
	}
}

// TestRunReportsWhatIsNotADenial: an answer that is neither NOPERM nor
// the expected refusal is an error, not a pass.
func TestRunReportsWhatIsNotADenial(t *testing.T) {
	rs := redistest.Run(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "socket.io", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := redisprobe.Run(ctx, c, redisadapter.StreamsAccessProbes(redisadapter.StreamsOptions{}, "walcast:mark:walcast"))
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("a key of the wrong type: %v, want the WRONGTYPE answer as an error", err)
	}
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := redisprobe.Run(ctx, c, locks.RedisAccessProbes()); err == nil {
		t.Error("Redis gone: no error")
	}
}
