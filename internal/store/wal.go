package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// reportTornTail reads the newest WAL before pebble replays it. Pebble
// replays it up to its first unreadable write and drops the rest, as it
// must for a torn tail (a crash cut the write under way, which no
// FsyncAlways caller was told had succeeded). But pebble cannot tell that
// from damage in the middle of the file (disk rot, a stray write), which
// it would silently cut too, with every write after it. So:
//   - the log ends at a whole write, followed by nothing, zeros or an older
//     log's content (a recycled file): a clean end, nothing to say;
//   - an unreadable write with no whole write of this log after it: a torn
//     tail, recovered up to the last whole write, and logged;
//   - whole writes of this log after the unreadable one: damage, and Open
//     fails with an error wrapping ErrCorrupt that names the file, the
//     offset and what truncating it there would lose.
func (s *Store) reportTornTail() error {
	t, err := inspectNewestWAL(s.dir)
	if err != nil || t == nil {
		return err
	}
	s.log.Warn("store: the write-ahead log ends with a torn write (a crash cut it); recovering every whole write before it",
		"file", t.path, "whole writes", t.records, "cut at", t.end, "file size", t.size, "reason", t.reason)
	return nil
}

// tornTail describes the end of a WAL cut by a crash.
type tornTail struct {
	path      string
	records   int   // whole writes before the cut
	end, size int64 // where the last whole write ends; the file's size
	reason    error
}

// inspectNewestWAL classifies the end of the newest WAL in dir, as
// reportTornTail says: nil for a clean end, a tornTail, or an error
// wrapping ErrCorrupt for damage before the end.
func inspectNewestWAL(dir string) (*tornTail, error) {
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return nil, nil // pebble's Open reports what is wrong, if anything
	}
	last := logs[len(logs)-1]
	_, path := last.SegmentLocation(0)
	r := last.OpenForRead()
	defer r.Close()
	var (
		records   int
		lastStart wal.Offset // where the last whole record starts
	)
	for {
		rec, off, err := r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			data, rerr := os.ReadFile(path)
			if rerr != nil {
				return nil, fmt.Errorf("store: read %s: %w", path, rerr)
			}
			logNum := uint32(last.Num)
			from := int64(0) // where reading stopped: the end of the last whole write
			if records > 0 {
				from = writeEnd(data, min(lastStart.Physical, int64(len(data))), logNum)
			}
			if at, n := laterChunks(data, max(writeEnd(data, from, logNum), from+1), logNum); n > 0 {
				return nil, fmt.Errorf("%w: write-ahead log %s is damaged at byte %d, and %d bytes of later writes follow from byte %d: "+
					"not a torn tail, so the writes after the damage would be lost. Restore a checkpoint, or accept losing them: "+
					"truncate -s %d %s (keeps the %d writes before the damage)",
					ErrCorrupt, path, from, n, at, from, path, records)
			}
			if cleanEnd(data, from, logNum) {
				return nil, nil
			}
			return &tornTail{path: path, records: records, end: from, size: int64(len(data)), reason: err}, nil
		}
		records++
		lastStart = off
	}
}

// Pebble's WAL chunks (its record package): a header, then the payload.
// The header is a masked CRC-32C of everything after the length (4 bytes),
// the payload's length (2), an encoding (1), then for the recyclable and
// sync encodings the log's number (4) and for the sync ones an offset (8).
// Chunks never cross a 32 KiB block.
const (
	walBlockSize        = 32 << 10
	walRecyclableHeader = 11
	walSyncHeader       = 19
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walChunkAt returns the size of the chunk of log logNum that starts at
// data[0], at file offset pos, or 0 if there is no valid one there.
func walChunkAt(data []byte, pos int64, logNum uint32) int {
	if len(data) < walRecyclableHeader {
		return 0
	}
	header := 0
	switch enc := data[6]; {
	case enc >= 5 && enc <= 8: // recyclable full, first, middle, last
		header = walRecyclableHeader
	case enc >= 9 && enc <= 12: // the same, with the synced offset
		header = walSyncHeader
	default:
		return 0
	}
	size := header + int(binary.LittleEndian.Uint16(data[4:6]))
	if size > len(data) || binary.LittleEndian.Uint32(data[7:11]) != logNum ||
		pos/walBlockSize != (pos+int64(size)-1)/walBlockSize {
		return 0
	}
	c := crc32.Checksum(data[6:size], castagnoli)
	if binary.LittleEndian.Uint32(data[0:4]) != (c>>15|c<<17)+0xa282ead8 {
		return 0
	}
	return size
}

// writeEnd walks the chunks of the write whose first chunk is at start,
// and returns where they end: after its full or last chunk, or where a
// chunk of it is missing or broken (a torn write over several blocks may
// be cut after its first chunks).
func writeEnd(data []byte, start int64, logNum uint32) int64 {
	pos := start
	for pos < int64(len(data)) {
		n := walChunkAt(data[pos:], pos, logNum)
		if n == 0 {
			break
		}
		enc := data[pos+6]
		pos = nextChunkPos(pos + int64(n))
		if enc == 5 || enc == 8 || enc == 9 || enc == 12 { // a full or last chunk
			break
		}
	}
	return pos
}

// nextChunkPos is where the chunk after one that ends at pos starts: the
// writer pads a block's end that no header fits in.
func nextChunkPos(pos int64) int64 {
	if left := walBlockSize - pos%walBlockSize; left < walRecyclableHeader {
		return pos + left
	}
	return pos
}

// cleanEnd reports whether the log simply ends at from: the writer never
// began a write there. A torn write leaves the start of a chunk of this
// log at the cut; a clean end leaves zeros (unwritten space) or whatever
// an older log left in a recycled file.
func cleanEnd(data []byte, from int64, logNum uint32) bool {
	rest := data[from:]
	if len(rest) < walRecyclableHeader {
		for _, b := range rest {
			if b != 0 {
				return false
			}
		}
		return true
	}
	if enc := rest[6]; enc < 5 || enc > 12 {
		return true // no chunk of the kind this log writes starts here
	}
	return binary.LittleEndian.Uint32(rest[7:11]) != logNum
}

// laterChunks looks in data, from offset from on, for valid chunks of log
// logNum, and returns where the first starts and how many bytes they hold.
func laterChunks(data []byte, from int64, logNum uint32) (first int64, bytes int) {
	first = -1
	for pos := from; pos+walRecyclableHeader <= int64(len(data)); {
		if n := walChunkAt(data[pos:], pos, logNum); n > 0 {
			if first < 0 {
				first = pos
			}
			bytes += n
			pos += int64(n)
			continue
		}
		pos++
	}
	return first, bytes
}
