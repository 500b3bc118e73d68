package main

import (
	"testing"
	"time"

	"github.com/walcast/walcast/internal/pgtest"
)

// TestGraceGiverWrites replays the app's writes as SQL and checks that a
// super_admin socket gets exactly the contract's events, values typed as
// the original's node-postgres server sent them.
func TestGraceGiverWrites(t *testing.T) {
	dsn := newDB(t)
	in := startWalcast(t, dsn, serveOpts{})
	c := connect(t, in, mint(t, 9999, "root", "super_admin", nil, time.Hour))

	const m = "c0020000-0000-4000-8000-000000000001"
	pgtest.Exec(t, dsn,
		`INSERT INTO members (id, first_name, last_name, email, telephone, address, city, state, zip, family_id, skills, interests, joined_at, created_at)
		 VALUES ('`+m+`', 'Ann', 'Lee', 'ann@example.org', '555-0100', '1 Main St', 'Springfield', 'IL', '62701', NULL, '{music,teaching}', '{}', '2026-01-15T00:00:00Z', '2026-01-15T10:30:00.123Z')`,
		`UPDATE members SET telephone = '555-0199', city = 'Shelbyville' WHERE id = '`+m+`'`,
		`INSERT INTO donations (member_id, amount, fund, notes, entered_by, donation_date)
		 VALUES ('`+m+`', 100, 'Tithes', 'Sunday tithe', 'superadmin', '2026-01-15T00:00:00Z')`,
		`UPDATE donations SET amount = 150.5, notes = NULL WHERE id = 1`,
		`DELETE FROM donations WHERE id = 1`,
		`INSERT INTO users (username, password_hash, email, role, member_id, must_change_password, password_history, created_at)
		 VALUES ('ann', '$2b$10$secrethash', 'ann@example.org', 'viewer', '`+m+`', true, '["$2b$10$old"]', '2026-01-16T08:00:00Z')`,
		`UPDATE users SET role = 'manager', must_change_password = false WHERE id = 1`,
		`DELETE FROM users WHERE id = 1`,
		`INSERT INTO settings (name, address, phone, email, tax_id) VALUES ('Grace Church', '2 Church Rd', '555-0000', 'office@grace.org', '12-3456789')
		 ON CONFLICT (singleton_id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, phone = EXCLUDED.phone, email = EXCLUDED.email, tax_id = EXCLUDED.tax_id`,
		`UPDATE settings SET phone = '555-1111'`,
		`DELETE FROM members WHERE id = '`+m+`'`,
	)
	member := `"id":"` + m + `","first_name":"Ann","last_name":"Lee","email":"ann@example.org","address":"1 Main St","state":"IL","zip":"62701","family_id":null,"skills":["music","teaching"],"interests":[],"joined_at":"2026-01-15T00:00:00.000Z","created_at":"2026-01-15T10:30:00.123Z"`
	want := [][2]string{
		{"member:update", `{"type":"CREATE","data":{` + member + `,"telephone":"555-0100","city":"Springfield"}}`},
		{"member:update", `{"type":"UPDATE","data":{` + member + `,"telephone":"555-0199","city":"Shelbyville"}}`},
		{"donation:update", `{"type":"CREATE","data":{"id":1,"member_id":"` + m + `","amount":"100.00","fund":"Tithes","notes":"Sunday tithe","entered_by":"superadmin","donation_date":"2026-01-15T00:00:00.000Z"}}`},
		{"donation:update", `{"type":"UPDATE","data":{"id":1,"member_id":"` + m + `","amount":"150.50","fund":"Tithes","notes":null,"entered_by":"superadmin","donation_date":"2026-01-15T00:00:00.000Z"}}`},
		{"donation:update", `{"type":"DELETE","id":1,"data":{"id":1}}`},
		{"user:update", `{"type":"CREATE","data":{"id":1,"username":"ann","role":"viewer","email":"ann@example.org","created_at":"2026-01-16T08:00:00.000Z","must_change_password":true,"member_id":"` + m + `"}}`},
		{"user:update", `{"type":"UPDATE","data":{"id":1,"username":"ann","role":"manager","email":"ann@example.org","created_at":"2026-01-16T08:00:00.000Z","must_change_password":false,"member_id":"` + m + `"}}`},
		{"user:update", `{"type":"DELETE","id":1,"data":{"id":1}}`},
		{"settings:update", `{"name":"Grace Church","address":"2 Church Rd","phone":"555-0000","email":"office@grace.org","taxId":"12-3456789"}`},
		{"settings:update", `{"name":"Grace Church","address":"2 Church Rd","phone":"555-1111","email":"office@grace.org","taxId":"12-3456789"}`},
		{"member:update", `{"type":"DELETE","id":"` + m + `","data":{"id":"` + m + `"}}`},
	}
	waitEvents(t, c, 0, "", len(want), 20*time.Second)
	barrier(t, dsn, c, 0)
	wantPayloads(t, "super_admin", withoutBarriers(events(c, 0, "")), want)
}
