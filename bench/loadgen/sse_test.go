package main

import (
	"io"
	"strings"
	"testing"
)

func TestTickwireFramesAreParsedWithTheirEventNames(t *testing.T) {
	body := "retry: 1000\n\n: heartbeat\n\n" +
		"event: snapshot\nid: c1\ndata: {\"symbol\":\"AAA\",\"received_ns\":5}\n\n" +
		"event: quote\r\nid: c2\r\ndata: {\"symbol\":\"AAA\",\"version\":2,\"received_ns\":1700000000123456789}\r\n\r\n"
	r := newSSEReader(strings.NewReader(body), 16)
	first, err := r.next()
	if err != nil || string(first.name) != "snapshot" {
		t.Fatalf("first event %q, %v", first.name, err)
	}
	second, err := r.next()
	if err != nil || string(second.name) != "quote" {
		t.Fatalf("second event %q, %v", second.name, err)
	}
	if ns, ok := receivedNs(second.data); !ok || ns != 1700000000123456789 {
		t.Fatalf("received_ns %d %v", ns, ok)
	}
	if _, err := r.next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestCentrifugoPushIsUnwrapped(t *testing.T) {
	body := "\r\ndata: {\"connect\":{\"client\":\"x\",\"version\":\"6.9.1\"}}\n\n" +
		"data: {\"push\":{\"channel\":\"AAB\",\"pub\":{\"data\":{\"symbol\":\"AAB\",\"received_ns\": 42},\"offset\":3}}}\n\n"
	r := newSSEReader(strings.NewReader(body), 4096)
	connect, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := receivedNs(connect.data); ok {
		t.Fatal("connect reply has no received_ns")
	}
	push, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	if ns, ok := receivedNs(push.data); !ok || ns != 42 || len(push.name) != 0 {
		t.Fatalf("push %q: %d %v", push.name, ns, ok)
	}
}

func TestMultiLineDataIsJoined(t *testing.T) {
	r := newSSEReader(strings.NewReader("data: a\ndata: b\n\n"), 4096)
	ev, err := r.next()
	if err != nil || string(ev.data) != "a\nb" {
		t.Fatalf("%q %v", ev.data, err)
	}
}

func TestSubscriptionsAreSpreadEvenly(t *testing.T) {
	symbols := make([]string, 500)
	for i := range symbols {
		symbols[i] = string(rune('A'+i%26)) + string(rune('A'+i/26))
	}
	counts := map[string]int{}
	for i := 0; i < 1000; i++ {
		for _, s := range subscription(symbols, i, 20) {
			counts[s]++
		}
	}
	for _, s := range symbols {
		if counts[s] != 40 {
			t.Fatalf("%s has %d subscribers, want 40", s, counts[s])
		}
	}
}
