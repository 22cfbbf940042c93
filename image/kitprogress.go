package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/moby/api/types/jsonstream"
)

// traceID marks the messages of a BuildKit /build stream whose aux is a
// JSON string holding a protobuf controlapi.StatusResponse.
const traceID = "moby.buildkit.trace"

// stepLines is how many output lines of the failed step the failure summary
// repeats: with the summary's frame and the error line, they fill
// BuildError.Tail.
const stepLines = tailLines - 4

// statusPrinter turns BuildKit's status messages into plain log lines, in
// the spirit of `docker buildx build --progress=plain`: every line starts
// with its step's number, so the steps BuildKit runs in parallel stay
// readable when they interleave. It keeps the last lines of each step so a
// failure can repeat the failed step's output.
type statusPrinter struct {
	w      io.Writer // gets one Write per line
	steps  map[string]*step
	next   int
	failed *step // the first step that reported an error
}

type step struct {
	n       int
	name    string
	started bool
	ended   bool
	partial []byte   // output after the last newline
	tail    []string // the last stepLines output lines
}

func newStatusPrinter(w io.Writer) *statusPrinter {
	return &statusPrinter{w: w, steps: map[string]*step{}}
}

// step returns the step of a vertex digest, numbered in order of first sight.
func (p *statusPrinter) step(digest string) *step {
	s, ok := p.steps[digest]
	if !ok {
		p.next++
		s = &step{n: p.next}
		p.steps[digest] = s
	}
	return s
}

func (p *statusPrinter) printf(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// trace prints one trace message. What does not decode is skipped, as
// docker/cli does: a newer daemon may send what this client does not know.
func (p *statusPrinter) trace(aux json.RawMessage) {
	var dt []byte
	if err := json.Unmarshal(aux, &dt); err != nil {
		return
	}
	var resp controlapi.StatusResponse
	if err := resp.UnmarshalVT(dt); err != nil {
		return
	}
	p.status(&resp)
}

// status prints one status update of a build: steps started and ended,
// and their output.
func (p *statusPrinter) status(resp *controlapi.StatusResponse) {
	for _, v := range resp.Vertexes {
		s := p.step(v.Digest)
		if v.Name != "" {
			s.name = v.Name
		}
		// A cached step may arrive completed without having started.
		if !s.started && (v.Started != nil || v.Completed != nil) {
			s.started = true
			p.printf("#%d %s", s.n, s.name)
		}
		if s.ended || v.Completed == nil {
			continue
		}
		s.ended = true
		p.flush(s)
		switch {
		case v.Error != "":
			p.printf("#%d ERROR: %s", s.n, v.Error)
			if p.failed == nil {
				p.failed = s
			}
		case v.Cached:
			p.printf("#%d CACHED", s.n)
		default:
			d := v.Completed.AsTime().Sub(v.Started.AsTime())
			p.printf("#%d DONE %.1fs", s.n, d.Seconds())
		}
	}
	for _, l := range resp.Logs {
		s := p.step(l.Vertex)
		data := append(s.partial, l.Msg...)
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			p.line(s, string(data[:i]))
			data = data[i+1:]
		}
		s.partial = append([]byte(nil), data...)
	}
}

// flush prints a step's unterminated last line.
func (p *statusPrinter) flush(s *step) {
	if len(s.partial) > 0 {
		p.line(s, string(s.partial))
		s.partial = nil
	}
}

func (p *statusPrinter) line(s *step, text string) {
	text = strings.TrimRight(text, "\r")
	p.printf("#%d %s", s.n, text)
	s.tail = append(s.tail, text)
	if len(s.tail) > stepLines {
		s.tail = s.tail[len(s.tail)-stepLines:]
	}
}

// summary repeats the failed step's last output, framed as buildx does, so
// the end of the log (and BuildError.Tail) shows why the build failed even
// when other steps' output came after it.
func (p *statusPrinter) summary() {
	if p.failed == nil {
		return // failed before any step ran: the error says why
	}
	p.printf("------")
	p.printf(" > %s:", p.failed.name)
	for _, l := range p.failed.tail {
		p.printf("%s", l)
	}
	p.printf("------")
}

// streamLines writes each line it is given as a {"stream": ...} message,
// the form the classic builder's output takes.
type streamLines struct{ enc *json.Encoder }

func (s streamLines) Write(line []byte) (int, error) {
	if err := s.enc.Encode(jsonstream.Message{Stream: string(line)}); err != nil {
		return 0, err
	}
	return len(line), nil
}

// translateBuildKit copies a BuildKit /build stream from r to w in the form
// of a classic build's stream: status turned into plain stream lines, a
// failure summary before the error, the error and the image ID
// (moby.image.id) passed on as they are. So one reader of build output
// serves both builders.
func translateBuildKit(w io.Writer, r io.Reader) error {
	enc := json.NewEncoder(w)
	p := newStatusPrinter(streamLines{enc})
	dec := json.NewDecoder(r)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the daemon's build output: %w", err)
		}
		if msg.ID == traceID && msg.Aux != nil {
			p.trace(*msg.Aux)
			continue
		}
		if msg.Error != nil {
			p.summary()
		}
		if err := enc.Encode(msg); err != nil {
			return err
		}
	}
}
