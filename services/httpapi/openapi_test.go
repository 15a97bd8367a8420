package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIMatchesRoutes keeps the document true: every operation it
// lists is a registered route with the same operationId, and every route
// is in it; each resolves through the mux to its own pattern.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")

	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	documented := map[string]string{} // "METHOD /path" -> operationId
	for path, item := range doc.Paths {
		for key, raw := range item {
			if !slices.Contains(methods, key) {
				continue // parameters, summary...
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			require.NoError(t, json.Unmarshal(raw, &op))
			require.NotEmpty(t, op.OperationID, "%s %s has an operationId", key, path)
			documented[strings.ToUpper(key)+" "+path] = op.OperationID
		}
	}

	registered := map[string]string{}
	for _, rt := range routes() {
		registered[rt.method+" "+rt.path] = rt.command
	}
	require.ElementsMatch(t, keys(registered), keys(documented), "routes and document list the same operations")
	for route, command := range registered {
		if command != "" {
			assert.Equal(t, command, documented[route], "%s: operationId is the metrics command", route)
		}
	}

	root := tree(t)
	s := New(Config{Registry: root.Registry(), Events: root.Events()})
	for route := range documented {
		method, path, _ := strings.Cut(route, " ")
		concrete := strings.NewReplacer("{bucket}", "some%2Fbucket", "{key}", "some%20key").Replace(path)
		_, pattern := s.mux.Handler(httptest.NewRequest(method, concrete, nil))
		assert.Equal(t, route, pattern, "%s %s reaches its route", method, concrete)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestOpenAPIServed(t *testing.T) {
	a := start(t, Config{})
	r := a.do("GET", "/v1/openapi.json", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, string(openAPIDocument), r.body)
}
