// Package kafka is the stream source of maeembed: a kafka-go consumer group
// whose messages become sources.Items (value = encoded image, id = key or
// topic/partition/offset). Offsets are committed at least once: per
// partition, only up to the lowest offset whose Item has not been acked
// yet, i.e. only past messages whose outputs are durable.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kgo "github.com/segmentio/kafka-go"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/kafkaconn"
	"github.com/maeembed/maeembed/sources"
)

// Config configures the consumer. Zero values take the defaults. The YAML
// keys are those of the stream command's flags (fetch_min_bytes for
// --fetch-min-bytes, ...), so one struct is filled from a config file and
// from flags alike.
type Config struct {
	Brokers     []string           `yaml:"brokers"`
	Topics      []string           `yaml:"topics"`
	Group       string             `yaml:"group"`
	StartOffset string             `yaml:"start_offset"` // "earliest" (default) or "latest": where a group without a committed offset starts
	Security    kafkaconn.Security `yaml:",inline"`

	// The fetch sizes take sizes such as 16MiB (config.Size).
	MinBytes config.Size   `yaml:"fetch_min_bytes"` // fetch.min.bytes; default 1
	MaxBytes config.Size   `yaml:"fetch_max_bytes"` // max bytes per fetch per partition; default 16 MiB (must exceed the largest image)
	MaxWait  time.Duration `yaml:"fetch_max_wait"`  // longest wait for MinBytes; default 250 ms
	// MaxInFlight bounds the messages fetched but not yet acked (durable):
	// Next blocks beyond it, which bounds memory under a burst. Default 256.
	MaxInFlight int `yaml:"max_in_flight"`
	// QueueCapacity is kafka-go's internal prefetch queue, in messages;
	// default 8. These messages (and one per assigned partition that
	// kafka-go's fetcher holds) are in memory before Next counts them
	// against the memory budget; the pipeline's own read-ahead, which the
	// budget counts, keeps the model fed.
	QueueCapacity int `yaml:"-"`

	CommitInterval    time.Duration `yaml:"commit_interval"` // how often durable offsets are committed; default 1 s
	SessionTimeout    time.Duration `yaml:"session_timeout"` // default 30 s: a killed worker's partitions wait this long
	HeartbeatInterval time.Duration `yaml:"-"`               // default SessionTimeout/10
	RebalanceTimeout  time.Duration `yaml:"-"`               // default 30 s
	CloseTimeout      time.Duration `yaml:"-"`               // bound on the final commit at Close; default 10 s
}

// Validate reports a configuration Open would refuse (no brokers, topics
// or group, an unknown start offset).
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Brokers) == 0 {
		return c, errors.New("kafka: no brokers")
	}
	if len(c.Topics) == 0 {
		return c, errors.New("kafka: no topics")
	}
	if c.Group == "" {
		return c, errors.New("kafka: no consumer group")
	}
	switch strings.ToLower(c.StartOffset) {
	case "", "earliest", "first":
		c.StartOffset = "earliest"
	case "latest", "last":
		c.StartOffset = "latest"
	default:
		return c, fmt.Errorf("kafka: start offset %q: want earliest or latest", c.StartOffset)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 20
	}
	// Kafka's fetch sizes are int32 on the wire (kafka-go truncates larger
	// ones silently), and kafka-go panics on a minimum above the maximum.
	if c.MaxBytes > math.MaxInt32 {
		return c, fmt.Errorf("--fetch-max-bytes %s: above Kafka's limit of 2 GiB - 1 byte (2147483647)", config.FormatSize(int64(c.MaxBytes)))
	}
	if c.MinBytes > c.MaxBytes {
		return c, fmt.Errorf("--fetch-min-bytes %s is above --fetch-max-bytes %s", config.FormatSize(int64(c.MinBytes)), config.FormatSize(int64(c.MaxBytes)))
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.QueueCapacity <= 0 {
		c.QueueCapacity = 8
	}
	def(&c.MaxWait, 250*time.Millisecond)
	def(&c.CommitInterval, time.Second)
	def(&c.SessionTimeout, 30*time.Second)
	def(&c.HeartbeatInterval, c.SessionTimeout/10)
	def(&c.RebalanceTimeout, 30*time.Second)
	def(&c.CloseTimeout, 10*time.Second)
	return c, nil
}

type partKey struct {
	topic     string
	partition int
}

// partState tracks one partition's fetched-but-not-durable offsets.
type partState struct {
	// outstanding counts in-flight deliveries per offset (a message can be
	// delivered twice after a rebalance). An offset acked with an error
	// stays here, so commits never pass it in this process.
	outstanding map[int64]int
	maxSeen     int64 // highest offset fetched; -1 before any
	committed   int64 // next offset to read, as last committed by us; -1 unknown
	highWater   int64 // partition end seen on the last fetch
	// failed counts the deliveries acked with an error (Close sums them
	// up per partition, with the committed offset where the group
	// resumes). failing is set by a failed ack and cleared by a durable
	// one: only the first failure of a run of them is logged as an error,
	// so an abort that fails every message in flight (up to
	// --max-in-flight) logs one line per partition, not one per message.
	// That first one need not be the lowest offset: an abort acks the
	// items between the stages, the newest, before the writers' pending
	// rows.
	failed  int
	failing bool
	// revoked: the last generation did not assign the partition to this
	// worker. Its gauges are no longer exported (another worker reports
	// it now); the state stays until its durable offsets are committed.
	revoked bool
}

// commitPoint is the offset to commit: every fetched offset below it is
// durable.
func (p *partState) commitPoint() int64 {
	if len(p.outstanding) == 0 {
		return p.maxSeen + 1
	}
	lo := int64(-1)
	for off := range p.outstanding {
		if lo < 0 || off < lo {
			lo = off
		}
	}
	return lo
}

// Source consumes a group and yields Items. Next is called from one
// goroutine; acks come from any.
type Source struct {
	cfg    Config
	r      *kgo.Reader
	dialer *kgo.Dialer
	sem    chan struct{}
	budget sources.Budget // nil: the values are not counted

	mu    sync.Mutex
	parts map[partKey]*partState

	stop     context.CancelFunc
	bg       sync.WaitGroup
	commitMu sync.Mutex // one commit at a time
	ready    atomic.Bool
	// topicsMissing: the last failed probe reached a broker without the
	// input topics.
	topicsMissing atomic.Bool
	closed        atomic.Bool

	// Counters and histograms for the metrics endpoint.
	fetched, acked, failed atomic.Int64
	commits, commitErrors  atomic.Int64
	fetchErrors            atomic.Int64
	E2E, Process           *Histogram
}

// Open starts the consumer. It does not wait for the brokers: a worker may
// start before them; it connects when they appear (see Ready).
func Open(cfg Config) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d, err := cfg.Security.Dialer()
	if err != nil {
		return nil, err
	}
	start := kgo.FirstOffset
	if cfg.StartOffset == "latest" {
		start = kgo.LastOffset
	}
	// The reader's logger records assignments in s (readerLog): s is
	// complete but for the reader before the reader starts.
	s := &Source{
		cfg: cfg, dialer: d, sem: make(chan struct{}, cfg.MaxInFlight), parts: map[partKey]*partState{},
		E2E: NewHistogram(LatencyBuckets), Process: NewHistogram(LatencyBuckets),
	}
	s.r = kgo.NewReader(kgo.ReaderConfig{
		Brokers:               cfg.Brokers,
		GroupID:               cfg.Group,
		GroupTopics:           cfg.Topics,
		Dialer:                d,
		QueueCapacity:         cfg.QueueCapacity,
		MinBytes:              int(cfg.MinBytes),
		MaxBytes:              int(cfg.MaxBytes),
		MaxWait:               cfg.MaxWait,
		ReadBatchTimeout:      cfg.MaxWait + 10*time.Second,
		HeartbeatInterval:     cfg.HeartbeatInterval,
		SessionTimeout:        cfg.SessionTimeout,
		RebalanceTimeout:      cfg.RebalanceTimeout,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true,
		StartOffset:           start,
		ReadBackoffMin:        100 * time.Millisecond,
		ReadBackoffMax:        5 * time.Second,
		CommitInterval:        0, // synchronous: we commit ourselves, only durable offsets
		// kafka-go logs every retry; keep that for debug level and log
		// state changes ourselves (see health).
		ErrorLogger: kgo.LoggerFunc(func(f string, a ...any) { slog.Debug("kafka-go: " + fmt.Sprintf(f, a...)) }),
		// Its info log is the only place the reader says which partitions
		// each generation assigned (see assignment).
		Logger: kgo.LoggerFunc(func(f string, a ...any) { s.readerLog(f, a) }),
	})
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.commitLoop(ctx) }()
	go func() { defer s.bg.Done(); s.health(ctx) }()
	slog.Info("kafka: consuming", "brokers", strings.Join(cfg.Brokers, ","), "topics", strings.Join(cfg.Topics, ","),
		"group", cfg.Group, "start", cfg.StartOffset, "max_in_flight", cfg.MaxInFlight)
	return s, nil
}

var _ sources.Budgeted = (*Source)(nil)

// SetBudget makes Next count each message's value against b (the run's
// memory budget) before handing it on, waiting while the budget is full:
// fetching pauses, and the messages wait in Kafka. Item.Release gives the
// bytes back once they are dropped (the engine: once the image is decoded,
// or with a dead-letter topic once its row is written, i.e. dead-lettered).
// A value larger than the whole budget is an error item without its
// bytes (stage "read"; its dead letter carries the error and the source
// position), never a wait that could not end. Call it before the first
// Next.
func (s *Source) SetBudget(b sources.Budget) { s.budget = b }

// Next returns the next message as an Item. It blocks while MaxInFlight
// items are unacked, and while the memory budget (SetBudget) cannot hold
// its value. Fetch errors are retried with backoff (kafka-go heals
// itself) until ctx ends, except what no retry fixes, which ends the run:
// a session timeout the group coordinator refuses (the error names
// --session-timeout and the range the brokers allow), and credentials or
// rights the brokers refuse (kafkaconn.AuthFailed; the error says so,
// naming the broker and the SASL mechanism).
func (s *Source) Next(ctx context.Context) (sources.Item, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return sources.Item{}, ctx.Err()
	}
	backoff := 100 * time.Millisecond
	for {
		m, err := s.r.FetchMessage(ctx)
		if err == nil {
			s.ready.Store(true)
			return s.counted(ctx, m)
		}
		if ctx.Err() != nil {
			<-s.sem
			return sources.Item{}, ctx.Err()
		}
		if errors.Is(err, io.EOF) && s.closed.Load() {
			<-s.sem
			return sources.Item{}, io.EOF
		}
		if kafkaconn.AuthFailed(err) {
			// Wrong credentials or missing rights: every retry would be
			// refused alike.
			<-s.sem
			return sources.Item{}, s.authError(ctx, err)
		}
		if errors.Is(err, kgo.InvalidSessionTimeout) {
			// The group coordinator refuses the session timeout: every
			// join would fail alike, so this is the run's end, not a retry.
			<-s.sem
			return sources.Item{}, s.sessionTimeoutError(ctx, err)
		}
		s.fetchErrors.Add(1)
		// While the brokers are unreachable (or not yet probed) the health
		// probe logs the outage, one line per attempt with its backoff; a
		// second line per fetch would only repeat it.
		level := slog.LevelWarn
		if !s.ready.Load() {
			level = slog.LevelDebug
		}
		slog.Log(ctx, level, "kafka: fetch failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			<-s.sem
			return sources.Item{}, ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// authError is the error of a fetch or join the brokers refused for
// the client's credentials or rights (kafkaconn.AuthFailed): a probe
// finds the broker that refuses them, for the message.
func (s *Source) authError(ctx context.Context, err error) error {
	if perr := s.probe(ctx); kafkaconn.AuthFailed(perr) {
		err = perr
	}
	return s.cfg.Security.AuthError(s.cfg.Brokers, err)
}

// sessionTimeoutError is the error of a session timeout the group
// coordinator refuses (outside its group.min.session.timeout.ms to
// group.max.session.timeout.ms): it names the flag and, when the
// coordinator says, the range it allows.
func (s *Source) sessionTimeoutError(ctx context.Context, err error) error {
	allowed := "outside the range the brokers allow, group.min.session.timeout.ms to group.max.session.timeout.ms"
	if lo, hi, ok := s.sessionTimeoutRange(ctx); ok {
		allowed = fmt.Sprintf("the brokers allow %v to %v (group.min.session.timeout.ms %d, group.max.session.timeout.ms %d)",
			lo, hi, lo.Milliseconds(), hi.Milliseconds())
	}
	return fmt.Errorf("kafka: --session-timeout %v refused by the group coordinator: %s: %w", s.cfg.SessionTimeout, allowed, err)
}

// sessionTimeoutRange asks the group's coordinator for the session
// timeouts it allows; ok is false if it does not say.
func (s *Source) sessionTimeoutRange(ctx context.Context) (lo, hi time.Duration, ok bool) {
	const minKey, maxKey = "group.min.session.timeout.ms", "group.max.session.timeout.ms"
	tr, err := s.cfg.Security.Transport()
	if err != nil {
		return 0, 0, false
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &kgo.Client{Addr: kgo.TCP(s.cfg.Brokers...), Transport: tr}
	co, err := c.FindCoordinator(ctx, &kgo.FindCoordinatorRequest{Key: s.cfg.Group, KeyType: kgo.CoordinatorKeyTypeConsumer})
	if err != nil || co.Error != nil || co.Coordinator == nil {
		return 0, 0, false
	}
	res, err := c.DescribeConfigs(ctx, &kgo.DescribeConfigsRequest{Resources: []kgo.DescribeConfigRequestResource{{
		ResourceType: kgo.ResourceTypeBroker, ResourceName: strconv.Itoa(co.Coordinator.NodeID), ConfigNames: []string{minKey, maxKey}}}})
	if err != nil || len(res.Resources) != 1 || res.Resources[0].Error != nil {
		return 0, 0, false
	}
	var minMS, maxMS int64
	for _, e := range res.Resources[0].ConfigEntries {
		v, err := strconv.ParseInt(e.ConfigValue, 10, 64)
		if err != nil {
			continue
		}
		switch e.ConfigName {
		case minKey:
			minMS = v
		case maxKey:
			maxMS = v
		}
	}
	if minMS <= 0 || maxMS < minMS {
		return 0, 0, false
	}
	return time.Duration(minMS) * time.Millisecond, time.Duration(maxMS) * time.Millisecond, true
}

// counted is the Item of m with its value taken from the budget. An
// abort while waiting leaves m unrecorded: it is not committed past, and
// is consumed again.
func (s *Source) counted(ctx context.Context, m kgo.Message) (sources.Item, error) {
	if s.budget == nil {
		return s.item(m), nil
	}
	release, err := s.budget.AcquireInput(ctx, int64(len(m.Value)))
	if err != nil && ctx.Err() != nil {
		<-s.sem
		return sources.Item{}, ctx.Err()
	}
	it := s.item(m)
	if err != nil {
		// Larger than the whole budget: its error row (dead letter), with
		// the source position to find it in the topic, not its bytes.
		it.Data, it.Err = nil, &sources.ReadError{Path: it.Pos.String(), Err: err}
		return it, nil
	}
	it.Release = release
	return it, nil
}

func (s *Source) item(m kgo.Message) sources.Item {
	s.fetched.Add(1)
	k := partKey{m.Topic, m.Partition}
	s.mu.Lock()
	p := s.parts[k]
	if p == nil {
		p = &partState{outstanding: map[int64]int{}, maxSeen: -1, committed: -1}
		s.parts[k] = p
	}
	p.revoked = false // fetched in the current generation: assigned
	p.outstanding[m.Offset]++
	p.maxSeen = max(p.maxSeen, m.Offset)
	p.highWater = max(p.highWater, m.HighWaterMark)
	s.mu.Unlock()

	pos := sources.Position{Index: m.Offset, Row: -1, Path: m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)}
	// Keys are bytes: a binary key gets an escaped id (sources.EscapeID),
	// never a lossy one, so two keys never share an id.
	id := sources.EscapeID(string(m.Key))
	if id == "" {
		id = pos.String()
	}
	a := &itemAck{s: s, k: k, off: m.Offset, produced: m.Time, fetchedAt: time.Now()}
	return sources.Item{ID: id, Data: m.Value, Pos: pos, Ack: a.ack}
}

// Where parses the position of an item of this source into its topic,
// partition and offset (topic names cannot hold "/"); ok is false for a
// position of another source.
func Where(p sources.Position) (topic string, partition int, offset int64, ok bool) {
	f := strings.Split(p.Path, "/")
	if len(f) != 3 {
		return "", 0, 0, false
	}
	pi, err1 := strconv.Atoi(f[1])
	oi, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return f[0], pi, oi, true
}

// itemAck is the once-only Ack of one message. It holds only what ackOne
// needs: a closure over the whole kgo.Message moved the message to the heap
// for every item.
type itemAck struct {
	once                sync.Once
	s                   *Source
	k                   partKey
	off                 int64
	produced, fetchedAt time.Time
}

func (a *itemAck) ack(err error) {
	a.once.Do(func() { a.s.ackOne(a.k, a.off, err, a.produced, a.fetchedAt) })
}

func (s *Source) ackOne(k partKey, off int64, err error, produced, fetchedAt time.Time) {
	s.mu.Lock()
	p := s.parts[k]
	first := err != nil && !p.failing
	p.failing = err != nil
	if err == nil {
		if p.outstanding[off]--; p.outstanding[off] <= 0 {
			delete(p.outstanding, off)
		}
	} else {
		p.failed++
	}
	s.mu.Unlock()
	<-s.sem
	if err != nil {
		s.failed.Add(1)
		if first {
			slog.Error("kafka: output not durable; offset will not be committed past it (the partition's next failures are counted when the consumer closes, until one succeeds)",
				"topic", k.topic, "partition", k.partition, "offset", off, "err", err)
		} else {
			slog.Debug("kafka: output not durable", "topic", k.topic, "partition", k.partition, "offset", off, "err", err)
		}
		return
	}
	s.acked.Add(1)
	now := time.Now()
	s.Process.Observe(now.Sub(fetchedAt).Seconds())
	if !produced.IsZero() {
		s.E2E.Observe(max(0, now.Sub(produced).Seconds()))
	}
}

// Commit commits, per partition, the offset below which every fetched
// message is durable, where it moved since the last commit.
func (s *Source) Commit(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var msgs []kgo.Message
	var points []int64
	s.mu.Lock()
	for k, p := range s.parts {
		if c := p.commitPoint(); c > p.committed && c > 0 {
			// kafka-go commits Offset+1 of the message it is given.
			msgs = append(msgs, kgo.Message{Topic: k.topic, Partition: k.partition, Offset: c - 1})
			points = append(points, c)
		}
	}
	s.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	if err := s.r.CommitMessages(ctx, msgs...); err != nil {
		s.commitErrors.Add(1)
		return fmt.Errorf("kafka commit: %w", err)
	}
	s.commits.Add(1)
	s.mu.Lock()
	for i, m := range msgs {
		k := partKey{m.Topic, m.Partition}
		if p := s.parts[k]; p != nil {
			p.committed = max(p.committed, points[i])
			s.forgetRevoked(k, p)
		}
	}
	s.mu.Unlock()
	return nil
}

// readerLog takes the kafka-go reader's info log: debug lines, and the
// partitions each generation assigns to this worker (assignment).
func (s *Source) readerLog(format string, args []any) {
	if strings.HasPrefix(format, "subscribed to topics and partitions") {
		if set, ok := assignment(args); ok {
			s.assign(set)
		} else {
			slog.Warn("kafka: cannot read the partitions assigned to this worker; per-partition metrics may include revoked ones", "log", fmt.Sprintf(format, args...))
		}
	}
	if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		slog.Debug("kafka-go: " + fmt.Sprintf(format, args...))
	}
}

// assignment reads the partitions of kafka-go's "subscribed to topics and
// partitions" log line: its one argument maps an unexported
// {topic string; partition int32} to the start offset. ok is false if the
// line has another shape (a kafka-go upgrade; TestRevokedPartitionsLeaveMetrics
// catches it).
func assignment(args []any) (set map[partKey]bool, ok bool) {
	if len(args) != 1 {
		return nil, false
	}
	v := reflect.ValueOf(args[0])
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.Struct {
		return nil, false
	}
	kt := v.Type().Key()
	tf, tok := kt.FieldByName("topic")
	pf, pok := kt.FieldByName("partition")
	if !tok || !pok || tf.Type.Kind() != reflect.String || pf.Type.Kind() < reflect.Int || pf.Type.Kind() > reflect.Int64 {
		return nil, false
	}
	set = make(map[partKey]bool, v.Len())
	for _, k := range v.MapKeys() {
		set[partKey{k.FieldByIndex(tf.Index).String(), int(k.FieldByIndex(pf.Index).Int())}] = true
	}
	return set, true
}

// assign records a generation's assignment: the partitions left out are
// revoked (or lost, after a session timeout), and their gauges leave the
// metrics, so that a rebalance does not leave a frozen lag or committed
// offset behind for another worker's partition.
func (s *Source) assign(set map[partKey]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.parts {
		p.revoked = !set[k]
		s.forgetRevoked(k, p)
	}
}

// forgetRevoked drops the state of a revoked partition once nothing of
// it is in flight and its durable offsets are committed: a later
// assignment starts afresh from the group's committed offset. Called with
// s.mu held.
func (s *Source) forgetRevoked(k partKey, p *partState) {
	if p.revoked && len(p.outstanding) == 0 && p.committed >= p.commitPoint() {
		delete(s.parts, k)
	}
}

func (s *Source) commitLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := s.Commit(cctx); err != nil && ctx.Err() == nil {
				slog.Warn("kafka: commit failed; will retry", "err", err)
			}
			cancel()
		}
	}
}

// health probes the brokers and logs connectivity changes: kafka-go
// retries silently, so this is where "broker down" becomes visible.
// Probes back off from 500 ms to 30 s while the brokers are unreachable.
// Credentials or rights the brokers refuse are logged as that, not as an
// outage.
func (s *Source) health(ctx context.Context) {
	backoff := 500 * time.Millisecond
	var down time.Time // start of the current outage
	first := true
	for attempt := 1; ; attempt++ {
		err := s.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := 5 * time.Second
		switch {
		case err != nil:
			if down.IsZero() {
				down = time.Now()
			}
			s.ready.Store(false)
			s.topicsMissing.Store(errors.Is(err, kafkaconn.ErrTopicMissing))
			switch {
			case kafkaconn.AuthFailed(err):
				// Not an outage: the reader's join or fetch meets it too,
				// and Next ends the run on it.
				slog.Error(s.cfg.Security.AuthError(s.cfg.Brokers, err).Error(), "attempt", attempt)
			case errors.Is(err, kafkaconn.ErrTopicMissing):
				// The brokers answer: saying they are down would send
				// one looking at the network instead of at --topic.
				s.outage("kafka: input topics missing on the brokers (a typo in --topic? create them, or allow auto-creation); retrying", attempt, down, backoff, err)
			default:
				s.outage("kafka: brokers unreachable; retrying", attempt, down, backoff, err)
			}
			wait = backoff
			backoff = min(2*backoff, 30*time.Second)
		case !down.IsZero():
			slog.Info("kafka: brokers reachable again", "brokers", strings.Join(s.cfg.Brokers, ","), "down_for", time.Since(down).Round(time.Millisecond))
			fallthrough
		default:
			if first {
				slog.Info("kafka: brokers reachable", "brokers", strings.Join(s.cfg.Brokers, ","))
			}
			s.ready.Store(true)
			down, backoff, attempt = time.Time{}, 500*time.Millisecond, 0
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// outage logs a failed probe of an outage that started at down.
func (s *Source) outage(what string, attempt int, down time.Time, backoff time.Duration, err error) {
	slog.Warn(what, "brokers", strings.Join(s.cfg.Brokers, ","), "topics", strings.Join(s.cfg.Topics, ","),
		"attempt", attempt, "down_for", time.Since(down).Round(time.Second), "next_in", backoff, "err", err)
}

// probe asks the brokers for the partitions of the input topics
// (kafkaconn.Probe), by name: brokers that create topics on demand create
// them, as the reader's group join would.
func (s *Source) probe(ctx context.Context) error {
	return kafkaconn.Probe(ctx, s.dialer, s.cfg.Brokers, s.cfg.Topics, true)
}

// Ready reports whether the brokers answered the last probe (or a message
// arrived since): the Kubernetes readiness signal.
func (s *Source) Ready() bool { return s.ready.Load() }

// TopicsMissing reports whether the last failed probe reached a broker
// that does not have the input topics (rather than no broker at all).
func (s *Source) TopicsMissing() bool { return s.topicsMissing.Load() }

// Close stops fetching, commits what is durable (bounded by CloseTimeout)
// and leaves the group. Items acked after Close are not committed.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stop()
	s.bg.Wait()
	// Rebalances counts the generations the reader joined (nothing else
	// takes the reader's stats, which a read would reset).
	joined := s.r.Stats().Rebalances > 0 || s.fetched.Load() > 0
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
	err := s.Commit(ctx)
	cancel()
	if cerr := s.r.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("kafka close: %w", cerr)
	}
	st := s.Stats()
	if !joined {
		slog.Info("kafka: closed before joining the group", "group", s.cfg.Group)
		return err
	}
	for _, p := range st.Partitions {
		if p.Failed > 0 {
			slog.Warn("kafka: messages not durable; the group redelivers them from the committed offset",
				"topic", p.Topic, "partition", p.Partition, "failed", p.Failed, "committed", p.Committed)
		}
	}
	slog.Info("kafka: left group", "group", s.cfg.Group, "fetched", st.Fetched, "acked", st.Acked, "failed", st.Failed, "commit_err", err)
	return err
}

// PartitionStats is the state of one assigned partition.
type PartitionStats struct {
	Topic       string
	Partition   int
	Committed   int64 // next offset, as last committed by this worker (-1: none yet)
	Fetched     int64 // highest offset fetched
	HighWater   int64 // partition end at the last fetch
	Outstanding int   // offsets in flight (not durable)
	Failed      int   // deliveries acked with an error (not durable)
	// Revoked: not assigned to this worker by the current generation;
	// listed until its durable offsets are committed, not exported.
	Revoked bool
}

// Lag is the messages behind the partition end at the last fetch.
func (p PartitionStats) Lag() int64 { return max(0, p.HighWater-p.Fetched-1) }

// Stats is a snapshot of the consumer.
type Stats struct {
	Fetched, Acked, Failed, Commits, CommitErrors, FetchErrors int64
	InFlight                                                   int
	Partitions                                                 []PartitionStats
}

// Stats returns a snapshot, partitions sorted by topic and number.
func (s *Source) Stats() Stats {
	st := Stats{Fetched: s.fetched.Load(), Acked: s.acked.Load(), Failed: s.failed.Load(),
		Commits: s.commits.Load(), CommitErrors: s.commitErrors.Load(), FetchErrors: s.fetchErrors.Load()}
	st.InFlight = int(st.Fetched - st.Acked - st.Failed)
	s.mu.Lock()
	for k, p := range s.parts {
		st.Partitions = append(st.Partitions, PartitionStats{Topic: k.topic, Partition: k.partition, Committed: p.committed,
			Fetched: p.maxSeen, HighWater: p.highWater, Outstanding: len(p.outstanding), Failed: p.failed, Revoked: p.revoked})
	}
	s.mu.Unlock()
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, b := st.Partitions[i], st.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return st
}

// Collector exports the consumer's counters, per-partition lag and
// committed offsets, and its latency histograms as Prometheus metrics
// (maeembed_kafka_*).
func (s *Source) Collector() prometheus.Collector { return sourceCollector{s} }

type sourceCollector struct{ s *Source }

var (
	kafkaCounters = []struct{ name, help string }{
		{"maeembed_kafka_fetched_total", "Messages fetched from Kafka."},
		{"maeembed_kafka_acked_total", "Messages whose output is durable."},
		{"maeembed_kafka_ack_failures_total", "Messages whose output could not be made durable."},
		{"maeembed_kafka_commits_total", "Successful offset commits."},
		{"maeembed_kafka_commit_errors_total", "Failed offset commits."},
		{"maeembed_kafka_fetch_errors_total", "Failed fetches (retried)."},
	}
	kafkaCounterDescs = func() (d []*prometheus.Desc) {
		for _, c := range kafkaCounters {
			d = append(d, prometheus.NewDesc(c.name, c.help, nil, nil))
		}
		return d
	}()
	descInFlight  = prometheus.NewDesc("maeembed_kafka_in_flight", "Messages fetched and not yet durable.", nil, nil)
	descUp        = prometheus.NewDesc("maeembed_kafka_up", "1 when the brokers answered the last probe.", nil, nil)
	descLag       = prometheus.NewDesc("maeembed_kafka_consumer_lag", "Messages behind the partition end at the last fetch.", []string{"topic", "partition"}, nil)
	descCommitted = prometheus.NewDesc("maeembed_kafka_committed_offset", "Next offset committed by this worker.", []string{"topic", "partition"}, nil)
	descE2E       = prometheus.NewDesc("maeembed_kafka_end_to_end_seconds", "Record timestamp to durable output.", nil, nil)
	descProcess   = prometheus.NewDesc("maeembed_kafka_process_seconds", "Fetch to durable output.", nil, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range kafkaCounterDescs {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{descInFlight, descUp, descLag, descCommitted, descE2E, descProcess} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for i, v := range []int64{st.Fetched, st.Acked, st.Failed, st.Commits, st.CommitErrors, st.FetchErrors} {
		ch <- prometheus.MustNewConstMetric(kafkaCounterDescs[i], prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight))
	up := 0.0
	if c.s.Ready() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, p := range st.Partitions {
		if p.Revoked {
			// Another worker owns it now: its series ends here.
			continue
		}
		part := strconv.Itoa(p.Partition)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(p.Lag()), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(descCommitted, prometheus.GaugeValue, float64(p.Committed), p.Topic, part)
	}
	ch <- c.s.E2E.metric(descE2E)
	ch <- c.s.Process.metric(descProcess)
}
