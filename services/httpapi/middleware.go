package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// errorBody is the JSON body of every error reply.
type errorBody struct {
	Error string `json:"error"` // a sentence for people
	Code  string `json:"code"`  // a stable token for programs
}

// writeError replies with status and a JSON error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: msg, Code: code})
}

// writeJSON replies 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// authenticate requires the bearer password on every path but /healthz.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Password == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.cfg.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		token, ok := bearerToken(r.Header.Get("Authorization"))
		got := sha256.Sum256([]byte(token)) // hashing first: the same time whatever the length
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kv"`)
			// Closed after the reply: a client that cannot authenticate
			// does not keep holding one of the MaxConns connections.
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// route dispatches a request through the mux. Where the mux finds no route
// it tries the bucket routes by hand (see fallback), and gives the mux's
// own replies (no route: 404; a route for other methods: 405) JSON bodies
// like every other error.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	keepEscapes(r)
	if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(p) != p {
		// ServeMux would redirect to the cleaned path with 307, which keeps
		// the method and body: a client that follows it (Go's, curl -L)
		// would then DELETE the bucket for the key "..", or PUT the empty
		// key for the key ".", whose segments url.PathEscape and
		// encodeURIComponent leave as they are.
		writeError(w, http.StatusBadRequest, "bad_path",
			`the path has an empty, "." or ".." segment; escape "." as %2E`)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		if s.fallback(w, r) {
			return
		}
		w = &errorRewriter{ResponseWriter: w}
	}
	s.mux.ServeHTTP(w, r)
}

// keepEscapes makes r.URL's escaped path the one the client sent. net/url
// keeps a path's escaped form (RawPath) whenever it differs from the
// default escaping of the decoded path, but EscapedPath uses it only if it
// is a canonical encoding: with a character that should have been escaped
// ('|', '^', '{', a raw UTF-8 byte: curl sends them as typed) it escapes
// the decoded path anew, in which an escaped slash (%2F) inside a name has
// become a separator, and a request for the bucket "a/keys/k|" would be
// routed to the key "k|" of the bucket "a". The sent path, with those
// characters escaped and its own escapes kept, names what the client
// named.
func keepEscapes(r *http.Request) {
	raw := r.URL.RawPath
	if raw == "" || r.URL.EscapedPath() == raw {
		return // nothing lost
	}
	const hex = "0123456789ABCDEF"
	fixed := make([]byte, 0, len(raw)+16)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			fixed = append(fixed, raw[i:i+3]...)
			i += 2
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
			fixed = append(fixed, c)
		default:
			fixed = append(fixed, '%', hex[c>>4], hex[c&15])
		}
	}
	if p, err := url.PathUnescape(string(fixed)); err == nil && p == r.URL.Path {
		r.URL.RawPath = string(fixed)
	}
}

// cleanPath is ServeMux's canonical form of a path: rooted, without
// empty, "." or ".." segments, its trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fallback serves the bucket routes for the paths ServeMux cannot route: a
// segment that is exactly "%2F" (a bucket or key named "/") unescapes to
// "/", which ServeMux's matcher takes for a trailing slash and so matches
// no pattern; and the empty key, /v1/buckets/{bucket}/keys/ (a {key}
// wildcard never matches an empty segment). fallback splits the escaped
// path itself, for these paths only, and reports whether it served the
// request.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/buckets/")
	if !ok {
		return false
	}
	segs := strings.Split(rest, "/")
	var pattern string
	switch {
	case len(segs) == 1:
		pattern = "/v1/buckets/{bucket}"
	case len(segs) == 3 && segs[1] == "keys":
		pattern = "/v1/buckets/{bucket}/keys/{key}"
	default:
		return false
	}
	values := make([]string, 0, 2)
	for i := 0; i < len(segs); i += 2 {
		v, err := url.PathUnescape(segs[i])
		if err != nil || v == "" && i == 0 {
			return false
		}
		values = append(values, v)
	}
	emptyKey := len(values) == 2 && values[1] == ""
	if !slices.Contains(values, "/") && !emptyKey {
		return false // the mux's answer stands
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	h, ok := s.byPattern[method+" "+pattern]
	if !ok {
		var allow []string
		for _, m := range []string{"DELETE", "GET", "HEAD", "PUT"} {
			if _, ok := s.byPattern[m+" "+pattern]; ok || m == "HEAD" && s.byPattern["GET "+pattern] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route")
		return true
	}
	r.SetPathValue("bucket", values[0])
	if len(values) == 2 {
		r.SetPathValue("key", values[1])
	}
	r.Pattern = method + " " + pattern
	h.ServeHTTP(w, r)
	return true
}

// errorRewriter replaces the plain-text body of an http.Error reply with a
// JSON one, keeping the status and headers (Allow).
type errorRewriter struct {
	http.ResponseWriter
	wrote bool
}

func (e *errorRewriter) WriteHeader(status int) {
	if e.wrote {
		return
	}
	e.wrote = true
	if status < 400 {
		e.ResponseWriter.WriteHeader(status)
		return
	}
	code := "not_found"
	msg := "no such route"
	if status == http.StatusMethodNotAllowed {
		code, msg = "method_not_allowed", "method not allowed on this route"
	}
	writeError(e.ResponseWriter, status, code, msg)
}

func (e *errorRewriter) Write(p []byte) (int, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	return len(p), nil // the plain-text body is dropped
}

func (e *errorRewriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// observe reports each request of a route to kv's metrics: failed means a
// status of 400 or more.
func (s *Server) observe(command string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, r)
		s.metrics.ObserveCommand(protocol, command, time.Since(start), sw.status >= 400)
	}
}

// statusWriter remembers the status of a reply.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (sw *statusWriter) WriteHeader(status int) {
	if !sw.wroteHeader {
		sw.status, sw.wroteHeader = status, true
	}
	sw.ResponseWriter.WriteHeader(status)
}

func (sw *statusWriter) Write(p []byte) (int, error) {
	sw.wroteHeader = true
	return sw.ResponseWriter.Write(p)
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// bearerToken returns the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive, after one or more spaces (RFC
// 9110, section 11.4).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// CheckPassword returns an error if password cannot be sent in an
// Authorization header: HTTP trims white space at either end of a header
// value, and a value cannot hold control characters.
func CheckPassword(password string) error {
	if strings.Trim(password, " \t") != password {
		return errors.New("httpapi: the password starts or ends with white space, which HTTP trims from the Authorization header")
	}
	for _, c := range []byte(password) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return errors.New("httpapi: the password holds a control character, which an HTTP header cannot carry")
		}
	}
	return nil
}

// protect guards the API against web pages that make their visitors'
// browsers call it. Without a password, a request must be addressed to an
// IP address or to localhost: a page that rebinds its own DNS name to
// 127.0.0.1 sends its name as Host, and would otherwise read and write
// through the browser as if it were local. With or without one, a
// cross-origin request that changes something (POST, PUT, DELETE; a page
// can send those without asking first) is refused, by net/http's
// CrossOriginProtection. Both get 403.
func (s *Server) protect(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, "cross_origin", "cross-origin requests that change data are refused")
	}))
	next = cop.Handler(next)
	if s.cfg.Password != "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			writeError(w, http.StatusForbidden, "host_not_allowed",
				"without a password, kv answers requests addressed to an IP address or localhost only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether host (a Host header: a name or an address,
// perhaps with a port) is an IP address, localhost or a name under
// .localhost (which resolvers must send to loopback, RFC 6761), or empty
// (an HTTP/1.0 request without one: not a browser's).
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimSuffix(host, ".") // a fully qualified name
	if _, err := netip.ParseAddr(host); err == nil || host == "" {
		return true // an address, an IPv6 zone included
	}
	host = strings.ToLower(host)
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
