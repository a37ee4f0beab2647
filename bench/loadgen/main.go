// Command loadgen opens N Server-Sent Events connections to a tickwire gateway or to
// Centrifugo's unidirectional SSE transport, subscribes each to a few symbols, and
// measures delivery latency (now - received_ns carried in every update) and counts.
//
// It is driven over stdin/stdout by bench/gateway.py, one JSON object per output line:
//
//	(start)  connects every client, then prints {"event":"connected",...}
//	"stats"  prints {"event":"stats","delivered":...} (updates since the last reset)
//	"reset N" forgets everything received so far; the measured window starts here and
//	         counts only updates whose received_ns is at least N
//	"report" prints {"event":"report",...} with latency percentiles and CPU, then exits
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	target      string
	addr        string
	clients     int
	perClient   int
	all         int
	symbolsFile string
	concurrency int
	connectWait time.Duration
}

func parseOptions() options {
	var o options
	flag.StringVar(&o.target, "target", "tickwire", "tickwire | centrifugo")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8082", "server host:port")
	flag.IntVar(&o.clients, "clients", 1000, "number of SSE connections")
	flag.IntVar(&o.perClient, "per-client", 20, "symbols each connection subscribes to")
	flag.IntVar(&o.all, "all", 0, "the first N connections subscribe to every symbol (tickwire: symbols=*)")
	flag.StringVar(&o.symbolsFile, "symbols", "", "file with one symbol per line")
	flag.IntVar(&o.concurrency, "concurrency", 64, "connection attempts in flight")
	flag.DurationVar(&o.connectWait, "connect-timeout", 120*time.Second, "give up connecting after")
	flag.Parse()
	return o
}

func readSymbols(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if s := strings.TrimSpace(line); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no symbols in %s", path)
	}
	return out, nil
}

// subscription is client i's watchlist: perClient symbols spread evenly over the list,
// so every symbol has the same number of subscribers when clients is a multiple of
// len(symbols)/perClient. bench/gateway.py computes expected deliveries the same way.
func subscription(symbols []string, i, perClient int) []string {
	stride := len(symbols) / perClient
	if stride < 1 {
		stride = 1
	}
	out := make([]string, 0, perClient)
	for j := 0; j < perClient && j < len(symbols); j++ {
		out = append(out, symbols[(i+j*stride)%len(symbols)])
	}
	return out
}

func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

var stdout = json.NewEncoder(os.Stdout)

func emit(v map[string]any) {
	_ = stdout.Encode(v)
}

func main() {
	o := parseOptions()
	raiseFileLimit()
	symbols, err := readSymbols(o.symbolsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.target != "tickwire" && o.target != "centrifugo" {
		fmt.Fprintln(os.Stderr, "unknown -target", o.target)
		os.Exit(2)
	}
	pool := newPool(o, symbols)
	started := time.Now()
	pool.connectAll()
	emit(map[string]any{
		"event":     "connected",
		"connected": pool.connected.Load(),
		"errors":    pool.errorCount(),
		"seconds":   time.Since(started).Seconds(),
		"cpu_s":     cpuSeconds(),
	})

	var windowStart time.Time
	var cpuAtReset float64
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		command, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		switch command {
		case "stats":
			delivered, _ := pool.totals()
			emit(map[string]any{"event": "stats", "delivered": delivered,
				"connected": pool.connected.Load(), "errors": pool.errorCount()})
		case "reset":
			since, _ := strconv.ParseInt(arg, 10, 64)
			pool.reset(since)
			windowStart, cpuAtReset = time.Now(), cpuSeconds()
			emit(map[string]any{"event": "reset"})
		case "report":
			report := pool.report()
			report["event"] = "report"
			report["window_s"] = time.Since(windowStart).Seconds()
			report["cpu_s_window"] = cpuSeconds() - cpuAtReset
			report["cpu_s_total"] = cpuSeconds()
			emit(report)
			os.Exit(0)
		}
	}
}
