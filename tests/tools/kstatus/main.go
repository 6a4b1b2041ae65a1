// pxsec-kstatus: what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux's
// health checks use) computes for Kubernetes objects.
//
// Reads one JSON object or a List (as `kubectl get -o json` prints them) on stdin and prints one JSON
// line per object: {"apiVersion","kind","namespace","name","status","message"}. Exit 1 on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pxsec-kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// As the API machinery reads objects: whole numbers as int64 (generation, observedGeneration).
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("stdin is not a JSON object: %w", err)
	}
	items := []map[string]interface{}{obj}
	if list, ok := obj["items"].([]interface{}); ok {
		items = items[:0]
		for _, item := range list {
			m, ok := item.(map[string]interface{})
			if !ok {
				return fmt.Errorf("a list item is not an object")
			}
			items = append(items, m)
		}
	}
	enc := json.NewEncoder(out)
	for _, item := range items {
		u := &unstructured.Unstructured{Object: item}
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if err := enc.Encode(verdict{u.GetAPIVersion(), u.GetKind(), u.GetNamespace(), u.GetName(),
			string(res.Status), res.Message}); err != nil {
			return err
		}
	}
	return nil
}
