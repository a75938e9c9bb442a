// Command loadgen drives a 3-node key-value cluster for bench/cluster.ts: etcd through its own
// client (go.etcd.io/etcd/clientv3, gRPC), ProofKV through its HTTP API (net/http, keep-alive) or
// through its stream protocol (proofkv-stream/1: requests multiplexed on a few connections per
// member, as clientv3 multiplexes gRPC), and, for information, etcd through its v3 JSON gateway
// with the same HTTP client as ProofKV. One program, one concurrency model (goroutines) and one
// latency histogram for every system, so the systems differ only in what they are. Built by
// bench/cluster.ts in GOPATH mode against Debian's golang-etcd-server-dev (no module download).
// Not a test: it reports, it asserts nothing.
//
//	loadgen -system etcd|etcd-leader|etcd-gateway|proofkv|proofkv-stream -endpoints URL,URL,URL [-seq 3000] [-conc-n 20000]
//	        [-get-n 20000] [-proof-n 0] [-concurrency 100] [-value-bytes 100] [-phase-seconds 120] [-stream-conns 1]
//	        [-routing leader|spread]
//
// Phases, each printed as one JSON line on stdout:
//
//	put1   -seq PUTs, one at a time, over 1000 keys (latency)
//	put100 -conc-n PUTs with -concurrency in flight, over 5000 keys (throughput, latency)
//	get100 -get-n linearizable GETs with -concurrency in flight over the keys put100 wrote
//	proof100 (only with -proof-n > 0) -proof-n GETs with a proof, -concurrency in flight, same keys:
//	       ProofKV's GET /v1/kv/{key}/proof (CBOR, as the SDK asks); etcd has no proofs, so its
//	       row is the same linearizable GET as get100 (the cost of a proof is ProofKV's alone)
//
// Where requests go. etcd: clientv3's round-robin balancer over all endpoints, so followers take
// their share; etcd-leader (information only): clientv3 given only the leader's endpoint, found
// with Status on each endpoint before the phases. ProofKV, -routing leader (the default, as the
// SDK does): requests go to the members in turn until an answer names the leader with the
// ProofKV-Leader header (over HTTP a response header, over the stream an answer header line);
// from then on every request goes to the endpoint with that origin (a hint naming no endpoint
// given is ignored), until a request to it gets no answer (a connection error, or its timeout),
// which forgets it. -routing spread: always in turn (each request the next URL, and over the
// stream the next connection of that member), as clientv3 spreads.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type store interface {
	put(ctx context.Context, key string, value []byte) error
	get(ctx context.Context, key string) error
	// proof reads key with a proof where the system has them (ProofKV), a plain get otherwise.
	proof(ctx context.Context, key string) error
	close()
}

// ---- where a ProofKV request goes -------------------------------------------------------------

// router picks each request's endpoint: in turn, or (leader routing) the endpoint a ProofKV-Leader
// hint named, as the SDK's transport does (client-sdk/transport.ts). Shared by every goroutine:
// atomics only.
type router struct {
	endpoints []string
	origins   []string // each endpoint's origin ("" when it has none)
	leader    bool     // follow ProofKV-Leader hints
	next      uint64
	current   int32  // the hinted endpoint's index + 1; 0: none known (in turn)
	toLeader  uint64 // requests sent to a hinted leader (the rest went in turn)
}

func newRouter(endpoints []string, leader bool) *router {
	r := &router{endpoints: endpoints, origins: make([]string, len(endpoints)), leader: leader}
	for i, e := range endpoints {
		r.origins[i] = originOf(e)
	}
	return r
}

// originOf is a URL's scheme://host[:port] in lower case without the scheme's default port (as
// the WHATWG URL's origin, which the SDK compares), or "" when it is not an http(s) URL.
func originOf(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	switch {
	case scheme == "http":
		host = strings.TrimSuffix(host, ":80")
	case scheme == "https":
		host = strings.TrimSuffix(host, ":443")
	default:
		return ""
	}
	return scheme + "://" + host
}

// pick returns the endpoint for the next request, and the how-manieth request this is to that
// endpoint (which of its stream connections to use).
func (r *router) pick() (ep int, turn uint64) {
	i := atomic.AddUint64(&r.next, 1)
	if r.leader {
		if c := atomic.LoadInt32(&r.current); c > 0 {
			atomic.AddUint64(&r.toLeader, 1)
			return int(c - 1), i
		}
	}
	n := uint64(len(r.endpoints))
	return int(i % n), i / n
}

// hint follows an answer's ProofKV-Leader header (empty: none) when it names a configured endpoint.
func (r *router) hint(leader string) {
	if !r.leader || leader == "" {
		return
	}
	o := originOf(leader)
	for i, e := range r.origins {
		if o != "" && e == o {
			if atomic.LoadInt32(&r.current) != int32(i+1) {
				atomic.StoreInt32(&r.current, int32(i+1))
			}
			return
		}
	}
}

// failed forgets endpoint ep as the leader after a request to it got no answer: the next
// requests go in turn again until an answer names the leader.
func (r *router) failed(ep int) {
	atomic.CompareAndSwapInt32(&r.current, int32(ep+1), 0)
}

// ---- etcd -------------------------------------------------------------------------------------

type etcdStore struct{ c *clientv3.Client }

func newEtcd(endpoints []string) (*etcdStore, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	return &etcdStore{c}, nil
}

// newEtcdLeader is clientv3 given only the etcd leader's endpoint (information only: how much of
// a difference is where requests go). The leader is the endpoint whose Status says it is
// (Leader == Header.MemberId), asked until one does or wait is over.
func newEtcdLeader(endpoints []string, wait time.Duration) (*etcdStore, error) {
	probe, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	deadline := time.Now().Add(wait)
	for {
		var last error
		for _, ep := range endpoints {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := probe.Status(ctx, ep)
			cancel()
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return newEtcd([]string{ep})
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no etcd member says it is the leader after %s (last error: %v)", wait, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *etcdStore) put(ctx context.Context, key string, value []byte) error {
	_, err := s.c.Put(ctx, key, string(value))
	return err
}

// get is linearizable: clientv3's default (no WithSerializable).
func (s *etcdStore) get(ctx context.Context, key string) error {
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return err
	}
	if r.Count != 1 {
		return fmt.Errorf("get %s: %d keys", key, r.Count)
	}
	return nil
}

// proof: etcd has no proofs; the same linearizable get.
func (s *etcdStore) proof(ctx context.Context, key string) error { return s.get(ctx, key) }

func (s *etcdStore) close() { s.c.Close() }

// ---- etcd through its v3 JSON gateway (grpc-gateway on the client port) ---------------------

// gatewayStore speaks HTTP/1.1 with keep-alive to etcd's /v3/kv/put and /v3/kv/range, as a
// client without gRPC would: the same kind of client as ProofKV's. An information column only.
type gatewayStore struct{ h *proofkvStore }

func (s *gatewayStore) call(ctx context.Context, route string, body map[string]string) ([]byte, error) {
	b, _ := json.Marshal(body)
	ep, _ := s.h.route.pick()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.h.route.endpoints[ep]+route, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.h.do(ep, req)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (s *gatewayStore) put(ctx context.Context, key string, value []byte) error {
	_, err := s.call(ctx, "/v3/kv/put", map[string]string{"key": b64(key), "value": base64.StdEncoding.EncodeToString(value)})
	return err
}

// get is linearizable: the gateway's range without "serializable".
func (s *gatewayStore) get(ctx context.Context, key string) error {
	body, err := s.call(ctx, "/v3/kv/range", map[string]string{"key": b64(key)})
	if err != nil {
		return err
	}
	var r struct {
		Count string `json:"count"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Count != "1" {
		return fmt.Errorf("range %s: count %q %v", key, r.Count, err)
	}
	return nil
}

// proof: etcd has no proofs; the same linearizable range.
func (s *gatewayStore) proof(ctx context.Context, key string) error { return s.get(ctx, key) }

func (s *gatewayStore) close() { s.h.close() }

// ---- ProofKV ----------------------------------------------------------------------------------

type proofkvStore struct {
	client *http.Client
	route  *router
}

// newProofKV: leader routing follows ProofKV-Leader hints (false: requests in turn).
func newProofKV(endpoints []string, conc int, leader bool) *proofkvStore {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc * len(endpoints),
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	return &proofkvStore{client: &http.Client{Transport: tr}, route: newRouter(endpoints, leader)}
}

// url picks the endpoint of a request on key: its index and the key's URL there.
func (s *proofkvStore) url(key string) (int, string) {
	ep, _ := s.route.pick()
	return ep, s.route.endpoints[ep] + "/v1/kv/" + key
}

// do sends req to endpoint ep and returns the body of a 200 answer (at most 1 MiB); anything else
// is an error. Every answer's ProofKV-Leader hint is followed; no answer forgets ep as the leader.
func (s *proofkvStore) do(ep int, req *http.Request) ([]byte, error) {
	res, err := s.client.Do(req)
	if err != nil {
		s.route.failed(ep)
		return nil, err
	}
	s.route.hint(res.Header.Get("ProofKV-Leader"))
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", req.Method, req.URL.Path, res.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (s *proofkvStore) put(ctx context.Context, key string, value []byte) error {
	ep, u := s.url(key)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	_, err = s.do(ep, req)
	return err
}

// get is a linearizable read (the default, asked for explicitly); the raw value.
func (s *proofkvStore) get(ctx context.Context, key string) error {
	ep, u := s.url(key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?consistency=linearizable", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/octet-stream")
	_, err = s.do(ep, req)
	return err
}

// proof is a get proof against the latest checkpoint, in CBOR (as the SDK asks for it).
func (s *proofkvStore) proof(ctx context.Context, key string) error {
	ep, u := s.url(key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/proof", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/cbor")
	_, err = s.do(ep, req)
	return err
}

func (s *proofkvStore) close() { s.client.CloseIdleConnections() }

// ---- ProofKV over the stream protocol (proofkv-stream/1) -----------------------------------------

// Frame fields of proofkv-stream/1 (docs/stream-protocol.md).
const (
	streamProtocol  = "proofkv-stream/1"
	opGet           = 1
	opPut           = 2
	opProof         = 4
	acceptCBOR      = 0
	acceptJSON      = 1
	acceptRaw       = 2
	maxAnswerFrame  = 16 << 20 // the largest answer accepted: far above a 100-byte value's proof
	streamReadBytes = 64 << 10
)

type streamAnswer struct {
	status int
	leader string // the answer's ProofKV-Leader header line, "" when it has none
	body   []byte
	err    error
}

var leaderName = []byte("proofkv-leader")

// leaderHeader is the value of the ProofKV-Leader line of an answer's header block ("name: value\n"
// lines, docs/stream-protocol.md), "" when there is none.
func leaderHeader(block []byte) string {
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		c := bytes.IndexByte(line, ':')
		if c == len(leaderName) && bytes.EqualFold(line[:c], leaderName) {
			return strings.TrimSpace(string(line[c+1:]))
		}
	}
	return ""
}

// streamConn is one upgraded connection: requests multiplexed by id; one writer goroutine that
// writes every frame queued since its last write in one write; one reader goroutine that hands
// each answer to its request, in whatever order answers come.
type streamConn struct {
	conn    net.Conn
	mu      sync.Mutex
	pending map[uint32]chan streamAnswer
	nextID  uint32
	queue   []byte // frames waiting for the writer, back to back (at most -concurrency requests' worth)
	wake    chan struct{}
	err     error // set once the connection failed: every later request fails with it
	done    chan struct{}
}

// dialStream connects to endpoint (http://host:port), upgrades the connection to the stream and
// starts its reader and writer.
func dialStream(endpoint string) (*streamConn, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("stream endpoint %q: need http://host:port", endpoint)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	req := "GET /v1/stream HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: Upgrade\r\nUpgrade: " + streamProtocol + "\r\n\r\n"
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, streamReadBytes)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream upgrade at %s: %v", endpoint, err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(res.Header.Get("Upgrade"), streamProtocol) {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		conn.Close()
		return nil, fmt.Errorf("stream upgrade at %s: HTTP %d %s", endpoint, res.StatusCode, strings.TrimSpace(string(body)))
	}
	conn.SetDeadline(time.Time{})
	c := &streamConn{conn: conn, pending: map[uint32]chan streamAnswer{}, nextID: 1, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.writer()
	go c.reader(br)
	return c, nil
}

// fail ends the connection: every request in flight gets err, later ones too.
func (c *streamConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.queue = nil
	close(c.done)
	c.mu.Unlock()
	c.conn.Close()
	for _, ch := range pending {
		ch <- streamAnswer{err: err}
	}
}

func (c *streamConn) writer() {
	var batch []byte
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if _, err := c.conn.Write(batch); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *streamConn) reader(br *bufio.Reader) {
	var head [12]byte
	for {
		if _, err := io.ReadFull(br, head[:4]); err != nil {
			c.fail(fmt.Errorf("stream read: %v", err))
			return
		}
		n := binary.BigEndian.Uint32(head[:4])
		if n < 8 || n > maxAnswerFrame {
			c.fail(fmt.Errorf("stream: answer frame of %d bytes", n))
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			c.fail(fmt.Errorf("stream read: %v", err))
			return
		}
		id := binary.BigEndian.Uint32(frame[0:4])
		status := int(binary.BigEndian.Uint16(frame[4:6]))
		hl := int(binary.BigEndian.Uint16(frame[6:8]))
		if 8+hl > len(frame) {
			c.fail(errors.New("stream: answer headers run past the frame"))
			return
		}
		leader := ""
		if hl > 0 {
			leader = leaderHeader(frame[8 : 8+hl])
		}
		body := frame[8+hl:]
		if id == 0 {
			c.fail(fmt.Errorf("stream: connection error %d %s", status, strings.TrimSpace(string(body))))
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			c.fail(fmt.Errorf("stream: an answer for id %d, which is not in flight", id))
			return
		}
		ch <- streamAnswer{status: status, leader: leader, body: body} // buffered: never blocks
	}
}

// do sends one request and waits for its answer (or ctx). A request whose ctx ends first keeps its
// id until the answer comes, so the id is never reused while the server may still answer it.
func (c *streamConn) do(ctx context.Context, op, accept byte, key, query string, value []byte) (streamAnswer, error) {
	ch := make(chan streamAnswer, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return streamAnswer{}, err
	}
	id := c.nextID
	for id == 0 || c.pending[id] != nil {
		id++
	}
	c.nextID = id + 1
	c.pending[id] = ch
	n := 4 + 1 + 1 + 2 + len(key) + 2 + len(query) + 2 + len(value)
	var f [12]byte
	binary.BigEndian.PutUint32(f[0:4], uint32(n))
	binary.BigEndian.PutUint32(f[4:8], id)
	f[8], f[9] = op, accept
	binary.BigEndian.PutUint16(f[10:12], uint16(len(key)))
	c.queue = append(c.queue, f[:]...)
	c.queue = append(c.queue, key...)
	c.queue = binary.BigEndian.AppendUint16(c.queue, uint16(len(query)))
	c.queue = append(c.queue, query...)
	c.queue = binary.BigEndian.AppendUint16(c.queue, 0) // no headers
	c.queue = append(c.queue, value...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case a := <-ch:
		return a, a.err
	case <-ctx.Done():
		return streamAnswer{}, ctx.Err()
	}
}

// proofkvStreamStore routes requests over the members as the HTTP store does, and over
// -stream-conns connections per member; a failed connection is dialled again on its next use.
type proofkvStreamStore struct {
	route *router
	perEp int
	mu    sync.Mutex
	conns []*streamConn // endpoint i's connection j at i*perEp+j
}

// newProofKVStream: leader routing follows ProofKV-Leader hints (false: requests in turn).
func newProofKVStream(endpoints []string, perEp int, leader bool) *proofkvStreamStore {
	return &proofkvStreamStore{route: newRouter(endpoints, leader), perEp: perEp, conns: make([]*streamConn, len(endpoints)*perEp)}
}

// conn picks the endpoint of the next request and one of its connections.
func (s *proofkvStreamStore) conn() (int, *streamConn, error) {
	ep, turn := s.route.pick()
	slot := ep*s.perEp + int(turn%uint64(s.perEp))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[slot]; c != nil {
		select {
		case <-c.done:
		default:
			return ep, c, nil
		}
	}
	c, err := dialStream(s.route.endpoints[ep])
	if err != nil {
		return ep, nil, err
	}
	s.conns[slot] = c
	return ep, c, nil
}

// call sends one request and returns the body of a 200 answer; anything else is an error. Every
// answer's ProofKV-Leader hint is followed; no answer (the connection failed, or the request's
// time ran out) forgets the endpoint as the leader.
func (s *proofkvStreamStore) call(ctx context.Context, what string, op, accept byte, key, query string, value []byte) ([]byte, error) {
	ep, c, err := s.conn()
	if err != nil {
		s.route.failed(ep)
		return nil, err
	}
	a, err := c.do(ctx, op, accept, key, query, value)
	if err != nil {
		s.route.failed(ep)
		return nil, err
	}
	s.route.hint(a.leader)
	if a.status != 200 {
		return nil, fmt.Errorf("stream %s %s: %d %s", what, key, a.status, strings.TrimSpace(string(a.body)))
	}
	return a.body, nil
}

func (s *proofkvStreamStore) put(ctx context.Context, key string, value []byte) error {
	_, err := s.call(ctx, "PUT", opPut, acceptJSON, key, "", value)
	return err
}

// get is a linearizable read (the default, asked for explicitly); the raw value, as over HTTP.
func (s *proofkvStreamStore) get(ctx context.Context, key string) error {
	_, err := s.call(ctx, "GET", opGet, acceptRaw, key, "consistency=linearizable", nil)
	return err
}

// proof is a get proof against the latest checkpoint, in CBOR; read, not parsed (as over HTTP).
func (s *proofkvStreamStore) proof(ctx context.Context, key string) error {
	_, err := s.call(ctx, "PROOF", opProof, acceptCBOR, key, "", nil)
	return err
}

func (s *proofkvStreamStore) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c != nil {
			c.fail(errors.New("closed"))
		}
	}
}

// ---- phases -----------------------------------------------------------------------------------

type result struct {
	Phase      string  `json:"phase"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"firstError,omitempty"`
	Seconds    float64 `json:"seconds"`
	OpsPerSec  float64 `json:"opsPerSec"`
	MeanUs     float64 `json:"meanUs"`
	P50Us      float64 `json:"p50Us"`
	P99Us      float64 `json:"p99Us"`
	Concurrent int     `json:"concurrency"`
	// ToLeader: of the phase's requests (errors included), those sent to a leader an answer had
	// named (ProofKV only; the others went in turn).
	ToLeader *uint64 `json:"toLeader,omitempty"`
	// StartMs and EndMs: the phase's wall-clock bounds (Unix ms), so that the caller can charge the
	// servers' CPU time between them to the phase.
	StartMs int64 `json:"startMs"`
	EndMs   int64 `json:"endMs"`
	// ClientCPUUs: the CPU time (user + system) this load generator used during the phase, µs:
	// what the client's side of a request costs on the machine the servers share.
	ClientCPUUs float64 `json:"clientCpuUs"`
}

// cpuUs is the process's CPU time so far (user + system), µs.
func cpuUs() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

func key(prefix string, i int) string { return fmt.Sprintf("%s-%010d", prefix, i) }

// run performs n operations with conc in flight (op(i) for i in 0..n-1), stopping early at the
// deadline; it reports completed operations, errors and latency percentiles.
func run(phase string, n, conc int, limit time.Duration, op func(ctx context.Context, i int) error) result {
	lat := make([]float64, n)
	var next int64 = -1
	var errs int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(limit)
	cpu0 := cpuUs()
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n || time.Now().After(deadline) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s := time.Now()
				err := op(ctx, i)
				lat[i] = float64(time.Since(s).Nanoseconds()) / 1e3
				cancel()
				if err != nil {
					atomic.AddInt64(&errs, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					lat[i] = -1
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	endMs := time.Now().UnixMilli()
	cpu := cpuUs() - cpu0
	ok := make([]float64, 0, n)
	for _, l := range lat {
		if l > 0 {
			ok = append(ok, l)
		}
	}
	sort.Float64s(ok)
	r := result{Phase: phase, Ops: len(ok), Errors: int(errs), Seconds: secs, Concurrent: conc, StartMs: t0.UnixMilli(), EndMs: endMs, ClientCPUUs: cpu}
	if fe, _ := firstErr.Load().(string); fe != "" {
		r.FirstError = fe
	}
	if len(ok) > 0 {
		sum := 0.0
		for _, l := range ok {
			sum += l
		}
		r.MeanUs = sum / float64(len(ok))
		r.P50Us = ok[len(ok)*50/100]
		r.P99Us = ok[len(ok)*99/100]
		r.OpsPerSec = float64(len(ok)) / secs
	}
	return r
}

// ready retries op until it succeeds (a PUT: the cluster elected a leader; a proof: the first
// checkpoint is there) or the wait is over.
func ready(op func(ctx context.Context) error, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = op(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", wait, last)
}

func main() {
	system := flag.String("system", "", "etcd, etcd-leader, etcd-gateway, proofkv or proofkv-stream")
	endpoints := flag.String("endpoints", "", "comma-separated client URLs")
	seq := flag.Int("seq", 3000, "single-client PUTs")
	warmN := flag.Int("warm-n", 0, "PUTs with -concurrency in flight before the measured phases (after the 200 single-client warm-up PUTs), on keys of their own; not reported")
	settle := flag.Duration("settle", 0, "pause after the warm-up under load, before the measured phases, so that the servers finish the work it left them (flushes, compactions, collections); not reported")
	concN := flag.Int("conc-n", 20000, "PUTs with -concurrency in flight")
	getN := flag.Int("get-n", 20000, "GETs with -concurrency in flight")
	proofN := flag.Int("proof-n", 0, "GETs with a proof with -concurrency in flight (0: no such phase)")
	conc := flag.Int("concurrency", 100, "operations in flight")
	valueBytes := flag.Int("value-bytes", 100, "value size")
	phaseSeconds := flag.Int("phase-seconds", 120, "stop a phase after this many seconds")
	readyWait := flag.Int("ready-seconds", 60, "wait this long for the cluster to take a write")
	streamConns := flag.Int("stream-conns", 1, "proofkv-stream: connections per endpoint (1 .. 16; clientv3 uses one per endpoint)")
	routing := flag.String("routing", "leader", "proofkv, proofkv-stream: leader (follow ProofKV-Leader hints, as the SDK does) or spread (every request to the next member)")
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	if *endpoints == "" || *conc < 1 || *seq < 1 || *concN < 1 || *getN < 1 || *proofN < 0 || *streamConns < 1 || *streamConns > 16 {
		fmt.Fprintln(os.Stderr, "loadgen: need -endpoints and positive counts")
		os.Exit(2)
	}
	if *routing != "leader" && *routing != "spread" {
		fmt.Fprintln(os.Stderr, "loadgen: -routing must be leader or spread")
		os.Exit(2)
	}
	toLeader := *routing == "leader"
	readyFor := time.Duration(*readyWait) * time.Second
	var s store
	var route *router // ProofKV's, for the count of requests sent to the leader
	switch *system {
	case "etcd", "etcd-leader":
		var e *etcdStore
		var err error
		if *system == "etcd" {
			e, err = newEtcd(eps)
		} else {
			e, err = newEtcdLeader(eps, readyFor)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		s = e
	case "etcd-gateway":
		s = &gatewayStore{newProofKV(eps, *conc, false)}
	case "proofkv":
		h := newProofKV(eps, *conc, toLeader)
		s, route = h, h.route
	case "proofkv-stream":
		st := newProofKVStream(eps, *streamConns, toLeader)
		s, route = st, st.route
	default:
		fmt.Fprintln(os.Stderr, "loadgen: -system must be etcd, etcd-leader, etcd-gateway, proofkv or proofkv-stream")
		os.Exit(2)
	}
	defer s.close()
	if err := ready(func(ctx context.Context) error { return s.put(ctx, "bench-ready", []byte("1")) }, readyFor); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	value := bytes.Repeat([]byte{'a'}, *valueBytes)
	limit := time.Duration(*phaseSeconds) * time.Second
	out := json.NewEncoder(os.Stdout)
	// phase runs and prints one phase, with ProofKV's count of requests sent to the leader.
	phase := func(name string, n, conc int, op func(ctx context.Context, i int) error) {
		var before uint64
		if route != nil {
			before = atomic.LoadUint64(&route.toLeader)
		}
		r := run(name, n, conc, limit, op)
		if route != nil {
			k := atomic.LoadUint64(&route.toLeader) - before
			r.ToLeader = &k
		}
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	// Warm-up: connections, leader known, caches.
	run("warm", 200, 1, limit, func(ctx context.Context, i int) error { return s.put(ctx, key("w", i%100), value) })
	// Optional warm-up under load (-warm-n): a JIT's compiled code, the servers' caches and pools,
	// the same for every system. Its keys are not those of any measured phase.
	if *warmN > 0 {
		run("warm100", *warmN, *conc, limit, func(ctx context.Context, i int) error { return s.put(ctx, key("x", i%5000), value) })
		time.Sleep(*settle)
	}
	phase("put1", *seq, 1, func(ctx context.Context, i int) error { return s.put(ctx, key("s", i%1000), value) })
	const concKeys = 5000
	phase("put100", *concN, *conc, func(ctx context.Context, i int) error { return s.put(ctx, key("c", i%concKeys), value) })
	written := concKeys
	if *concN < concKeys {
		written = *concN
	}
	phase("get100", *getN, *conc, func(ctx context.Context, i int) error {
		// A fixed stride over the written keys: every GET finds its key.
		return s.get(ctx, key("c", (i*7919)%written))
	})
	if *proofN > 0 {
		// Proofs are served from the latest checkpoint: wait for the first one (periodic checkpoints)
		// instead of timing "no checkpoint yet" answers. A key the checkpoint does not hold yet gets
		// a proof of absence, which costs the server about as much.
		if err := ready(func(ctx context.Context) error { return s.proof(ctx, key("c", written-1)) }, readyFor); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: proofs:", err)
			os.Exit(1)
		}
		phase("proof100", *proofN, *conc, func(ctx context.Context, i int) error {
			return s.proof(ctx, key("c", (i*7919)%written))
		})
	}
}
