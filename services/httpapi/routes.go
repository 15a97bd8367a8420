package httpapi

import "net/http"

// route is one registered route. The OpenAPI document lists exactly these
// (a test checks it both ways).
type route struct {
	method, path string
	// command is the route's command label in kv's metrics (and its
	// operationId); "" for routes that are not counted (health, metrics,
	// the document, the event stream).
	command string
	handler func(s *Server, w http.ResponseWriter, r *http.Request)
}

// routes returns the API's routes, in Go 1.22 ServeMux pattern syntax.
func routes() []route {
	return []route{
		{"GET", "/v1/buckets", "list_buckets", (*Server).listBuckets},
		{"PUT", "/v1/buckets/{bucket}", "create_bucket", (*Server).createBucket},
		{"DELETE", "/v1/buckets/{bucket}", "delete_bucket", (*Server).deleteBucket},
		{"GET", "/v1/buckets/{bucket}", "get_bucket", (*Server).getBucket},
		{"GET", "/v1/buckets/{bucket}/keys/{key}", "get_key", (*Server).getKey},
		{"PUT", "/v1/buckets/{bucket}/keys/{key}", "put_key", (*Server).putKey},
		{"DELETE", "/v1/buckets/{bucket}/keys/{key}", "delete_key", (*Server).deleteKey},
		{"POST", "/v1/save", "save", (*Server).save},
		{"GET", "/v1/events", "", (*Server).streamEvents},
		{"GET", "/v1/openapi.json", "", (*Server).openAPI},
		{"GET", "/metrics", "", (*Server).serveMetrics},
		{"GET", "/healthz", "", (*Server).healthz},
		{"GET", "/readyz", "", (*Server).readyz},
	}
}
