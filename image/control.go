package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-pkg/docker-pkg/changelog"
)

// AddDepends adds names to the Depends of the control file at path, for
// the image short name: appended to the first Depends field, in its style
// (one line, or one item per continuation line); or, when there is none,
// as a new Depends line in the paragraph of the binary package (the last
// with a Package field, else the first), before its Description; or, when
// there is no control file, in a new one. Every other byte stays as it
// was. The file is replaced atomically (written next to it, synced,
// renamed): a reader sees the old or the new file, never half of one.
func AddDepends(path, name string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	data, err := readRegular(path, MaxControlSize)
	mode := fs.FileMode(0o644)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = []byte("Source: " + name + "\n\nPackage: " + name + "\n")
	case err != nil:
		return err
	default:
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("reading control file: %w", err)
		}
		mode = info.Mode().Perm()
	}
	out := addDepends(string(data), names)
	if _, err := readControlData(path, []byte(out)); err != nil {
		return fmt.Errorf("adding %s to Depends: the result would not parse: %w", strings.Join(names, ", "), err)
	}
	return writeAtomic(path, []byte(out), mode)
}

// addDepends is AddDepends on the text of a control file.
func addDepends(text string, names []string) string {
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	isField := func(line, field string) bool {
		k, _, ok := strings.Cut(line, ":")
		return ok && line[0] != ' ' && line[0] != '\t' && strings.EqualFold(strings.TrimSpace(k), field)
	}
	blank := func(line string) bool { return strings.TrimSpace(line) == "" }
	cont := func(line string) bool { return line != "" && (line[0] == ' ' || line[0] == '\t') }

	// The first Depends field: append to it.
	for i, line := range lines {
		if !isField(line, "Depends") {
			continue
		}
		end := i // its last line
		for end+1 < len(lines) && cont(lines[end+1]) && !blank(lines[end+1]) {
			end++
		}
		last := strings.TrimRight(lines[end], "\r\n")
		_, value, _ := strings.Cut(lines[i], ":")
		empty := strings.TrimSpace(value) == "" && end == i
		switch {
		case empty:
			lines[i] = strings.TrimRight(lines[i], " \t\r\n") + " " + strings.Join(names, ", ") + "\n"
		case end > i: // one item per line: go on the same way
			indent := last[:len(last)-len(strings.TrimLeft(last, " \t"))]
			trailing := strings.HasSuffix(strings.TrimSpace(last), ",")
			var add []string
			if !trailing {
				lines[end] = last + ",\n"
			}
			for k, n := range names {
				item := indent + n
				if trailing || k < len(names)-1 {
					item += ","
				}
				add = append(add, item+"\n")
			}
			lines = append(lines[:end+1], append(add, lines[end+1:]...)...)
		default:
			sep := ", "
			if strings.HasSuffix(strings.TrimSpace(last), ",") {
				sep = " "
			}
			lines[end] = strings.TrimRight(last, " \t") + sep + strings.Join(names, ", ") + "\n"
		}
		return strings.Join(lines, "")
	}

	// No Depends: a new line in the binary package's paragraph.
	type para struct{ start, end int } // lines [start, end)
	var paras []para
	for i := 0; i < len(lines); {
		for i < len(lines) && (blank(lines[i]) || strings.HasPrefix(lines[i], "#")) {
			i++
		}
		if i == len(lines) {
			break
		}
		p := para{start: i}
		for i < len(lines) && !blank(lines[i]) {
			i++
		}
		p.end = i
		paras = append(paras, p)
	}
	field := "Depends: " + strings.Join(names, ", ") + "\n"
	if len(paras) == 0 {
		return strings.Join(lines, "") + field
	}
	target := paras[0]
	for _, p := range paras {
		for _, line := range lines[p.start:p.end] {
			if isField(line, "Package") {
				target = p
			}
		}
	}
	at := target.end
	for i := target.start; i < target.end; i++ {
		if isField(lines[i], "Description") {
			at = i
			break
		}
	}
	lines = append(lines[:at], append([]string{field}, lines[at:]...)...)
	return strings.Join(lines, "")
}

// controlTemp is the name of AddDepends' temporary file beside a control
// file: a kill -9 may leave one.
const controlTemp = ".control.docker-pkg-*.tmp"

// IsTemp reports whether name is a temporary file of docker-pkg's beside
// an image's files (a changelog's or a control file's, say): never an
// input of a build, never sent to the builder.
func IsTemp(name string) bool {
	if changelog.IsInternal(name) {
		return true
	}
	ok, _ := filepath.Match(controlTemp, name)
	return ok
}

// writeAtomic replaces path with data: written in full next to it, synced,
// then renamed over it.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), controlTemp)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
