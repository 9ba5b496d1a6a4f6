package app

import "time"

// SetRESTTimeouts shortens the REST listener's timeouts for a test.
func SetRESTTimeouts(header, read time.Duration) (restore func()) {
	h, r := restReadHeaderTimeout, restReadTimeout
	restReadHeaderTimeout, restReadTimeout = header, read
	return func() { restReadHeaderTimeout, restReadTimeout = h, r }
}

// BreakREST closes the REST listener under a running server, as a failing
// listener would.
func (s *Server) BreakREST() { _ = s.httpLis.Close() }
