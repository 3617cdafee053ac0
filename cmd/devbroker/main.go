// Command devbroker runs a Kafka-protocol broker on loopback for local
// quickstarts and tests (franz-go's kfake: in memory, or persisted with
// --data-dir). It is not a production broker.
//
//	go run ./cmd/devbroker --port 9092 --topics images:3,embeddings:3,images-dlq:1
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "port on 127.0.0.1 (0 = any free port)")
	topics := flag.String("topics", "images:3,embeddings:3,images-dlq:1", "topics to create, name:partitions, comma-separated")
	dataDir := flag.String("data-dir", "", "persist topics and offsets here (default: in memory)")
	autoCreate := flag.Bool("auto-create", true, "create unknown topics on first use")
	flag.Parse()
	if err := run(*port, *topics, *dataDir, *autoCreate); err != nil {
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		os.Exit(1)
	}
}

func run(port int, topics, dataDir string, autoCreate bool) error {
	opts := []kfake.Opt{kfake.Ports(port), kfake.ClusterID("maeembed-dev")}
	for _, t := range strings.Split(topics, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		name, parts, ok := strings.Cut(t, ":")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(parts); err != nil || n < 1 {
				return fmt.Errorf("topic %q: want name:partitions", t)
			}
		}
		opts = append(opts, kfake.SeedTopics(int32(n), name))
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	if autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	slog.Info("devbroker listening", "addr", strings.Join(c.ListenAddrs(), ","), "topics", topics)
	// The address on stdout, alone, for scripts and tests.
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	slog.Info("devbroker stopping")
	return nil
}
