package cdc

import (
	"sync/atomic"

	"github.com/walcast/walcast/internal/jsonstr"
)

// AppendRowJSON appends cols as a JSON object {"name":value,...} in column
// order. include picks the columns and their output names; nil includes
// every column under its own name. Values are the Columns' ready JSON
// tokens, so this is concatenation: no reflection, no maps, no sorting.
func AppendRowJSON(dst []byte, cols []Column, include func(name string) (outName string, ok bool)) []byte {
	dst = append(dst, '{')
	first := true
	for i := range cols {
		name := cols[i].Name
		if include != nil {
			out, ok := include(name)
			if !ok {
				continue
			}
			name = out
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = jsonstr.Append(dst, name)
		dst = append(dst, ':')
		dst = append(dst, cols[i].JSON...)
	}
	return append(dst, '}')
}

// Projection is a column allow-list with renames, prepared once per route
// and applied to every row. It is safe for concurrent use.
//
// It remembers the key bytes it rendered for the last few column lists it
// saw (a table has several: the full row, the row without unchanged TOAST
// columns, the old key): Columns from one Relation share their Name
// strings, so recognising a list is a pointer comparison per column, and
// the usual row costs no map lookup at all.
type Projection struct {
	all    bool
	allow  map[string]string // column -> output name
	cached atomic.Pointer[[]*projectionPlan]
}

// maxPlans bounds the remembered column lists per Projection.
const maxPlans = 8

type projectionPlan struct {
	names []string // the Column.Name values the plan was made for
	keys  [][]byte // `"outName":` per column, nil when the column is left out
}

// NewProjection returns a projection keeping the named columns (all
// columns when columns is nil), renamed per rename (output name by column
// name; columns missing from rename keep their name).
func NewProjection(columns []string, rename map[string]string) *Projection {
	p := &Projection{all: columns == nil, allow: make(map[string]string)}
	if p.all {
		for name, out := range rename {
			p.allow[name] = out
		}
	}
	for _, name := range columns {
		out := name
		if r, ok := rename[name]; ok {
			out = r
		}
		p.allow[name] = out
	}
	return p
}

// Include reports whether the column named name is kept, and its output name.
func (p *Projection) Include(name string) (string, bool) {
	out, ok := p.allow[name]
	if ok {
		return out, true
	}
	return name, p.all
}

// AppendJSON appends the projected row {"out":value,...} to dst.
func (p *Projection) AppendJSON(dst []byte, cols []Column) []byte {
	plan := p.lookup(cols)
	dst = append(dst, '{')
	first := true
	for i := range cols {
		key := plan.keys[i]
		if key == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, key...)
		dst = append(dst, cols[i].JSON...)
	}
	return append(dst, '}')
}

// lookup returns the plan for this column list, making one when it is new.
// Plans are immutable and the list is replaced whole, so concurrent callers
// at worst make the same plan twice.
func (p *Projection) lookup(cols []Column) *projectionPlan {
	var plans []*projectionPlan
	if cached := p.cached.Load(); cached != nil {
		plans = *cached
	}
	for _, pl := range plans {
		if pl.matches(cols) {
			return pl
		}
	}
	pl := p.plan(cols)
	next := make([]*projectionPlan, 0, maxPlans)
	next = append(next, pl)
	next = append(next, plans[:min(len(plans), maxPlans-1)]...)
	p.cached.Store(&next)
	return pl
}

func (pl *projectionPlan) matches(cols []Column) bool {
	if len(pl.names) != len(cols) {
		return false
	}
	for i := range cols {
		// Equal strings from the same Relation share their bytes, and
		// string comparison stops at the pointer check for those.
		if pl.names[i] != cols[i].Name {
			return false
		}
	}
	return true
}

func (p *Projection) plan(cols []Column) *projectionPlan {
	pl := &projectionPlan{names: make([]string, len(cols)), keys: make([][]byte, len(cols))}
	for i := range cols {
		pl.names[i] = cols[i].Name
		if out, ok := p.Include(cols[i].Name); ok {
			key := jsonstr.Append(nil, out)
			pl.keys[i] = append(key, ':')
		}
	}
	return pl
}
