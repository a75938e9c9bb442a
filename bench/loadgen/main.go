// Command loadgen drives a 3-node key-value cluster for bench/cluster.ts: etcd through its own
// client (go.etcd.io/etcd/clientv3, gRPC), ProofKV through its HTTP API (net/http, keep-alive),
// and, for information, etcd through its v3 JSON gateway with the same HTTP client as ProofKV.
// One program, one concurrency model (goroutines) and one latency histogram for both systems,
// so the systems differ only in what they are. Built by bench/cluster.ts in GOPATH mode against
// Debian's golang-etcd-server-dev (no module download). Not a test: it reports, it asserts nothing.
//
//	loadgen -system etcd|etcd-gateway|proofkv -endpoints URL,URL,URL [-seq 3000] [-conc-n 20000] [-get-n 20000]
//	        [-proof-n 0] [-concurrency 100] [-value-bytes 100] [-phase-seconds 120]
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
// Requests go to the endpoints in turn (etcd: clientv3's round-robin balancer over all
// endpoints; ProofKV: the next URL for each request), so followers take their share in both.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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

// ---- etcd -------------------------------------------------------------------------------------

type etcdStore struct{ c *clientv3.Client }

func newEtcd(endpoints []string) (*etcdStore, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	return &etcdStore{c}, nil
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
	i := atomic.AddUint64(&s.h.next, 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.h.endpoints[int(i%uint64(len(s.h.endpoints)))]+route, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.h.do(req)
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
	client    *http.Client
	endpoints []string
	next      uint64
}

func newProofKV(endpoints []string, conc int) *proofkvStore {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc * len(endpoints),
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	return &proofkvStore{client: &http.Client{Transport: tr}, endpoints: endpoints}
}

func (s *proofkvStore) url(key string) string {
	i := atomic.AddUint64(&s.next, 1)
	return s.endpoints[int(i%uint64(len(s.endpoints)))] + "/v1/kv/" + key
}

// do sends req and returns the body of a 200 answer (at most 1 MiB); anything else is an error.
func (s *proofkvStore) do(req *http.Request) ([]byte, error) {
	res, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.url(key), bytes.NewReader(value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	_, err = s.do(req)
	return err
}

// get is a linearizable read (the default, asked for explicitly); the raw value.
func (s *proofkvStore) get(ctx context.Context, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(key)+"?consistency=linearizable", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/octet-stream")
	_, err = s.do(req)
	return err
}

// proof is a get proof against the latest checkpoint, in CBOR (as the SDK asks for it).
func (s *proofkvStore) proof(ctx context.Context, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(key)+"/proof", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/cbor")
	_, err = s.do(req)
	return err
}

func (s *proofkvStore) close() { s.client.CloseIdleConnections() }

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
	// StartMs and EndMs: the phase's wall-clock bounds (Unix ms), so that the caller can charge the
	// servers' CPU time between them to the phase.
	StartMs int64 `json:"startMs"`
	EndMs   int64 `json:"endMs"`
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
	ok := make([]float64, 0, n)
	for _, l := range lat {
		if l > 0 {
			ok = append(ok, l)
		}
	}
	sort.Float64s(ok)
	r := result{Phase: phase, Ops: len(ok), Errors: int(errs), Seconds: secs, Concurrent: conc, StartMs: t0.UnixMilli(), EndMs: endMs}
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
	system := flag.String("system", "", "etcd, etcd-gateway or proofkv")
	endpoints := flag.String("endpoints", "", "comma-separated client URLs")
	seq := flag.Int("seq", 3000, "single-client PUTs")
	concN := flag.Int("conc-n", 20000, "PUTs with -concurrency in flight")
	getN := flag.Int("get-n", 20000, "GETs with -concurrency in flight")
	proofN := flag.Int("proof-n", 0, "GETs with a proof with -concurrency in flight (0: no such phase)")
	conc := flag.Int("concurrency", 100, "operations in flight")
	valueBytes := flag.Int("value-bytes", 100, "value size")
	phaseSeconds := flag.Int("phase-seconds", 120, "stop a phase after this many seconds")
	readyWait := flag.Int("ready-seconds", 60, "wait this long for the cluster to take a write")
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	if *endpoints == "" || *conc < 1 || *seq < 1 || *concN < 1 || *getN < 1 || *proofN < 0 {
		fmt.Fprintln(os.Stderr, "loadgen: need -endpoints and positive counts")
		os.Exit(2)
	}
	var s store
	switch *system {
	case "etcd":
		e, err := newEtcd(eps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		s = e
	case "etcd-gateway":
		s = &gatewayStore{newProofKV(eps, *conc)}
	case "proofkv":
		s = newProofKV(eps, *conc)
	default:
		fmt.Fprintln(os.Stderr, "loadgen: -system must be etcd or proofkv")
		os.Exit(2)
	}
	defer s.close()
	readyFor := time.Duration(*readyWait) * time.Second
	if err := ready(func(ctx context.Context) error { return s.put(ctx, "bench-ready", []byte("1")) }, readyFor); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	value := bytes.Repeat([]byte{'a'}, *valueBytes)
	limit := time.Duration(*phaseSeconds) * time.Second
	out := json.NewEncoder(os.Stdout)
	emit := func(r result) {
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	// Warm-up: connections, leader known, caches.
	run("warm", 200, 1, limit, func(ctx context.Context, i int) error { return s.put(ctx, key("w", i%100), value) })
	emit(run("put1", *seq, 1, limit, func(ctx context.Context, i int) error { return s.put(ctx, key("s", i%1000), value) }))
	const concKeys = 5000
	emit(run("put100", *concN, *conc, limit, func(ctx context.Context, i int) error { return s.put(ctx, key("c", i%concKeys), value) }))
	written := concKeys
	if *concN < concKeys {
		written = *concN
	}
	emit(run("get100", *getN, *conc, limit, func(ctx context.Context, i int) error {
		// A fixed stride over the written keys: every GET finds its key.
		return s.get(ctx, key("c", (i*7919)%written))
	}))
	if *proofN > 0 {
		// Proofs are served from the latest checkpoint: wait for the first one (periodic checkpoints)
		// instead of timing "no checkpoint yet" answers. A key the checkpoint does not hold yet gets
		// a proof of absence, which costs the server about as much.
		if err := ready(func(ctx context.Context) error { return s.proof(ctx, key("c", written-1)) }, readyFor); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: proofs:", err)
			os.Exit(1)
		}
		emit(run("proof100", *proofN, *conc, limit, func(ctx context.Context, i int) error {
			return s.proof(ctx, key("c", (i*7919)%written))
		}))
	}
}
