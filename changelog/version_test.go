package changelog

import (
	"errors"
	"fmt"
	"testing"
)

func printBump(tag, updateID string) {
	next, err := Bump(tag, updateID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s -> %s\n", tag, next)
}

// The cases of SPEC "update", where the reference succeeds.
func ExampleBump() {
	printBump("0.1.2", "s")
	printBump("0.1.2-1", "s")
	printBump("0.1.2-1-s8", "s")
	printBump("0.1.2-s9", "s")
	printBump("2.4.62-1-20260816", "s")
	printBump("8.3.33-1-20260816", "s")
	// Output:
	// 0.1.2 -> 0.1.2-s1
	// 0.1.2-1 -> 0.1.2-1-s1
	// 0.1.2-1-s8 -> 0.1.2-1-s9
	// 0.1.2-s9 -> 0.1.2-s10
	// 2.4.62-1-20260816 -> 2.4.62-1-20260816-s1
	// 8.3.33-1-20260816 -> 8.3.33-1-20260816-s1
}

// Tags the reference fails on.
func ExampleBump_beyondReference() {
	printBump("0.0.4-20250727-s1-20260816", "s")
	printBump("1.10-0.s3", "s")
	printBump("0.1.9-u1-20260816", "s")
	printBump("0.1.9-u1-20260816-s1", "s")
	// Output:
	// 0.0.4-20250727-s1-20260816 -> 0.0.4-20250727-s1-20260816-s1
	// 1.10-0.s3 -> 1.10-0.s3-s1
	// 0.1.9-u1-20260816 -> 0.1.9-u1-20260816-s1
	// 0.1.9-u1-20260816-s1 -> 0.1.9-u1-20260816-s2
}

// With update_id "", the last number after a hyphen is the update counter.
func ExampleBump_emptyUpdateID() {
	printBump("0.1.2-1", "")
	printBump("0.1.2", "")
	printBump("0.1.2-1-9", "")
	printBump("0.1.2-09", "")
	printBump("0.0.4-20250727-s1-20260816", "")
	printBump("1.10-0.s3", "")
	// Output:
	// 0.1.2-1 -> 0.1.2-2
	// 0.1.2 -> 0.1.2-1
	// 0.1.2-1-9 -> 0.1.2-1-10
	// 0.1.2-09 -> 0.1.2-10
	// 0.0.4-20250727-s1-20260816 -> 0.0.4-20250727-s1-20260817
	// 1.10-0.s3 -> 1.10-0.s3-1
}

// A Docker tag cannot hold the epoch, tilde or plus a Debian version may
// have, and appending a suffix cannot remove them. A version that does not
// start with a digit cannot be ordered, so its bump cannot be checked.
func ExampleBump_cannotBump() {
	printBump("1:2.0", "s")
	printBump("1.0~rc1-1", "s")
	printBump("1.0+dfsg-1", "s")
	printBump("v2.1", "s")
	// Output:
	// cannot bump version "1:2.0": "1:2.0-s1" is not a valid Docker tag
	// cannot bump version "1.0~rc1-1": "1.0~rc1-1-s1" is not a valid Docker tag
	// cannot bump version "1.0+dfsg-1": "1.0+dfsg-1-s1" is not a valid Docker tag
	// cannot bump version "v2.1": invalid Debian version "v2.1-s1": version number does not start with digit
}

func TestBumpErrors(t *testing.T) {
	long := "1."
	for len(long) < 126 {
		long += "0"
	}
	tests := []struct {
		name, tag, updateID string
	}{
		{name: "epoch", tag: "1:2.0", updateID: "s"},
		{name: "tilde", tag: "1.0~rc1", updateID: "s"},
		{name: "empty tag", tag: "", updateID: "s"},
		{name: "not a Debian version", tag: "latest", updateID: "s"},
		{name: "too long for a Docker tag", tag: long, updateID: "s"},
		{name: "update id Docker rejects", tag: "1.0", updateID: "+"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Bump(tc.tag, tc.updateID)
			if !errors.Is(err, ErrCannotBump) {
				t.Fatalf("Bump(%q, %q) = %q, %v; want ErrCannotBump", tc.tag, tc.updateID, got, err)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name, a, b string
		want       int
	}{
		{name: "equal", a: "1.0-1", b: "1.0-1", want: 0},
		{name: "update suffix sorts above", a: "0.1.2-s1", b: "0.1.2", want: 1},
		{name: "numeric, not lexical", a: "0.1.2-s9", b: "0.1.2-s10", want: -1},
		{name: "tilde sorts below", a: "1.0~rc1", b: "1.0", want: -1},
		{name: "epoch wins", a: "1:0.1", b: "2.0", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compare(tc.a, tc.b)
			if err != nil || got != tc.want {
				t.Errorf("Compare(%q, %q) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
			}
		})
	}
}

func TestCompareInvalid(t *testing.T) {
	for _, pair := range [][2]string{{"latest", "1.0"}, {"1.0", "a:1"}, {"1.0", ""}} {
		if _, err := Compare(pair[0], pair[1]); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("Compare(%q, %q) error = %v, want ErrInvalidVersion", pair[0], pair[1], err)
		}
	}
}
