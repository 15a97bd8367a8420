package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// reportTornTail reads the newest WAL before pebble replays it. Pebble
// replays it up to its first unreadable write and drops the rest, as it
// must for a torn tail (a crash cut the write under way, which no
// FsyncAlways caller was told had succeeded); but it drops damage in the
// middle of the file (disk rot, a stray write) the same way, with every
// write after it, silently. So, where reading stops:
//   - nothing of this log follows (zeros, or an older log's content in a
//     recycled file): a clean end, nothing to say;
//   - whole writes of this log follow, in a later block or, after an
//     unreadable chunk whose header frames it, in the same block: the
//     start goes on (a power cut can leave such a hole in an unsynced
//     tail, when the disk writes pages out of order), with an error line
//     that says how many bytes are dropped, and a copy of the file under
//     damaged/ to recover them from; unless a later chunk says the log was
//     synced past the hole (see trueSyncedOffsets: kv keeps those claims
//     true), when pebble refuses to open (kv itself, for a chunk in the
//     same block, where pebble does not look): that is damage, not a
//     power cut;
//   - otherwise a torn tail: recovered up to the last whole write, logged.
//
// Later writes are looked for only where a chunk must start (each block's
// start, then chunk after chunk, and after the unreadable chunk, where its
// header's length says the next one starts): never inside a write's
// payload, where a client's value could mimic one. (A header whose length
// is itself damaged could lead the search into a payload; that takes
// damage at that very place and a client's forged chunks behind it.)
func (s *Store) reportTornTail() (*walEnd, error) {
	end, err := inspectNewestWAL(s.dir)
	if err != nil || end == nil {
		return nil, err
	}
	if end.later > 0 {
		// Copied before pebble opens the log, which it may then replace.
		end.copy, end.copyErr = keepCopy(s.dir, end.path)
	}
	if end.syncedPast {
		return nil, walDamage(s.dir, errSyncedPast, end)
	}
	return end, nil
}

// errSyncedPast is the damage kv finds itself in the newest WAL's last
// readable block (see walEnd.syncedPast), as pebble reports the same in a
// later block.
var errSyncedPast = fmt.Errorf("%w: a later write in the same block of the write-ahead log says the log was synced past the unreadable one",
	pebble.ErrCorruption)

// logTornTail says, once the store has opened, what reportTornTail found
// and the start dropped.
func (s *Store) logTornTail(end *walEnd) {
	if end.later == 0 {
		s.log.Warn("store: the write-ahead log ends with a torn write (a crash cut it); recovered every whole write before it",
			"file", end.path, "whole_writes", end.records, "cut_at", end.cut, "file_size", end.size)
		return
	}
	attrs := []any{"file", end.path, "whole_writes_kept", end.records, "unreadable_at", end.cut,
		"dropped_bytes_of_later_writes", end.later, "copy", end.copy}
	if end.copyErr != nil {
		attrs = append(attrs, "copy_error", end.copyErr.Error())
	}
	s.log.Error("store: the write-ahead log is unreadable before its end; the writes after that point were dropped (possible damage; after a power cut, the unsynced tail)",
		attrs...)
}

// keepCopy copies file into dir/damaged/ and returns the copy's path. A
// copy of the same bytes made before (by a start that was then refused,
// and retried) is kept instead of a new one, so that a restart loop does
// not fill the disk.
func keepCopy(dir, file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	damaged := filepath.Join(dir, "damaged")
	earlier, _ := filepath.Glob(filepath.Join(damaged, filepath.Base(file)+".*"))
	for _, c := range earlier {
		if fi, err := os.Stat(c); err != nil || fi.Size() != int64(len(data)) {
			continue
		}
		if same, err := os.ReadFile(c); err == nil && bytes.Equal(same, data) {
			return c, nil
		}
	}
	to := filepath.Join(damaged, fmt.Sprintf("%s.%d", filepath.Base(file), time.Now().UnixNano()))
	if err := os.MkdirAll(damaged, 0o755); err != nil {
		return "", err
	}
	return to, os.WriteFile(to, data, 0o644)
}

// walEnd describes where reading the newest WAL stops short of its end.
// later > 0 is possible damage; Check reports it.
type walEnd struct {
	path    string
	records int   // whole writes before the cut
	cut     int64 // where the unreadable part starts
	size    int64
	later   int // bytes in whole chunks of this log after the cut (0: a torn tail)
	// syncedPast: one of those chunks, in the cut's own block, says the log
	// was synced past the cut. Pebble looks for that proof of damage only in
	// the blocks after the one it stops in: kv refuses the start itself.
	syncedPast bool
	copy       string // where the file was copied, when later > 0
	copyErr    error  // why it could not be
}

// inspectNewestWAL classifies the end of the newest WAL in dir, as
// reportTornTail says: nil for a clean end, or a walEnd.
func inspectNewestWAL(dir string) (*walEnd, error) {
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return nil, nil // pebble's Open reports what is wrong, if anything
	}
	last := logs[len(logs)-1]
	_, path := last.SegmentLocation(0)
	if readsToTheEnd(last) {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	logNum := uint32(last.Num)
	records, cut := walkWAL(data, logNum)
	later, syncedPast := laterChunks(data, cut, logNum)
	// Whole writes of this log after the cut make it no clean end, whatever
	// the cut holds: damage to a chunk's kind or log number looks like the
	// end of the log, but the log goes on.
	if later == 0 && cleanEnd(data[cut:], logNum) {
		return nil, nil
	}
	return &walEnd{path: path, records: records, cut: cut, size: int64(len(data)), later: later, syncedPast: syncedPast}, nil
}

// readsToTheEnd reports whether pebble's own reader reads the log to its
// end without an error.
func readsToTheEnd(l wal.LogicalLog) bool {
	r := l.OpenForRead()
	defer r.Close()
	for {
		rec, _, err := r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// Pebble's WAL chunks (its record package): a header, then the payload,
// within one 32 KiB block. The header is a masked CRC-32C of everything
// after the length (4 bytes), the payload's length (2), an encoding (1),
// then the log's number (4) and, for the sync encodings, the offset the
// log was synced up to when the chunk was written (8). A writer pads a
// block's end that its header does not fit in with zeros, so every block
// starts with a chunk.
const (
	walBlockSize        = 32 << 10
	walRecyclableHeader = 11
	walSyncHeader       = 19
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walChunk is one chunk found valid at a position.
type walChunk struct {
	size   int    // header and payload
	logNum uint32 // the log it belongs to
	full   bool   // the whole of a write
	first  bool   // the first chunk of a write in several
	last   bool   // the last chunk of a write in several
	sync   bool   // written with the synced offset (a 19-byte header)
}

// chunkFrame reads the header of the chunk that rest starts with: its
// encoding (the sync encodings 9 to 12 as 5 to 8), its header's size and
// its whole size; false if rest does not start with a header of a kind
// kv's pebble writes, or holds less than the whole chunk.
func chunkFrame(rest []byte) (enc byte, header, size int, ok bool) {
	if len(rest) < walRecyclableHeader {
		return 0, 0, 0, false
	}
	header, enc = walRecyclableHeader, rest[6]
	switch {
	case enc >= 5 && enc <= 8: // recyclable full, first, middle, last
	case enc >= 9 && enc <= 12: // the same, with the synced offset
		header = walSyncHeader
		enc -= 4
	default:
		return 0, 0, 0, false
	}
	if len(rest) < header {
		return 0, 0, 0, false
	}
	size = header + int(binary.LittleEndian.Uint16(rest[4:6]))
	return enc, header, size, size <= len(rest)
}

// chunkSum is the checksum a chunk's header holds: a masked CRC-32C of
// everything after its length.
func chunkSum(chunk []byte) uint32 {
	sum := crc32.Checksum(chunk[6:], castagnoli)
	return (sum>>15 | sum<<17) + 0xa282ead8
}

// chunkAt parses the chunk at data[pos:], or reports false if there is no
// valid one (of a kind kv's pebble writes) there.
func chunkAt(data []byte, pos int64) (walChunk, bool) {
	rest := data[pos:]
	enc, header, size, ok := chunkFrame(rest)
	if !ok || pos/walBlockSize != (pos+int64(size)-1)/walBlockSize ||
		binary.LittleEndian.Uint32(rest[0:4]) != chunkSum(rest[:size]) {
		return walChunk{}, false
	}
	return walChunk{
		size:   size,
		logNum: binary.LittleEndian.Uint32(rest[7:11]),
		full:   enc == 5,
		first:  enc == 6,
		last:   enc == 8,
		sync:   header == walSyncHeader,
	}, true
}

// walkWAL reads the chunks of log logNum from the start of data as pebble
// does, and returns how many whole writes it read and where the first
// thing it cannot read starts (after the last whole write, and after the
// whole chunks of a write cut short).
func walkWAL(data []byte, logNum uint32) (records int, cut int64) {
	records, cut, _ = walkWALEnd(data, logNum)
	return records, cut
}

// walkWALEnd is walkWAL that also returns where the last whole write ends.
func walkWALEnd(data []byte, logNum uint32) (records int, cut, end int64) {
	var pos int64 // where reading has got to
	header := int64(walRecyclableHeader)
	inWrite := false
	for pos < int64(len(data)) {
		if left := walBlockSize - pos%walBlockSize; left < header || (left < walSyncHeader && zeros(data[pos:min(pos+left, int64(len(data)))])) {
			pos += left // the writer's padding
			continue
		}
		c, ok := chunkAt(data, pos)
		if !ok || c.logNum != logNum {
			break
		}
		if c.sync {
			header = walSyncHeader
		}
		pos += int64(c.size)
		switch {
		case c.full || (c.last && inWrite):
			records++
			end, inWrite = pos, false
		case c.first:
			inWrite = true
		case !inWrite: // a middle or last chunk with no first: unreadable
			return records, end, end
		}
	}
	// pos is where reading stopped: after the last whole write, or after
	// the whole chunks of a write cut short.
	return records, pos, end
}

func zeros(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// cleanEnd reports whether the log simply ends where reading stopped (rest
// starts there): the writer never began a write of this log there. A torn
// write leaves the start of a chunk of this log at the cut; a clean end
// leaves nothing, zeros, or whatever an older log left in a recycled file.
func cleanEnd(rest []byte, logNum uint32) bool {
	if len(rest) < walRecyclableHeader {
		return zeros(rest)
	}
	if enc := rest[6]; enc < 5 || enc > 12 {
		return true // no chunk header of the kinds this log writes
	}
	return binary.LittleEndian.Uint32(rest[7:11]) != logNum
}

// laterChunks returns how many bytes the valid chunks of log logNum hold
// after cut, read as pebble reads them: from each later block's start,
// chunk after chunk, until one is not valid; and in cut's own block, from
// the end of the chunk at cut, when its header frames a chunk that ends in
// the block (damage to its payload leaves its length, which says where the
// next chunk starts; a write cut short ends past the file or the block).
// syncedPast reports whether one of the chunks in cut's block says the log
// was synced past cut: the chunk there was written and synced whole, so it
// is damaged, not torn.
func laterChunks(data []byte, cut int64, logNum uint32) (bytes int, syncedPast bool) {
	size := int64(len(data))
	// scan counts the chunks from pos to end, which is a block's end or the
	// file's.
	scan := func(pos, end int64, sameBlock bool) {
		for pos < end {
			c, ok := chunkAt(data[:end], pos)
			if !ok || c.logNum != logNum {
				return
			}
			bytes += c.size
			if sameBlock && c.sync && binary.LittleEndian.Uint64(data[pos+11:pos+19]) > uint64(cut) {
				syncedPast = true
			}
			pos += int64(c.size)
		}
	}
	block := cut / walBlockSize * walBlockSize
	if cut < size {
		end := min(block+walBlockSize, size)
		if _, _, n, ok := chunkFrame(data[cut:end]); ok {
			scan(cut+int64(n), end, true)
		}
	}
	for block += walBlockSize; block < size; block += walBlockSize {
		scan(block, min(block+walBlockSize, size), false)
	}
	return bytes, syncedPast
}

// walRecords follows the records of one WAL through the writes of pebble's
// WAL writer, which writes whole chunks, and the zeros that pad a block's
// end. It keeps the recordKey of the last whole record written.
type walRecords struct {
	pos  int64    // where the next write goes
	head [12]byte // the batch header of the record being written in chunks
	got  int      // how much of head its chunks so far held
	in   bool     // a record's first chunk was written, not its last
	last uint64   // the key of the last whole record
	lost bool     // a write it could not follow: last no longer moves
}

// recordKey orders a WAL's records: a batch of count changes from sequence
// number seq has key 2*(seq+count), and a batch with no changes (a mark:
// it takes the sequence number of the batch after it, and comes before it
// in the log) has 2*seq+1. A commit is durable when the last durable
// record's key is at least its own.
func recordKey(seq uint64, count uint32) uint64 {
	if count == 0 {
		return 2*seq + 1
	}
	return 2 * (seq + uint64(count))
}

// feed follows the write p.
func (r *walRecords) feed(p []byte) {
	if r.lost {
		return
	}
	r.lost = !eachChunk(p, r.pos, func(_ int, c []byte, enc byte, header int) {
		payload := c[header:]
		switch enc {
		case 5: // a whole record
			if len(payload) >= 12 { // else the end-of-log trailer
				r.last = recordKey(binary.LittleEndian.Uint64(payload), binary.LittleEndian.Uint32(payload[8:12]))
			}
			r.in = false
		case 6: // first: its header may be cut across chunks, at a block's end
			r.in, r.got = true, copy(r.head[:], payload)
		case 7: // middle
			if r.in && r.got < len(r.head) {
				r.got += copy(r.head[r.got:], payload)
			}
		case 8: // last
			if r.in && r.got+len(payload) >= len(r.head) {
				r.got += copy(r.head[r.got:], payload)
				r.last = recordKey(binary.LittleEndian.Uint64(r.head[:8]), binary.LittleEndian.Uint32(r.head[8:12]))
			}
			r.in = false
		}
	})
	r.pos += int64(len(p))
}

// eachChunk calls fn with each chunk in p (at p[at:]), a write of whole
// chunks, and of the zeros that pad a block's end, at offset pos of a WAL,
// with its encoding (the sync encodings 9 to 12 as 5 to 8) and header
// size. It reports false if p is not such a write.
func eachChunk(p []byte, pos int64, fn func(at int, chunk []byte, enc byte, header int)) bool {
	for at := 0; at < len(p); {
		rest := p[at:]
		left := walBlockSize - (pos+int64(at))%walBlockSize
		if left < walRecyclableHeader || rest[0] == 0 && len(rest) > 6 && rest[6] == 0 {
			at += int(min(left, int64(len(rest)))) // padding
			continue
		}
		enc, header, size, ok := chunkFrame(rest)
		if !ok || int64(size) > left {
			return false
		}
		fn(at, rest[:size], enc, header)
		at += size
	}
	return true
}

// trueSyncedOffsets returns p, a write at offset pos of a WAL, with the
// synced offset that each sync chunk claims set to synced, how far the log
// is truly fsynced (on a copy, if that changes anything). Pebble writes in
// each chunk how far it believes the log is synced, and on replay refuses a
// log whose unreadable part a later chunk claims was synced. Under
// FsyncEverySec and FsyncNo kv defers the fsync that pebble believes done,
// so pebble's claim runs ahead of the truth. Under FsyncAlways it falls
// behind: pebble's count of what it synced leaves out the blocks it writes
// whole (only the current block's part is counted), so once writes fill
// blocks its claims lag by most of the log, and damage to fsynced writes
// passes for a hole in an unsynced tail.
func trueSyncedOffsets(p []byte, pos int64, synced uint64) []byte {
	out := p
	eachChunk(p, pos, func(at int, c []byte, _ byte, header int) {
		if header != walSyncHeader || binary.LittleEndian.Uint64(c[11:19]) == synced {
			return
		}
		if len(out) > 0 && &out[0] == &p[0] {
			out = slices.Clone(p)
		}
		c = out[at : at+len(c)]
		binary.LittleEndian.PutUint64(c[11:19], synced)
		binary.LittleEndian.PutUint32(c[0:4], chunkSum(c))
	})
	return out
}
