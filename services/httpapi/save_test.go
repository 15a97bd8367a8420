package httpapi

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSave(t *testing.T) {
	a := start(t, Config{})
	expectError(t, a.do("POST", "/v1/save", nil), http.StatusServiceUnavailable, "no_storage")

	at := time.Unix(1700000000, 0)
	a = start(t, Config{Save: func() (string, time.Time, error) { return "/data/checkpoints/1700000000", at, nil }})
	r := a.do("POST", "/v1/save", nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, map[string]any{"dir": "/data/checkpoints/1700000000", "last_save": float64(1700000000)}, r.json(t))

	a = start(t, Config{Save: func() (string, time.Time, error) { return "", time.Time{}, errors.New("disk full") }})
	expectError(t, a.do("POST", "/v1/save", nil), http.StatusInternalServerError, "save_failed")
}
