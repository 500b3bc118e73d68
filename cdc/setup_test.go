package cdc

import (
	"slices"
	"testing"
)

func TestParseTableSpec(t *testing.T) {
	cases := []struct {
		in      string
		want    TableSpec
		wantErr bool
	}{
		{in: "members", want: TableSpec{Table: Table{"public", "members"}}},
		{in: "app.users(id, email,role)", want: TableSpec{Table: Table{"app", "users"}, Columns: []string{"id", "email", "role"}}},
		{in: " public.donations ", want: TableSpec{Table: Table{"public", "donations"}}},
		{in: "users(id", wantErr: true},
		{in: "users(id,,x)", wantErr: true},
		{in: ".users", wantErr: true},
		{in: "a.b.c", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		got, err := ParseTableSpec(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseTableSpec(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTableSpec(%q): %v", tc.in, err)
			continue
		}
		if got.Table != tc.want.Table || !slices.Equal(got.Columns, tc.want.Columns) {
			t.Errorf("ParseTableSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestPublicationSQL(t *testing.T) {
	cfg := Config{Publication: "walcast", Tables: []TableSpec{
		{Table: Table{"public", "users"}, Columns: []string{"id", "email"}},
		{Table: Table{"public", `we"ird`}},
	}}
	want := `CREATE PUBLICATION "walcast" FOR TABLE "public"."users" ("id", "email"), "public"."we""ird"`
	if got := createPublicationSQL(cfg); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
