// Command loopgate runs the loopgate API server. See `loopgate serve --help`.
package main

import (
	"os"

	"github.com/loopgate/loopgate/internal/loopgatecmd"
)

func main() {
	os.Exit(loopgatecmd.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
