package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/testlog"
	"github.com/kvproject/kv/registry"
	"github.com/kvproject/kv/services"
)

// A bucket operation's error that wraps registry.ErrStopped is answered as
// the server stopping (503), not as an internal failure that is logged.
func TestBucketErrorOfAStoppingRegistrySaysStopping(t *testing.T) {
	root := services.New(services.Config{})
	var logs testlog.Buffer
	s := New(Config{Registry: root.Registry(), Events: root.Events(), Logger: logs.Logger(slog.LevelInfo)})
	defer func() { assert.NoError(t, s.Close()) }()
	w := httptest.NewRecorder()
	s.bucketError(w, fmt.Errorf("bucket: write: %w", registry.ErrStopped))
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	var body map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	assert.Equal(t, "unavailable", body["code"])
	assert.Equal(t, "the server is stopping", body["error"])
	assert.Empty(t, logs.String())
}
