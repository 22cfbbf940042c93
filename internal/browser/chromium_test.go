package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func find(t *testing.T) *Chromium {
	t.Helper()
	c, err := Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: required)", err)
		}
		t.Skip(err)
	}
	return c
}

// A run that outlives its timeout is killed, its whole process group with
// it, and Running sees the browser while it runs.
func TestTimeoutKillsAll(t *testing.T) {
	c := find(t)
	c.Timeout = 15 * time.Second
	seen := make(chan []int, 1)
	// The image never arrives: the page never finishes loading.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- Running():
		default:
		}
		<-r.Context().Done()
	}))
	defer srv.Close()
	page := filepath.Join(t.TempDir(), "hangs.html")
	if err := os.WriteFile(page, []byte(`<!DOCTYPE html><img src="`+srv.URL+`/never.png">`), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.DumpDOM(context.Background(), page)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 15s") {
		t.Errorf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the run took %s after its 15s timeout", d)
	}
	select {
	case running := <-seen:
		if len(running) == 0 {
			t.Error("Running saw no chromium while the page loaded: it cannot see leftovers either")
		}
	default:
		t.Error("the page never asked for its image")
	}
	if left := Running(); len(left) > 0 {
		t.Errorf("chromium processes %v still running", left)
	}
}

// killGroup kills children that left the leader behind, and waits for them.
func TestKillGroup(t *testing.T) {
	cmd := exec.CommandContext(context.Background(), "sh", "-c", "sleep 300 >/dev/null 2>&1 & sleep 300 >/dev/null 2>&1 & echo started")
	inGroup(cmd)
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = killGroup(cmd.Process.Pid, time.Second)
		}
	})
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "started" {
		t.Fatalf("sh: %q %v", out, err)
	}
	pgid := cmd.Process.Pid
	if n := len(GroupAlive(pgid)); n != 2 {
		t.Fatalf("%d processes in the group, want the 2 sleeps", n)
	}
	if err := killGroup(pgid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if left := GroupAlive(pgid); len(left) > 0 {
		t.Errorf("%v still alive", left)
	}
}

func TestPageRequests(t *testing.T) {
	const netlog = `{"constants":{"logEventTypes":{"URL_REQUEST_START_JOB":7,"OTHER":8}},"events":[
	{"type":7,"params":{"url":"https://update.googleapis.com/service/update2/json","initiator":"not an origin","network_isolation_key":"null null"}},
	{"type":7,"params":{"url":"https://accounts.google.com/ListAccounts","initiator":"not an origin","network_isolation_key":"https://google.com https://google.com"}},
	{"type":7,"params":{"url":"http://127.0.0.1:8765/x.png","initiator":"null","network_isolation_key":"file:// file://"}},
	{"type":7,"params":{"url":"wss://example.org/ws","initiator":"null"}},
	{"type":7,"params":{"url":"http://127.0.0.1/nav","initiator":"not an origin","network_isolation_key":"file:// [internally: file://] file://"}},
	{"type":7,"params":{"url":"data:text/plain,x","initiator":"null"}},
	{"type":8,"params":{"url":"http://127.0.0.1/other-event"}},
	{"type":7,"params":{"net_error":-105}}
	]}`
	got, err := PageRequests([]byte(netlog))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8765/x.png", "wss://example.org/ws", "http://127.0.0.1/nav"}
	if !slices.Equal(got, want) {
		t.Errorf("PageRequests = %q, want %q", got, want)
	}
	for _, bad := range []string{`{"events":[]}`, `{"constants":{"logEventTypes":{}},"events":[`} {
		if _, err := PageRequests([]byte(bad)); err == nil {
			t.Errorf("PageRequests(%s) = nil error", bad)
		}
	}
}
