package locks

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStoreSemantics(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			st := be.newStore(t)
			r := Resource{"member", "m-1"}
			alice := Owner{UserID: NumericUserID(1), Username: "alice"}
			bob := Owner{UserID: NumericUserID(2), Username: "bob"}

			if _, ok, err := st.Check(bg, r); err != nil || ok {
				t.Fatalf("check free: ok=%v err=%v", ok, err)
			}
			if res, err := st.Extend(bg, r, alice); err != nil || res.Outcome != NotHeld {
				t.Fatalf("extend free = %v, %v; want not held", res.Outcome, err)
			}
			taken, err := st.Acquire(bg, r, alice, 0)
			if err != nil || taken.Outcome != Taken || taken.Holder.Username != "alice" || taken.Holder.UserID != alice.UserID {
				t.Fatalf("acquire free = %+v, %v", taken, err)
			}
			if taken.Holder.AcquiredAt < time.Now().Add(-time.Minute).UnixMilli() {
				t.Fatalf("acquiredAt %d is not a recent epoch ms", taken.Holder.AcquiredAt)
			}
			time.Sleep(5 * time.Millisecond) // so a rewritten acquiredAt would differ
			again, err := st.Acquire(bg, r, Owner{UserID: alice.UserID, Username: "alice-renamed"}, 0)
			if err != nil || again.Outcome != Refreshed || again.Holder != taken.Holder {
				t.Fatalf("re-acquire = %+v, %v; want refreshed with the original holder %+v", again, err, taken.Holder)
			}
			if res, err := st.Acquire(bg, r, bob, 0); err != nil || res.Outcome != HeldByOther || res.Holder != taken.Holder {
				t.Fatalf("conflicting acquire = %+v, %v", res, err)
			}
			if res, err := st.Extend(bg, r, bob); err != nil || res.Outcome != HeldByOther {
				t.Fatalf("extend by other = %+v, %v", res, err)
			}
			if res, err := st.Release(bg, r, bob.UserID); err != nil || res.Outcome != NotOwner || res.Holder.Username != "alice" {
				t.Fatalf("release by other = %+v, %v", res, err)
			}
			if h, ok, err := st.Check(bg, r); err != nil || !ok || h != taken.Holder {
				t.Fatalf("check after non-owner release = %+v %v %v", h, ok, err)
			}
			if res, err := st.Release(bg, r, alice.UserID); err != nil || res.Outcome != Released {
				t.Fatalf("owner release = %+v, %v", res, err)
			}
			if res, err := st.Release(bg, r, alice.UserID); err != nil || res.Outcome != WasFree {
				t.Fatalf("release free = %+v, %v", res, err)
			}
			if res, err := st.Acquire(bg, r, bob, 0); err != nil || res.Outcome != Taken {
				t.Fatalf("acquire after release = %+v, %v", res, err)
			}
			// A string id and a number id with the same digits are the same
			// owner: tokens differ in how they spell an id, users do not.
			sid, _ := StringUserID("2")
			if res, err := st.Release(bg, r, sid); err != nil || res.Outcome != Released {
				t.Fatalf("release by string id \"2\" of number id 2's lock = %+v, %v", res, err)
			}
			if expired, err := st.SweepExpired(bg, 0); err != nil || len(expired) != 0 {
				t.Fatalf("sweep with nothing expired = %v, %v", expired, err)
			}
		})
	}
}

func TestStoreLimit(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			st := be.newStore(t)
			alice := Owner{UserID: NumericUserID(1), Username: "alice"}
			bob := Owner{UserID: NumericUserID(2), Username: "bob"}
			for i := 0; i < 3; i++ {
				if res, err := st.Acquire(bg, Resource{"member", fmt.Sprint(i)}, alice, 3); err != nil || res.Outcome != Taken {
					t.Fatalf("acquire %d = %+v, %v", i, res, err)
				}
			}
			if res, err := st.Acquire(bg, Resource{"member", "3"}, alice, 3); err != nil || res.Outcome != LimitReached {
				t.Fatalf("4th acquire with limit 3 = %+v, %v", res, err)
			}
			// Refreshing a held lock is not a new one.
			if res, err := st.Acquire(bg, Resource{"member", "0"}, alice, 3); err != nil || res.Outcome != Refreshed {
				t.Fatalf("refresh at the limit = %+v, %v", res, err)
			}
			// The cap is per user.
			if res, err := st.Acquire(bg, Resource{"member", "3"}, bob, 3); err != nil || res.Outcome != Taken {
				t.Fatalf("other user's acquire = %+v, %v", res, err)
			}
			if _, err := st.Release(bg, Resource{"member", "1"}, alice.UserID); err != nil {
				t.Fatal(err)
			}
			if res, err := st.Acquire(bg, Resource{"member", "4"}, alice, 3); err != nil || res.Outcome != Taken {
				t.Fatalf("acquire after a release frees a slot = %+v, %v", res, err)
			}
		})
	}
}

// TestStoreLimitForgetsExpired: locks that expired no longer count toward
// the cap (the Redis script prunes the user's set only when it looks full).
func TestStoreLimitForgetsExpired(t *testing.T) {
	for _, be := range backends(t, 300*time.Millisecond) {
		t.Run(be.name, func(t *testing.T) {
			st := be.newStore(t)
			alice := Owner{UserID: NumericUserID(1), Username: "alice"}
			for i := 0; i < 3; i++ {
				if res, err := st.Acquire(bg, Resource{"member", fmt.Sprint(i)}, alice, 3); err != nil || res.Outcome != Taken {
					t.Fatalf("acquire %d = %+v, %v", i, res, err)
				}
			}
			if res, err := st.Acquire(bg, Resource{"member", "3"}, alice, 3); err != nil || res.Outcome != LimitReached {
				t.Fatalf("4th acquire with limit 3 = %+v, %v", res, err)
			}
			time.Sleep(600 * time.Millisecond) // all three expire
			for i := 3; i < 6; i++ {
				if res, err := st.Acquire(bg, Resource{"member", fmt.Sprint(i)}, alice, 3); err != nil || res.Outcome != Taken {
					t.Fatalf("acquire %d after the first three expired = %+v, %v", i, res, err)
				}
			}
			if res, err := st.Acquire(bg, Resource{"member", "9"}, alice, 3); err != nil || res.Outcome != LimitReached {
				t.Fatalf("cap after the expired were pruned = %+v, %v", res, err)
			}
		})
	}
}

// TestStoreRace: 100 users race for one lock, through one store (memory)
// or 100 clients' worth of two independent Redis stores: exactly one wins.
func TestStoreRace(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			stores := []Store{be.newStore(t), be.newStore(t)}
			r := Resource{"member", "contended"}
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([]AcquireResult, 100)
			errs := make([]error, 100)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = stores[i%2].Acquire(bg, r, Owner{UserID: NumericUserID(int64(i + 1)), Username: fmt.Sprint("user", i+1)}, 0)
				}()
			}
			close(start)
			wg.Wait()
			winners := 0
			var winner string
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("racer %d: %v", i, errs[i])
				}
				switch res.Outcome {
				case Taken:
					winners++
					winner = res.Holder.Username
				case HeldByOther:
				default:
					t.Fatalf("racer %d: outcome %v", i, res.Outcome)
				}
			}
			if winners != 1 {
				t.Fatalf("%d winners, want exactly 1", winners)
			}
			for i, res := range results {
				if res.Outcome == HeldByOther && res.Holder.Username != winner {
					t.Fatalf("racer %d was told %q holds it; the winner is %q", i, res.Holder.Username, winner)
				}
			}
			if h, ok, err := stores[0].Check(bg, r); err != nil || !ok || h.Username != winner {
				t.Fatalf("check = %+v %v %v; want %q", h, ok, err, winner)
			}
		})
	}
}

// TestRedisValueFormat: the stored value is the contract's JSON, and a lock
// left by the original Node server (same field order) is recognised.
func TestRedisValueFormat(t *testing.T) {
	be := backends(t, time.Minute)[1]
	rdb := redisClient(t, be.srv)
	st := NewRedisStore(rdb, time.Minute)
	res, err := st.Acquire(bg, Resource{"member", "m-1"}, Owner{UserID: NumericUserID(1), Username: `ad"min`}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Get(bg, "lock:member:m-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"userId":1,"username":"ad\"min","acquiredAt":%d}`, res.Holder.AcquiredAt)
	if got != want {
		t.Fatalf("stored value %s, want %s", got, want)
	}
	if ttl := rdb.PTTL(bg, "lock:member:m-1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %v, want within (0, 1m]", ttl)
	}

	// As written by the Node server's JSON.stringify + SET EX.
	node := `{"userId":"u7","username":"admin","acquiredAt":1704067200000}`
	if err := rdb.Set(bg, "lock:member:legacy", node, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	u7, _ := StringUserID("u7")
	h, ok, err := st.Check(bg, Resource{"member", "legacy"})
	if err != nil || !ok || h.UserID != u7 || h.AcquiredAt != 1704067200000 {
		t.Fatalf("check legacy = %+v %v %v", h, ok, err)
	}
	if res, err := st.Acquire(bg, Resource{"member", "legacy"}, Owner{UserID: u7, Username: "admin"}, 0); err != nil || res.Outcome != Refreshed {
		t.Fatalf("owner re-acquire of legacy lock = %+v, %v", res, err)
	}
	if res, err := st.Release(bg, Resource{"member", "legacy"}, u7); err != nil || res.Outcome != Released {
		t.Fatalf("owner release of legacy lock = %+v, %v", res, err)
	}

	// Garbage under a lock key is an error, not a panic or a fake holder.
	if err := rdb.Set(bg, "lock:member:junk", "not json", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Check(bg, Resource{"member", "junk"}); err == nil || !strings.Contains(err.Error(), "decode lock value") {
		t.Fatalf("check of garbage value: err=%v", err)
	}
}

// TestRedisScriptsReloaded: after SCRIPT FLUSH (as after a restart) the
// store re-sends its scripts on NOSCRIPT instead of failing; and the
// per-user bookkeeping set expires by itself.
func TestRedisScriptsReloaded(t *testing.T) {
	be := backends(t, time.Minute)[1]
	rdb := redisClient(t, be.srv)
	st := NewRedisStore(rdb, time.Minute)
	alice := Owner{UserID: NumericUserID(1), Username: "alice"}
	r := Resource{"member", "m1"}
	if res, err := st.Acquire(bg, r, alice, 5); err != nil || res.Outcome != Taken {
		t.Fatalf("acquire = %+v, %v", res, err)
	}
	if err := rdb.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := st.Acquire(bg, r, alice, 5); err != nil || res.Outcome != Refreshed {
		t.Fatalf("acquire after SCRIPT FLUSH = %+v, %v", res, err)
	}
	if ttl := rdb.PTTL(bg, userKey(alice.UserID)).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("user set PTTL %v, want within (0, 1m]", ttl)
	}
	if err := rdb.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := st.Release(bg, r, alice.UserID); err != nil || res.Outcome != Released {
		t.Fatalf("release after SCRIPT FLUSH = %+v, %v", res, err)
	}
	if err := rdb.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SweepExpired(bg, 10); err != nil {
		t.Fatalf("sweep after SCRIPT FLUSH: %v", err)
	}
	if n := rdb.Exists(bg, r.Key(), userKey(alice.UserID), deadlinesKey).Val(); n != 0 {
		t.Fatalf("%d keys left after the only lock was released", n)
	}
}

// TestStoreReleaseSession: a lock two sessions (tabs) of its holder took
// is released by ReleaseSession only when the last of them ends; an
// explicit Release frees it for all; another user's session changes
// nothing.
func TestStoreReleaseSession(t *testing.T) {
	for _, be := range backends(t, time.Minute) {
		t.Run(be.name, func(t *testing.T) {
			st := be.newStore(t)
			r := Resource{"member", "tabs"}
			tab := func(s string) Owner { return Owner{UserID: NumericUserID(1), Username: "alice", Session: s} }
			for _, s := range []string{"t1", "t2"} {
				if res, err := st.Acquire(bg, r, tab(s), 0); err != nil || (res.Outcome != Taken && res.Outcome != Refreshed) {
					t.Fatalf("acquire from %s = %+v, %v", s, res, err)
				}
			}
			if _, kept, err := st.ReleaseSession(bg, r, NumericUserID(2), "b1"); err != nil || !kept {
				t.Fatalf("another user's session: kept=%v err=%v, want the lock kept", kept, err)
			}
			if _, kept, err := st.ReleaseSession(bg, r, NumericUserID(1), "t1"); err != nil || !kept {
				t.Fatalf("first tab ends: kept=%v err=%v, want kept (t2 holds it)", kept, err)
			}
			if _, ok, _ := st.Check(bg, r); !ok {
				t.Fatal("lock gone while t2 holds it")
			}
			if res, kept, err := st.ReleaseSession(bg, r, NumericUserID(1), "t2"); err != nil || kept || res.Outcome != Released {
				t.Fatalf("last tab ends = %+v kept=%v err=%v, want released", res, kept, err)
			}
			if _, ok, _ := st.Check(bg, r); ok {
				t.Fatal("lock still held after its last session ended")
			}

			// An explicit release frees the lock for every tab; a tab ending
			// later finds it free, and a new grant starts with no holders.
			for _, s := range []string{"t1", "t2"} {
				if _, err := st.Acquire(bg, r, tab(s), 0); err != nil {
					t.Fatal(err)
				}
			}
			if res, err := st.Release(bg, r, NumericUserID(1)); err != nil || res.Outcome != Released {
				t.Fatalf("explicit release = %+v, %v", res, err)
			}
			if _, err := st.Acquire(bg, r, tab("t3"), 0); err != nil {
				t.Fatal(err)
			}
			if _, kept, err := st.ReleaseSession(bg, r, NumericUserID(1), "t1"); err != nil || !kept {
				t.Fatalf("t1 (released by hand before t3 took it) ends: kept=%v err=%v, want kept by t3", kept, err)
			}
			if res, kept, err := st.ReleaseSession(bg, r, NumericUserID(1), "t3"); err != nil || kept || res.Outcome != Released {
				t.Fatalf("t3 ends = %+v kept=%v err=%v, want released", res, kept, err)
			}
			if res, kept, err := st.ReleaseSession(bg, r, NumericUserID(1), "t2"); err != nil || kept || res.Outcome != WasFree {
				t.Fatalf("t2 ends after all = %+v kept=%v err=%v, want was free", res, kept, err)
			}
		})
	}
}
