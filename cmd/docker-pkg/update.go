package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/spf13/cobra"
)

type updateOptions struct {
	reason   string
	version  string
	selector string
	dryRun   bool
	stale    bool
	noWait   bool
}

func newUpdateCmd(g *globals) *cobra.Command {
	o := &updateOptions{}
	cmd := &cobra.Command{
		Use:   "update [--reason TEXT] [--version V] [--dry-run] {NAME | --select GLOB | --stale} DIR",
		Short: "Add a changelog entry to an image and every image that depends on it",
		Long: `update gives the image NAME, and every image under DIR that depends on it
directly or not (control files and image_tag in templates alike), a new entry
at the top of its changelog, so that the next build rebuilds them.

NAME is an image's short name, matched exactly: "update php" does not touch
sury-php. NAME may also be a base image (an entry of base_images, named as
image_tag names it: "update bookworm"): then every image built on it (image_tag
in a template, or Depends in control) and every image that depends on those
are updated, each entry saying "Refresh for update in parent image bookworm:"
and the reason, as the reference words it. Instead of NAME, --select GLOB updates every image whose full label
matches the shell glob ("*" also matches "/"; '*php:*' is what the reference's
"update php" selected), and the images that depend on them; then only DIR is
given.

NAME gets version V with --version (it must sort above the current version);
every other image, and NAME without --version, gets its version bumped:
1.2.0-1 -> 1.2.0-1-s1, 1.2.0-1-s1 -> 1.2.0-1-s2 (the letter is the update_id
setting). The entry of NAME says the reason; the others say
"Refresh for update in parent image NAME:" and the reason.

Every new version is worked out before anything is written. If any image
cannot be updated (a version that cannot be bumped, --version not above the
current one, a version constraint the update breaks, a dependency on an
unknown image anywhere under DIR), nothing is written and every problem is
listed. Otherwise each changelog is rewritten in full next to the original and
only when all are ready renamed over them: an error or an interrupt leaves
every changelog as it was.

A reason must not be empty and holds no control character but newline and
tab. A changelog with CRLF line endings gets its entry with CRLF; a read-only
changelog is refused.

update holds DIR's lock (DIR/.docker-pkg.lock, with its pid) from reading the
tree to its last write: another update of DIR waits for it, saying so, or with
--no-wait fails at once naming the pid of the holder. Taking the lock first
finishes, or rolls back, an update that was killed while writing, and removes
its temporary files. --dry-run takes no lock.

The author is DEBFULLNAME, else git's user.name, else fallback_author; the
email DEBEMAIL, else git's user.email, else fallback_email.

With --stale, instead of NAME, update reads the build record of every image
under DIR that is built (in the local daemon) or published (in the registry):
each image built on a parent image that has changed since (the parent was
rebuilt, or a base image was refreshed) gets an entry saying
"Rebuild on updated parent image PARENT (OLD DIGEST -> NEW DIGEST)", and every
image that depends on it the usual refresh entry. "docker-pkg plan" shows them
as stale.

It prints each image updated, parents first, as "* NAME OLD -> NEW" (with
--stale, each image built on a changed parent adds why, its digests short);
--dry-run also prints the entries it would write, and writes nothing.`,
		Example: `  docker-pkg update --reason 'CVE-2026-1234 in libfoo' core images
  docker-pkg update --version 1.3.0-1 --dry-run core images
  docker-pkg update --select '*/php*' images
  docker-pkg update --stale --dry-run images`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.stale {
				if len(args) != 1 {
					return fmt.Errorf("with --stale, give only DIR (got %d arguments)", len(args))
				}
				return nil
			}
			if o.selector != "" {
				if len(args) != 1 {
					return fmt.Errorf("with --select, give only DIR (got %d arguments)", len(args))
				}
				return nil
			}
			if len(args) != 2 {
				return fmt.Errorf("give NAME and DIR, or --select GLOB and DIR (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, dir := "", args[len(args)-1]
			if len(args) == 2 {
				name = args[0]
			}
			if o.stale {
				return runUpdateStale(cmd.Context(), g, o, dir, cmd.Flags().Changed("reason"), cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			// The default applies only to a reason not given at all.
			if cmd.Flags().Changed("reason") {
				if err := changelog.CheckReason(o.reason); err != nil {
					return fmt.Errorf("--reason: %w", err)
				}
			}
			return runUpdate(cmd.Context(), g, o, name, dir, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.reason, "reason", builder.DefaultReason, "reason for the update, written in NAME's entry (may hold newlines)")
	cmd.Flags().StringVar(&o.version, "version", "", "new version of NAME (default: its version bumped); not with --select")
	cmd.Flags().StringVar(&o.selector, "select", "", "shell glob on full labels: update the images it matches instead of NAME")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the entries without writing them")
	cmd.Flags().BoolVar(&o.stale, "stale", false, "update the images built on a parent image that has changed since, and their children")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "fail at once if another docker-pkg holds DIR's lock, instead of waiting for it")
	return cmd
}

func runUpdate(ctx context.Context, g *globals, o *updateOptions, name, dir string, stdout, stderr io.Writer) error {
	if o.version != "" && o.selector != "" {
		return errors.New("--version applies to NAME; it cannot be used with --select")
	}
	lock, err := lockTree(ctx, dir, o, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	b, err := g.open(ctx, dir, nil, stderr)
	if err != nil {
		return err
	}
	req := builder.NewUpdateRequest(ctx, b.Config(), time.Now())
	req.Name, req.Select, req.Reason, req.Version = name, o.selector, o.reason, o.version
	res, err := b.Update(req)
	if err != nil {
		return err
	}
	res.Lock = lock
	return writeUpdate(ctx, b.Tree(), dir, res, o.dryRun, nil, stdout)
}

// runUpdateStale is update --stale: the images whose build record names a
// parent image that has changed since.
func runUpdateStale(ctx context.Context, g *globals, o *updateOptions, dir string, reasonSet bool, stdout, stderr io.Writer) error {
	switch {
	case o.selector != "" || o.version != "":
		return errors.New("--stale finds the images to update itself: it cannot be used with --select or --version")
	case reasonSet:
		return errors.New("--stale writes its own reason, naming the parent and its digests: it cannot be used with --reason")
	}
	lock, err := lockTree(ctx, dir, o, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	docker, err := daemon(ctx)
	switch {
	case err == nil:
		defer docker.Close()
	case cfg.Registry == "" || g.offline:
		return fmt.Errorf("update --stale reads build records from the Docker daemon or the registry, and there is neither: %w", err)
	default:
		fmt.Fprintf(stderr, "docker-pkg: %v: reading build records from the registry only\n", err)
	}
	b, err := g.openWith(ctx, cfg, dir, docker, stderr)
	if err != nil {
		return err
	}
	stale, err := b.Stale(ctx)
	if err != nil {
		g.hintOffline(stderr, cfg, err)
		return err
	}
	if len(stale) == 0 {
		_, err := fmt.Fprintln(stdout, "No stale image: every image was built on its parent as it is now.")
		return err
	}
	res, err := b.UpdateStale(builder.NewUpdateRequest(ctx, cfg, time.Now()), stale)
	if err != nil {
		return err
	}
	res.Lock = lock
	why := make(map[string]string, len(stale))
	for _, d := range stale {
		why[d.Image.Name] = d.Reason
	}
	return writeUpdate(ctx, b.Tree(), dir, res, o.dryRun, why, stdout)
}

// lockTree takes DIR's changelog lock for an update that writes (none for
// a dry run), says on stderr when it waits and what it repaired of an
// interrupted run.
func lockTree(ctx context.Context, dir string, o *updateOptions, stderr io.Writer) (*changelog.Lock, error) {
	if o.dryRun {
		return nil, nil
	}
	opts := []changelog.Option{changelog.OnWait(func(pid int) {
		holder := "another docker-pkg run"
		if pid > 0 {
			holder += fmt.Sprintf(" (pid %d)", pid)
		}
		fmt.Fprintf(stderr, "docker-pkg: waiting for %s to finish writing changelogs under %s (--no-wait to fail instead)\n", holder, dir)
	})}
	if o.noWait {
		opts = append(opts, changelog.NoWait())
	}
	fault, err := testFault()
	if err != nil {
		return nil, err
	}
	if fault != nil {
		opts = append(opts, changelog.WithFault(fault))
	}
	lock, err := changelog.Acquire(ctx, dir, opts...)
	if err != nil {
		return nil, err
	}
	reportRecovery(stderr, lock.Recovered())
	return lock, nil
}

// reportRecovery says on stderr what taking the lock repaired of an
// interrupted update.
func reportRecovery(stderr io.Writer, r changelog.Recovery) {
	switch {
	case r.Journal != "" && len(r.Finished) > 0:
		fmt.Fprintf(stderr, "docker-pkg: finished an update interrupted while writing changelogs (journal %s): wrote the last %d\n", r.Journal, len(r.Finished))
	case r.Journal != "" && len(r.Lost) == 0:
		fmt.Fprintf(stderr, "docker-pkg: an update interrupted after writing its changelogs left its journal %s: removed it\n", r.Journal)
	}
	for _, p := range r.Kept {
		fmt.Fprintf(stderr, "docker-pkg: %s changed since an interrupted update staged its entry: left as it is\n", p)
	}
	for _, p := range r.Lost {
		fmt.Fprintf(stderr, "docker-pkg: WARNING: %s never got the entry an interrupted update staged for it (its staged file was removed): that cascade is partial; run the update again for it\n", p)
	}
	if len(r.Removed) > 0 {
		fmt.Fprintf(stderr, "docker-pkg: removed %d temporary files of an interrupted update\n", len(r.Removed))
	}
}

// writeUpdate prints the changes of res, each with why when it has a
// reason there, and writes them, or with dryRun prints the entries
// instead, as they would be written.
func writeUpdate(ctx context.Context, tree *builder.Tree, dir string, res *builder.UpdateResult, dryRun bool, why map[string]string, stdout io.Writer) error {
	for _, c := range res.Changes {
		fmt.Fprintf(stdout, "* %s %s -> %s", c.Image.Name, c.Old, c.New)
		if reason := why[c.Image.Name]; reason != "" {
			fmt.Fprintf(stdout, " (%s)", shortDigests(reason))
		}
		fmt.Fprintln(stdout)
	}
	if dryRun {
		fmt.Fprintln(stdout)
		for _, c := range res.Changes {
			path := c.Path
			if rel, err := filepath.Rel(tree.Dir, c.Path); err == nil {
				path = filepath.Join(dir, rel) // as the user wrote DIR
			}
			fmt.Fprintf(stdout, "--- %s\n%s", path, c.Entry) // the entry ends with a blank line
		}
		_, err := fmt.Fprintf(stdout, "Dry run: nothing written.\n")
		return err
	}
	if err := res.Write(ctx); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "Updated %d changelogs.\n", len(res.Changes))
	return err
}
