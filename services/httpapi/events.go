package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services/metrics"
)

// streamEvent is the data line of one event in the stream.
type streamEvent struct {
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"` // "created" or "exited"
	Bucket     string `json:"bucket"`
	BucketB64  string `json:"bucket_base64"`
	ID         uint64 `json:"id"`
	Reason     string `json:"reason,omitempty"` // exited: normal, error, panic, shutdown, idle
	ReasonText string `json:"error,omitempty"`  // exited with an error: its text
}

func newStreamEvent(ev events.Event) streamEvent {
	se := streamEvent{
		Seq:       ev.Sequence(),
		Bucket:    ev.BucketName(),
		BucketB64: base64.StdEncoding.EncodeToString([]byte(ev.BucketName())),
		ID:        ev.BucketID(),
	}
	switch e := ev.(type) {
	case events.Created:
		se.Type = "created"
	case events.Exited:
		se.Type = "exited"
		se.Reason = metrics.EndReason(e.Reason)
		if e.Reason != nil {
			se.ReasonText = e.Reason.Error()
		}
	}
	return se
}

// errSlowClient ends the stream of a client that fell behind.
var errSlowClient = errors.New("httpapi: event stream client too slow")

// errStopping ends a stream when the server stops.
var errStopping = errors.New("httpapi: the server is stopping")

// stopGrace is how long, once the server stops, a stream's write under
// way and the end of its response may take (SSEWriteTimeout if shorter).
const stopGrace = 500 * time.Millisecond

// streamEvents serves GET /v1/events as Server-Sent Events: one event per
// bucket created or ended, "id:" its sequence number, "event:" created or
// exited, "data:" its JSON. See the package documentation for the rule
// that cuts a slow client.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead { // the headers of a stream, without one
		w.Header().Set("Content-Type", "text/event-stream")
		return
	}
	defer s.streams.Add(-1)
	if n := s.streams.Add(1); n > int64(s.cfg.MaxStreams) {
		// Streams never end on their own: they must not take every
		// connection from the other requests (a liveness probe).
		if s.cfg.MaxStreams == 0 {
			writeError(w, http.StatusServiceUnavailable, "too_many_streams",
				"this server serves no event stream: it has one connection, kept for other requests")
			return
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("%d event streams are open, the most this server serves at once; the other connections are kept for other requests", s.cfg.MaxStreams))
		return
	}
	queue := make(chan events.Event, s.cfg.SSEBuffer)
	overflow := make(chan struct{})
	var overflowOnce sync.Once
	sub, err := s.cfg.Events.Subscribe(events.SubscribeOptions{
		Mailbox: s.cfg.SSEBuffer,
		Name:    "http event stream " + r.RemoteAddr,
	}, func(ev events.Event) {
		select {
		case <-overflow:
			return // one was lost: the stream ends before the gap
		default:
		}
		select {
		case queue <- ev:
		default: // never wait: the publisher and the other subscribers must not
			overflowOnce.Do(func() { close(overflow) })
		}
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event manager has stopped")
		return
	}
	defer sub.Close()

	// A stream outlives the server's write timeout: clear the deadline,
	// and bound each write with SSEWriteTimeout instead. (net/http already
	// lifts the read deadline while a body-less request's handler runs;
	// clearing it here keeps that true whatever the version.) A writer
	// without deadlines, such as a test recorder, simply has none.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	// A stop ends the stream at once: no write begins after it, and the
	// write under way, then the end of the response, get stopGrace. A
	// client that reads sees the stream end cleanly; one that does not
	// is cut then, rather than holding the server's stop for
	// SSEWriteTimeout or ShutdownTimeout. The lock keeps a write from
	// setting its deadline past the stop's.
	stopping := stoppingChan(r)
	if stopping == nil { // Handler on a host's own http.Server
		stopping = s.hostStopping(r)
	}
	var deadlineMu sync.Mutex
	stopped := false
	leaving, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-stopping:
			deadlineMu.Lock()
			stopped = true
			_ = rc.SetWriteDeadline(time.Now().Add(min(stopGrace, s.cfg.SSEWriteTimeout)))
			deadlineMu.Unlock()
		case <-leaving:
		}
	}()
	// Joined before the handler returns: net/http may then use the
	// connection for another request, whose deadlines are not the
	// stream's to move.
	defer func() { close(leaving); <-watched }()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(write func(io.Writer) error) error {
		deadlineMu.Lock()
		if stopped {
			deadlineMu.Unlock()
			return errStopping
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.SSEWriteTimeout))
		deadlineMu.Unlock()
		if err := write(w); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(func(w io.Writer) error { _, err := io.WriteString(w, ": kv events\n\n"); return err }); err != nil {
		return
	}

	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	var last uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-stopping:
			return
		case <-overflow:
			s.cutStream(send, last, r)
			return
		case <-sub.Done(): // the manager stopped: what was pending is queued
			for {
				select {
				case ev := <-queue:
					err := s.writeEvent(send, ev, &last, sub)
					if errors.Is(err, errSlowClient) {
						s.cutStream(send, last, r)
						return
					}
					if err != nil {
						return
					}
					continue
				default:
				}
				// All written; if one was lost, the client must hear it.
				select {
				case <-overflow:
					s.cutStream(send, last, r)
				default:
					if sub.Dropped() > 0 {
						s.cutStream(send, last, r)
					}
				}
				return
			}
		case ev := <-queue:
			err := s.writeEvent(send, ev, &last, sub)
			if errors.Is(err, errSlowClient) {
				s.cutStream(send, last, r)
				return
			}
			if err != nil {
				s.streamWriteFailed(r, last, err)
				return
			}
		case <-heartbeat.C:
			if err := send(func(w io.Writer) error { _, err := io.WriteString(w, ": ping\n\n"); return err }); err != nil {
				s.streamWriteFailed(r, last, err)
				return
			}
		}
	}
}

// writeEvent writes one event. It returns errSlowClient instead when an
// event was lost before it (the subscription's mailbox overflowed).
func (s *Server) writeEvent(send func(func(io.Writer) error) error, ev events.Event, last *uint64, sub *events.Subscription) error {
	if sub.Dropped() > 0 {
		return errSlowClient
	}
	if s.testHookSSE != nil {
		s.testHookSSE()
	}
	se := newStreamEvent(ev)
	data, err := json.Marshal(se)
	if err != nil {
		return fmt.Errorf("httpapi: encoding event: %w", err)
	}
	*last = ev.Sequence()
	return send(func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", se.Seq, se.Type, data)
		return err
	})
}

// streamWriteFailed logs the failed write that ends a stream: a warning
// when the client took nothing for SSEWriteTimeout (it is too slow, as a
// stream cut for its queue is), a debug record otherwise (most often the
// client went away before the server noticed: routine, as a closed
// connection is).
func (s *Server) streamWriteFailed(r *http.Request, last uint64, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.cfg.Logger.Warn("http api: event stream client took nothing in time; ending it",
			"remote", r.RemoteAddr, "last_sent", last, "error", err)
		return
	}
	s.cfg.Logger.Debug("http api: event stream write failed; ending it",
		"remote", r.RemoteAddr, "last_sent", last, "error", err)
}

// cutStream tells a slow client, if it can still be written to, that its
// stream ends because it fell behind, and after which event.
func (s *Server) cutStream(send func(func(io.Writer) error) error, last uint64, r *http.Request) {
	s.cfg.Logger.Warn("http api: event stream client too slow; cutting it",
		"remote", r.RemoteAddr, "last_sent", last)
	_ = send(func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "event: overflow\ndata: {\"last_seq\":%d}\n\n", last)
		return err
	})
}
