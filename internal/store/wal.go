package store

import (
	"errors"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// reportTornTail reads the newest WAL before pebble replays it and logs when
// it does not end cleanly: a crash cut the write that was under way (a torn
// tail). Pebble then recovers every whole write before the cut and drops the
// rest, which no FsyncAlways caller was ever told had succeeded. Damage
// elsewhere (a bad record followed by good ones) is not a torn tail: pebble
// refuses to open, and Open reports the file.
func (s *Store) reportTornTail() error {
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: s.dir})
	if err != nil || len(logs) == 0 {
		return nil // pebble's Open reports what is wrong, if anything
	}
	last := logs[len(logs)-1]
	r := last.OpenForRead()
	defer r.Close()
	var (
		records int
		end     wal.Offset // where the last whole record ends
	)
	for {
		rec, off, err := r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			_, path := last.SegmentLocation(0)
			size, _ := last.PhysicalSize()
			s.log.Warn("store: the write-ahead log ends with a torn write (a crash cut it); recovering every whole write before it",
				"file", path, "whole writes", records, "last whole write at", end.Physical, "file size", size, "reason", err)
			return nil
		}
		records++
		end = off
	}
}
