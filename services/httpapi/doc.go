// Package httpapi is kv's HTTP front end, a suture.Service: a REST API over
// the buckets, a live stream of the event manager's events, Prometheus
// metrics and health checks, on one net/http ServeMux built at
// construction with Go 1.22 routing patterns.
//
// # Routes
//
//	GET    /v1/buckets                     names, a page at a time (?limit=, ?cursor=)
//	PUT    /v1/buckets/{bucket}            create (idempotent): 204
//	DELETE /v1/buckets/{bucket}            delete: 204, or 404
//	GET    /v1/buckets/{bucket}            every pair, as JSON
//	GET    /v1/buckets/{bucket}/keys/{key} the value's raw bytes, or 404
//	PUT    /v1/buckets/{bucket}/keys/{key} store the raw body: 204
//	DELETE /v1/buckets/{bucket}/keys/{key} remove: 204, or 404
//	POST   /v1/save                        a checkpoint, as SAVE: {"dir", "last_save"}, or 503 in memory
//	GET    /v1/events                      Server-Sent Events
//	GET    /v1/openapi.json                the OpenAPI 3.1 document of all of these
//	GET    /metrics                        Prometheus exposition
//	GET    /healthz                        alive: 200
//	GET    /readyz                         Config.Ready: 200 or 503
//
// Every error reply kv writes has a JSON body {"error": "...", "code":
// "..."}, the mux's own 404 and 405 included. A request that net/http
// refuses before kv sees it (a malformed request line or percent-escape:
// 400; headers over the limit: 431) gets net/http's plain-text reply. A
// write the store refuses (a full or failing disk) gets 503 write_failed
// and changes nothing; any route may answer 503 unavailable while the
// server stops.
//
// # Names, keys and values
//
// Bucket names and keys may hold any bytes: percent-encode each path
// segment fully ("/" as %2F, and "." as %2E: a path with a literal "." or
// ".." segment, or an empty one, gets 400 bad_path, not the redirect to
// the cleaned path that ServeMux would answer, which a client following it
// would take to another resource). The empty key is
// addressed with its segment left empty: /v1/buckets/{bucket}/keys/. A
// segment that is exactly %2F (a name or key "/") unescapes to "/", which
// ServeMux's matcher takes for a trailing slash; the package routes such
// paths, and the empty key's, itself, to the same handlers. Values travel
// as raw bytes. In JSON, names and keys appear twice, as a string (exact
// when valid UTF-8) and as standard base64 (always exact); values appear as
// base64.
//
// Bucket pages are in byte order; next_cursor (raw URL-safe base64 of the
// page's last name) asks for the names after it, so a cursor stays valid
// whatever is created or deleted meanwhile. limit is 100 by default and at
// most 1000.
//
// # Event stream
//
// GET /v1/events subscribes to the event manager and sends each Created as
// "event: created" and each Exited as "event: exited" (with its reason:
// normal, error, panic, shutdown or idle), with "id:" the event's sequence
// number and "data:" JSON. Comment lines every SSEHeartbeat (15s) keep an
// idle stream open.
//
// A slow reader never slows a writer: publishing only queues the event for
// the stream without waiting. A stream is cut when an event finds its queue
// full (Config.SSEBuffer events, 256 by default; the subscription's own
// mailbox has as many) or when one write to the client blocks for
// Config.SSEWriteTimeout (10s). The client then gets, if it can still be
// written to, "event: overflow" with data {"last_seq": N}, the last
// sequence number it was sent, and the stream ends. There is no replay
// (Last-Event-ID is ignored); a client that reconnects sees from the id
// lines what it missed. The stream ends when the server stops: the write
// under way, if any, and the end of the response get half a second
// (SSEWriteTimeout if shorter), so that a client that does not read does
// not hold the stop. A host that serves [Server.Handler] on its own
// http.Server ends the streams with that server's Shutdown. At most
// Config.MaxStreams streams (half of MaxConns by default, rounded down)
// are open at once: past it, a new one gets 503 too_many_streams, so that
// the streams never take every connection from the other requests.
//
// # Limits and timeouts
//
// Request bodies are limited to Config.MaxBodyBytes (1 MiB): a longer one
// gets 413. Headers are limited to MaxHeaderBytes (64 KiB). At most
// Config.MaxConns connections (1024) are open at once; more wait in the
// listen backlog until one closes. http.Server's timeouts are set:
// ReadHeaderTimeout 5s, ReadTimeout 30s, WriteTimeout 30s, IdleTimeout 2m; the event stream clears its connection's read and write
// deadlines and bounds each write by SSEWriteTimeout instead. When Serve's
// context ends the server shuts down gracefully for up to ShutdownTimeout
// (10s), then closes what is left.
//
// # Authentication
//
// With Config.Password set, every request but GET /healthz needs
// "Authorization: Bearer <password>", compared in constant time; others
// get 401 with a WWW-Authenticate header, and their connection is closed.
// A password with leading or trailing white space cannot be sent: net/http
// trims header values.
//
// # Browsers
//
// A web page can make its visitors' browsers send requests to the API. Two
// rules keep it out; both answer 403. Without a password, a request must be
// addressed (its Host) to an IP address, localhost or a name under
// .localhost: a page that rebinds its own DNS name to 127.0.0.1 sends that
// name (code host_not_allowed); set a password to serve other names. With
// or without one, a cross-origin request that changes something (POST, PUT,
// DELETE) is refused, as net/http's CrossOriginProtection judges it from
// the Sec-Fetch-Site or Origin header browsers add (code cross_origin).
// Clients other than browsers send neither header and are not affected.
//
// # Metrics
//
// The API reports each REST request to its [metrics.Metrics] with protocol
// "http" and the route's operation (list_buckets, create_bucket,
// delete_bucket, get_bucket, get_key, put_key, delete_key); a status of 400
// or more counts as an error, a missing key's 404 included. Connections are
// counted through http.Server's ConnState. /metrics serves that Metrics'
// private registry: share one Metrics between the front ends to see them
// all there.
//
// Each request reads or changes buckets under the registry's TxLock,
// shared (a write's wait for the disk comes after), so that it never lands
// between the commands of a Redis transaction.
package httpapi
