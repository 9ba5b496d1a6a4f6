package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
)

// rssBytes is this process's resident set size.
func rssBytes(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status here")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Unauthenticated uploads never reach memory: a declared oversize body is
// refused with 413 before anything is read, an undeclared one of an
// unauthenticated caller with 401; a caller's chunked body is read up to
// the limit only; a slow client is cut off.
func TestRESTBodiesAreBoundedBeforeAuthentication(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	defer app.SetRESTTimeouts(time.Second, 2*time.Second)()
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	url := "http://" + r.http + "/v1/teams/growth/loops?loopId=big"

	runtime.GC()
	before := rssBytes(t)
	var wg sync.WaitGroup
	codes := make([]int, 100)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, url, io.LimitReader(zeros{}, 100<<20))
			req.ContentLength = 100 << 20
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes[i] = -1 // the server closed the connection mid-upload: also a refusal
				return
			}
			codes[i] = resp.StatusCode
			resp.Body.Close()
		}()
	}
	wg.Wait()
	runtime.GC()
	grown := rssBytes(t) - before
	refused := 0
	for _, c := range codes {
		if c == http.StatusRequestEntityTooLarge {
			refused++
		} else if c != -1 {
			t.Errorf("a 100 MB upload got %d, want 413", c)
		}
	}
	t.Logf("100 concurrent 100 MB uploads: %d answered 413, the rest cut off; RSS grew by %.1f MB", refused, float64(grown)/(1<<20))
	if refused == 0 {
		t.Error("no upload was answered 413")
	}
	if grown > 50<<20 {
		t.Errorf("RSS grew by %d MB, want < 50 MB", grown>>20)
	}

	// Undeclared (chunked) body, no credentials: 401 without reading it.
	req, _ := http.NewRequest(http.MethodPost, url, io.LimitReader(zeros{}, 100<<20))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("chunked unauthenticated upload: %d, want 401", resp.StatusCode)
		}
		resp.Body.Close()
	}
	// A caller's chunked body over the limit: 413.
	req, _ = http.NewRequest(http.MethodPost, url, io.LimitReader(zeros{}, app.MaxRESTBody+10))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+r.token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked oversize upload: %d, want 413", resp.StatusCode)
		}
		resp.Body.Close()
	}
	// Within the limit, the API answers as usual.
	req, _ = http.NewRequest(http.MethodGet, "http://"+r.http+"/v1/clusters", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("a normal request after the flood: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A client that sends its body one byte a second is cut off.
	conn, err := net.Dial("tcp", r.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/teams/growth/loops?loopId=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", r.token)
	start := time.Now()
	cut := false
	for range 20 {
		if _, err := conn.Write([]byte(" ")); err != nil {
			cut = true
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil || !isTimeout(err) {
			cut = true // answered (an error status) or closed
			break
		}
	}
	if !cut {
		t.Errorf("a slow body was still being read after %s", time.Since(start).Round(time.Second))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
