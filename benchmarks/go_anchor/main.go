// The Go anchor: HTTP/1.1 pairs of a pcap the way Kubeshark's tapper is built (gopacket's TCP
// reassembly, net/http's parsers, encoding/json), one JSON line per pair on stdout. Not part of
// Mizu: a yardstick in benchmarks/ (see benchmarks/README.md). Ethernet or raw IPv4/IPv6 pcaps.
//
// Build: GOPATH=/usr/share/gocode GO111MODULE=off go build -o go_anchor .
// (Debian: golang-go golang-github-google-gopacket-dev)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/google/gopacket/tcpassembly"
	"github.com/google/gopacket/tcpassembly/tcpreader"
)

type message struct {
	Method  string              `json:"method,omitempty"`
	URL     string              `json:"url,omitempty"`
	Status  int                 `json:"status,omitempty"`
	Proto   string              `json:"httpVersion"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
	Size    int                 `json:"bodySize"`
}

type entry struct {
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	Request  *message `json:"request"`
	Response *message `json:"response"`
}

// connection pairs the requests of its client side with the responses of its server side, in
// order, whichever side is parsed first (the two sides are read by goroutines of their own).
type connection struct {
	mu        sync.Mutex
	requests  []*message
	responses []*message
	client    string
	server    string
}

func (c *connection) add(m *message, isRequest bool, out chan<- entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isRequest {
		c.requests = append(c.requests, m)
	} else {
		c.responses = append(c.responses, m)
	}
	for len(c.requests) > 0 && len(c.responses) > 0 {
		out <- entry{Src: c.client, Dst: c.server, Request: c.requests[0], Response: c.responses[0]}
		c.requests, c.responses = c.requests[1:], c.responses[1:]
	}
}

type factory struct {
	mu          sync.Mutex
	connections map[string]*connection
	clients     map[string]bool // "ip:port>ip:port" of every SYN seen: the client's side
	out         chan entry
	readers     sync.WaitGroup
}

func (f *factory) connection(key, client, server string) *connection {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.connections[key]
	if c == nil {
		c = &connection{client: client, server: server}
		f.connections[key] = c
	}
	return c
}

func (f *factory) New(network, transport gopacket.Flow) tcpassembly.Stream {
	stream := tcpreader.NewReaderStream()
	src := network.Src().String() + ":" + transport.Src().String()
	dst := network.Dst().String() + ":" + transport.Dst().String()
	f.mu.Lock()
	isClient := f.clients[src+">"+dst] || !f.clients[dst+">"+src] && !transport.Src().LessThan(transport.Dst())
	f.mu.Unlock()
	client, server := src, dst
	if !isClient {
		client, server = dst, src
	}
	c := f.connection(client+">"+server, client, server)
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		reader := bufio.NewReader(&stream)
		for {
			m := readMessage(reader, isClient)
			if m == nil {
				break
			}
			c.add(m, isClient, f.out)
		}
		tcpreader.DiscardBytesToEOF(reader)
	}()
	return &stream
}

// readMessage parses the next request (or response) of a side, body included; nil at its end.
func readMessage(reader *bufio.Reader, isRequest bool) *message {
	if isRequest {
		request, err := http.ReadRequest(reader)
		if err != nil {
			return nil
		}
		body, _ := io.ReadAll(request.Body)
		request.Body.Close()
		return &message{Method: request.Method, URL: request.URL.String(), Proto: request.Proto,
			Headers: request.Header, Body: string(body), Size: len(body)}
	}
	response, err := http.ReadResponse(reader, nil)
	if err != nil {
		return nil
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	return &message{Status: response.StatusCode, Proto: response.Proto, Headers: response.Header,
		Body: string(body), Size: len(body)}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go_anchor FILE.pcap")
		os.Exit(2)
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	capture, err := pcapgo.NewReader(bufio.NewReaderSize(file, 1<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f := &factory{connections: map[string]*connection{}, clients: map[string]bool{},
		out: make(chan entry, 4096)}
	written := make(chan int)
	go func() {
		output := bufio.NewWriterSize(os.Stdout, 1<<16)
		encoder := json.NewEncoder(output)
		count := 0
		for e := range f.out {
			encoder.Encode(e)
			count++
		}
		output.Flush()
		written <- count
	}()
	assembler := tcpassembly.NewAssembler(tcpassembly.NewStreamPool(f))
	var ethernet layers.Ethernet
	var ip4 layers.IPv4
	var ip6 layers.IPv6
	var tcp layers.TCP
	first := layers.LayerTypeEthernet
	if capture.LinkType() != layers.LinkTypeEthernet {
		first = layers.LayerTypeIPv4
	}
	parser := gopacket.NewDecodingLayerParser(first, &ethernet, &ip4, &ip6, &tcp)
	parser.IgnoreUnsupported = true
	decoded := []gopacket.LayerType{}
	packets := 0
	var last time.Time
	for {
		data, info, err := capture.ReadPacketData()
		if err != nil {
			break
		}
		packets++
		if parser.DecodeLayers(data, &decoded) != nil || len(decoded) == 0 {
			continue
		}
		for _, layer := range decoded {
			if layer != layers.LayerTypeTCP {
				continue
			}
			network := ip4.NetworkFlow()
			if decoded[len(decoded)-2] == layers.LayerTypeIPv6 {
				network = ip6.NetworkFlow()
			}
			if tcp.SYN && !tcp.ACK {
				f.mu.Lock()
				f.clients[network.Src().String()+":"+tcp.TransportFlow().Src().String()+">"+
					network.Dst().String()+":"+tcp.TransportFlow().Dst().String()] = true
				f.mu.Unlock()
			}
			assembler.AssembleWithTimestamp(network, &tcp, info.Timestamp)
		}
		last = info.Timestamp
		if packets%100000 == 0 {
			assembler.FlushOlderThan(last.Add(-2 * time.Minute))
		}
	}
	assembler.FlushAll()
	f.readers.Wait()
	close(f.out)
	fmt.Fprintf(os.Stderr, "go_anchor: %d packets, %d pairs\n", packets, <-written)
}
