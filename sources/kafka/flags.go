package kafka

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/maeembed/maeembed/config"
)

// DefaultConfig is the consumer the stream command starts from: group
// maeembed from the earliest offset, 512 messages in flight, commits every
// second, a 30 s session.
func DefaultConfig() Config {
	return Config{Group: "maeembed", StartOffset: "earliest", MaxInFlight: 512, CommitInterval: time.Second, SessionTimeout: 30 * time.Second}
}

// AddFlags adds the consumer's flags (--brokers, --topic, --group,
// --start-offset, --max-in-flight, the fetch sizes, --commit-interval,
// --session-timeout) and the connection's (kafkaconn.Security.AddFlags).
// The config-file keys are c's yaml tags: a list of input topics is
// "topics" there.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.Var(config.List(&c.Brokers), "brokers", "bootstrap brokers host:port[,host:port] (repeatable)")
	fs.Var(config.List(&c.Topics), "topic", "input topic (repeatable, or comma-separated)")
	fs.StringVar(&c.Group, "group", c.Group, "consumer group: workers with the same group share the partitions")
	fs.StringVar(&c.StartOffset, "start-offset", c.StartOffset, "earliest | latest: where the group starts on a partition it has no committed offset for (latest skips the messages already there)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "messages fetched but not yet durable (bounds memory)")
	fs.Var(&c.MinBytes, "fetch-min-bytes", "fetch.min.bytes, e.g. 1 or 64KiB (0 = 1)")
	fs.Var(&c.MaxBytes, "fetch-max-bytes", "max bytes per partition fetch, e.g. 16777216 or 32MiB; must exceed the largest image (0 = 16MiB)")
	fs.DurationVar(&c.MaxWait, "fetch-max-wait", c.MaxWait, "longest broker wait for fetch-min-bytes (0 = 250ms)")
	fs.DurationVar(&c.CommitInterval, "commit-interval", c.CommitInterval, "how often durable offsets are committed (0 = 1s)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", c.SessionTimeout, "group session timeout: how long a dead worker's partitions wait (0 = 30s)")
	c.Security.AddFlags(fs)
}
