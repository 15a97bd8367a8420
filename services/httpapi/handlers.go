package httpapi

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/registry"
)

// bucketRef names a bucket in JSON: the name as a JSON string (exact when
// it is valid UTF-8; invalid bytes become U+FFFD) and its exact bytes in
// standard base64.
type bucketRef struct {
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64"`
}

func newBucketRef(name string) bucketRef {
	return bucketRef{Name: name, NameBase64: base64.StdEncoding.EncodeToString([]byte(name))}
}

// bucketPage is the reply of GET /v1/buckets.
type bucketPage struct {
	Buckets []bucketRef `json:"buckets"`
	// NextCursor, when present, is the cursor parameter of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// pair is one key/value pair of GET /v1/buckets/{bucket}.
type pair struct {
	Key         string `json:"key"`
	KeyBase64   string `json:"key_base64"`
	ValueBase64 string `json:"value_base64"`
}

// bucketDump is the reply of GET /v1/buckets/{bucket}.
type bucketDump struct {
	bucketRef
	Pairs []pair `json:"pairs"`
	// NextCursor, when present, is the cursor parameter of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// listBuckets replies with a page of bucket names in byte order: those
// after the cursor (the raw URL-safe base64 of the last name of the
// previous page), at most limit of them. A cursor stays valid whatever is
// created or deleted meanwhile.
func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request) {
	limit, ok := readLimit(w, r)
	if !ok {
		return
	}
	if limit == 0 {
		limit = DefaultPageLimit
	}
	after, hasCursor := "", false
	if v := r.URL.Query().Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_cursor", "cursor is not one this API gave")
			return
		}
		after, hasCursor = string(b), true
	}
	var all []string
	var err error
	registry.Shared(s.cfg.Registry.TxLock(), func() { all, err = s.cfg.Registry.NamesErr() })
	if err != nil {
		// Not a partial list passed off as the whole.
		s.cfg.Logger.Error("http api: cannot list the buckets", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the stored buckets cannot be listed; try again")
		return
	}
	names, more := firstNames(all, after, hasCursor, limit)
	page := bucketPage{Buckets: make([]bucketRef, 0, len(names))}
	for _, n := range names {
		page.Buckets = append(page.Buckets, newBucketRef(n))
	}
	if more {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
	}
	writeJSON(w, page)
}

// readLimit reads the limit parameter: 0 when absent, else 1 to
// MaxPageLimit (a larger number, however large, is cut to it). It answers
// 400 to anything else.
func readLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	switch {
	case errors.Is(err, strconv.ErrRange) && v[0] != '-':
		n = MaxPageLimit
	case err != nil || n < 1:
		writeError(w, http.StatusBadRequest, "bad_limit", "limit must be a positive integer")
		return 0, false
	}
	return min(n, MaxPageLimit), true
}

// firstNames returns, in byte order, the limit smallest names after after
// (all names when hasAfter is false), and whether more follow. It keeps
// only the page, in a heap: O(n log limit), rather than sorting every name
// for every page.
func firstNames(names []string, after string, hasAfter bool, limit int) (page []string, more bool) {
	h := &maxStrings{}
	for _, n := range names {
		switch {
		case hasAfter && n <= after:
		case h.Len() < limit:
			heap.Push(h, n)
		case n < (*h)[0]:
			(*h)[0] = n
			heap.Fix(h, 0)
			more = true
		default:
			more = true
		}
	}
	page = *h
	slices.Sort(page)
	return page, more
}

// maxStrings is a max-heap of strings.
type maxStrings []string

func (h maxStrings) Len() int           { return len(h) }
func (h maxStrings) Less(i, j int) bool { return h[i] > h[j] }
func (h maxStrings) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxStrings) Push(x any)        { *h = append(*h, x.(string)) }
func (h *maxStrings) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// createBucket creates the bucket, or finds it: 204 either way; 503
// write_failed when the store refuses to record it.
func (s *Server) createBucket(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("bucket")
	var err error
	registry.Shared(s.cfg.Registry.TxLock(), func() { _, err = s.cfg.Registry.Create(r.Context(), name) })
	if err != nil {
		switch {
		case errors.Is(err, registry.ErrInvalidName):
			writeError(w, http.StatusBadRequest, "invalid_name", err.Error())
		case errors.Is(err, store.ErrWriteFailed):
			s.writeFailed(w, err)
		case stopped(w, err):
		default:
			s.cfg.Logger.Warn("http api: create failed", "bucket", name, "error", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the registry cannot create buckets now")
		}
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteBucket stops the bucket normally: 204, or 404; 503 write_failed
// when the store refuses to drop it. Once asked, the delete runs to its
// end even if the client goes away (net/http then ends the request's
// context, as it does for one that shuts its sending side after the
// request): a context that ended after the bucket stopped would make the
// reply say "try again" for a bucket that is gone.
func (s *Server) deleteBucket(w http.ResponseWriter, r *http.Request) {
	var err error
	ctx := context.WithoutCancel(r.Context())
	registry.Shared(s.cfg.Registry.TxLock(), func() { err = s.cfg.Registry.Delete(ctx, r.PathValue("bucket")) })
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			bucketNotFound(w)
			return
		}
		if errors.Is(err, store.ErrWriteFailed) {
			s.writeFailed(w, err)
			return
		}
		if stopped(w, err) {
			return
		}
		s.cfg.Logger.Error("http api: delete failed", "bucket", r.PathValue("bucket"), "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the bucket could not be deleted now (see the server's log); try again")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getBucket replies with every pair of the bucket, sorted by key, from one
// consistent view; or, with limit or cursor, with a page of them in the
// order HSCAN walks (the keys' hash): a page costs O(log n + limit), not a
// walk of the whole bucket. The cursor is HSCAN's, in decimal; a key
// present for the whole walk comes exactly once, each page is one
// consistent view.
func (s *Server) getBucket(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("bucket")
	limit, ok := readLimit(w, r)
	if !ok {
		return
	}
	var cursor uint64
	paged := limit > 0
	if v := r.URL.Query().Get("cursor"); v != "" {
		c, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_cursor", "cursor is not one this API gave")
			return
		}
		cursor, paged = c, true
	}
	if paged && limit == 0 {
		limit = DefaultPageLimit
	}
	var dump bucketDump
	var whole []rawPair // unpaged: the pairs, written by writeDump
	view := func(tx *bucket.Tx) error {
		dump = bucketDump{bucketRef: newBucketRef(name), Pairs: []pair{}}
		if !paged {
			whole = make([]rawPair, 0, tx.Len())
			return tx.ForEach(func(k string, v []byte) error {
				whole = append(whole, rawPair{k, v}) // v is a copy
				return nil
			})
		}
		keys, next, err := tx.Scan(cursor, limit)
		if err != nil {
			return err
		}
		for _, k := range keys {
			v, _ := tx.Get(k)
			dump.Pairs = append(dump.Pairs, newPair(k, v))
		}
		if next != 0 {
			dump.NextCursor = strconv.FormatUint(next, 10)
		}
		return nil
	}
	ok, err := s.follow(w, r, name, func(b *bucket.Bucket) error { return b.View(view) })
	if !ok {
		return
	}
	if err != nil {
		s.bucketError(w, err)
		return
	}
	if !paged {
		slices.SortFunc(whole, func(a, b rawPair) int { return strings.Compare(a.key, b.key) })
		writeDump(w, dump.bucketRef, whole)
		return
	}
	writeJSON(w, dump)
}

func newPair(k string, v []byte) pair {
	return pair{
		Key:         k,
		KeyBase64:   base64.StdEncoding.EncodeToString([]byte(k)),
		ValueBase64: base64.StdEncoding.EncodeToString(v),
	}
}

// rawPair is a key and a copy of its value, for writeDump.
type rawPair struct {
	key   string
	value []byte
}

// writeDump writes a whole bucket (its pairs sorted by key) as
// json.Encoder writes a bucketDump of it, byte for byte, but a pair at a
// time: the reply holds the bucket once, the copies of its values, each
// let go once written, rather than the bucket in base64 and then the
// whole JSON as well (3.4 times the bucket, held until a slow client took
// it all).
func writeDump(w http.ResponseWriter, ref bucketRef, pairs []rawPair) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	head, _ := json.Marshal(ref) // {"name":...,"name_base64":...}
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"pairs":[`)
	var b64 []byte
	for i := range pairs {
		if i > 0 {
			bw.WriteByte(',')
		}
		key, _ := json.Marshal(pairs[i].key) // escaped as the encoder does
		bw.WriteString(`{"key":`)
		bw.Write(key)
		bw.WriteString(`,"key_base64":"`)
		b64 = base64.StdEncoding.AppendEncode(b64[:0], []byte(pairs[i].key))
		bw.Write(b64)
		bw.WriteString(`","value_base64":"`)
		b64 = base64.StdEncoding.AppendEncode(b64[:0], pairs[i].value)
		bw.Write(b64)
		bw.WriteString(`"}`)
		pairs[i].value = nil
		if cap(b64) > 64<<10 {
			b64 = nil // one large value's buffer is not kept for the rest
		}
	}
	bw.WriteString("]}\n")
	bw.Flush() // a client gone is the server's to notice
}

// getKey replies with the value's raw bytes.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	var v []byte
	ok, err := s.follow(w, r, r.PathValue("bucket"), func(b *bucket.Bucket) (err error) {
		v, err = b.Get(r.PathValue("key"))
		return err
	})
	if !ok {
		return
	}
	if err != nil {
		s.bucketError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.Write(v)
}

// putKey stores the request body, raw, as the value: 204.
func (s *Server) putKey(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.lookup(w, r, r.PathValue("bucket")); !ok {
		return // a 404 before the body is read
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		bodyTooLarge(w, s.cfg.MaxBodyBytes)
		return
	}
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			bodyTooLarge(w, s.cfg.MaxBodyBytes)
			return
		}
		writeError(w, http.StatusBadRequest, "bad_body", "reading the body: "+err.Error())
		return
	}
	var p bucket.Pending
	ok, err := s.follow(w, r, r.PathValue("bucket"), func(b *bucket.Bucket) (err error) {
		_, p, err = b.SetNoWait(r.PathValue("key"), v)
		return err
	})
	if !ok {
		return
	}
	if err == nil {
		err = p.Wait() // after follow: not under the TxLock
	}
	if err != nil {
		s.bucketError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteKey removes the key: 204, or 404 when it was absent.
func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	var p bucket.Pending
	ok, err := s.follow(w, r, r.PathValue("bucket"), func(b *bucket.Bucket) (err error) {
		_, p, err = b.DeleteNoWait(r.PathValue("key"))
		return err
	})
	if !ok {
		return
	}
	if err == nil {
		err = p.Wait() // after follow: not under the TxLock
	}
	if err != nil {
		s.bucketError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// lookup returns the bucket named name through the registry's
// LookupCurrent, which follows a bucket that has just ended to what the
// name means now. When there is none it writes the 404 (or, if the bucket
// could not be loaded from the store, a 503) and reports false. The
// error behind a 503 is logged, not sent: it holds the store's file
// paths and system errors.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, name string) (*bucket.Bucket, bool) {
	b, ok, err := s.cfg.Registry.LookupCurrent(r.Context(), name)
	switch {
	case err != nil && stopped(w, err):
		return nil, false
	case err != nil:
		s.cfg.Logger.Warn("http api: lookup failed", "bucket", name, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the bucket cannot be loaded now; try again")
		return nil, false
	case !ok:
		bucketNotFound(w)
		return nil, false
	}
	if s.testHookLookup != nil {
		s.testHookLookup(b)
	}
	return b, true
}

// maxAttempts bounds how often a request follows a name to a new bucket
// after the one it found had ended.
const maxAttempts = 8

// follow runs op on the bucket named name, and again on the bucket the
// name leads to then when op finds that its bucket had ended before op
// began (it crashed, or a RENAME replaced it; with a store, the same pairs
// come back at the next lookup), as the Redis front end does: a request
// then meets what the name means now, not a 404. ok is false when a reply
// was written instead (no such bucket, it could not be loaded, or it ended
// over and over: a 503); err is op's error. op runs under the registry's
// TxLock, shared, so that it does not land in the middle of a Redis
// transaction: it must not wait for the disk (a write's Pending is waited
// for after follow returns).
func (s *Server) follow(w http.ResponseWriter, r *http.Request, name string, op func(*bucket.Bucket) error) (ok bool, err error) {
	for range maxAttempts {
		b, ok := s.lookup(w, r, name)
		if !ok {
			return false, nil
		}
		registry.Shared(s.cfg.Registry.TxLock(), func() { err = op(b) })
		if !bucket.EndedBefore(err) {
			return true, err
		}
	}
	// Ended over and over: the bucket is there, but busy ending.
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the bucket ended while the request ran, again and again; try again")
	return false, nil
}

// bucketError turns a bucket operation's error into a reply: an ended
// bucket was deleted meanwhile (404), as is an absent key; a write the
// store refused is 503; anything else is 500.
func (s *Server) bucketError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		writeError(w, http.StatusNotFound, "key_not_found", "no such key")
	case errors.Is(err, bucket.ErrEnded):
		bucketNotFound(w)
	case errors.Is(err, store.ErrWriteFailed):
		s.writeFailed(w, err)
	case stopped(w, err):
	default:
		s.cfg.Logger.Error("http api: bucket operation failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "the operation failed")
	}
}

// writeFailed answers a write the store refused (a full or failing disk,
// an error wrapping store.ErrWriteFailed): nothing was changed, and the
// same write may succeed later.
func (s *Server) writeFailed(w http.ResponseWriter, err error) {
	s.cfg.Logger.Warn("http api: write failed", "error", err)
	writeError(w, http.StatusServiceUnavailable, "write_failed", "the write could not be stored, and was not made; try again later")
}

// stopped answers, and reports true for, an error of a registry that has
// begun to stop (a request still running when the front ends' stop gave
// up waiting for it): the server is stopping, which is no failure to log.
func stopped(w http.ResponseWriter, err error) bool {
	if !errors.Is(err, registry.ErrStopped) {
		return false
	}
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is stopping")
	return true
}

func bucketNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "bucket_not_found", "no such bucket")
}

func bodyTooLarge(w http.ResponseWriter, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
		"the body is longer than "+strconv.FormatInt(limit, 10)+" bytes")
}

// healthz says the process is alive.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]string{"status": "ok"})
}

// readyz says whether the tree is serving, from Config.Ready.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.cfg.Ready(); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		writeJSON(w, map[string]string{"status": "not ready", "error": err.Error(), "code": "not_ready"})
		return
	}
	writeJSON(w, map[string]string{"status": "ready"})
}

// serveMetrics serves the Prometheus exposition.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

// save writes a checkpoint, as SAVE does, with Config.Save.
func (s *Server) save(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Save == nil {
		writeError(w, http.StatusServiceUnavailable, "no_storage", "kv runs in memory only: there is nothing to save")
		return
	}
	dir, at, err := s.cfg.Save()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "save_failed", err.Error())
		return
	}
	writeJSON(w, map[string]any{"dir": dir, "last_save": at.Unix()})
}
