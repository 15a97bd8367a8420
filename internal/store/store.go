package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is kv's durable store: one pebble database in a locked directory.
// Create one with [Open]. All methods are safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	fs   *faultFS
	lock *pebble.Lock

	// mu guards db and closed. Operations that use db hold it for reading;
	// Close and recovery hold it for writing.
	mu     sync.RWMutex
	db     *pebble.DB // nil while a recovery could not reopen it
	closed bool

	fault     atomic.Pointer[faultInfo] // non-nil while writes fail
	fatals    atomic.Uint64             // pebble Fatalf calls: the engine is unusable
	retryMu   sync.Mutex
	lastRetry time.Time
	retries   atomic.Uint64 // recovery attempts (tests wait on it)

	lastSave    atomic.Int64           // Unix ns of the last checkpoint, 0 if none
	saveMu      sync.Mutex             // one Checkpoint at a time
	corruptFile atomic.Pointer[string] // the last file pebble found damaged

	// For FsyncEverySec: the batches acknowledged and not yet covered by a
	// successful sync, replayed if a failure cuts them from the WAL. Every
	// batch whose sequence number is below syncedSeq is durable, and never
	// joins the list (its Waiter may be called long after its sync).
	unsyncedMu sync.Mutex
	unsynced   []unsyncedBatch
	syncedSeq  uint64      // guarded by unsyncedMu
	dirty      atomic.Bool // a write since the last background sync
	syncMu     sync.Mutex  // one syncNow at a time (the loop, checkpoints)
	cutTail    bool        // under mu: a recovery cut the WAL and has not reopened since

	// Writes waiting to be committed, in groups (see group): queueMu
	// guards the queue, from head to tail, and open, the group new writes
	// join (nil: the next write starts one). commitMu is held by the
	// waiter that commits the groups at the head, one at a time.
	queueMu    sync.Mutex
	head, tail *group
	open       *group
	// holds counts the Holds under way (see Hold); the groups they keep
	// are marked held. Under queueMu.
	holds int
	// holdMu is read-locked by each Hold until its release, and
	// write-locked by a checkpoint while it commits what was written
	// before it and copies the store: a checkpoint waits for the Holds
	// under way to end, and holds new ones back meanwhile, so that it
	// never cuts a held group, nor a Hold whose drop or move committed
	// the writes before it.
	holdMu   sync.RWMutex
	commitMu sync.Mutex
	logNext  uint64 // under commitMu: the number of the next log record

	// The log's folding (see fold.go): logPending counts the bytes of the
	// records committed since the last fold began; foldMu is held by the
	// fold under way; foldKick wakes the folder.
	logPending atomic.Int64
	foldMu     sync.Mutex
	// Under foldMu: the engine of the last fold, and the number after
	// the last record it folded. A fold of the same engine starts there:
	// the records before it are deleted, but their point deletions stay
	// in the memtable, and an iterator from the log's start would step
	// over all of them. Another engine (a reopen) starts from the start.
	foldedDB   *pebble.DB
	foldedNext uint64
	// Under foldMu: the range deletions the folds of foldedDB have
	// written since they last had its memtable flushed (see flushRanges).
	foldedRanges int
	// Under foldMu: the most keys the last fold's map held, and the bytes
	// of records it folded (see folding.hint).
	foldKeys, foldBytes int64
	foldKick            chan struct{}
	foldStopped         chan struct{} // closed when the folder has returned

	testCommitHook         func()                     // tests: called before each group's commit
	testCheckpointGateHook func()                     // tests: called before a checkpoint waits for the Holds
	testCheckpointCopyHook func()                     // tests: called once a checkpoint has settled, before it copies
	testHoldWaitHook       func()                     // tests: called when a WaitOrUndo waits for a Hold to end
	testSaveHook           func(partial string) error // tests: called once a checkpoint is written, before its rename

	waiters     sync.WaitGroup // Waiters not yet waited for (Close waits for them)
	outstanding atomic.Int64   // how many: recovery goes on only at zero
	stop        chan struct{}
	stopped     chan struct{} // closed when the syncer has returned
}

type faultInfo struct {
	file string
	err  error
	at   time.Time
}

// unsyncedBatch is a FsyncEverySec write acknowledged (written to the OS)
// but not yet covered by a background fsync: what a recovery replays if a
// failure cuts it from the WAL.
type unsyncedBatch struct {
	seq  uint64
	repr []byte // the batch's bytes, for a replay
}

// Open opens the store in dir, creating the directory and an empty store if
// needed, and locks the directory: a second Open of it, in this process or
// another, fails at once with an error wrapping ErrLocked. Open replays the
// write-ahead log; a torn tail left by a crash is recovered up to the last
// whole write and logged. Damage that recovery may not repair makes Open fail
// with an error naming the damaged file.
func Open(dir string, opts Options) (*Store, error) {
	return open(dir, opts, vfs.Default)
}

// open is Open on the file system disk (tests fail some of its calls).
func open(dir string, opts Options, disk vfs.FS) (*Store, error) {
	opts.setDefaults()
	abs, err := canonicalDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: abs, opts: opts, log: opts.Logger}
	s.fs = newFaultFS(disk, abs, opts.Faults, s.onFault, opts.Fsync != FsyncAlways)

	if err := reserveForStore(abs); err != nil {
		return nil, err
	}
	s.lock, err = lockDir(abs, "another kv (or another store in this process) holds it")
	if err != nil {
		releaseForStore(abs)
		return nil, err
	}
	start := time.Now()
	end, err := s.reportTornTail()
	if err != nil {
		s.releaseLock()
		return nil, err
	}
	popts := s.pebbleOptions(false)
	// A directory that holds a store's files but no marker of its current
	// MANIFEST (a backup that skipped empty files, a partial copy) is not
	// an empty directory: pebble would create a new store over it, and
	// delete the old one's tables as obsolete.
	files, foreign := survey(abs)
	popts.ErrorIfNotExists = len(files) > 0
	s.db, err = pebble.Open(abs, popts)
	if err != nil {
		s.releaseLock()
		if errors.Is(err, pebble.ErrDBDoesNotExist) {
			return nil, fmt.Errorf("%w: %s holds a store's files (%s) but no marker.manifest file naming its current MANIFEST, "+
				"so kv cannot tell what they hold and will not create a new store over them: "+
				"restore the directory from a backup or a checkpoint, or move it away to start empty",
				ErrCorrupt, abs, strings.Join(files, ", "))
		}
		if end != nil && pebble.IsCorruptionError(err) {
			return nil, walDamage(abs, err, end)
		}
		return nil, openError(abs, err)
	}
	if len(files) == 0 && !opts.plainFirstWAL {
		// Pebble creates a new store's first WAL before it raises the
		// store's format to the newest, so that log lacks the sync
		// chunks that let a later start tell damage in the middle of the
		// log (refused) from a torn, unsynced tail (cut): damage there
		// would drop every write after it, fsynced ones included, with
		// only a log line. One reopen starts a log that has them.
		if err := s.db.Close(); err != nil {
			s.releaseLock()
			return nil, fmt.Errorf("store: open %s: %w", abs, err)
		}
		if s.db, err = pebble.Open(abs, popts); err != nil {
			s.releaseLock()
			return nil, openError(abs, err)
		}
	}
	if end != nil {
		s.logTornTail(end)
	}
	if err := ensureFormat(s.db, abs); err != nil {
		_ = s.db.Close()
		s.releaseLock()
		return nil, err
	}
	// The records left in the log are folded before anything reads the
	// bucket keys (loadMeta included), and new records are numbered after
	// them (see fold.go).
	if s.logNext, err = s.foldDB(s.db); err != nil {
		_ = s.db.Close()
		s.releaseLock()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if err := s.loadMeta(); err != nil {
		_ = s.db.Close()
		s.releaseLock()
		return nil, err
	}
	s.log.Info("store opened", "dir", abs, "fsync", opts.Fsync.String(), "took", time.Since(start))
	if len(foreign) > 0 {
		// Allowed (an operator's log file beside the store), but a
		// mistyped directory (/etc, a home) now has the store's files
		// scattered among its own: said once, at the creation.
		s.log.Warn("store: created a new store in a directory that holds other files; is it the directory meant for the store?",
			"dir", abs, "files", strings.Join(foreign, ", "))
	}

	s.stop = make(chan struct{})
	s.stopped = make(chan struct{})
	s.foldKick = make(chan struct{}, 1)
	s.foldStopped = make(chan struct{})
	go s.foldLoop()
	if opts.Fsync == FsyncEverySec {
		go s.syncLoop()
	} else {
		close(s.stopped)
	}
	return s, nil
}

// walDamage is the error of an open that pebble refused, err, when end
// says where the newest WAL of dir is unreadable: pebble proved the WAL
// damaged (a later write says the log was synced past the unreadable
// one). It names the file and the ways out.
func walDamage(dir string, err error, end *walEnd) error {
	copied := ""
	switch {
	case end.copyErr != nil:
		copied = "; it could not be copied: " + end.copyErr.Error()
	case end.copy != "":
		copied = "; a copy of the file: " + end.copy
	}
	return fmt.Errorf("%w (write-ahead log %s is unreadable at byte %d, with %d bytes of later writes: "+
		"restore a checkpoint, or keep the %d writes before the damage with: truncate -s %d %s%s)",
		openError(dir, err), end.path, end.cut, end.later, end.records, end.cut, end.path, copied)
}

// survey reads dir once, before Open, and returns the names of up to 5
// of each of two kinds of its entries:
//
// files, the engine's data files: its tables and write-ahead logs, named
// by their number. Other files do not count: the lock, kv's
// subdirectories, a log file of the operator's, nor a MANIFEST alone (a
// creation cut short, by a full disk or a kill, that held no data).
//
// foreign, when dir holds no store yet (no marker of a current
// MANIFEST), the entries that are neither the engine's nor kv's: nil for
// an empty directory and for an existing store.
func survey(dir string) (files, foreign []string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil // pebble's Open says what is wrong
	}
	stored := false // a marker of a current MANIFEST
	for _, e := range ents {
		n := e.Name()
		num, ok := strings.CutSuffix(n, ".sst")
		if !ok {
			num, ok = strings.CutSuffix(n, ".log")
		}
		switch {
		case ok && len(num) >= 6 && strings.Trim(num, "0123456789") == "": // pebble's: 000123
			if len(files) < 5 {
				files = append(files, n)
			}
		case strings.HasPrefix(n, "marker.manifest."):
			stored = true
		case n == "LOCK" || strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "OPTIONS-") ||
			strings.HasPrefix(n, "marker.") || n == "checkpoints" || n == "damaged" ||
			n == "lost+found": // the root of a file system of its own
		default:
			if len(foreign) < 5 {
				foreign = append(foreign, n)
			}
		}
	}
	if stored {
		foreign = nil
	}
	return files, foreign
}

// canonicalDir creates dir if needed and returns its absolute path with
// symbolic links resolved, so that one directory has one name (pebble's
// in-process lock check compares names).
func canonicalDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("store: empty data directory name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("store: create data directory: %w", err)
	}
	abs, err := resolveDir(dir)
	if err != nil {
		return "", fmt.Errorf("store: data directory %s: %w", dir, err)
	}
	return abs, nil
}

// resolveDir returns the one name of the existing directory dir: absolute
// first, then with symbolic links resolved (the other order would keep a
// link that a relative dir's working directory was reached through). A
// store and a Check of one directory find each other by it (see inUse).
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// memTableSize is the engine's memtable size. Pebble commits a batch of
// half of it or more as a memtable of its own (a large batch).
const memTableSize = 4 << 20

// largeBatch is a batch size (its bytes, plus 256 for each change: a
// memtable's overhead is less, about 200) from which pebble may treat it
// as large.
const largeBatch = memTableSize / 4

func (s *Store) pebbleOptions(readOnly bool) *pebble.Options {
	o := &pebble.Options{
		FS:       s.fs,
		Lock:     s.lock,
		Logger:   pebbleLogger{s: s},
		ReadOnly: readOnly,
		// Pebble's default. Every write is inserted into the memtable's
		// skiplist, and the cost of that insert grows with the memtable:
		// with 64 MiB, HSET with -P 16 under everysec spent 40% of the
		// daemon's CPU there and ran at 0.65x the speed it has with 4 MiB
		// (2 MiB and 8 MiB were no better).
		MemTableSize: memTableSize,
		// Pebble stops writes at 12 L0 sublevels by default, until
		// compactions catch up. While the store is fenced, compactions
		// wait for the recovery, and writes in flight at the fault go on
		// flushing into memory: a stop would hold the commit pipeline,
		// and Close with it, for ever. kv reads the engine only to load
		// buckets, so it can afford the deeper L0 that a burst leaves.
		L0StopWritesThreshold: 1000,
		MaxOpenFiles:          s.opts.MaxOpenFiles,
		FormatMajorVersion:    pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				s.log.Error("store: background error", "dir", s.dir, "err", detail(err))
			},
			// Pebble's default calls Fatalf. Damage is reported by the read
			// that meets it (an error wrapping ErrCorrupt, naming the file).
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				s.corruptFile.Store(&info.Path)
				s.log.Error("store: damaged file", "file", info.Path, "err", detail(info.Details))
			},
		},
	}
	return o
}

// lockDir locks the data directory dir. An error wraps ErrLocked, saying
// held, only when another holder has the lock; one that opening the lock
// file met (a read-only directory, a permission) says so instead.
func lockDir(dir, held string) (*pebble.Lock, error) {
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err == nil {
		return lock, nil
	}
	path := filepath.Join(dir, "LOCK")
	var pe *fs.PathError
	heldElsewhere := errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || // fcntl's two answers
		strings.Contains(err.Error(), "held by current process") // pebble's own table
	if errors.As(err, &pe) || !heldElsewhere { // opening the file, or no lock support (ENOLCK)
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return nil, fmt.Errorf("%w: %s: %s: %v", ErrLocked, dir, held, err)
}

// openError turns pebble's open error into one that says what to do.
func openError(dir string, err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: open %s: %s (the damage cannot be repaired automatically; restore a checkpoint or move the directory away)", ErrCorrupt, dir, detail(err))
	}
	return fmt.Errorf("store: open %s: %w", dir, err)
}

func (s *Store) releaseLock() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
		releaseForStore(s.dir)
	}
}

// Dir returns the absolute path of the data directory.
func (s *Store) Dir() string { return s.dir }

// Fsync returns the store's durability policy.
func (s *Store) Fsync() Fsync { return s.opts.Fsync }

// Close stops the background sync, syncs and closes the store and releases
// the directory. It waits for every Waiter to be waited for. Closing while
// writes still fail (no write has recovered the store since a failure)
// returns an error wrapping ErrWriteFailed, though what was acknowledged
// is kept as the policy says. Later calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()

	close(s.stop)
	<-s.stopped
	<-s.foldStopped
	s.waiters.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if fi := s.fault.Load(); fi != nil {
		err = fmt.Errorf("store: closed while writes still fail: %w", fi.error())
		// Closing after a failed write, recovered or not: the engine is
		// not reopened here (on a disk that fails again, pebble's Open
		// retries for ever). The WAL's unsynced tail holds, under
		// FsyncAlways, only writes that were reported as failed: it is
		// cut (truncating needs no free space), or they would come back
		// at the next start. Under FsyncEverySec it holds acknowledged
		// writes (they reached the OS; a sync failed): it is kept, and
		// the next start replays it.
		if s.db != nil {
			if cerr := s.closeDB(); cerr != nil {
				s.log.Warn("store: closing the failed engine", "err", detail(cerr))
			}
		}
		s.unsyncedMu.Lock()
		lost := len(s.unsynced)
		s.unsynced = nil
		s.unsyncedMu.Unlock()
		if s.cutTail && lost > 0 {
			// A recovery cut them from the WAL to replay them, then could
			// not reopen: memory held the only copy.
			s.log.Error("store: acknowledged writes since the last fsync are lost: the disk failed, a recovery cut them from the write-ahead log to replay them, and could not reopen",
				"dir", s.dir, "writes", lost)
			err = errors.Join(err, fmt.Errorf("store: %d acknowledged writes since the last fsync could not be written back", lost))
		}
		if s.opts.Fsync == FsyncAlways {
			cut, cerr := s.fs.cutUnsynced()
			if cerr != nil {
				s.log.Error("store: could not cut the writes that failed from the write-ahead log; they may come back at the next start",
					"dir", s.dir, "err", cerr)
				err = errors.Join(err, cerr)
			}
			for file, n := range cut {
				s.log.Warn("store: cut the unsynced tail of the write-ahead log (writes that were reported as failed)",
					"file", file, "bytes", n)
			}
		}
	}
	if s.db != nil {
		// A clean stop loses nothing, whatever the policy: closing the
		// engine closes the WAL, which syncs it.
		s.unsyncedMu.Lock()
		s.unsynced = nil
		s.unsyncedMu.Unlock()
		if cerr := s.closeDB(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if fi := s.fault.Load(); fi != nil {
			// The WAL's last fsync, at its close, failed.
			err = errors.Join(err, fmt.Errorf("store: close: %w", fi.error()))
		}
	}
	s.releaseLock()
	return err
}

// closeDB closes s.db (held under s.mu) and sets it to nil. A panic inside
// pebble's Close (an engine already broken by a failed write) is reported as
// an error.
func (s *Store) closeDB() (err error) {
	db := s.db
	s.db = nil
	s.fs.setClosing(true) // compactions waiting on the fence fail, so that Close can wait for them
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: close %s: panic: %v", s.dir, r)
		}
	}()
	if cerr := db.Close(); cerr != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, cerr)
	}
	return nil
}

// onFault is called by the file system below pebble on the first failed
// write or sync; from then on, every write fails until recovery.
func (s *Store) onFault(file string, err error) {
	fi := &faultInfo{file: file, err: err, at: time.Now()}
	if s.fault.CompareAndSwap(nil, fi) {
		s.log.Error("store: a write to disk failed; writes fail until it recovers, reads go on",
			"dir", s.dir, "file", file, "err", err)
	}
}

// faultErr returns the error of the recorded fault, or a generic one.
func (s *Store) faultErr() error {
	if fi := s.fault.Load(); fi != nil {
		return fi.error()
	}
	return fmt.Errorf("%w: the disk failed", ErrWriteFailed)
}

// Err returns nil while the store can write, or the error that makes its
// writes fail (wrapping ErrWriteFailed): for health checks and readiness.
func (s *Store) Err() error {
	if fi := s.fault.Load(); fi != nil {
		return fi.error()
	}
	return nil
}

func (fi *faultInfo) error() error {
	return fmt.Errorf("%w: %s at %s: %w", ErrWriteFailed, fi.file, fi.at.UTC().Format(time.RFC3339), fi.err)
}

// syncLoop is FsyncEverySec's background sync: once a period, if anything
// was written, it syncs the WAL.
func (s *Store) syncLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.syncEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.fault.Load() != nil {
				// The acknowledged writes since the last fsync are durable
				// only once the store has recovered: try, even if no write
				// comes to try it (at most once per RetryInterval).
				_ = s.recover()
				continue
			}
			if s.dirty.Swap(false) {
				if err := s.syncNow(); err != nil {
					s.dirty.Store(true)
					if s.fault.Load() == nil { // else onFault logged it
						s.log.Error("store: background sync failed", "dir", s.dir, "err", detail(err))
					}
				}
			}
		}
	}
}

// syncNow makes every acknowledged write durable: one fsync of the WALs
// (under FsyncAlways, a synced empty commit), after which the FsyncEverySec
// writes acknowledged before it are forgotten.
func (s *Store) syncNow() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if fi := s.fault.Load(); fi != nil {
		return fi.error()
	}
	// An empty commit marks how far the sync reaches: once it is written,
	// so is every batch committed before it (the WAL is written in commit
	// order), and those are the batches below its sequence number. Under
	// FsyncAlways the commit itself is fsynced, and that is all; under the
	// others the fsync is deferred, and done below.
	mark := s.db.NewBatch()
	defer mark.Close()
	_ = mark.LogData(nil, nil)
	if err := s.db.Apply(mark, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync %s: %w", s.dir, err)
	}
	if s.opts.Fsync == FsyncAlways {
		return nil
	}
	covered := uint64(mark.SeqNum())
	if err := s.fs.syncWALs(); err != nil {
		return fmt.Errorf("store: sync %s: %w", s.dir, err)
	}
	s.unsyncedMu.Lock()
	s.syncedSeq = max(s.syncedSeq, covered)
	s.unsynced = slices.DeleteFunc(s.unsynced, func(u unsyncedBatch) bool { return u.seq < covered })
	s.unsyncedMu.Unlock()
	return nil
}
