// Package sql holds the SQL users run or read: the example GraceGiver schema
// and the publication walcast creates. walcast embeds it for its demo.
package sql

import _ "embed"

// GraceGiverSchema creates the four GraceGiver tables walcast tails by
// default (idempotent).
//
//go:embed gracegiver.sql
var GraceGiverSchema string

// Publication is the publication walcast creates when it may, with a column
// list that keeps users' secrets in the database.
//
//go:embed publication.sql
var Publication string
