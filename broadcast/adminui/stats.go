package adminui

import (
	"os"
	"time"

	"github.com/walcast/walcast/broadcast/socketio"
)

// serverStats is the UI's ServerStats.
type serverStats struct {
	ServerID            string            `json:"serverId"`
	Hostname            string            `json:"hostname"`
	PID                 int               `json:"pid"`
	Uptime              float64           `json:"uptime"`
	ClientsCount        int               `json:"clientsCount"`
	PollingClientsCount int               `json:"pollingClientsCount"`
	AggregatedEvents    []aggregatedEvent `json:"aggregatedEvents"`
	Namespaces          []namespaceStats  `json:"namespaces"`
}

type namespaceStats struct {
	Name         string `json:"name"`
	SocketsCount int    `json:"socketsCount"`
}

// aggregatedEvent is a count of one kind of event within one second.
type aggregatedEvent struct {
	Timestamp int64  `json:"timestamp"` // ms, whole seconds
	Type      string `json:"type"`
	SubType   string `json:"subType,omitempty"`
	Count     uint64 `json:"count"`
}

type eventKey struct {
	second  int64
	typ     string
	subType string
}

// eventBuffer counts events by second until the next stats tick takes
// them; at most a tick's seconds times a handful of kinds.
type eventBuffer map[eventKey]uint64

// maxEventKinds bounds the buffer when no tick takes it (disconnect
// reasons are the only open-ended part: applications name their own).
const maxEventKinds = 4096

func (a *AdminUI) countEvent(typ, subType string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.countLocked(time.Now(), typ, subType, 1)
}

func (a *AdminUI) countLocked(at time.Time, typ, subType string, n uint64) {
	if n == 0 {
		return
	}
	k := eventKey{at.Unix() * 1000, typ, subType}
	if _, ok := a.events[k]; !ok && len(a.events) >= maxEventKinds {
		return
	}
	a.events[k] += n
}

func (a *AdminUI) run() {
	defer close(a.done)
	t := time.NewTicker(a.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		admins := a.adminSockets()
		if len(admins) == 0 {
			// Nobody looks: skip the walk over every socket.
			a.mu.Lock()
			clear(a.events)
			clear(a.transports)
			if a.cfg.Traffic != nil {
				a.traffic = a.cfg.Traffic()
			}
			a.mu.Unlock()
			continue
		}
		a.emitStatsTo(admins, a.stats(true))
	}
}

// stats builds server_stats; take empties the aggregated events (the
// periodic broadcast takes them, a UI that just connected gets none) and
// announces transport changes since the last tick.
func (a *AdminUI) stats(take bool) serverStats {
	st := serverStats{
		ServerID:         a.cfg.ServerID,
		Hostname:         a.hostname,
		PID:              os.Getpid(),
		Uptime:           time.Since(a.started).Seconds(),
		ClientsCount:     a.srv.EngineIO().SessionCount(),
		AggregatedEvents: []aggregatedEvent{},
	}
	clients := map[string]string{} // client id -> transport
	transports := make(map[*socketio.Socket]string)
	var upgraded []*socketio.Socket
	for _, n := range a.srv.Namespaces() {
		socks := n.SocketList()
		st.Namespaces = append(st.Namespaces, namespaceStats{Name: n.Name(), SocketsCount: len(socks)})
		if !take {
			continue
		}
		for _, s := range socks {
			tr := s.Transport()
			clients[s.ConnID()] = tr
			transports[s] = tr
			if was, ok := a.transports[s]; ok && was != tr {
				upgraded = append(upgraded, s)
			}
		}
	}
	if !take {
		return st
	}
	for _, tr := range clients {
		if tr == "polling" {
			st.PollingClientsCount++
		}
	}
	now := time.Now()
	a.mu.Lock()
	a.transports = transports
	if a.cfg.Traffic != nil {
		cur := a.cfg.Traffic()
		a.countLocked(now, "packetsIn", "", cur.PacketsIn-a.traffic.PacketsIn)
		a.countLocked(now, "packetsOut", "", cur.PacketsOut-a.traffic.PacketsOut)
		a.countLocked(now, "bytesIn", "", cur.BytesIn-a.traffic.BytesIn)
		a.countLocked(now, "bytesOut", "", cur.BytesOut-a.traffic.BytesOut)
		a.traffic = cur
	}
	for k, n := range a.events {
		st.AggregatedEvents = append(st.AggregatedEvents, aggregatedEvent{Timestamp: k.second, Type: k.typ, SubType: k.subType, Count: n})
	}
	clear(a.events)
	a.mu.Unlock()
	for _, s := range upgraded {
		a.broadcast("socket_updated", map[string]string{"id": s.ID(), "nsp": s.Namespace().Name(), "transport": transports[s]})
	}
	return st
}

func (a *AdminUI) emitStatsTo(admins []*socketio.Socket, st serverStats) {
	for _, s := range admins {
		_ = s.Emit("server_stats", st)
	}
}
