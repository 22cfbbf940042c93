package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/browser"
)

func main() {
	out := flag.String("o", "screenshot.png", "the PNG to write")
	size := flag.String("size", "1280x1500", "the window, WIDTHxHEIGHT in CSS pixels")
	timeout := flag.Duration("timeout", time.Minute, "how long Chromium may take")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: screenshot [-o FILE.png] [-size WxH] PAGE.html")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil || w <= 0 || h <= 0 {
		fmt.Fprintf(os.Stderr, "screenshot: -size %q: want WIDTHxHEIGHT, e.g. 1280x1500\n", *size)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := browser.Find()
	if err == nil {
		c.Timeout = *timeout
		err = c.Screenshot(ctx, flag.Arg(0), *out, w, h)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}
