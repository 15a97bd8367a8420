package resp

import (
	"testing"

	"github.com/kvproject/kv/internal/store"
)

// In a transaction WAITAOF does not wait, as in Redis (a client in MULTI
// may not block): it answers [0 0] at once. Waiting there would fsync
// under the transactions' exclusive lock (on the event loop's goroutine,
// flagLong being ignored in a transaction), holding every other client for
// as long as the disk takes, and would commit the transaction's writes
// made before it apart from those after it (a store Settle commits a held
// group), so that a crash could keep half of them.
func TestWaitAOFInTransactionDoesNotWait(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncEverySec})
	r := ds.raw(t)
	r.send("MULTI\r\nHSET k f w\r\nWAITAOF 1 0 0\r\nHSET k g x\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3", ":1", "*2", ":0", ":0", ":1")
	r.send("WAITAOF 1 0 0\r\n") // out of one, it waits as ever
	r.expect("*2", ":1", ":0")
}
