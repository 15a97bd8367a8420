package resp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/tidwall/redcon"
)

// The channels that carry the event manager's lifecycle events. Every
// message is one JSON object (see [EventMessage]).
const (
	// ChannelCreated carries every events.Created.
	ChannelCreated = "kv:created"
	// ChannelExited carries every events.Exited.
	ChannelExited = "kv:exited"
	// ChannelBucketPrefix followed by a bucket's name carries both events
	// of that bucket: SUBSCRIBE kv:bucket:cart, PSUBSCRIBE kv:bucket:cart:*.
	ChannelBucketPrefix = "kv:bucket:"
)

// Exit reasons in an [EventMessage].
const (
	ReasonNormal   = bucket.EndNormal   // deleted (DEL, UNLINK, FLUSHALL, RENAME's source)
	ReasonPanic    = bucket.EndPanic    // a panic in the bucket (DEBUG CRASH-BUCKET, a faulty update)
	ReasonShutdown = bucket.EndShutdown // stopped with the server
	ReasonError    = bucket.EndError    // stopped with an error
	ReasonIdle     = bucket.EndIdle     // taken out of memory, unused (--unload-idle): its data stays on disk
)

// EventMessage is the JSON form of a lifecycle event on the pub/sub
// channels. Bucket is the name as a JSON string, exact when it is valid
// UTF-8 (invalid bytes show as U+FFFD); BucketB64 is always exact, as in
// the HTTP API's event stream.
type EventMessage struct {
	Event     string `json:"event"`            // "created" or "exited"
	Bucket    string `json:"bucket"`           // the bucket's name
	BucketB64 string `json:"bucket_base64"`    // the name, standard base64
	ID        uint64 `json:"id"`               // the bucket instance
	Seq       uint64 `json:"seq"`              // the event manager's sequence number
	Reason    string `json:"reason,omitempty"` // exited only: one of the Reason constants
	Error     string `json:"error,omitempty"`  // exited only: the end reason's text, if any
}

func messageOf(ev events.Event) (channel string, msg []byte) {
	name := ev.BucketName()
	m := EventMessage{Bucket: name, BucketB64: base64.StdEncoding.EncodeToString([]byte(name)), ID: ev.BucketID(), Seq: ev.Sequence()}
	switch e := ev.(type) {
	case events.Created:
		channel, m.Event = ChannelCreated, "created"
	case events.Exited:
		channel, m.Event = ChannelExited, "exited"
		m.Reason = bucket.EndKind(e.Reason)
		if e.Reason != nil {
			m.Error = e.Reason.Error()
		}
	}
	msg, _ = json.Marshal(m) // cannot fail: strings and integers
	return channel, msg
}

// subscriber is the pub/sub side of a client: its channels and patterns,
// and its own subscription to the event manager, with a bounded mailbox.
//
// The slow-subscriber rule: the event manager never waits for a
// subscriber (a writer publishing an event never slows down). Events wait
// in the client's mailbox (Config.SubscriberMailbox, 1024 by default) and
// are written to it one by one, each write bounded by Config.WriteTimeout.
// A client that lets its mailbox overflow, or does not read for
// WriteTimeout, is disconnected: it never misses an event silently.
type subscriber struct {
	c *conn
	// Set once Subscribe returns, which may be after the subscription's
	// goroutine has begun to deliver.
	sub atomic.Pointer[events.Subscription]

	// mu guards channels, patterns and bytes. It is taken under c.wmu,
	// which orders the replies to (P)SUBSCRIBE before the first message
	// they allow, but deliver holds it only while it builds an event's
	// messages, not while it writes them: a RESP3 subscriber's
	// UNSUBSCRIBE in a transaction changes its names under mu alone, and
	// so never waits for a client that does not read while EXEC holds
	// every other client's writes back (see Server.unsubscribe).
	mu sync.Mutex
	// Each name maps to the last sequence number published when it was
	// subscribed to: an event published before that, still in the
	// mailbox, is not for it (Redis never delivers a message published
	// before the SUBSCRIBE).
	channels map[string]uint64
	patterns map[string]uint64
	bytes    int // of the names in channels and patterns, with subscribedNameSize each

	// ended is set by the last UNSUBSCRIBE of a transaction: the
	// subscription's goroutine is stopped once EXEC has released the
	// transactions' lock (conn.endSubscription), as it may be writing to
	// a client that does not read, for up to WriteTimeout. The client's
	// goroutine's own.
	ended bool

	lastSeq uint64 // the subscription goroutine's own
	kicked  atomic.Bool
	out     []byte // the subscription goroutine's own
}

// subscribedNameSize is what a channel or pattern subscribed to keeps
// besides its name: the map entry's key header and value.
const subscribedNameSize = 16 + 8

func (s *Server) subscribe(_ context.Context, c *conn, args [][]byte) {
	pattern := equalFold(args[0], "psubscribe")
	if c.ps == nil {
		// The replies still queued for the socket leave first: from now
		// on, events are written to it too, and the queue is not used.
		if c.nc != nil && !c.awaitWriter() {
			return // gone: the next read fails
		}
		p := &subscriber{c: c, channels: map[string]uint64{}, patterns: map[string]uint64{}}
		sub, err := s.ev.Subscribe(events.SubscribeOptions{
			Mailbox: s.cfg.SubscriberMailbox,
			Name:    "resp client " + c.addr,
		}, p.deliver)
		if err != nil {
			c.err("ERR server is shutting down")
			return
		}
		p.sub.Store(sub)
		c.ps = p
		// The subscription's goroutine may have delivered every event
		// of a full mailbox before Store, when deliver could not see
		// the subscription's count of lost events: a drop then would
		// go unnoticed until another event came, if ever.
		if sub.Dropped() > 0 {
			p.kick("its mailbox overflowed")
		}
	}
	p := c.ps
	since := s.lastPublished()
	// The replies before it wait for the disk outside wmu, as flush's:
	// meanwhile the events go on (a RESP3 subscriber's commands may write).
	c.settle()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p.mu.Lock()
	kind, set := "subscribe", p.channels
	if pattern {
		kind, set = "psubscribe", p.patterns
	}
	for _, ch := range args[1:] {
		if _, ok := set[string(ch)]; !ok {
			// Bounded as WATCH is: each name is kept, and a client could
			// otherwise make the server keep any number (a million
			// names, 12 MB sent in requests under the limit, kept 59 MB).
			if p.bytes+len(ch)+subscribedNameSize > s.cfg.MaxRequestBytes {
				c.err("ERR too many subscriptions: their names pass " + strconv.Itoa(s.cfg.MaxRequestBytes) + " bytes")
				break // the names before this one stay subscribed
			}
			set[string(ch)] = since
			p.bytes += len(ch) + subscribedNameSize
			s.subscribed.add(pattern, string(ch), 1)
		}
		c.pushLen(3)
		c.bulkString(kind)
		c.bulk(ch)
		c.integer(int64(len(p.channels) + len(p.patterns)))
	}
	p.count()
	p.mu.Unlock()
	c.flushLocked()
}

func (s *Server) unsubscribe(_ context.Context, c *conn, args [][]byte) {
	pattern := equalFold(args[0], "punsubscribe")
	kind := "unsubscribe"
	if pattern {
		kind = "punsubscribe"
	}
	p := c.ps
	if p == nil {
		if len(args) == 1 {
			c.pushLen(3)
			c.bulkString(kind)
			c.null()
			c.integer(0)
			return
		}
		for _, ch := range args[1:] {
			c.pushLen(3)
			c.bulkString(kind)
			c.bulk(ch)
			c.integer(0)
		}
		return
	}
	// In EXEC (a RESP3 subscriber's transaction), its replies leave with
	// EXEC's: flushed now, the EXEC array would be cut by the events
	// written meanwhile, and settle would wait for the transaction's
	// writes, held until EXEC ends. Nor does it take wmu: EXEC holds
	// every other client's writes back, and wmu may be held for up to
	// WriteTimeout by an event's write to this client, if it does not
	// read. An event built before the names change is written before
	// EXEC's reply (deliver holds wmu from the build to the write); one
	// built after is not for the names unsubscribed.
	inExec := c.inMulti.Load() != 0
	if !inExec {
		c.settle() // as subscribe's
		c.wmu.Lock()
	}
	p.mu.Lock()
	set := p.channels
	if pattern {
		set = p.patterns
	}
	var names []string
	if len(args) == 1 {
		for ch := range set {
			names = append(names, ch)
		}
		slices.Sort(names)
	} else {
		for _, ch := range args[1:] {
			names = append(names, string(ch))
		}
	}
	if len(names) == 0 {
		c.pushLen(3)
		c.bulkString(kind)
		c.null()
		c.integer(int64(len(p.channels) + len(p.patterns)))
	}
	for _, ch := range names {
		if _, ok := set[ch]; ok {
			delete(set, ch)
			p.bytes -= len(ch) + subscribedNameSize
			s.subscribed.add(pattern, ch, -1)
		}
		c.pushLen(3)
		c.bulkString(kind)
		c.bulkString(ch)
		c.integer(int64(len(p.channels) + len(p.patterns)))
	}
	left := p.count()
	p.mu.Unlock()
	if inExec {
		// Back to a normal client once EXEC has released the
		// transactions' lock: stop waits for the subscription's
		// goroutine, which may be writing to the client.
		p.ended = left == 0
		return
	}
	c.flushLocked()
	c.wmu.Unlock()
	if left == 0 { // back to a normal client, as in RESP2 Redis
		c.endSubscribed()
	}
}

// endSubscribed makes a subscriber that unsubscribed from its last name,
// or sent RESET, a normal client again. If its mailbox overflowed, it is
// disconnected instead, as it would have been at the next event (it never
// misses an event silently), and nothing more it sent runs, as for any
// client the server closes.
func (c *conn) endSubscribed() {
	p := c.ps
	p.stop()
	c.ps = nil
	if p.dropped() {
		p.kick("its mailbox overflowed")
		c.quit = true
	}
}

// lastPublished returns the sequence number of the last event the event
// manager has published (0 if it cannot tell: then every event still in
// the mailbox goes to a new channel or pattern).
func (s *Server) lastPublished() uint64 {
	if st, ok := s.ev.(interface{ Stats() events.Stats }); ok {
		// Published counts the events stamped, one number each from 1:
		// it is the last one's number, or one behind an event being
		// fanned out now, which is not before the SUBSCRIBE.
		return st.Stats().Published
	}
	return 0
}

// count publishes the subscription counts for INFO and CLIENT LIST; p.mu
// is held.
func (p *subscriber) count() int {
	ch, pat := len(p.channels), len(p.patterns)
	p.c.channels.Store(int32(ch))
	p.c.patterns.Store(int32(pat))
	p.c.subs.Store(int32(ch + pat))
	return ch + pat
}

// deliver runs on the subscription's goroutine for every event.
func (p *subscriber) deliver(ev events.Event) {
	if p.kicked.Load() {
		return
	}
	seq := ev.Sequence()
	// A gap says that events were lost before this one. Lost events that
	// no other follows leave none: the mailbox's count of them tells, as
	// soon as the next event of the full mailbox is delivered, rather
	// than at the next event published (which may never come).
	if p.lastSeq != 0 && seq != p.lastSeq+1 || p.dropped() {
		p.kick("its mailbox overflowed")
		return
	}
	p.lastSeq = seq
	kindCh, msg := messageOf(ev)
	bucketCh := ChannelBucketPrefix + ev.BucketName()
	c := p.c
	limit := c.s.cfg.MaxReplyBytes
	// Matching a pattern against a channel costs up to the product of
	// their lengths, and runs again at every event, which other clients'
	// writes make: a few long patterns against long bucket names would
	// keep a core busy for good. An event's channels get the steps that
	// any sane patterns need, on a small base and up to a bound however
	// many patterns there are (see newEventGlobBudget).
	budget := newEventGlobBudget()
	c.wmu.Lock()
	p.mu.Lock()
	out := p.out[:0]
	for _, ch := range [2]string{kindCh, bucketCh} {
		if since, ok := p.channels[ch]; ok && seq > since {
			out = appendPushLen(out, c.resp3, 3)
			out = redcon.AppendBulkString(out, "message")
			out = redcon.AppendBulkString(out, ch)
			out = redcon.AppendBulk(out, msg)
		}
		for pat, since := range p.patterns {
			if seq <= since {
				continue
			}
			match, ok := budget.match(pat, ch)
			if !ok {
				p.mu.Unlock()
				c.wmu.Unlock()
				p.kick("its patterns are too costly to match: they passed the steps allowed for one event's channels")
				return
			}
			if match {
				out = appendPushLen(out, c.resp3, 4)
				out = redcon.AppendBulkString(out, "pmessage")
				out = redcon.AppendBulkString(out, pat)
				out = redcon.AppendBulkString(out, ch)
				out = redcon.AppendBulk(out, msg)
				if len(out) > limit {
					// A pmessage for each of many patterns, each
					// carrying its pattern: one event must not make
					// the server build any amount for one client (1M
					// patterns sent in 17 MB made 700 MB an event).
					// Redis disconnects such a subscriber too, past
					// client-output-buffer-limit pubsub (32 MB).
					p.mu.Unlock()
					c.wmu.Unlock()
					p.out = nil
					p.kick("the messages of one event passed " + strconv.Itoa(limit) + " bytes (--max-reply-bytes)")
					return
				}
			}
		}
	}
	p.mu.Unlock()
	var err error
	if len(out) > 0 {
		if hook := c.s.cfg.testHookEventWrite; hook != nil {
			hook()
		}
		err = c.writeLocked(out)
	}
	c.wmu.Unlock()
	if cap(out) > maxKeptReadBuf {
		out = nil // a large buffer is not kept for the next event
	}
	p.out = out
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout():
		p.kick("it did not read its events in time") // unless CLIENT KILL closed it (see kick)
	default: // gone: it left, or CLIENT KILL closed it; not a slow one
		_ = c.nc.Close()
	}
}

// dropped reports whether the subscription has lost an event to its full
// mailbox.
func (p *subscriber) dropped() bool {
	sub := p.sub.Load()
	return sub != nil && sub.Dropped() > 0
}

// kick disconnects a subscriber that falls behind.
func (p *subscriber) kick(why string) {
	if p.kicked.Swap(true) {
		return
	}
	if p.c.killed.Load() {
		// CLIENT KILL closed it, maybe because it stopped reading: the
		// operator's doing, not a slow subscriber disconnected by kv.
		_ = p.c.nc.Close()
		return
	}
	p.c.s.kicked.Add(1)
	p.c.s.log.Warn("resp: disconnecting a slow subscriber: "+why, "client", p.c.addr, "id", p.c.id)
	_ = p.c.nc.Close()
}

// stop ends the subscription and waits for its goroutine; the names it
// is still subscribed to leave PUBSUB's counts.
func (p *subscriber) stop() {
	sub := p.sub.Load()
	sub.Close()
	<-sub.Done()
	p.mu.Lock()
	for ch := range p.channels {
		p.c.s.subscribed.add(false, ch, -1)
	}
	for pat := range p.patterns {
		p.c.s.subscribed.add(true, pat, -1)
	}
	clear(p.channels)
	clear(p.patterns)
	p.mu.Unlock()
	p.c.channels.Store(0)
	p.c.patterns.Store(0)
	p.c.subs.Store(0)
}

// subscriptions counts, across the server's clients, the subscribers of
// each channel and each pattern, for PUBSUB.
type subscriptions struct {
	mu       sync.Mutex
	channels map[string]int
	patterns map[string]int
}

// add adds delta to the subscribers of the channel (or pattern) name.
func (s *subscriptions) add(pattern bool, name string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &s.channels
	if pattern {
		m = &s.patterns
	}
	if *m == nil {
		*m = make(map[string]int)
	}
	if n := (*m)[name] + delta; n > 0 {
		(*m)[name] = n
	} else {
		delete(*m, name)
	}
}

// pubsub answers PUBSUB CHANNELS [pattern] (the channels with a
// subscriber, those matching pattern: kv's own, kv:created, kv:exited and
// kv:bucket:<key>, as clients named them), NUMSUB [channel...] (each
// channel with its subscribers) and NUMPAT (the patterns subscribed to,
// each counted once), as Redis 7 does; SHARDCHANNELS and SHARDNUMSUB
// (none: kv has no shard channels); and HELP.
func (s *Server) pubsub(_ context.Context, c *conn, args [][]byte) {
	sub := &s.subscribed
	switch strings.ToLower(string(args[1])) {
	case "channels":
		if len(args) > 3 {
			c.err("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try PUBSUB HELP.") // as sent, as Redis
			return
		}
		sub.mu.Lock()
		names := make([]string, 0, len(sub.channels))
		for ch := range sub.channels {
			names = append(names, ch)
		}
		sub.mu.Unlock()
		pattern := "*"
		if len(args) == 3 {
			pattern = string(args[2])
		}
		c.namesMatching(pattern, names)
	case "numsub":
		c.array(2 * (len(args) - 2))
		sub.mu.Lock()
		for _, ch := range args[2:] {
			c.bulk(ch)
			c.integer(int64(sub.channels[string(ch)]))
		}
		sub.mu.Unlock()
	case "numpat":
		sub.mu.Lock()
		n := len(sub.patterns)
		sub.mu.Unlock()
		c.integer(int64(n))
	case "shardchannels": // kv has no shard channels
		if len(args) > 3 {
			c.err("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try PUBSUB HELP.") // as sent, as Redis
			return
		}
		c.array(0)
	case "shardnumsub":
		c.array(2 * (len(args) - 2))
		for _, ch := range args[2:] {
			c.bulk(ch)
			c.integer(0)
		}
	case "help":
		c.help([]string{
			"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"CHANNELS [<pattern>]",
			"    Return the currently active channels matching a <pattern> (default: '*').",
			"NUMPAT",
			"    Return number of subscriptions to patterns.",
			"NUMSUB [<channel> ...]",
			"    Return the number of subscribers for the specified channels, excluding",
			"    pattern subscriptions(default: no channels).",
			"SHARDCHANNELS [<pattern>]",
			"    Return the currently active shard level channels matching a <pattern> (default: '*').",
			"SHARDNUMSUB [<shardchannel> ...]",
			"    Return the number of subscribers for the specified shard level channel(s)",
			"HELP",
			"    Prints this help.",
		})
	}
}
