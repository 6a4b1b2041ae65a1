module pxsec.dev/kubeyaml

go 1.26.0

// kubectl 1.37's YAML reading: k8s.io/apimachinery's YAMLOrJSONDecoder over sigs.k8s.io/yaml v1.6.0
// and go.yaml.in/yaml/v2 v2.4.4 (the versions k8s.io/kubectl v0.37.2 requires).
require k8s.io/apimachinery v0.37.2

require (
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)
