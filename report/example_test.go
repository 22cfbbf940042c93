package report

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// t0 is the start of every test run; fixed, so outputs are comparable.
var t0 = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func digest(seed string) string {
	h := uint64(1469598103934665603)
	for _, c := range seed {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("sha256:%016x%016x%016x%016x", h, h*31, h*131, h*1031)
}

// fixtureRun is a run like a build of fixtures/images on two slots: one
// image fails its test, its child is skipped, one is up to date.
func fixtureRun() *Run {
	const reg = "registry.example.org/docker-pkg-fixtures/"
	img := func(name, tag string, parents []string, result, lane string, start, end float64, size int64, reason string) Image {
		im := Image{Name: name, Label: reg + name + ":" + tag, Parents: parents, Result: result, Reason: reason, Lane: lane, Size: size}
		if lane != "" {
			im.Start, im.End = at(start), at(end)
			im.Digest = digest(name)
			im.LogTail = []string{
				"#5 [2/4] COPY --chown=root:root . /",
				"#5 DONE 0.1s",
				"#6 [3/4] RUN /usr/local/bin/setup",
				"#6 DONE 2.3s",
				"#7 exporting to image",
				"#7 writing image " + im.Digest + " done",
				"#7 naming to " + im.Label + " done",
				"verify: test.sh passed",
			}
		}
		return im
	}
	legacy := img("legacy-app", "0.9.2-1", []string{"runtime"}, ResultFailed, "slot 2", 52.8, 71.5, 0, "verify failed: test.sh exited with status 1")
	legacy.Stage = "verify"
	legacy.LogTail = []string{
		"+ run --version",
		"runtime 2.4.1",
		"+ legacy-app --self-test",
		"legacy-app: loading /etc/legacy-app/config.ini",
		"legacy-app: config.ini: unknown key \"listen_port\" (line 12)",
		"legacy-app: self-test FAILED: expected HTTP 200 from :8080, got connection refused",
		"test.sh: line 9: legacy-app --self-test exited with status 1",
		"ERROR: verify failed for " + legacy.Label,
	}
	return &Run{
		Title:    "docker-pkg build fixtures/images",
		Started:  t0,
		Finished: at(96.4),
		Lanes:    []string{"slot 1", "slot 2"},
		Images: []Image{
			img("core", "1.0.3-1", nil, ResultVerified, "slot 1", 0.4, 18.7, 5_870_112, "changelog bumped to 1.0.3-1"),
			img("tools", "1.2.0-2", []string{"core"}, ResultUpToDate, "", 0, 0, 6_120_448, "verified sha256:5aad6d223a31 is current"),
			img("runtime", "2.4.1-1", []string{"core"}, ResultVerified, "slot 1", 18.9, 41.0, 24_318_976, "parent core will be rebuilt"),
			img("build-tools", "3.1.0-1", []string{"core"}, ResultVerified, "slot 2", 19.0, 52.6, 88_412_160, "parent core will be rebuilt"),
			img("app", "1.4.0-1", []string{"runtime"}, ResultVerified, "slot 1", 41.3, 58.8, 31_942_656, "parent runtime will be rebuilt"),
			legacy,
			img("ci-runner", "0.7.0-3", []string{"runtime", "build-tools"}, ResultVerified, "slot 1", 59.0, 96.1, 131_072_000, "parents runtime, build-tools will be rebuilt"),
			img("legacy-plugins", "0.2.0-1", []string{"legacy-app"}, ResultSkipped, "", 0, 0, 0, "parent legacy-app failed"),
		},
	}
}

// bigRun is a generated run of n images in the given number of levels,
// built on lanes lanes; the same seed gives the same run.
func bigRun(n, levels, lanes int, seed uint64) *Run {
	rng := rand.New(rand.NewPCG(seed, 42))
	r := &Run{Title: fmt.Sprintf("docker-pkg build generated/%d", n), Started: t0}
	for l := range lanes {
		r.Lanes = append(r.Lanes, fmt.Sprintf("slot %d", l+1))
	}
	level := make([]int, n)
	laneFree := make([]float64, lanes)
	ends := make([]float64, n)
	words := []string{"python", "node", "php", "golang", "java", "ruby", "nginx", "redis", "mariadb", "envoy", "jenkins", "mediawiki", "kafka", "zookeeper", "prometheus"}
	for i := range n {
		// the first images fill level 0, every later level gets its share
		level[i] = min(i*levels/n, levels-1)
		kinds := []string{"base", "build", "runtime", "tools", "app", "test", "slim", "plugins"}
		name := fmt.Sprintf("%s-%s-%d", words[i%len(words)], kinds[level[i]%len(kinds)], i)
		if i%23 == 0 {
			name += "-with-a-rather-long-name"
		}
		im := Image{Name: name, Label: "docker-registry.example.org/releng/" + name + ":1.0." + fmt.Sprint(i), Result: ResultVerified}
		ready := 0.0
		if level[i] > 0 {
			var cands []int
			for j := range i {
				if level[j] == level[i]-1 {
					cands = append(cands, j)
				}
			}
			for k := 0; k < 1+rng.IntN(3); k++ {
				p := cands[rng.IntN(len(cands))]
				if !contains(im.Parents, r.Images[p].Name) {
					im.Parents = append(im.Parents, r.Images[p].Name)
					ready = max(ready, ends[p])
				}
			}
			// now and then a parent two levels up as well
			if level[i] > 1 && rng.IntN(4) == 0 {
				for j := range i {
					if level[j] == level[i]-2 {
						im.Parents = append(im.Parents, r.Images[j].Name)
						break
					}
				}
			}
		}
		switch {
		case rng.IntN(10) == 0:
			im.Result = ResultUpToDate
		default:
			lane := 0
			for l := range lanes {
				if laneFree[l] < laneFree[lane] {
					lane = l
				}
			}
			start := max(ready, laneFree[lane]) + 0.2
			end := start + 3 + rng.Float64()*40
			laneFree[lane], ends[i] = end, end
			im.Lane, im.Start, im.End = r.Lanes[lane], at(start), at(end)
			im.Size = int64(1e6 + rng.Float64()*4e8)
			im.Digest = digest(name)
			im.LogTail = []string{"#9 DONE", "verify: ok"}
			if rng.IntN(40) == 0 {
				im.Result, im.Stage, im.Reason = ResultFailed, "build", "RUN make install: exit code 2"
			}
		}
		r.Images = append(r.Images, im)
		r.Finished = at(max(r.Finished.Sub(t0).Seconds(), ends[i]+1))
	}
	return r
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
