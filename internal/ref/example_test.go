package ref_test

import (
	"fmt"

	"github.com/docker-pkg/docker-pkg/internal/ref"
)

func ExampleCheckTag() {
	fmt.Println(ref.CheckTag("1.2.3-1-s2"))
	fmt.Println(ref.CheckTag("1:2.0-1"))
	fmt.Println(ref.CheckTag(".hidden"))
	// Output:
	// <nil>
	// ':' is not allowed in a tag
	// a tag cannot start with '.'
}

func ExampleValidTag() {
	fmt.Println(ref.ValidTag("20.11.0-1"), ref.ValidTag("1.0~rc1"))
	// Output: true false
}

func ExampleValidComponent() {
	fmt.Println(ref.ValidComponent("python3-bookworm"), ref.ValidComponent("Python"), ref.ValidComponent("a--b"), ref.ValidComponent("a..b"))
	// Output: true false true false
}

func ExampleJoin() {
	fmt.Println(ref.Join("docker-registry.example.org", "releng", "node20"))
	fmt.Println(ref.Join("", "releng", "node20"))
	fmt.Println(ref.Join("127.0.0.1:5000", "", "node20"))
	// Output:
	// docker-registry.example.org/releng/node20
	// releng/node20
	// 127.0.0.1:5000/node20
}

func ExampleSplitLabel() {
	fmt.Println(ref.SplitLabel("127.0.0.1:5000/ns/x:1.0-1"))
	fmt.Println(ref.SplitLabel("127.0.0.1:5000/ns/x"))
	fmt.Println(ref.SplitLabel("x:1.0@sha256:abcd"))
	// Output:
	// 127.0.0.1:5000/ns/x 1.0-1 true
	// 127.0.0.1:5000/ns/x  false
	// x 1.0 true
}

func ExampleParseDebianVersion() {
	v, ok := ref.ParseDebianVersion("1:8.2.7-1~deb12u1")
	fmt.Printf("%+v %v\n", v, ok)
	_, ok = ref.ParseDebianVersion("1.0 beta")
	fmt.Println(ok)
	// Output:
	// {Epoch:1 Upstream:8.2.7 Revision:1~deb12u1} true
	// false
}

func ExampleCheckRegistry() {
	fmt.Println(ref.CheckRegistry("docker-registry.example.org"))
	fmt.Println(ref.CheckRegistry("127.0.0.1:5000"))
	fmt.Println(ref.CheckRegistry("https://host/"))
	fmt.Println(ref.CheckRegistry("user:hunter2@host:5000"))
	// Output:
	// <nil>
	// <nil>
	// "https://host/" is a URL; want host[:port], e.g. registry.example.org:5000
	// holds credentials (user:password@); set username and password instead
}

func ExampleCheckNamespace() {
	fmt.Println(ref.CheckNamespace("releng/ci"))
	fmt.Println(ref.CheckNamespace("Rel Probe/UPPER"))
	// Output:
	// <nil>
	// "Rel Probe/UPPER": Docker does not accept "Rel Probe" in a repository path: lower-case letters, digits and single separators (., _, __, -) only
}
