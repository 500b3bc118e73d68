// Command centrifuge is the Go reference server of the fan-out benchmark:
// github.com/centrifugal/centrifuge, the library under Centrifugo, set up as
// its authors set it up for throughput (their bench_server example): the
// default node with its in-memory broker, the JSON protocol over WebSocket at
// /connection/websocket, every client subscribing to one channel, and each
// event published to that channel with the same bytes the Socket.IO servers
// send as the tick's argument. Default per-connection settings: no write
// delay, up to 16 messages merged per frame, a 1 MB queue per client before
// a slow one is disconnected. The control endpoints are the other servers'
// (bench/fanout/benchserver).
//
// It is its own Go module so Centrifuge stays out of walcast's go.mod; its
// go.work joins it to walcast's module for the shared control endpoints,
// so it builds (from this directory) at whatever versions walcast's go.mod
// moves to. The fan-out driver builds it the way it installs the Node
// reference.
//
//	go run . [-addr 127.0.0.1:0] [-cpuprofile f]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/centrifugal/centrifuge"

	"github.com/walcast/walcast/bench/fanout/benchserver"
)

// Channel is the one channel every benchmark client subscribes to.
const Channel = "bench"

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := run(*addr, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "centrifuge bench server:", err)
		os.Exit(1)
	}
}

func run(addr, cpuProfile string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel: centrifuge.LogLevelError,
		LogHandler: func(e centrifuge.LogEntry) {
			log.Error(e.Message, "fields", e.Fields)
		},
	})
	if err != nil {
		return fmt.Errorf("centrifuge node: %w", err)
	}
	// Every connection is accepted as the same anonymous-but-known user;
	// the benchmark measures fan-out, not authentication.
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if e.Channel != Channel {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return fmt.Errorf("run centrifuge node: %w", err)
	}
	defer node.Shutdown(context.Background())
	return benchserver.Run(benchserver.Options{
		Addr:       addr,
		CPUProfile: cpuProfile,
		Path:       "/connection/websocket",
		Handler:    centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}),
		Sockets:    node.Hub().NumClients,
		Emit: func(_ context.Context, payload []byte) error {
			_, err := node.Publish(Channel, payload)
			return err
		},
	})
}
