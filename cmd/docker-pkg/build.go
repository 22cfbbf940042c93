package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/spf13/cobra"
)

type buildFlags struct {
	selector string
	nightly  bool
	snapshot bool
	useCache bool
	noPull   bool
	jobs     int
	failFast bool
	atomic   bool
	builder  string
}

func newBuildCmd(g *globals) *cobra.Command {
	o := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [--select GLOB] [--nightly|--snapshot] [--use-cache] [--no-pull] [--jobs N] [--fail-fast] [--atomic] [--builder classic|buildkit] DIR",
		Short: "Build, verify and publish the images in DIR that are neither built nor published",
		Long: `build scans DIR, then builds every image that is neither in the local daemon nor
published (see "docker-pkg plan" for why each image is or is not built) and
whose full label matches --select, after the images it depends on.

Independent images build in parallel, --jobs at a time. Each image is rendered,
built through the Docker Engine API (without cache unless --use-cache, never
letting the daemon pull) and verified by its test (verify_command and
verify_args, by default {path}/test.sh {image}). An image that fails has every
image built on it skipped while the others go on; --fail-fast stops everything
at the first failure instead.

With a registry configured, build first pulls base_images and the published
images the images to build depend on (not with --no-pull). When credentials are
found (username and password, or Docker's credential store), it then verifies
the images left built by earlier runs and publishes every verified image as its
tag and latest; --atomic publishes nothing unless every image was built and
verified.

Progress goes to stderr, one line each time an image changes state (a live
status line on a terminal); the full output of every build goes to
./docker-pkg-build.log, or to stderr with --info or --debug; every line is cut
to 8 KiB. The exit status is 1 when any image failed or was skipped, 2 when no
Docker daemon answers, 130 when interrupted.

An image counts as built only once its test passed: one whose test fails is
kept as TAG-failed, and one whose test was interrupted keeps TAG-unverified;
the next build builds either again. A test that runs longer than
verify_timeout seconds fails. The first interrupt (Ctrl-C, SIGTERM) stops the
builds and tests and cleans up (a test gets SIGTERM, then SIGKILL after 10 s;
the containers it started with --label "$DOCKER_PKG_VERIFY_LABEL" are
removed); a second one quits at once.`,
		Example: `  docker-pkg -c fixtures/config.yaml build fixtures/images
  docker-pkg build --select '*/app*' --jobs 4 images
  docker-pkg build --nightly --atomic images`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.selector, "select", "*", "shell glob on the full label of the images to build")
	f.BoolVar(&o.nightly, "nightly", false, "append -YYYYMMDD (today) to every tag")
	f.BoolVar(&o.snapshot, "snapshot", false, "append -YYYYMMDD-HHMMSS (now) to every tag")
	f.BoolVar(&o.useCache, "use-cache", false, "let the daemon use its build cache")
	f.BoolVar(&o.noPull, "no-pull", false, "pull nothing; an image absent locally is built even if published")
	f.IntVar(&o.jobs, "jobs", runtime.NumCPU(), "how many images to build at once")
	f.BoolVar(&o.failFast, "fail-fast", false, "stop everything at the first failure")
	f.BoolVar(&o.atomic, "atomic", false, "publish nothing unless every image was built and verified")
	f.StringVar(&o.builder, "builder", "", "classic or buildkit (default: builder from the configuration, classic)")
	cmd.MarkFlagsMutuallyExclusive("nightly", "snapshot")
	return cmd
}

// tagSuffix is what --nightly or --snapshot append to every tag, in local
// time.
func tagSuffix(o *buildFlags, now time.Time) string {
	switch {
	case o.nightly:
		return now.Format("-20060102")
	case o.snapshot:
		return now.Format("-20060102-150405")
	}
	return ""
}

func runBuild(ctx context.Context, g *globals, o *buildFlags, dir string, stdout, stderr io.Writer) error {
	if o.jobs < 1 {
		return fmt.Errorf("jobs: want at least 1 image at a time, got %d", o.jobs)
	}
	if _, err := builder.Glob(o.selector); err != nil {
		return err
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if o.builder != "" {
		if err := config.CheckBuilder(o.builder); err != nil {
			return fmt.Errorf("--builder: %w", err)
		}
		cfg.Builder = o.builder
	}
	if err := image.ValidateBuilder(cfg); err != nil {
		return err
	}
	cli, err := needDaemon(ctx, "build")
	if err != nil {
		return err
	}
	defer cli.Close()
	errw := &syncWriter{w: stderr}
	logw, logger, closeLog, err := g.buildLog(errw)
	if err != nil {
		return err
	}
	defer closeLog()
	fmt.Fprintf(logw, "== docker-pkg build %s, %s ==\n", dir, time.Now().Format(time.RFC3339))

	fmt.Fprintf(stdout, "== Step 0: scanning %s ==\n", dir)
	events := &eventSink{}
	b, err := g.openWith(ctx, cfg, dir, cli, errw,
		builder.WithJobs(o.jobs), builder.WithTagSuffix(tagSuffix(o, time.Now())),
		builder.WithLogger(logger), builder.WithLog(logw), builder.WithEvents(events.event))
	if err != nil {
		return err
	}
	plan, err := b.Plan(ctx, builder.PlanOptions{Select: o.selector, Pull: !o.noPull})
	if err != nil {
		return err
	}
	// Build refuses nothing the reference built, but says what it knows.
	for _, w := range plan.Warnings() {
		fmt.Fprintf(errw, "warning: %s\n", w)
	}
	// A selected image whose state is unknown is neither built nor
	// published by this run: it counts as failed.
	var unknown []builder.ImageResult
	for _, e := range plan.Entries {
		if e.State == builder.Error {
			fmt.Fprintf(errw, "[%s] failed: cannot tell whether it is built or published: %s\n", e.Image.Name, image.CutLine(e.Reason))
			unknown = append(unknown, builder.ImageResult{Image: e.Image, Phase: builder.PhaseFailed, Reason: "state unknown"})
		}
	}
	chain := plan.Chain()
	fmt.Fprintln(stdout, "Will build the following images:")
	for _, img := range chain {
		fmt.Fprintf(stdout, "* %s\n", img.Label())
	}

	fmt.Fprintln(stdout, "== Step 1: building images ==")
	progress := newProgress(errw, len(chain), isTerminal(stderr) && !g.info && !g.debug)
	events.set(progress.event)
	res, err := b.Build(ctx, plan, builder.BuildOptions{FailFast: o.failFast, Cache: o.useCache})
	progress.stop()
	if res == nil {
		return err
	}
	interrupted := err != nil
	for _, ir := range res.Images {
		if ir.Phase == builder.PhaseVerified {
			fmt.Fprintf(stdout, "* Built image %s\n", ir.Image.Label())
		} else {
			fmt.Fprintf(stdout, " ERROR: image %s failed to build, see logs for details\n", ir.Image.Repo)
		}
	}
	for _, label := range slices.Sorted(maps.Keys(res.Pulls)) {
		if err := res.Pulls[label]; err != nil && !interrupted {
			fmt.Fprintf(errw, "warning: %v\n", err)
		}
	}

	fmt.Fprintln(stdout, "== Step 2: publishing ==")
	var published []builder.ImageResult
	failed := 0
	if interrupted {
		fmt.Fprintln(stdout, "NOT publishing images as the build was interrupted")
	} else {
		events.set(newProgress(errw, 0, false).event)
		published, err = b.Publish(ctx, plan, res, builder.PublishOptions{Atomic: o.atomic})
		interrupted = printPublished(stdout, published, err)
		if err != nil && !interrupted && !errors.Is(err, registry.ErrNoCredentials) && !errors.Is(err, builder.ErrIncomplete) {
			fmt.Fprintf(errw, "docker-pkg: %v\n", err)
			failed++
		}
	}

	fmt.Fprintln(stdout, "== Build done! ==")
	failed += printSummary(stdout, res, append(unknown, published...))
	if !g.info && !g.debug {
		fmt.Fprintf(stdout, "You can see the logs at ./%s\n", logFile)
	}
	switch {
	case interrupted:
		return &exitError{code: 130, msg: "interrupted"}
	case failed > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d %s failed or skipped", failed, plural(failed, "image"))}
	}
	return nil
}

// eventSink passes the Builder's events to whichever printer the current
// step set.
type eventSink struct {
	mu sync.Mutex
	f  func(builder.Event)
}

func (s *eventSink) set(f func(builder.Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f = f
}

func (s *eventSink) event(e builder.Event) {
	s.mu.Lock()
	f := s.f
	s.mu.Unlock()
	if f != nil {
		f(e)
	}
}

// printPublished prints the publish step's lines for what builder.Publish
// returned, and says whether it was interrupted.
func printPublished(stdout io.Writer, published []builder.ImageResult, err error) (interrupted bool) {
	switch {
	case errors.Is(err, registry.ErrNoCredentials):
		fmt.Fprintln(stdout, "NOT publishing images as we have no auth setup")
	case errors.Is(err, builder.ErrIncomplete):
		fmt.Fprintln(stdout, "NOT publishing images as not every image was built and verified (--atomic)")
	case errors.Is(err, context.Canceled):
		interrupted = true
	case err != nil:
		fmt.Fprintln(stdout, "NOT publishing images as the registry could not be asked for credentials")
	}
	for _, ir := range published {
		switch ir.Phase {
		case builder.PhasePublished:
			fmt.Fprintf(stdout, "Successfully published image %s\n", ir.Image.Label())
		case builder.PhaseFailed:
			fmt.Fprintf(stdout, " ERROR: image %s failed to publish, see logs for details\n", ir.Image.Repo)
		}
	}
	return interrupted
}

// buildLog returns where the full build output and log messages go: the
// log file, or stderr with --info or --debug.
func (g *globals) buildLog(stderr io.Writer) (io.Writer, *slog.Logger, func() error, error) {
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	if g.info || g.debug {
		return stderr, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), func() error { return nil }, nil
	}
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("opening log file: %w", err)
	}
	w := &syncWriter{w: f}
	return w, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), f.Close, nil
}

// printSummary prints a table of every image built or published and
// returns how many failed or were skipped.
func printSummary(w io.Writer, res *builder.Result, published []builder.ImageResult) int {
	rows := append([]builder.ImageResult(nil), res.Images...)
	at := map[string]int{}
	for i, ir := range rows {
		at[ir.Image.Name] = i
	}
	for _, ir := range published {
		i, ok := at[ir.Image.Name]
		if !ok {
			rows = append(rows, ir)
			continue
		}
		// The build's duration and size stay; the result is the publish's.
		rows[i].Phase, rows[i].Reason, rows[i].Err = ir.Phase, ir.Reason, ir.Err
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "Nothing to build.")
		return 0
	}
	failed := 0
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tRESULT\tDURATION\tSIZE")
	for _, ir := range rows {
		result := string(ir.Phase)
		switch ir.Phase {
		case builder.PhaseFailed:
			failed++
			var be *image.BuildError
			if errors.As(ir.Err, &be) {
				result = "failed (" + string(be.Stage) + ")"
			} else if ir.Reason != "" {
				result += ": " + image.CutLine(ir.Reason)
			}
		case builder.PhaseSkipped:
			failed++
			result += ": " + image.CutLine(ir.Reason)
		case builder.PhaseVerified:
			if ir.Reason != "" {
				result += " (" + ir.Reason + ")"
			}
		}
		duration, size := "-", "-"
		if ir.Duration > 0 {
			duration = ir.Duration.Round(100 * time.Millisecond).String()
		}
		if ir.Size > 0 {
			size = humanSize(ir.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ir.Image.Label(), result, duration, size)
	}
	tw.Flush()
	return failed
}

// humanSize writes bytes as docker images does: decimal units, four
// significant digits.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f, u := float64(n), 0
	for f >= 1000 && u < len(units)-1 {
		f /= 1000
		u++
	}
	return fmt.Sprintf("%.4g%s", f, units[u])
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// syncWriter lets several goroutines write to one writer, each Write whole.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
