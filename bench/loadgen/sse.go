package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// An event is one dispatched SSE event: its type ("" when the stream gave none) and
// its data lines joined by "\n", as the WHATWG event-stream parser would build them.
type event struct {
	name []byte
	data []byte
}

// sseReader parses a text/event-stream body line by line without allocating per event:
// the returned event's slices are valid until the next call to next.
type sseReader struct {
	br      *bufio.Reader
	name    []byte
	data    []byte
	hasData bool
	long    []byte // a line longer than the bufio buffer, assembled here
}

func newSSEReader(r io.Reader, size int) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, size)}
}

// readLine returns the next line without its end of line ("\n", "\r\n"; a lone "\r"
// line ending is not produced by either server and is not handled).
func (s *sseReader) readLine() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.br.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// next returns the next event that carries data; comments, retry and id fields are
// consumed on the way.
func (s *sseReader) next() (event, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return event{}, err
		}
		if len(line) == 0 {
			if s.hasData {
				ev := event{name: s.name, data: s.data}
				s.name, s.data, s.hasData = s.name[:0], s.data[:0], false
				return ev, nil
			}
			s.name = s.name[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if s.hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			s.hasData = true
		case "event":
			s.name = append(s.name[:0], value...)
		}
	}
}

var receivedKey = []byte(`"received_ns":`)

// receivedNs finds the integer "received_ns" field anywhere in a JSON document (the
// gateway sends the TickerState itself, Centrifugo wraps it in a push envelope), so
// both are read the same way without decoding the whole document.
func receivedNs(data []byte) (int64, bool) {
	i := bytes.Index(data, receivedKey)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(receivedKey):]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	var v int64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
		digits++
	}
	return v, digits > 0
}
