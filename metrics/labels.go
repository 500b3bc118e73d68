package metrics

import (
	"sync"
	"sync/atomic"
)

// maxLabelValues bounds the distinct values one label of one metric takes;
// later values are counted as "other". The callers pass values from fixed
// lists or from the routing file, so this only ever trips on a bug, which
// it keeps from growing the series without end.
const maxLabelValues = 200

// overflowValue stands for label values past maxLabelValues.
const overflowValue = "other"

type labelledVec[M any] interface {
	WithLabelValues(values ...string) M
}

// boundedVec is a metric vector whose labels each take at most
// maxLabelValues values.
type boundedVec[M any] struct {
	vec   labelledVec[M]
	seen  []sync.Map // per label: value -> struct{}
	count []atomic.Int32
}

func newBoundedVec[M any](vec labelledVec[M], labels int) *boundedVec[M] {
	return &boundedVec[M]{vec: vec, seen: make([]sync.Map, labels), count: make([]atomic.Int32, labels)}
}

func (b *boundedVec[M]) with(values ...string) M {
	for i, v := range values {
		if _, ok := b.seen[i].Load(v); ok {
			continue
		}
		if b.count[i].Add(1) > maxLabelValues {
			b.count[i].Add(-1)
			values[i] = overflowValue
			continue
		}
		if _, loaded := b.seen[i].LoadOrStore(v, struct{}{}); loaded {
			b.count[i].Add(-1)
		}
	}
	return b.vec.WithLabelValues(values...)
}
