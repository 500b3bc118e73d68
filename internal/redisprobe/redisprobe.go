// Package redisprobe finds out, without changing anything, whether a
// Redis user may run the commands walcast runs on its keys and channels.
//
// Redis checks a command's ACL permissions (the command, its keys, its
// channels) before it runs the command, so a probe sends the real command
// on the real key with an argument the command itself then rejects (an
// expiry that is not a number, an unknown script): "NOPERM" means the user
// lacks the right, the command's own error means it has it, and nothing
// was written either way. Reads are sent as they are.
package redisprobe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Kind is how a probe is sent.
type Kind int

const (
	// Command is sent with Do.
	Command Kind = iota
	// Subscribe subscribes to Args (channel names) on a connection of its
	// own and unsubscribes.
	Subscribe
	// PSubscribe does the same with patterns.
	PSubscribe
)

// Probe is one right walcast needs.
type Probe struct {
	// What walcast does with it, for the operator: "append to the events
	// stream socket.io".
	What string
	Kind Kind
	Args []any
	// Rejected is the error text (a substring) the command answers once
	// the user may run it: the harmless argument refused. Empty when the
	// command is expected to succeed.
	Rejected string
}

// Command names the probe as walcast would run it: "XADD socket.io".
func (p Probe) Command() string {
	var parts []string
	switch p.Kind {
	case Subscribe:
		parts = append(parts, "SUBSCRIBE")
	case PSubscribe:
		parts = append(parts, "PSUBSCRIBE")
	}
	for i, a := range p.Args {
		s := fmt.Sprint(a)
		if i == 0 && p.Kind == Command {
			s = strings.ToUpper(s)
		}
		parts = append(parts, s)
		if p.Kind == Command && i == 1 {
			break
		}
	}
	return strings.Join(parts, " ")
}

// Denial is a probe the user may not run, with Redis's answer.
type Denial struct {
	Probe  Probe
	Answer string
}

// Run sends every probe and returns those Redis denied. An answer that is
// neither a denial nor the expected one (Redis unreachable, a server too
// old to know the command) is an error.
func Run(ctx context.Context, c *redis.Client, probes []Probe) ([]Denial, error) {
	var denied []Denial
	for _, p := range probes {
		err := send(ctx, c, p)
		switch {
		case err == nil, errors.Is(err, redis.Nil):
		case strings.HasPrefix(err.Error(), "NOPERM"):
			denied = append(denied, Denial{Probe: p, Answer: err.Error()})
		case p.Rejected != "" && strings.Contains(err.Error(), p.Rejected):
		default:
			return denied, fmt.Errorf("probe %s: %w", p.Command(), err)
		}
	}
	return denied, nil
}

func send(ctx context.Context, c *redis.Client, p Probe) error {
	if p.Kind == Command {
		return c.Do(ctx, p.Args...).Err()
	}
	names := make([]string, len(p.Args))
	for i, a := range p.Args {
		names[i] = fmt.Sprint(a)
	}
	var ps *redis.PubSub
	if p.Kind == Subscribe {
		ps = c.Subscribe(ctx, names...)
	} else {
		ps = c.PSubscribe(ctx, names...)
	}
	defer ps.Close()
	for range names {
		if _, err := ps.Receive(ctx); err != nil {
			return err
		}
	}
	return nil
}
