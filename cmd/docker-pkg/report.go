package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/report"
)

// checkReportPath says why path cannot take a report: the extension picks
// the format, .html (or .htm) or .json.
func checkReportPath(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".html", ".htm", ".json":
		return nil
	}
	return fmt.Errorf("--report %s: want a file ending in .html or .json", path)
}

// runReport is what a build's report shows: every image of the tree, in
// tree order, with what this run did to it.
func runReport(title string, b *builder.Builder, plan *builder.Plan, res *builder.Result, published []builder.ImageResult, started, finished time.Time, jobs int) *report.Run {
	run := &report.Run{Title: title, Started: started, Finished: finished}
	// One lane per build slot; on a fleet, per slot of each builder.
	fleet := slices.ContainsFunc(res.Images, func(ir builder.ImageResult) bool { return ir.Builder != "" })
	if !fleet {
		for i := 1; i <= jobs; i++ {
			run.Lanes = append(run.Lanes, fmt.Sprintf("slot %d", i))
		}
	} else {
		for _, rc := range b.Config().Builders {
			for i := 1; i <= rc.Jobs; i++ {
				run.Lanes = append(run.Lanes, lane(rc.Name, i))
			}
		}
	}
	built := map[string]builder.ImageResult{}
	for _, ir := range res.Images {
		built[ir.Image.Name] = ir
	}
	pub := map[string]builder.ImageResult{}
	for _, ir := range published {
		pub[ir.Image.Name] = ir
	}
	entries := map[string]builder.Entry{}
	for _, e := range plan.Entries {
		entries[e.Image.Name] = e
	}
	tree := b.Tree()
	for _, img := range tree.Images {
		ri := report.Image{Name: img.Name, Label: img.Label(), Result: report.ResultUpToDate}
		for _, p := range tree.Parents(img.Name) {
			ri.Parents = append(ri.Parents, p.Name)
		}
		if e, ok := entries[img.Name]; ok {
			ri.Reason = shortDigests(e.Reason)
		} else {
			ri.Reason = shortDigests(plan.States()[img.Name].Reason)
		}
		if ir, ok := built[img.Name]; ok {
			ri.Result = string(ir.Phase)
			ri.Size, ri.Digest = ir.Size, ir.ID
			if !ir.Start.IsZero() {
				ri.Start, ri.End = ir.Start, ir.Start.Add(ir.Duration)
			}
			switch {
			case ir.Slot > 0 && ir.Builder != "":
				ri.Lane = lane(ir.Builder, ir.Slot)
			case ir.Slot > 0:
				ri.Lane = fmt.Sprintf("slot %d", ir.Slot)
			}
			describeFailure(&ri, ir)
		}
		if ir, ok := pub[img.Name]; ok {
			switch ir.Phase {
			case builder.PhasePublished:
				ri.Result = report.ResultPublished
			case builder.PhaseFailed:
				ri.Result = report.ResultFailed
				describeFailure(&ri, ir)
			}
		}
		run.Images = append(run.Images, ri)
	}
	return run
}

// lane names slot n of a builder of the fleet.
func lane(builder string, n int) string { return fmt.Sprintf("%s slot %d", builder, n) }

// describeFailure puts a failed or skipped image's stage, error and log
// tail into ri.
func describeFailure(ri *report.Image, ir builder.ImageResult) {
	switch ir.Phase {
	case builder.PhaseFailed:
		ri.Result = report.ResultFailed
		ri.Reason = ir.Reason
		var be *image.BuildError
		if errors.As(ir.Err, &be) {
			ri.Stage, ri.LogTail = string(be.Stage), be.Tail
		}
	case builder.PhaseSkipped:
		ri.Reason = ir.Reason
	}
}

// writeReport writes run to path, as HTML or JSON by its extension, whole
// or not at all: into a temporary file renamed over path.
func writeReport(path string, run *report.Run) error {
	var buf bytes.Buffer
	var err error
	if strings.EqualFold(filepath.Ext(path), ".json") {
		err = report.WriteJSON(&buf, run)
	} else {
		err = report.WriteHTML(&buf, run)
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the report %s: %w", path, err)
	}
	return nil
}
