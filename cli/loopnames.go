package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// Reading the loop names of files, for `delete -f`.
//
// Deleting needs a loop's name only, so a file is not read as apply reads
// it (readLoopFile: strict decoding and validation of every spec): only the
// apiVersion, kind and metadata (team and name) of each document are read.
// A loop whose spec no longer validates, or that apply would refuse, can
// still be deleted from its file. The rest is as for apply: a file is read
// up to loop.MaxFileBytes, every file is checked before anything is sent,
// and each problem is reported with its file, document and line. The
// header and names are checked as strictly as apply checks them (same
// messages and rules, loop.ValidateWithLimits), so that a file which is
// not a loop file, or a typo in a name, deletes nothing.

// maxAliasHops bounds how many aliases in a row are followed to a value.
const maxAliasHops = 100

// readLoopNames reads the names (teams/TEAM/loops/NAME) of the loops of
// every file, in file and document order (a loop named twice is listed
// twice). Every file is checked before anything is sent: the problems of
// all of them are printed (each naming its file) and then an ExitError is
// returned. An unreadable file stops at once with an error naming it.
func readLoopNames(stdin io.Reader, stderr io.Writer, paths []string) ([]string, error) {
	var (
		all []string
		bad []string
	)
	for _, p := range paths {
		names, err := readLoopNamesOf(stdin, stderr, p)
		var exit *ExitError
		switch {
		case errors.As(err, &exit) && len(paths) == 1:
			return nil, err
		case errors.As(err, &exit):
			bad = append(bad, termSafe(p))
		case err != nil:
			return nil, err
		}
		all = append(all, names...)
	}
	if len(bad) > 0 {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%d of %d file(s) have problems (%s); nothing was deleted",
			len(bad), len(paths), strings.Join(bad, ", "))}
	}
	return all, nil
}

// readLoopNamesOf reads the loop names of one file ("-": standard input).
// On problems it prints all of them as FILE:document N:line L: field:
// message and returns an ExitError.
func readLoopNamesOf(stdin io.Reader, stderr io.Writer, path string) ([]string, error) {
	var (
		r    io.Reader
		name = path
	)
	if path == "-" {
		r, name = stdin, "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading loop file: %w", err)
		}
		defer f.Close()
		r = f
	}
	raw, err := io.ReadAll(io.LimitReader(r, loop.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", termSafe(name), err)
	}
	var (
		names []string
		fes   loop.FieldErrors
	)
	if len(raw) > loop.MaxFileBytes {
		fes = loop.FieldErrors{{Message: fmt.Sprintf("the file is larger than %d bytes (%s), the most a loop file may be; split it into several files",
			loop.MaxFileBytes, loop.FormatSize(loop.MaxFileBytes))}}
	} else {
		names, fes = loopNamesOf(raw)
	}
	if len(fes) > 0 {
		printFieldErrors(stderr, name, fes)
		return nil, &ExitError{Code: 1, Err: fes}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s has no loop documents (see examples/checkout-nudge.yaml)", termSafe(name))
	}
	return names, nil
}

var yamlErrorLine = regexp.MustCompile(`line (\d+)`)

// loopNamesOf reads the name of every loop document of a file's content;
// empty documents are skipped but counted, as loop.Parse counts them. A
// YAML syntax error stops reading at that point. At most
// loop.MaxReportedProblems problems are reported.
func loopNamesOf(raw []byte) ([]string, loop.FieldErrors) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var (
		names []string
		fes   loop.FieldErrors
	)
	for index := 1; ; index++ {
		if len(fes) >= loop.MaxReportedProblems {
			fes = append(fes[:loop.MaxReportedProblems], loop.FieldError{
				Message: fmt.Sprintf("only the first %d problems are shown", loop.MaxReportedProblems)})
			break
		}
		// A yaml.Node keeps aliases as pointers: decoding one expands
		// nothing, whatever the aliases.
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fe := loop.FieldError{Document: index, Message: clipText(strings.TrimPrefix(err.Error(), "yaml: ")) + " (fix the YAML syntax)"}
			if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
				fe.Line, _ = strconv.Atoi(m[1])
				fe.Message = strings.TrimSpace(strings.Replace(fe.Message, m[0]+":", "", 1))
			}
			fes = append(fes, fe)
			break
		}
		body := documentBody(&root)
		if body == nil {
			continue // an empty document
		}
		name, problems := loopNameOf(body)
		for _, fe := range problems {
			fe.Document = index
			if fe.Line == 0 {
				fe.Line = body.Line
			}
			fes = append(fes, fe)
		}
		if len(problems) == 0 {
			names = append(names, name)
		}
	}
	return names, fes
}

// documentBody is the content of a document, or nil for an empty one (no
// content, or only comments or null).
func documentBody(root *yaml.Node) *yaml.Node {
	if root.Kind == 0 {
		return nil
	}
	body := root
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		body = root.Content[0]
	}
	if body.Kind == yaml.ScalarNode && body.Tag == "!!null" {
		return nil
	}
	return body
}

// loopNameOf reads the resource name of the loop of one document: it must
// be a loopgate.dev/v1 Loop with a valid metadata.team and metadata.name.
// Other fields, spec included, are not looked at. A wrong header is the
// only problem reported (as loop.Parse does: the rest would be noise).
func loopNameOf(body *yaml.Node) (string, loop.FieldErrors) {
	body, err := resolveAlias(body, "document")
	if err != nil {
		return "", loop.FieldErrors{*err}
	}
	if body.Kind != yaml.MappingNode {
		return "", loop.FieldErrors{{Field: "document", Line: body.Line,
			Message: fmt.Sprintf("must be a mapping of fields (apiVersion, kind, metadata, spec), not %s", describeNode(body))}}
	}
	top, fes := fieldsOf(body, "", "apiVersion", "kind", "metadata")
	var header loop.FieldErrors
	for _, h := range []struct{ field, want, missing, wrong string }{
		{"apiVersion", loop.APIVersion, "is missing (write apiVersion: " + loop.APIVersion + ")", ""},
		{"kind", loop.Kind, "is missing (write kind: " + loop.Kind + ")", " (this file may describe something other than a loop)"},
	} {
		n, ok := top[h.field]
		if !ok {
			header = append(header, loop.FieldError{Field: h.field, Line: body.Line, Message: h.missing})
			continue
		}
		v, fe := scalarOf(n, h.field)
		switch {
		case fe != nil:
			header = append(header, *fe)
		case v != h.want:
			header = append(header, loop.FieldError{Field: h.field, Line: n.Line,
				Message: fmt.Sprintf("must be %q, not %s%s", h.want, quoteText(v), h.wrong)})
		}
	}
	if len(header) > 0 {
		return "", header
	}
	md, ok := top["metadata"]
	if !ok {
		return "", append(fes, loop.FieldError{Field: "metadata", Line: body.Line, Message: "is missing (a loop needs metadata.name and metadata.team)"})
	}
	md, err = resolveAlias(md, "metadata")
	if err != nil {
		return "", append(fes, *err)
	}
	if md.Kind != yaml.MappingNode {
		return "", append(fes, loop.FieldError{Field: "metadata", Line: md.Line,
			Message: fmt.Sprintf("must be a mapping of fields (name, team, labels), not %s", describeNode(md))})
	}
	fields, mfes := fieldsOf(md, "metadata.", "name", "team")
	fes = append(fes, mfes...)
	var meta loop.Metadata
	lines := map[string]int{"metadata.name": md.Line, "metadata.team": md.Line}
	broken := map[string]bool{} // reported already: not a single value
	for _, f := range []struct {
		path string
		to   *string
	}{{"metadata.name", &meta.Name}, {"metadata.team", &meta.Team}} {
		n, ok := fields[strings.TrimPrefix(f.path, "metadata.")]
		if !ok {
			continue // required: the validation below says so
		}
		lines[f.path] = n.Line
		v, fe := scalarOf(n, f.path)
		if fe != nil {
			fes = append(fes, *fe)
			broken[f.path] = true
			continue
		}
		*f.to = v
	}
	// The same rules and messages as apply's, for the names only.
	for _, fe := range loop.ValidateWithLimits(&loop.Loop{Metadata: meta}, catalog.CeilingLimits()) {
		if (fe.Field == "metadata.name" || fe.Field == "metadata.team") && !broken[fe.Field] {
			fe.Line = lines[fe.Field]
			fes = append(fes, fe)
		}
	}
	if len(fes) > 0 {
		return "", fes
	}
	return meta.ResourceName(), nil
}

// fieldsOf returns the values of the keys of a mapping that are among
// want; a key of want written twice is a problem (which value counts would
// be a guess). prefix is the field path of the mapping, with its dot.
func fieldsOf(m *yaml.Node, prefix string, want ...string) (map[string]*yaml.Node, loop.FieldErrors) {
	out := map[string]*yaml.Node{}
	firstLine := map[string]int{}
	var fes loop.FieldErrors
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || !slices.Contains(want, k.Value) {
			continue
		}
		if first, dup := firstLine[k.Value]; dup {
			fes = append(fes, loop.FieldError{Field: prefix + k.Value, Line: k.Line,
				Message: fmt.Sprintf("duplicate key (first written on line %d)", first)})
			continue
		}
		firstLine[k.Value] = k.Line
		out[k.Value] = v
	}
	return out, fes
}

// scalarOf is the text of a single value (null: ""), or a problem.
func scalarOf(n *yaml.Node, field string) (string, *loop.FieldError) {
	n, fe := resolveAlias(n, field)
	if fe != nil {
		return "", fe
	}
	switch {
	case n.Kind != yaml.ScalarNode:
		return "", &loop.FieldError{Field: field, Line: n.Line, Message: fmt.Sprintf("must be a string, not %s", describeNode(n))}
	case n.Tag == "!!null":
		return "", nil
	}
	return n.Value, nil
}

// resolveAlias follows aliases to the value they name, at most
// maxAliasHops of them.
func resolveAlias(n *yaml.Node, field string) (*yaml.Node, *loop.FieldError) {
	for hops := 0; n.Kind == yaml.AliasNode; hops++ {
		if hops == maxAliasHops || n.Alias == nil {
			return nil, &loop.FieldError{Field: field, Line: n.Line, Message: "an alias that names no value (or an alias of an alias of ..., too deep)"}
		}
		n = n.Alias
	}
	return n, nil
}

// describeNode names what a node is, for "must be X, not Y" messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quoteText(n.Value)
	}
	return "an unexpected YAML node"
}

// maxQuotedText is the most of a file's text a message quotes.
const maxQuotedText = 200

// quoteText quotes what a file says, clipped to maxQuotedText bytes.
func quoteText(s string) string {
	if len(s) <= maxQuotedText {
		return strconv.Quote(s)
	}
	return strconv.Quote(clipText(s)) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// clipText is s cut to at most maxQuotedText bytes, at a rune boundary.
func clipText(s string) string {
	if len(s) <= maxQuotedText {
		return s
	}
	cut := maxQuotedText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
