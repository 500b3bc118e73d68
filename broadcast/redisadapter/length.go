package redisadapter

import (
	"context"
	"fmt"
)

// Length is the number of entries in the stream (XLEN), for metrics.
func (s *Streams) Length(ctx context.Context) (int64, error) {
	n, err := s.client.XLen(ctx, s.opts.StreamName).Result()
	if err != nil {
		return 0, fmt.Errorf("length of stream %q: %w", s.opts.StreamName, err)
	}
	return n, nil
}
