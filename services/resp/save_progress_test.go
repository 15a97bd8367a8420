package resp

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingBackups is testBackups whose Save tells entered it has begun and
// waits for release.
type blockingBackups struct {
	*testBackups
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBackups) Save() (string, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.testBackups.Save()
}

// The README: saves run one at a time, and INFO's rdb_bgsave_in_progress
// tells a save still running (1) from one that has ended (0), so that a
// script polling LASTSAVE after BGSAVE can tell the two apart. A SAVE or
// BGSAVE sent meanwhile is refused, as Redis refuses it.
func TestSaveInProgressShowsAndRefusesAnother(t *testing.T) {
	ctx := context.Background()
	bb := &blockingBackups{entered: make(chan struct{}), release: make(chan struct{})}
	ds := startDurable(t, t.TempDir(), faultyAlways(nil), func(c *Config) {
		bb.testBackups = c.Backups.(*testBackups)
		c.Backups = bb
	})
	rc := ds.client(t)
	persistence := func() map[string]string {
		info, err := rc.InfoMap(ctx, "persistence").Result()
		require.NoError(t, err)
		return info["Persistence"]
	}
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())

	require.Equal(t, "Background saving started", rc.BgSave(ctx).Val())
	<-bb.entered
	p := persistence()
	assert.Equal(t, "1", p["rdb_bgsave_in_progress"], "a save under way")
	assert.Equal(t, "0", p["rdb_saves"])
	assert.EqualError(t, rc.Save(ctx).Err(), "ERR Background save already in progress")
	assert.EqualError(t, rc.BgSave(ctx).Err(), "ERR Background save already in progress")
	assert.Equal(t, int64(0), rc.LastSave(ctx).Val(), "no save has ended")

	close(bb.release)
	require.Eventually(t, func() bool {
		p := persistence()
		return p["rdb_bgsave_in_progress"] == "0" && p["rdb_saves"] == "1"
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, "ok", persistence()["rdb_last_bgsave_status"])
	assert.NotZero(t, rc.LastSave(ctx).Val())
}
