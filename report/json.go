package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// The JSON form of a Run. Times are RFC 3339 in UTC; durations are seconds.
// Fields marked derived are written by WriteJSON and ignored by ReadJSON.
type jsonRun struct {
	Title        string    `json:"title"`
	Started      time.Time `json:"started,omitzero"`
	Finished     time.Time `json:"finished,omitzero"`
	WallSeconds  float64   `json:"wall_seconds"` // derived
	Lanes        []string  `json:"lanes"`
	Counts       []Count   `json:"counts"`        // derived
	CriticalPath []string  `json:"critical_path"` // derived
	// CriticalSeconds is the sum of the critical path's durations. Derived.
	CriticalSeconds float64     `json:"critical_path_seconds"`
	LaneSummary     []jsonLane  `json:"lane_summary"` // derived
	Images          []jsonImage `json:"images"`
}

type jsonLane struct {
	LaneSummary
	BusySeconds float64 `json:"busy_seconds"`
}

type jsonImage struct {
	Name    string    `json:"name"`
	Label   string    `json:"label"`
	Parents []string  `json:"parents"`
	Result  string    `json:"result"`
	Stage   string    `json:"stage,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Lane    string    `json:"lane,omitempty"`
	Start   time.Time `json:"start,omitzero"`
	End     time.Time `json:"end,omitzero"`
	// StartSeconds is Start relative to the run's start. Derived.
	StartSeconds    float64  `json:"start_seconds,omitempty"`
	DurationSeconds float64  `json:"duration_seconds,omitempty"` // derived
	Size            int64    `json:"size,omitempty"`
	Digest          string   `json:"digest,omitempty"`
	LogTail         []string `json:"log_tail,omitempty"`
}

// WriteJSON writes the Run as one indented JSON object: title, started,
// finished, lanes and images (each with name, label, parents, result,
// stage, reason, lane, start, end, size, digest, log_tail), and what is
// derived from them: wall_seconds, counts per result, critical_path and
// critical_path_seconds, lane_summary (images, busy_seconds and
// utilisation per lane), and per image start_seconds (from the run's
// start) and duration_seconds. Times are RFC 3339 in UTC, durations
// seconds to the millisecond; a missing value is left out.
func WriteJSON(w io.Writer, r *Run) error {
	g, err := newGraph(r)
	if err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	crit := criticalPath(r, g)
	out := jsonRun{
		Title:        r.Title,
		Started:      utc(r.Started),
		Finished:     utc(r.Finished),
		WallSeconds:  seconds(wallTime(r)),
		Lanes:        nonNil(r.Lanes),
		Counts:       nonNil(Counts(r)),
		CriticalPath: nonNil(names(r, crit)),
		Images:       make([]jsonImage, len(r.Images)),
	}
	var critTime time.Duration
	for _, i := range crit {
		critTime += r.Images[i].Duration()
	}
	out.CriticalSeconds = seconds(critTime)
	for _, l := range Lanes(r) {
		l.Utilisation = math.Round(l.Utilisation*1000) / 1000
		out.LaneSummary = append(out.LaneSummary, jsonLane{LaneSummary: l, BusySeconds: seconds(l.Busy)})
	}
	out.LaneSummary = nonNil(out.LaneSummary)
	for i := range r.Images {
		im := &r.Images[i]
		ji := jsonImage{
			Name: im.Name, Label: im.Label, Parents: nonNil(im.Parents),
			Result: im.Result, Stage: im.Stage, Reason: im.Reason, Lane: im.Lane,
			Start: utc(im.Start), End: utc(im.End),
			Size: im.Size, Digest: im.Digest, LogTail: im.LogTail,
		}
		if im.Built() {
			ji.StartSeconds = seconds(im.Start.Sub(r.Started))
			ji.DurationSeconds = seconds(im.Duration())
		}
		out.Images[i] = ji
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// ReadJSON reads a Run written by WriteJSON.
func ReadJSON(rd io.Reader) (*Run, error) {
	var in jsonRun
	if err := json.NewDecoder(rd).Decode(&in); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	r := &Run{Title: in.Title, Started: in.Started, Finished: in.Finished, Lanes: in.Lanes}
	for _, ji := range in.Images {
		r.Images = append(r.Images, Image{
			Name: ji.Name, Label: ji.Label, Parents: ji.Parents,
			Result: ji.Result, Stage: ji.Stage, Reason: ji.Reason, Lane: ji.Lane,
			Start: ji.Start, End: ji.End,
			Size: ji.Size, Digest: ji.Digest, LogTail: ji.LogTail,
		})
	}
	if _, err := newGraph(r); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	return r, nil
}

// seconds is d in seconds to the millisecond, without float noise.
func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond).Milliseconds()) / 1000
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// nonNil makes an empty list a JSON [] rather than null, for consumers
// that iterate without checking.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
