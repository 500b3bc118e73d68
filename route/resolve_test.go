package route

import (
	"reflect"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc"
)

// graceGiverCatalog is the example schema's catalog, with donations'
// identity and users' key varied per case.
func graceGiverCatalog(donations cdc.ReplicaIdentity) cdc.Catalog {
	key := func(cols ...string) cdc.TableDescription {
		return cdc.TableDescription{PrimaryKey: cols, Identity: cdc.IdentityDefault, IdentityColumns: cols}
	}
	members := key("id")
	members.Columns = []string{"id", "first_name", "last_name", "email"}
	dons := key("id")
	dons.Columns = []string{"id", "member_id", "amount", "fund"}
	if donations == cdc.IdentityFull {
		dons.Identity, dons.IdentityColumns = cdc.IdentityFull, nil
	}
	users := key("id")
	users.Columns = []string{"id", "username", "password_hash", "role", "email", "created_at", "must_change_password", "member_id", "locked_until"}
	settings := key("singleton_id")
	settings.Columns = []string{"singleton_id", "name", "address", "phone", "email", "tax_id"}
	return cdc.Catalog{"public.members": members, "public.donations": dons, "public.users": users, "public.settings": settings}
}

func TestResolve(t *testing.T) {
	cfg := GraceGiver()
	res, err := Resolve(cfg, graceGiverCatalog(cdc.IdentityDefault))
	if err != nil {
		t.Fatal(err)
	}
	var specs []string
	for _, s := range res.Tables {
		specs = append(specs, s.String())
	}
	want := []string{
		"public.donations",
		"public.members",
		"public.settings(name,address,phone,email,tax_id,singleton_id)",
		"public.users(id,username,role,email,created_at,must_change_password,member_id)",
	}
	if !reflect.DeepEqual(specs, want) {
		t.Errorf("tables = %v, want %v", specs, want)
	}
	// settings names no key; its primary key is outside its allow-list, so
	// it does not become the key (DELETE payloads would carry it).
	if k := res.Config.Tables["public.settings"].Key; len(k) != 0 {
		t.Errorf("settings key = %v, want none", k)
	}
	if len(res.Notes) != 1 || !res.Notes[0].Warning || res.Notes[0].Table != "public.donations" ||
		res.Notes[0].Fix != "ALTER TABLE public.donations REPLICA IDENTITY FULL;" {
		t.Errorf("notes = %+v, want the one warning about donations' identity", res.Notes)
	}
	if !reflect.DeepEqual(cfg, GraceGiver()) {
		t.Error("Resolve changed the configuration it was given")
	}

	res, err = Resolve(GraceGiver(), graceGiverCatalog(cdc.IdentityFull))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 0 {
		t.Errorf("notes with donations FULL: %+v", res.Notes)
	}
}

func TestResolveFillsKeysAndNotesFullIdentity(t *testing.T) {
	cfg, err := Parse([]byte(`
tables:
  orders:
    event: order:update
    audience: ["customer:{customer_id}"]
  accounts:
    event: account:update
    columns: [id, name]
    audience: [all]
users:
  disabled: true
`))
	if err != nil {
		t.Fatal(err)
	}
	cat := cdc.Catalog{
		"public.orders":   {Columns: []string{"id", "customer_id"}, PrimaryKey: []string{"id"}, Identity: cdc.IdentityFull},
		"public.accounts": {Columns: []string{"id", "name", "secret"}, PrimaryKey: []string{"id"}, Identity: cdc.IdentityFull},
	}
	res, err := Resolve(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	if k := res.Config.Tables["public.orders"].Key; !reflect.DeepEqual(k, []string{"id"}) {
		t.Errorf("orders key = %v, want the primary key", k)
	}
	if k := cfg.Tables["orders"].Key; k != nil {
		t.Errorf("Resolve set the key %v in the configuration it was given", k)
	}
	var specs []string
	for _, s := range res.Tables {
		specs = append(specs, s.String())
	}
	// FULL: no column list is possible; the allow-list still applies.
	if want := []string{"public.accounts", "public.orders"}; !reflect.DeepEqual(specs, want) {
		t.Errorf("tables = %v, want %v", specs, want)
	}
	if len(res.Notes) != 1 || res.Notes[0].Warning || res.Notes[0].Table != "public.accounts" || !strings.Contains(res.Notes[0].Message, "REPLICA IDENTITY FULL") {
		t.Errorf("notes = %+v, want the information note about accounts", res.Notes)
	}
}

func TestResolveRefusesWhatDoesNotExist(t *testing.T) {
	cat := graceGiverCatalog(cdc.IdentityDefault)
	delete(cat, "public.settings")
	_, err := Resolve(GraceGiver(), cat)
	if err == nil || !strings.Contains(err.Error(), "routing config does not match the database") || !strings.Contains(err.Error(), "table public.settings does not exist; tables: public.donations, public.members, public.users") {
		t.Fatalf("err = %v", err)
	}
}

// TestResolveWarnsOfUncheckedMemberRooms: member: rooms come from the
// token's memberId; without a member id column nothing checks it.
func TestResolveWarnsOfUncheckedMemberRooms(t *testing.T) {
	cfg := GraceGiver()
	cfg.Users.MemberIDColumn = ""
	res, err := Resolve(cfg, graceGiverCatalog(cdc.IdentityFull))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, n := range res.Notes {
		found = found || (n.Warning && strings.Contains(n.Message, "member_id_column is not set"))
	}
	if !found {
		t.Errorf("notes = %+v, want a warning that memberId is not checked", res.Notes)
	}
}
