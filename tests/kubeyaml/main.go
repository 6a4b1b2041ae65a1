// Command pxsec-kubeyaml reads YAML streams exactly as kubectl 1.37 reads a file given to `apply -f`
// (cli-runtime's StreamVisitor: k8s.io/apimachinery/pkg/util/yaml.NewYAMLOrJSONDecoder, each document
// into a raw JSON message), for tests/gotools/test_kubeyaml_differential.py.
//
// Input: streams separated by NUL bytes on stdin. Output: one line per stream, a JSON array of the
// documents kubectl would send (a document that is empty reads as null), or {"error": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func decode(stream string) (docs []json.RawMessage, failure error) {
	defer func() {
		if r := recover(); r != nil {
			failure = fmt.Errorf("panic: %v", r)
		}
	}()
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	docs = []json.RawMessage{}
	for {
		var raw json.RawMessage
		err := decoder.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, raw)
	}
}

func main() {
	input, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, stream := range strings.Split(string(input), "\x00") {
		var line []byte
		if docs, failure := decode(stream); failure != nil {
			line, _ = json.Marshal(map[string]string{"error": failure.Error()})
		} else {
			line, _ = json.Marshal(docs)
		}
		out.Write(line)
		out.WriteString("\n")
	}
}
