package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/httpapi"
	"github.com/kvproject/kv/services/metrics"
)

// A tree, one Metrics for every front end, and the API behind httptest
// (a daemon serves it with Serve, in the tree).
func Example() {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	rootDone := root.ServeBackground(ctx)

	m := metrics.New(metrics.Config{Tree: root.Registry(), Events: root.Events()})
	api := httpapi.New(httpapi.Config{Registry: root.Registry(), Events: root.Events(), Metrics: m})
	ts := httptest.NewServer(api.Handler())

	do := func(method, path, body string) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		resp, err := ts.Client().Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s %s -> %d %s", method, path, resp.StatusCode, b)))
	}
	do("PUT", "/v1/buckets/shopping", "")
	do("PUT", "/v1/buckets/shopping/keys/milk", "1")
	do("GET", "/v1/buckets/shopping/keys/milk", "")
	do("GET", "/v1/buckets/shopping/keys/eggs", "")
	do("GET", "/v1/buckets/a%2Fb", "")

	ts.Close()
	cancel()
	<-rootDone
	// Output:
	// PUT /v1/buckets/shopping -> 204
	// PUT /v1/buckets/shopping/keys/milk -> 204
	// GET /v1/buckets/shopping/keys/milk -> 200 1
	// GET /v1/buckets/shopping/keys/eggs -> 404 {"error":"no such key","code":"key_not_found"}
	// GET /v1/buckets/a%2Fb -> 404 {"error":"no such bucket","code":"bucket_not_found"}
}
