package locks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Ack error texts, part of the client-visible contract.
const (
	ErrTextInvalidResource = "invalid resource"
	ErrTextForbidden       = "forbidden"
	ErrTextUnavailable     = "lock service unavailable"
	ErrTextLimit           = "lock limit reached"
)

// DefaultResourceTypes are GraceGiver's lockable records.
var DefaultResourceTypes = []string{"member", "donation", "user", "settings"}

// DefaultStaffRoles may lock any record of every default type.
var DefaultStaffRoles = []string{"super_admin", "admin", "manager", "data_entry"}

// Config is the lock policy. The zero value is the documented default.
type Config struct {
	// ResourceTypes that may be locked; empty means DefaultResourceTypes.
	ResourceTypes []string
	// AnyRecordRoles maps a resource type to the roles that may lock any
	// record of it. A type missing from the map gets DefaultStaffRoles; a
	// type mapped to an empty slice can be locked by nobody (but see
	// viewers below).
	AnyRecordRoles map[string][]string
	// DenyViewerOwnMember stops a "viewer" from locking its own member
	// record (resourceId equal to its token's memberId). Allowed by default.
	DenyViewerOwnMember bool
	// MaxLocksPerUser caps the locks one user holds at once. 0 means 50;
	// negative means no cap.
	MaxLocksPerUser int
	// OpTimeout bounds one store call so an ack never waits long on a sick
	// Redis. 0 means 2s.
	OpTimeout time.Duration
	// SweepInterval is how often Run looks for expired locks to announce.
	// 0 means 1s.
	SweepInterval time.Duration
	// Renew extends the locks of connected sessions before they expire.
	// Off by default, as in the contract: an editor who works longer than
	// the TTL without it loses the lock (and sees lock:update isLocked=false).
	Renew bool
	// RenewInterval is how often renewal runs; 0 means a third of the TTL.
	RenewInterval time.Duration
	// ReleaseOnDisconnect releases a session's locks when its socket goes
	// away and has not come back within DisconnectGrace. Off by default, as
	// in the contract ("relies on TTL"). A session whose socket may live on
	// elsewhere (Session.SetPresence: a Socket.IO session resumed on another
	// instance) keeps its locks, renewed when Renew is on, until it is gone
	// everywhere.
	ReleaseOnDisconnect bool
	// DisconnectGrace is the connection-recovery window a session is kept
	// for after a disconnect; 0 means 2 minutes (Socket.IO's default
	// maxDisconnectionDuration).
	DisconnectGrace time.Duration
	// Logger receives store failures; nil means slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told every operation's result and latency.
	Observer Observer
}

// Caller is the authenticated user behind a socket, from its token.
type Caller struct {
	UserID   UserID // the token's id claim, or sub when there is none
	Username string
	Role     string
	MemberID string // the token's memberId, "" when none
}

// CallerFromClaims builds a Caller from decoded JWT claims: id (sub when
// absent), username, role and memberId (string or integer).
func CallerFromClaims(claims map[string]any) (Caller, error) {
	idClaim, ok := claims["id"]
	if !ok || idClaim == nil {
		idClaim = claims["sub"]
	}
	id, err := UserIDFromClaim(idClaim)
	if err != nil {
		return Caller{}, fmt.Errorf("token id/sub claim: %w", err)
	}
	c := Caller{UserID: id}
	c.Username, _ = claims["username"].(string)
	c.Role, _ = claims["role"].(string)
	if m, ok := claims["memberId"]; ok && m != nil {
		if mid, err := UserIDFromClaim(m); err == nil {
			// Same conversion as ids: integers in decimal, strings as they are.
			var s string
			if json.Unmarshal([]byte(mid.raw), &s) == nil {
				c.MemberID = s
			} else {
				c.MemberID = mid.raw
			}
		}
	}
	return c, nil
}

func (c Caller) owner() Owner { return Owner{UserID: c.UserID, Username: c.Username} }

// Ack answers lock:acquire and lock:release: {success, lockedBy?, error?}.
type Ack struct {
	Success  bool    `json:"success"`
	LockedBy *string `json:"lockedBy,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// CheckAck answers lock:check: {isLocked, lockedBy?, acquiredAt?, error?}.
// An invalid payload also carries success:false, so both the check-style
// reading (lock?.isLocked) and the uniform "invalid resource" shape hold.
type CheckAck struct {
	Success    *bool   `json:"success,omitempty"`
	IsLocked   bool    `json:"isLocked"`
	LockedBy   *string `json:"lockedBy,omitempty"`
	AcquiredAt *int64  `json:"acquiredAt,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Update is a lock:update:{type}:{id} announcement for every client.
type Update struct {
	Resource Resource
	Payload  UpdatePayload
}

// Event is the Socket.IO event name to emit.
func (u Update) Event() string { return u.Resource.Event() }

// UpdatePayload is {isLocked, lockedBy}; lockedBy is null when unlocked.
type UpdatePayload struct {
	IsLocked bool    `json:"isLocked"`
	LockedBy *string `json:"lockedBy"`
}

// Notifier delivers announcements to every client (on every instance). It
// is called synchronously from the Service, before the ack is returned.
type Notifier interface {
	LockUpdate(Update)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(Update)

// LockUpdate implements Notifier.
func (f NotifierFunc) LockUpdate(u Update) { f(u) }

// Service applies the lock policy on top of a Store.
type Service struct {
	store  Store
	notify Notifier
	log    *slog.Logger
	obs    Observer

	types               map[string]bool
	anyRoles            map[string]map[string]bool
	viewerOwn           bool
	limit               int
	opTimeout           time.Duration
	sweepEvery          time.Duration
	renew               bool
	renewEvery          time.Duration
	releaseOnDisconnect bool
	grace               time.Duration

	// failing is set while store calls fail, so an outage is logged when
	// it starts and ends rather than once per browser request.
	failing atomic.Bool

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
}

func (s *Service) storeFailed(op string, r Resource, err error) {
	if s.failing.CompareAndSwap(false, true) {
		s.log.Warn("lock store failing; lock requests answer \"lock service unavailable\"", "op", op, "resource", r.String(), "err", err)
		return
	}
	s.log.Debug("lock store call failed", "op", op, "resource", r.String(), "err", err)
}

func (s *Service) storeOK() {
	if s.failing.Load() && s.failing.CompareAndSwap(true, false) {
		s.log.Info("lock store recovered")
	}
}

// NewService checks cfg and builds a Service. notify may be nil (nothing
// announced), which only tests should want.
func NewService(store Store, notify Notifier, cfg Config) (*Service, error) {
	if store == nil {
		return nil, errors.New("locks: nil store")
	}
	if notify == nil {
		notify = NotifierFunc(func(Update) {})
	}
	s := &Service{
		store:               store,
		notify:              notify,
		log:                 cfg.Logger,
		obs:                 cfg.Observer,
		types:               make(map[string]bool),
		anyRoles:            make(map[string]map[string]bool),
		viewerOwn:           !cfg.DenyViewerOwnMember,
		limit:               cfg.MaxLocksPerUser,
		opTimeout:           cfg.OpTimeout,
		sweepEvery:          cfg.SweepInterval,
		renew:               cfg.Renew,
		renewEvery:          cfg.RenewInterval,
		releaseOnDisconnect: cfg.ReleaseOnDisconnect,
		grace:               cfg.DisconnectGrace,
		sessions:            make(map[string]*Session),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.obs == nil {
		s.obs = noObserver{}
	}
	types := cfg.ResourceTypes
	if len(types) == 0 {
		types = DefaultResourceTypes
	}
	for _, t := range types {
		if !validID(t) {
			return nil, fmt.Errorf("locks: resource type %q: want 1-128 of [A-Za-z0-9_-]", t)
		}
		s.types[t] = true
		roles, ok := cfg.AnyRecordRoles[t]
		if !ok {
			roles = DefaultStaffRoles
		}
		s.anyRoles[t] = make(map[string]bool, len(roles))
		for _, r := range roles {
			s.anyRoles[t][r] = true
		}
	}
	for t := range cfg.AnyRecordRoles {
		if !s.types[t] {
			return nil, fmt.Errorf("locks: roles given for unknown resource type %q (types: %v)", t, slices.Sorted(maps.Keys(s.types)))
		}
	}
	switch {
	case s.limit == 0:
		s.limit = 50
	case s.limit < 0:
		s.limit = 0 // the store's "no cap"
	}
	if s.opTimeout <= 0 {
		s.opTimeout = 2 * time.Second
	}
	if s.sweepEvery <= 0 {
		s.sweepEvery = time.Second
	}
	if s.renewEvery <= 0 {
		s.renewEvery = store.TTL() / 3
	}
	if s.renew && s.renewEvery >= store.TTL() {
		return nil, fmt.Errorf("locks: renew interval %v must be shorter than the TTL %v", s.renewEvery, store.TTL())
	}
	if s.grace <= 0 {
		s.grace = 2 * time.Minute
	}
	return s, nil
}

// Store is the store the Service runs on.
func (s *Service) Store() Store { return s.store }

func (s *Service) may(c Caller, r Resource) bool {
	if s.anyRoles[r.Type][c.Role] {
		return true
	}
	return s.viewerOwn && c.Role == "viewer" && r.Type == "member" && c.MemberID != "" && r.ID == c.MemberID
}

func strp(s string) *string { return &s }

// Acquire handles lock:acquire. It never returns success without a lock.
func (s *Service) Acquire(ctx context.Context, c Caller, payload json.RawMessage) Ack {
	ack, _ := s.acquire(ctx, c, "", payload)
	return ack
}

// acquire also reports the resource the caller now holds, for sessions;
// session, when set, is the lock session asking (see sessionOwner).
func (s *Service) acquire(ctx context.Context, c Caller, session string, payload json.RawMessage) (Ack, *Resource) {
	result := ResultUnavailable
	defer s.observe(OpAcquire, &result, time.Now())
	r, err := parseResource(payload, s.types)
	if err != nil || c.UserID.IsZero() {
		result = ResultInvalid
		return Ack{Error: ErrTextInvalidResource}, nil
	}
	if !s.may(c, r) {
		result = ResultForbidden
		return Ack{Error: ErrTextForbidden}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	o := c.owner()
	o.Session = session
	res, err := s.store.Acquire(ctx, r, o, s.limit)
	if err != nil {
		s.storeFailed("acquire", r, err)
		return Ack{Error: ErrTextUnavailable}, nil
	}
	s.storeOK()
	switch res.Outcome {
	case Taken:
		result = ResultTaken
		s.notify.LockUpdate(Update{Resource: r, Payload: UpdatePayload{IsLocked: true, LockedBy: strp(res.Holder.Username)}})
		return Ack{Success: true, LockedBy: strp(res.Holder.Username)}, &r
	case Refreshed:
		result = ResultRefreshed
		return Ack{Success: true, LockedBy: strp(res.Holder.Username)}, &r
	case HeldByOther:
		result = ResultHeldByOther
		return Ack{LockedBy: strp(res.Holder.Username)}, nil
	case LimitReached:
		result = ResultLimitReached
		return Ack{Error: ErrTextLimit}, nil
	default:
		s.log.Error("lock acquire: unexpected outcome", "resource", r.String(), "outcome", res.Outcome.String())
		return Ack{Error: ErrTextUnavailable}, nil
	}
}

// Release handles lock:release: only the holder frees a lock.
func (s *Service) Release(ctx context.Context, c Caller, payload json.RawMessage) Ack {
	ack, _ := s.release(ctx, c, payload)
	return ack
}

func (s *Service) release(ctx context.Context, c Caller, payload json.RawMessage) (Ack, *Resource) {
	result := ResultUnavailable
	defer s.observe(OpRelease, &result, time.Now())
	r, err := parseResource(payload, s.types)
	if err != nil || c.UserID.IsZero() {
		result = ResultInvalid
		return Ack{Error: ErrTextInvalidResource}, nil
	}
	ack, freed, result := s.releaseResource(ctx, c.UserID, r)
	if freed {
		return ack, &r
	}
	return ack, nil
}

func (s *Service) releaseResource(ctx context.Context, u UserID, r Resource) (Ack, bool, string) {
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	res, err := s.store.Release(ctx, r, u)
	if err != nil {
		s.storeFailed("release", r, err)
		return Ack{Error: ErrTextUnavailable}, false, ResultUnavailable
	}
	s.storeOK()
	switch res.Outcome {
	case Released:
		s.announceFree(r)
		return Ack{Success: true}, true, ResultReleased
	case WasFree:
		return Ack{Success: true}, false, ResultWasFree
	case NotOwner:
		return Ack{LockedBy: strp(res.Holder.Username)}, false, ResultNotOwner
	default:
		s.log.Error("lock release: unexpected outcome", "resource", r.String(), "outcome", res.Outcome.String())
		return Ack{Error: ErrTextUnavailable}, false, ResultUnavailable
	}
}

func (s *Service) announceFree(r Resource) {
	s.notify.LockUpdate(Update{Resource: r, Payload: UpdatePayload{IsLocked: false}})
}

// Check handles lock:check. Any authenticated caller may look.
func (s *Service) Check(ctx context.Context, c Caller, payload json.RawMessage) CheckAck {
	result := ResultUnavailable
	defer s.observe(OpCheck, &result, time.Now())
	r, err := parseResource(payload, s.types)
	if err != nil {
		result = ResultInvalid
		f := false
		return CheckAck{Success: &f, Error: ErrTextInvalidResource}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	h, ok, err := s.store.Check(ctx, r)
	if err != nil {
		s.storeFailed("check", r, err)
		return CheckAck{Error: ErrTextUnavailable}
	}
	s.storeOK()
	if !ok {
		result = ResultFree
		return CheckAck{}
	}
	result = ResultLocked
	at := h.AcquiredAt
	return CheckAck{IsLocked: true, LockedBy: strp(h.Username), AcquiredAt: &at}
}

// SweepOnce announces every lock that expired since the last sweep (on any
// instance sharing the store) and returns how many it announced.
func (s *Service) SweepOnce(ctx context.Context) (int, error) {
	const batch = 500
	total := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, s.opTimeout)
		expired, err := s.store.SweepExpired(sctx, batch)
		cancel()
		if err != nil {
			return total, err
		}
		announced := 0
		for _, r := range expired {
			if !s.types[r.Type] {
				continue // a key of a type this instance does not serve
			}
			s.announceFree(r)
			announced++
		}
		if announced > 0 {
			s.obs.LocksExpired(announced)
		}
		total += len(expired)
		if len(expired) < batch {
			return total, nil
		}
	}
}

// Run sweeps expired locks (and renews sessions' locks when Renew is on)
// until ctx ends. Start it once per instance; several instances may run it
// against one Redis, each expiry is still announced once.
func (s *Service) Run(ctx context.Context) error {
	sweep := time.NewTicker(s.sweepEvery)
	defer sweep.Stop()
	var renewC <-chan time.Time
	if s.renew {
		t := time.NewTicker(s.renewEvery)
		defer t.Stop()
		renewC = t.C
	}
	defer s.shutdown()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			_, err := s.SweepOnce(ctx)
			// Log transitions only: a Redis outage must not write a line a second.
			if err != nil && !failing && ctx.Err() == nil {
				s.log.Warn("lock expiry sweep failing", "err", err)
			} else if err == nil && failing {
				s.log.Info("lock expiry sweep recovered")
			}
			failing = err != nil
		case <-renewC:
			s.RenewOnce(ctx)
		}
	}
}
