package metrics

// Kind is a Prometheus metric type.
type Kind string

// Metric kinds.
const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

// Metric is one entry of the catalogue: everything walcast exports is
// listed here once, and New registers exactly this. The deployment files
// (alert rules, dashboard) are tested against it.
type Metric struct {
	Name   string
	Kind   Kind
	Labels []string
	Help   string
}

// Label values stay bounded: tables and event names come from the routing
// file, reasons, kinds, operations and results from fixed lists in the code
// that reports them. No socket id, user id or room name is ever a label, and
// a label that still sees more than maxLabelValues distinct values reports
// the rest as "other".
var catalogue = []Metric{
	// Replication: the slot as PostgreSQL sees it, sampled every few
	// seconds by the instance reading it.
	{"walcast_replication_slot_lag_bytes", Gauge, []string{"slot"}, "WAL between the server's current position and the slot's confirmed_flush_lsn: changes not yet delivered and acknowledged."},
	{"walcast_replication_slot_retained_wal_bytes", Gauge, []string{"slot"}, "WAL the slot keeps from being recycled (current position minus restart_lsn): disk the slot pins."},
	{"walcast_replication_slot_safe_wal_size_bytes", Gauge, []string{"slot"}, "WAL that can still be written before the slot is in danger of invalidation (pg_replication_slots.safe_wal_size); absent when max_slot_wal_keep_size is unlimited."},
	{"walcast_replication_slot_active", Gauge, []string{"slot"}, "1 while a walsender streams from the slot, else 0."},
	{"walcast_replication_slot_wal_status", Gauge, []string{"slot", "status"}, "1 for the slot's wal_status (reserved, extended, unreserved, lost)."},
	// Replication: this instance's reader.
	{"walcast_replication_reader_state", Gauge, []string{"state"}, "1 for this instance's reader state: reading, standby, paused (Redis refused what it read in the last 30 s; it retries), reconnecting, starting or stopped."},
	{"walcast_replication_seconds_since_ack", Gauge, nil, "Seconds since this instance's reader last sent PostgreSQL a standby status update (its acknowledgement); absent before the first."},
	{"walcast_replication_transactions_total", Counter, nil, "Committed transactions read from the slot and accepted for delivery (each once, also when Redis refused it first)."},
	{"walcast_replication_rows_total", Counter, []string{"table", "op"}, "Row changes read from the slot and accepted for delivery, by table (schema-qualified) and operation (insert, update, delete, truncate)."},
	{"walcast_replication_resyncs_total", Counter, []string{"table", "reason"}, "RESYNC notices sent to browsers, by table and why (truncate, bulk, slot_recreated)."},
	{"walcast_replication_takeovers_total", Counter, nil, "Times this instance became the slot's reader after another held it."},
	{"walcast_replication_errors_total", Counter, []string{"kind"}, "Replication sessions ended by an error, by kind (decode, delivery: Redis refused what was read, slot, publication, permission, connection)."},
	// Delivery.
	{"walcast_events_emitted_total", Counter, []string{"event"}, "Events broadcast, by event name (lock updates as lock:update): a transaction's events once, when the hub accepted the transaction."},
	{"walcast_deliveries_total", Counter, nil, "Packets handed to sockets' transports: one broadcast to N sockets counts N."},
	{"walcast_delivered_bytes_total", Counter, nil, "Bytes written to sockets' transports."},
	{"walcast_sockets", Gauge, []string{"transport"}, "Engine.IO connections open now, by transport (polling, websocket)."},
	{"walcast_socket_connects_total", Counter, []string{"namespace"}, "Sockets connected, by namespace."},
	{"walcast_socket_disconnects_total", Counter, []string{"namespace", "reason"}, "Sockets disconnected, by namespace and reason (transport close, ping timeout, slow consumer, ...)."},
	{"walcast_auth_failures_total", Counter, []string{"reason"}, "Handshakes refused for authentication, by reason (no_token, expired, not_yet_valid, bad_signature, malformed, claims; the users table: unknown_user, role_differs, member_id_differs, locked_out, users_not_loaded)."},
	{"walcast_recoveries_total", Counter, []string{"result"}, "Reconnecting clients that asked to recover their session: recovered, or failed (they start afresh and must refetch)."},
	{"walcast_slow_consumer_cuts_total", Counter, nil, "Connections closed because their send queue overflowed (a client too slow to read)."},
	{"walcast_send_queue_drops_total", Counter, nil, "Packets given to a socket that never reached its transport: refused by a full send queue or a closed socket, or discarded with the queue of a socket cut."},
	{"walcast_rooms", Gauge, []string{"namespace"}, "Rooms with members, not counting each socket's own room."},
	{"walcast_refusals_total", Counter, []string{"kind"}, "Client requests refused by walcast's socket policy, by kind (lock_rate, rooms, reserved_room, invalid_room, standby)."},
	{"walcast_connection_refusals_total", Counter, []string{"kind"}, "Handshakes refused and connections cut by the limits on clients (payload_too_large, slow_message, slow_body, pending: --max-pending, pending_per_address, connect_timeout)."},
	// Redis.
	{"walcast_redis_publish_duration_seconds", Histogram, nil, "Time to publish one committed transaction (or group of them) to Redis."},
	{"walcast_redis_stream_length", Gauge, nil, "Entries in the Redis events stream."},
	{"walcast_redis_errors_total", Counter, []string{"op"}, "Failed Redis commands, by operation (publish, read, session, lock, other)."},
	{"walcast_redis_up", Gauge, nil, "1 while Redis answers this instance, else 0; absent without Redis."},
	{"walcast_ready", Gauge, nil, "1 while /readyz answers 200, else 0."},
	// Locks.
	{"walcast_locks_held", Gauge, nil, "Record locks held now, on every instance sharing the lock store."},
	{"walcast_lock_operations_total", Counter, []string{"op", "result"}, "Lock requests, by operation (acquire, release, check, renew, release_on_disconnect) and result."},
	{"walcast_lock_ack_duration_seconds", Histogram, []string{"op"}, "Time from a lock request to its answer, by operation."},
	{"walcast_lock_expiries_announced_total", Counter, nil, "Expired locks announced to browsers (lock:update isLocked false) by this instance."},
	// The build.
	{"walcast_build_info", Gauge, []string{"version", "revision", "go_version"}, "Always 1; the labels say which build runs."},
}

// runtimeMetrics are some of what the Go runtime and process collectors
// export, named here so deployment files may use them.
var runtimeMetrics = []Metric{
	{"go_goroutines", Gauge, nil, "Goroutines that currently exist."},
	{"go_memstats_heap_alloc_bytes", Gauge, nil, "Heap bytes allocated and still in use."},
	{"go_gc_duration_seconds", "summary", nil, "Pause times of garbage collections."},
	{"process_cpu_seconds_total", Counter, nil, "User and system CPU time spent."},
	{"process_resident_memory_bytes", Gauge, nil, "Resident memory."},
	{"process_open_fds", Gauge, nil, "Open file descriptors."},
}

// Catalogue lists every metric walcast defines, its own and the runtime
// ones deployment files may use.
func Catalogue() []Metric {
	out := make([]Metric, 0, len(catalogue)+len(runtimeMetrics))
	out = append(out, catalogue...)
	return append(out, runtimeMetrics...)
}

func lookup(name string) Metric {
	for _, m := range catalogue {
		if m.Name == name {
			return m
		}
	}
	panic("metrics: " + name + " is not in the catalogue")
}
