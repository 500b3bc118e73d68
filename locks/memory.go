package locks

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryStore keeps locks in this process: for a single instance without
// Redis. One mutex makes every operation a single critical section.
type MemoryStore struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	grants  map[Resource]*memGrant
	perUser map[string]map[Resource]struct{} // UserID.JSON() -> resources it may hold
}

type memGrant struct {
	holder   Holder
	deadline time.Time
	sessions map[string]struct{} // lock sessions holding it (Owner.Session)
}

func (g *memGrant) hold(session string) {
	if session == "" {
		return
	}
	if g.sessions == nil {
		g.sessions = make(map[string]struct{})
	}
	g.sessions[session] = struct{}{}
}

// NewMemoryStore makes an empty store; ttl <= 0 means DefaultTTL.
func NewMemoryStore(ttl time.Duration) *MemoryStore {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &MemoryStore{
		ttl:     ttl,
		now:     time.Now,
		grants:  make(map[Resource]*memGrant),
		perUser: make(map[string]map[Resource]struct{}),
	}
}

// TTL implements Store.
func (m *MemoryStore) TTL() time.Duration { return m.ttl }

// Held implements Store.
func (m *MemoryStore) Held(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	n := 0
	for r := range m.grants {
		if m.live(r, now) != nil {
			n++
		}
	}
	return n, nil
}

// live returns the unexpired grant for r. An expired grant is left in place
// for SweepExpired to claim and announce.
func (m *MemoryStore) live(r Resource, now time.Time) *memGrant {
	g := m.grants[r]
	if g == nil || !now.Before(g.deadline) {
		return nil
	}
	return g
}

// heldCount counts the user's live locks, forgetting stale entries on the way.
func (m *MemoryStore) heldCount(u UserID, now time.Time) int {
	set := m.perUser[u.raw]
	for r := range set {
		if g := m.live(r, now); g == nil || g.holder.UserID != u {
			delete(set, r)
		}
	}
	return len(set)
}

// Acquire implements Store.
func (m *MemoryStore) Acquire(ctx context.Context, r Resource, o Owner, limit int) (AcquireResult, error) {
	return m.acquire(ctx, r, o, limit, false)
}

// Extend implements Store.
func (m *MemoryStore) Extend(ctx context.Context, r Resource, o Owner) (AcquireResult, error) {
	return m.acquire(ctx, r, o, 0, true)
}

func (m *MemoryStore) acquire(ctx context.Context, r Resource, o Owner, limit int, extendOnly bool) (AcquireResult, error) {
	if err := ctx.Err(); err != nil {
		return AcquireResult{}, fmt.Errorf("acquire %s: %w", r, err)
	}
	if o.UserID.IsZero() {
		return AcquireResult{}, fmt.Errorf("acquire %s: %w", r, ErrBadUserID)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.live(r, now); g != nil {
		if g.holder.UserID != o.UserID {
			return AcquireResult{Outcome: HeldByOther, Holder: g.holder}, nil
		}
		g.deadline = now.Add(m.ttl)
		g.hold(o.Session)
		return AcquireResult{Outcome: Refreshed, Holder: g.holder}, nil
	}
	if extendOnly {
		return AcquireResult{Outcome: NotHeld}, nil
	}
	if limit > 0 && m.heldCount(o.UserID, now) >= limit {
		return AcquireResult{Outcome: LimitReached}, nil
	}
	// A grant that expired but was not swept yet is replaced silently: the
	// new holder's announcement supersedes the expiry one.
	h := Holder{UserID: o.UserID, Username: o.Username, AcquiredAt: now.UnixMilli()}
	g := &memGrant{holder: h, deadline: now.Add(m.ttl)}
	g.hold(o.Session)
	m.grants[r] = g
	set := m.perUser[o.UserID.raw]
	if set == nil {
		set = make(map[Resource]struct{})
		m.perUser[o.UserID.raw] = set
	}
	set[r] = struct{}{}
	return AcquireResult{Outcome: Taken, Holder: h}, nil
}

// Release implements Store.
func (m *MemoryStore) Release(ctx context.Context, r Resource, u UserID) (ReleaseResult, error) {
	if err := ctx.Err(); err != nil {
		return ReleaseResult{}, fmt.Errorf("release %s: %w", r, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releaseLocked(r, u), nil
}

// ReleaseSession implements Store.
func (m *MemoryStore) ReleaseSession(ctx context.Context, r Resource, u UserID, session string) (ReleaseResult, bool, error) {
	if err := ctx.Err(); err != nil {
		return ReleaseResult{}, false, fmt.Errorf("release %s: %w", r, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.live(r, m.now()); g != nil {
		delete(g.sessions, session)
		if len(g.sessions) > 0 {
			return ReleaseResult{}, true, nil
		}
	}
	return m.releaseLocked(r, u), false, nil
}

func (m *MemoryStore) releaseLocked(r Resource, u UserID) ReleaseResult {
	g := m.live(r, m.now())
	switch {
	case g == nil:
		return ReleaseResult{Outcome: WasFree}
	case g.holder.UserID != u:
		return ReleaseResult{Outcome: NotOwner, Holder: g.holder}
	}
	delete(m.grants, r)
	delete(m.perUser[u.raw], r)
	return ReleaseResult{Outcome: Released, Holder: g.holder}
}

// Check implements Store.
func (m *MemoryStore) Check(ctx context.Context, r Resource) (Holder, bool, error) {
	if err := ctx.Err(); err != nil {
		return Holder{}, false, fmt.Errorf("check %s: %w", r, err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.live(r, now); g != nil {
		return g.holder, true, nil
	}
	return Holder{}, false, nil
}

// SweepExpired implements Store. Deleting under the mutex is the claim: a
// grant can be returned once only.
func (m *MemoryStore) SweepExpired(ctx context.Context, limit int) ([]Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sweep expired locks: %w", err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Resource
	for r, g := range m.grants {
		if limit > 0 && len(out) >= limit {
			break
		}
		if now.Before(g.deadline) {
			continue
		}
		delete(m.grants, r)
		if set := m.perUser[g.holder.UserID.raw]; set != nil {
			delete(set, r)
			if len(set) == 0 {
				delete(m.perUser, g.holder.UserID.raw)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
