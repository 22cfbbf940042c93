package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
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
	progress progressMode
	report   string
}

func newBuildCmd(g *globals) *cobra.Command {
	o := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [--select GLOB] [--nightly|--snapshot] [--use-cache] [--no-pull] [--jobs N] [--fail-fast] [--atomic] [--builder classic|buildkit] [--progress auto|tty|plain|json] DIR",
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

With builders: in the configuration, images build on those BuildKit daemons
instead, each taking its jobs images at once, the longest remaining chain
first; what they build is pushed to the registry by digest, pulled here to be
tested, and tagged only once verified. platforms: builds each image for
several platforms, tested one by one. See config.example.yaml and the README.

Progress goes to stderr, one line each time an image changes state; the full
output of every build goes to ./docker-pkg-build.log, or to stderr with --info
or --debug; every line is cut to 8 KiB. At the end, stdout gets one table:
each image built or published, its result, how long it took and its size;
under it, the error of each image that failed and the last lines of its log.
The exit status is 1 when any image failed or was skipped, 2 when no Docker
daemon answers, 130 when interrupted.

An image counts as built only once its test passed: one whose test fails is
kept as TAG-failed, and one whose test was interrupted keeps TAG-unverified;
the next build builds either again. A test that runs longer than
verify_timeout seconds fails. The first interrupt (Ctrl-C, SIGTERM) stops the
builds and tests and cleans up (a test gets SIGTERM, then SIGKILL after 10 s;
the containers it started with --label "$DOCKER_PKG_VERIFY_LABEL" are
removed); a second one quits at once.

--progress says how stderr shows progress:

  auto   tty on a terminal (not under CI, TERM=dumb, --info or --debug),
         plain otherwise (the default)
  tty    the state lines under a live status line: images done, running
         (and for how long) and waiting; in colour on a terminal unless
         NO_COLOR is set
  plain  only the state lines, "[NAME] PHASE ...", never coloured
  json   for CI systems: one JSON object per line, one for each event, each
         with the fields
           time      when, RFC 3339 in UTC with milliseconds
           image     short name; label: the full label
           phase     building, built, verified, failed or skipped (publish
                     step: verifying, verified, publishing, published, failed)
           builder   the builder of builders: it is on, else the local
                     engine's: classic or buildkit
           platform  the platform being verified, for an image built for
                     several
           slot      the build slot, 1 to --jobs (to the builder's jobs),
                     the image holds while it builds (and, on the local
                     engine, verifies): images of one slot never overlap;
                     0 for none (skipped, failed before building, publish)
           duration  seconds since the image started (built, verified,
                     failed, published)
           reason    why it was skipped, or "no test" for verified
           error     why it failed; stage: the stage that failed (pull,
                     build-stage, build, verify, publish), log: the last lines
                     of that stage's log
         and one for each warning, with time, warning and, when it has one,
         path (the file to fix). With --info or --debug the log lines are JSON objects too.
         When the build fails the last line is "docker-pkg: ..." all the same.`,
		Example: `  docker-pkg -c fixtures/config.yaml build fixtures/images
  docker-pkg build --select '*/app*' --jobs 4 images
  docker-pkg build --nightly --atomic images
  docker-pkg build --progress json images 2> events.jsonl`,
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
	o.progress = progressAuto
	f.Var(&o.progress, "progress", "how stderr shows progress: auto, tty, plain or json")
	f.StringVar(&o.report, "report", "", "write a report of the run to FILE.html (one self-contained page) or FILE.json")
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
	if o.report != "" {
		if err := checkReportPath(o.report); err != nil {
			return err
		}
	}
	started := time.Now()
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
	mode := o.progress.resolve(stderr, g.info || g.debug)
	logw, logger, closeLog, err := g.buildLog(errw, mode == progressJSON)
	if err != nil {
		return err
	}
	defer closeLog()
	fmt.Fprintf(logw, "== docker-pkg build %s, %s ==\n", dir, time.Now().Format(time.RFC3339))

	// A printer for each step: only the build's has a live status line.
	colour := mode == progressTTY && useColour(stderr)
	printerFor := func(total int, live bool) printer {
		if mode == progressJSON {
			return &jsonProgress{w: errw, builder: cmp.Or(cfg.Builder, "classic")}
		}
		return newProgress(errw, total, live && mode == progressTTY, colour)
	}
	before := printerFor(0, false)
	g.warn = before.warn
	events := &eventSink{}
	events.set(nil, before.warn)

	fmt.Fprintf(stdout, "== Step 0: scanning %s ==\n", dir)
	b, err := g.openWith(ctx, cfg, dir, cli, errw,
		builder.WithJobs(o.jobs), builder.WithTagSuffix(tagSuffix(o, time.Now())),
		builder.WithLogger(logger), builder.WithLog(logw), builder.WithEvents(events.event), builder.WithWarnings(events.warning))
	if err != nil {
		return err
	}
	plan, err := b.Plan(ctx, builder.PlanOptions{Select: o.selector, Pull: !o.noPull})
	if err != nil {
		return err
	}
	g.reportUnreachable(errw, plan)
	// Build refuses nothing the reference built, but says what it knows.
	for _, w := range plan.Warnings() {
		before.warn(w)
	}
	// A selected image whose state is unknown is neither built nor
	// published by this run: it counts as failed.
	var unknown []builder.ImageResult
	for _, e := range plan.Entries {
		if e.State == builder.Error {
			err := errors.New("cannot tell whether it is built or published: " + image.CutLine(e.Reason))
			before.event(builder.Event{Image: e.Image, Phase: builder.PhaseFailed, Reason: err.Error(), Err: err, Time: time.Now()})
			unknown = append(unknown, builder.ImageResult{Image: e.Image, Phase: builder.PhaseFailed, Reason: "state unknown", Err: err})
		}
	}
	chain := plan.Chain()
	fmt.Fprintln(stdout, "Will build the following images:")
	for _, img := range chain {
		fmt.Fprintf(stdout, "* %s\n", img.Label())
	}

	fmt.Fprintln(stdout, "== Step 1: building images ==")
	progress := printerFor(len(chain), true)
	events.set(progress.event, progress.warn)
	res, err := b.Build(ctx, plan, builder.BuildOptions{FailFast: o.failFast, Cache: o.useCache})
	progress.stop()
	if res == nil {
		if errors.Is(err, builder.ErrNoBuilder) {
			return &exitError{code: 2, msg: err.Error() + ": start one, or build on the local engine with a configuration without builders"}
		}
		return err
	}
	interrupted := err != nil
	for _, label := range slices.Sorted(maps.Keys(res.Pulls)) {
		if err := res.Pulls[label]; err != nil && !interrupted {
			before.warn(builder.Warning{Message: err.Error()})
			g.hintOffline(errw, cfg, err)
		}
	}

	fmt.Fprintln(stdout, "== Step 2: publishing ==")
	var published []builder.ImageResult
	failed := 0
	switch {
	case interrupted:
		fmt.Fprintln(stdout, "NOT publishing images as the build was interrupted")
	case g.offline:
		fmt.Fprintln(stdout, "NOT publishing images as --offline is set")
	default:
		after := printerFor(0, false)
		events.set(after.event, after.warn)
		published, err = b.Publish(ctx, plan, res, builder.PublishOptions{Atomic: o.atomic})
		interrupted = printPublished(stdout, err)
		if err != nil && !interrupted && !errors.Is(err, registry.ErrNoCredentials) && !errors.Is(err, builder.ErrIncomplete) {
			fmt.Fprintf(errw, "docker-pkg: %v\n", err)
			failed++
		}
	}

	fmt.Fprintln(stdout, "== Build done! ==")
	failed += printSummary(stdout, res, append(unknown, published...), useColour(stdout))
	var reportErr error
	if o.report != "" {
		run := runReport("docker-pkg build "+dir, b, plan, res, published, started, time.Now(), o.jobs)
		if reportErr = writeReport(o.report, run); reportErr == nil {
			fmt.Fprintf(stdout, "The report is at %s\n", o.report)
		}
	}
	if !g.info && !g.debug {
		fmt.Fprintf(stdout, "You can see the logs at ./%s\n", logFile)
	}
	switch {
	case interrupted:
		return &exitError{code: 130, msg: "interrupted"}
	case failed > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d %s failed or skipped", failed, plural(failed, "image"))}
	}
	return reportErr
}

// eventSink passes the Builder's events to whichever printer the current
// step set.
type eventSink struct {
	mu   sync.Mutex
	f    func(builder.Event)
	warn func(builder.Warning)
}

func (s *eventSink) set(f func(builder.Event), warn func(builder.Warning)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f, s.warn = f, warn
}

func (s *eventSink) warning(w builder.Warning) {
	s.mu.Lock()
	f := s.warn
	s.mu.Unlock()
	if f != nil {
		f(w)
	}
}

func (s *eventSink) event(e builder.Event) {
	s.mu.Lock()
	f := s.f
	s.mu.Unlock()
	if f != nil {
		f(e)
	}
}

// printPublished says why the publish step published nothing, if it did
// not, and whether it was interrupted. What it published is in the
// summary.
func printPublished(stdout io.Writer, err error) (interrupted bool) {
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
	return interrupted
}

// buildLog returns where the full build output and log messages go: the
// log file, or stderr with --info or --debug, as JSON with asJSON.
func (g *globals) buildLog(stderr io.Writer, asJSON bool) (io.Writer, *slog.Logger, func() error, error) {
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	if g.info || g.debug {
		opts := &slog.HandlerOptions{Level: level}
		if asJSON {
			// Build output too: each line becomes a log record.
			logger := slog.New(slog.NewJSONHandler(stderr, opts))
			return &logLines{logger: logger}, logger, func() error { return nil }, nil
		}
		return stderr, slog.New(slog.NewTextHandler(stderr, opts)), func() error { return nil }, nil
	}
	// 0666 less the umask, as any file a command creates: the reference
	// appends to the same file, and a team may share it.
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("opening log file: %w", err)
	}
	w := &syncWriter{w: &stampWriter{w: f, now: time.Now}}
	// Every line has its time already: slog's own would say it twice.
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	return w, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: noTime})), f.Close, nil
}

// stampWriter starts every line written to w with the time it began, in
// RFC 3339, as the reference's log lines start with theirs. A line may
// come in several writes; it is stamped once.
type stampWriter struct {
	w       io.Writer
	now     func() time.Time
	midLine bool
}

func (s *stampWriter) Write(p []byte) (int, error) {
	var out []byte
	for rest := p; len(rest) > 0; {
		if !s.midLine {
			out = s.now().AppendFormat(out, time.RFC3339)
			out = append(out, ' ')
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		out = append(out, line...)
		rest = rest[len(line):]
		s.midLine = line[len(line)-1] != '\n'
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// printSummary prints a table of every image built or published, and under
// it the error and log tail of each failure; it returns how many failed or
// were skipped. colour paints the results.
func printSummary(w io.Writer, res *builder.Result, published []builder.ImageResult, colour bool) int {
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
	// On a fleet, which builder built each image.
	fleet := slices.ContainsFunc(rows, func(ir builder.ImageResult) bool { return ir.Builder != "" })
	// Every cell of RESULT is painted, or none: the same bytes added to
	// each keep the columns aligned.
	header := "IMAGE\t%s\tDURATION\tSIZE\n"
	if fleet {
		header = "IMAGE\t%s\tDURATION\tSIZE\tBUILDER\n"
	}
	fmt.Fprintf(tw, header, paint(colour, noColor, "RESULT"))
	var failures []builder.ImageResult
	for _, ir := range rows {
		result := string(ir.Phase)
		switch ir.Phase {
		case builder.PhaseFailed:
			failed++
			failures = append(failures, ir)
			var be *image.BuildError
			if errors.As(ir.Err, &be) {
				result = "failed (" + string(be.Stage) + ")"
			} else if ir.Reason != "" {
				result += ": " + image.CutLine(firstLine(ir.Reason))
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
		row := fmt.Sprintf("%s\t%s\t%s\t%s", ir.Image.Label(), paint(colour, cmp.Or(phaseColour(ir.Phase), noColor), result), duration, size)
		if fleet {
			row += "\t" + cmp.Or(ir.Builder, "-")
		}
		fmt.Fprintln(tw, row)
		// An image built for several platforms: a row for each.
		for _, pr := range ir.Platforms {
			result := string(pr.Phase)
			switch {
			case pr.Phase == builder.PhaseFailed:
				result = "failed (" + string(image.StageVerify) + ")"
				var be *image.BuildError
				if errors.As(pr.Err, &be) {
					result = "failed (" + string(be.Stage) + ")"
				}
			case pr.Reason != "":
				result += " (" + pr.Reason + ")"
			}
			size := "-"
			if pr.Size > 0 {
				size = humanSize(pr.Size)
			}
			row := fmt.Sprintf("  %s\t%s\t%s\t%s", pr.Platform, paint(colour, cmp.Or(phaseColour(pr.Phase), noColor), result), pr.Duration.Round(100*time.Millisecond), size)
			if fleet {
				row += "\t"
			}
			fmt.Fprintln(tw, row)
		}
	}
	tw.Flush()
	for _, ir := range failures {
		printFailure(w, ir, colour)
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
	}
	return failed
}

// printFailure prints, after a blank line, why ir failed and the last
// lines of the failing stage's log.
func printFailure(w io.Writer, ir builder.ImageResult, colour bool) {
	why := ir.Reason
	if ir.Err != nil {
		why = ir.Err.Error()
	}
	var be *image.BuildError
	if errors.As(ir.Err, &be) {
		why = string(be.Stage) + " failed: " + be.Err.Error()
	}
	fmt.Fprintf(w, "\n%s %s", paint(colour, red, ir.Image.Name+":"), shortDigests(image.CutLine(why)))
	if be == nil || len(be.Tail) == 0 {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "; its log ends with:")
	for _, line := range be.Tail {
		fmt.Fprintf(w, "    %s\n", image.CutLine(line))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
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

// logLines writes each line of the build output as a log record: with
// --progress json and --info or --debug, every line on stderr is JSON.
type logLines struct {
	logger *slog.Logger
	mu     sync.Mutex
	part   []byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.logger.Info(string(l.part[:i]))
		l.part = l.part[i+1:]
	}
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
