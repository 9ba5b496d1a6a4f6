// Command loopctl is the command line client of loopgate; see package cli.
package main

import (
	"os"

	"github.com/loopgate/loopgate/cli"
)

func main() {
	os.Exit(cli.Execute())
}
