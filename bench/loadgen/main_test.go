// Tests of the load generator's request routing (not of any system): run them with
//
//	mkdir -p /tmp/lg/src && ln -sfn "$PWD/bench/loadgen" /tmp/lg/src/loadgen && cd /tmp/lg/src/loadgen &&
//	GO111MODULE=off GOPATH=/tmp/lg:/usr/share/gocode go test .
//
// (bench/loadgen.ts builds only main.go; the bench is not in CI.)
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// table checks f against each case's expected result.
func table(t *testing.T, name string, f func(string) string, cases map[string]string) {
	t.Helper()
	for in, want := range cases {
		if got := f(in); got != want {
			t.Errorf("%s(%q) = %q, want %q", name, in, got, want)
		}
	}
}

func TestOriginOf(t *testing.T) {
	table(t, "originOf", originOf, map[string]string{
		"http://127.0.0.1:7001":       "http://127.0.0.1:7001",
		"HTTP://LocalHost:7001/x?y=1": "http://localhost:7001",
		"http://example.com:80":       "http://example.com",
		"https://example.com:443/":    "https://example.com",
		" http://127.0.0.1:7001 ":     "http://127.0.0.1:7001",
		"ftp://127.0.0.1:7001":        "",
		"127.0.0.1:7001":              "",
		"":                            "",
	})
}

func TestLeaderHeader(t *testing.T) {
	table(t, "leaderHeader", func(block string) string { return leaderHeader([]byte(block)) }, map[string]string{
		"":                                 "",
		"Content-Type: application/json\n": "",
		"ProofKV-Leader: http://127.0.0.1:7003\n":                          "http://127.0.0.1:7003",
		"ProofKV-Version: 3\nproofkv-leader:http://a:1\nContent-Type: x\n": "http://a:1",
		"ProofKV-Leader-X: http://a:1\n":                                   "",
		"ProofKV-Leader: http://a:1":                                       "http://a:1", // no final newline
		"X-ProofKV-Leader: http://a:1\n":                                   "",
	})
}

func picks(r *router, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i], _ = r.pick()
	}
	return out
}

func distinct(xs []int) int {
	seen := map[int]bool{}
	for _, x := range xs {
		seen[x] = true
	}
	return len(seen)
}

func TestRouterFollowsAHintToAConfiguredEndpointUntilItFails(t *testing.T) {
	eps := []string{"http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"}
	r := newRouter(eps, true)
	if d := distinct(picks(r, 6)); d != 3 {
		t.Fatalf("without a hint: %d endpoints used, want 3 (in turn)", d)
	}
	r.hint("http://10.0.0.9:7002") // not configured: ignored
	if d := distinct(picks(r, 6)); d != 3 {
		t.Fatalf("after a hint to another host: %d endpoints used, want 3", d)
	}
	r.hint("http://127.0.0.1:7002/")
	for _, ep := range picks(r, 6) {
		if ep != 1 {
			t.Fatalf("after a hint to endpoint 1: picked %d", ep)
		}
	}
	r.failed(2) // not the leader: nothing forgotten
	if ep, _ := r.pick(); ep != 1 {
		t.Fatalf("after another endpoint failed: picked %d, want 1", ep)
	}
	r.hint("http://127.0.0.1:7003") // a new leader
	if ep, _ := r.pick(); ep != 2 {
		t.Fatalf("after a hint to endpoint 2: picked %d", ep)
	}
	r.failed(2)
	if d := distinct(picks(r, 6)); d != 3 {
		t.Fatalf("after the leader failed: %d endpoints used, want 3 (in turn)", d)
	}
}

func TestSpreadRoutingIgnoresHints(t *testing.T) {
	r := newRouter([]string{"http://a:1", "http://b:2", "http://c:3"}, false)
	r.hint("http://b:2")
	if d := distinct(picks(r, 6)); d != 3 {
		t.Fatalf("spread after a hint: %d endpoints used, want 3", d)
	}
}

// members starts three fake members; those not at index leader answer every request with a
// ProofKV-Leader header naming member leader's URL. It counts the requests each member got.
func members(t *testing.T, leader int, handle func(w http.ResponseWriter)) ([]string, []*int64) {
	urls := make([]string, 3)
	counts := make([]*int64, 3)
	srvs := make([]*httptest.Server, 3)
	for i := range srvs {
		i := i
		counts[i] = new(int64)
		srvs[i] = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			atomic.AddInt64(counts[i], 1)
			if i != leader {
				w.Header().Set("ProofKV-Leader", urls[leader])
			}
			handle(w)
		}))
		srvs[i].Start()
		urls[i] = srvs[i].URL
		t.Cleanup(srvs[i].Close)
	}
	return urls, counts
}

func TestHTTPStoreSendsToTheLeaderOnceNamed(t *testing.T) {
	urls, counts := members(t, 2, func(w http.ResponseWriter) { w.Write([]byte(`{}`)) })
	s := newProofKV(urls, 4, true)
	defer s.close()
	for i := 0; i < 50; i++ {
		if err := s.put(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// In turn from the first request: the first answer (from member 0 or 1) names member 2.
	if n := atomic.LoadInt64(counts[0]) + atomic.LoadInt64(counts[1]); n > 1 {
		t.Fatalf("followers got %d requests, want at most 1", n)
	}
	// Spread: every member gets its third.
	s = newProofKV(urls, 4, false)
	defer s.close()
	before := atomic.LoadInt64(counts[0])
	for i := 0; i < 30; i++ {
		if err := s.get(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n := atomic.LoadInt64(counts[0]) - before; n != 10 {
		t.Fatalf("spread: member 0 got %d of 30 requests, want 10", n)
	}
}

// streamMember is a fake proofkv-stream/1 member: it upgrades, then answers every request frame
// 200 with header lines (a ProofKV-Leader line naming *leaderURL unless it is the leader).
type streamMember struct {
	ln       net.Listener
	url      string
	requests int64
}

func startStreamMember(t *testing.T, leaderURL *atomic.Value) *streamMember {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &streamMember{ln: ln, url: "http://" + ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go m.serve(conn, leaderURL)
		}
	}()
	return m
}

func (m *streamMember) serve(conn net.Conn, leaderURL *atomic.Value) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := http.ReadRequest(br); err != nil {
		return
	}
	io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+streamProtocol+"\r\n\r\n")
	for {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		atomic.AddInt64(&m.requests, 1)
		headers := "ProofKV-Version: 1\n"
		if l := leaderURL.Load().(string); l != m.url {
			headers += "ProofKV-Leader: " + l + "\n"
		}
		headers += "Content-Type: application/json; charset=utf-8\n"
		body := `{}`
		a := binary.BigEndian.AppendUint32(nil, uint32(8+len(headers)+len(body)))
		a = append(a, frame[0:4]...) // the request's id
		a = binary.BigEndian.AppendUint16(a, 200)
		a = binary.BigEndian.AppendUint16(a, uint16(len(headers)))
		a = append(a, headers...)
		a = append(a, body...)
		if _, err := conn.Write(a); err != nil {
			return
		}
	}
}

func TestStreamStoreSendsToTheLeaderOnceNamed(t *testing.T) {
	var leader atomic.Value
	leader.Store("")
	ms := []*streamMember{startStreamMember(t, &leader), startStreamMember(t, &leader), startStreamMember(t, &leader)}
	leader.Store(ms[1].url)
	urls := []string{ms[0].url, ms[1].url, ms[2].url}
	s := newProofKVStream(urls, 2, true)
	defer s.close()
	for i := 0; i < 40; i++ {
		if err := s.put(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if n := atomic.LoadInt64(&ms[0].requests) + atomic.LoadInt64(&ms[2].requests); n > 1 {
		t.Fatalf("followers got %d requests, want at most 1", n)
	}
	// The leader goes away and member 0 takes over: the next request fails and forgets the old
	// leader; requests go in turn again until an answer names the new one.
	ms[1].ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		if c != nil {
			c.fail(io.ErrUnexpectedEOF)
		}
	}
	s.mu.Unlock()
	leader.Store(ms[0].url)
	if err := s.put(context.Background(), "k", []byte("v")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("a request to the dead leader: %v, want connection refused", err)
	}
	before := atomic.LoadInt64(&ms[0].requests)
	for i := 0; i < 20; i++ {
		s.put(context.Background(), "k", []byte("v")) // at most one more to the dead member
	}
	if n := atomic.LoadInt64(&ms[0].requests) - before; n < 18 {
		t.Fatalf("the new leader got %d of 20 requests, want at least 18", n)
	}
}
