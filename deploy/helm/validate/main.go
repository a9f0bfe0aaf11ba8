// Command validate checks rendered Kubernetes manifests offline, as strictly as an API server
// decodes them: every document is decoded into its Go type from k8s.io/api (and the
// prometheus-operator's for ServiceMonitor) with apimachinery's strict YAML serializer, so an
// unknown or misspelt field, a duplicate key, a value of the wrong type or a kind this chart does
// not render is an error. It also checks what the API server would refuse before any controller
// sees the object: metadata (names, labels, annotations) and a workload's selector that does not
// select its own pod template.
//
// Usage: validate [FILE ...]   (no FILE, or "-": standard input; a multi-document YAML stream)
// Exit 0 and one line per object when all are valid; exit 1 with every problem otherwise.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// newDecoder knows exactly the kinds the chart may render; any other is refused.
func newDecoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

type document struct {
	source string
	data   []byte
}

func main() {
	sources := os.Args[1:]
	if len(sources) == 0 {
		sources = []string{"-"}
	}
	var docs []document
	for _, source := range sources {
		found, err := read(source)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", source, err)
			os.Exit(2)
		}
		docs = append(docs, found...)
	}
	problems, objects := check(newDecoder(), docs)
	for _, problem := range problems {
		fmt.Fprintln(os.Stderr, problem)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "%d problem(s) in %d document(s)\n", len(problems), len(docs))
		os.Exit(1)
	}
	if objects == 0 {
		fmt.Fprintln(os.Stderr, "no Kubernetes object found")
		os.Exit(1)
	}
}

// read splits a YAML stream into its documents, each named source#n (n from 1).
func read(source string) ([]document, error) {
	var in io.Reader = os.Stdin
	if source != "-" {
		file, err := os.Open(source)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		in = file
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs []document
	for n := 1; ; n++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, document{fmt.Sprintf("%s#%d", source, n), data})
	}
}

func check(decoder runtime.Decoder, docs []document) (problems []string, objects int) {
	seen := map[string]string{}
	for _, doc := range docs {
		if empty(doc.data) {
			continue
		}
		obj, gvk, err := decoder.Decode(doc.data, nil, nil)
		if err != nil { // a strict error comes with the object: it is an error all the same
			problems = append(problems, fmt.Sprintf("%s: %v", doc.source, err))
			continue
		}
		objects++
		accessor, ok := obj.(metav1.Object)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %s has no metadata", doc.source, gvk.Kind))
			continue
		}
		id := gvk.Kind + "/" + accessor.GetName()
		before := len(problems)
		if first, dup := seen[id]; dup {
			problems = append(problems, fmt.Sprintf("%s: %s again (first in %s)", doc.source, id, first))
		}
		seen[id] = doc.source
		for _, err := range validate(obj) {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", doc.source, id, err))
		}
		if len(problems) == before {
			fmt.Printf("%s: %s %s\n", doc.source, gvk.GroupVersion(), id)
		}
	}
	return problems, objects
}

// empty: a document of comments only (helm's "# Source:" lines around a template that rendered nothing).
func empty(data []byte) bool {
	converted, err := yaml.YAMLToJSON(data)
	return err == nil && (len(bytes.TrimSpace(converted)) == 0 || string(bytes.TrimSpace(converted)) == "null")
}

// validate: what the API server refuses at once, beyond decoding.
func validate(obj runtime.Object) field.ErrorList {
	meta := field.NewPath("metadata")
	switch o := obj.(type) {
	case *corev1.Service:
		return apivalidation.ValidateObjectMeta(&o.ObjectMeta, true, apivalidation.NameIsDNS1035Label, meta)
	case *appsv1.StatefulSet:
		errs := apivalidation.ValidateObjectMeta(&o.ObjectMeta, true, apivalidation.NameIsDNSLabel, meta)
		// The pods' controller-revision-hash label is <name>-<hash>: a longer name cannot be labelled.
		if len(o.Name) > 52 {
			errs = append(errs, field.TooLong(meta.Child("name"), o.Name, 52))
		}
		return append(errs, selects(o.Spec.Selector, o.Spec.Template.Labels)...)
	case *appsv1.Deployment:
		errs := apivalidation.ValidateObjectMeta(&o.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, meta)
		return append(errs, selects(o.Spec.Selector, o.Spec.Template.Labels)...)
	case metav1.Object:
		return apivalidation.ValidateObjectMeta(objectMeta(o), true, apivalidation.NameIsDNSSubdomain, meta)
	}
	return nil
}

// objectMeta: every kind here embeds metav1.ObjectMeta, whose GetObjectMeta returns it.
func objectMeta(o metav1.Object) *metav1.ObjectMeta {
	if m, ok := o.(interface{ GetObjectMeta() metav1.Object }); ok {
		if om, ok := m.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return om
		}
	}
	return &metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), Labels: o.GetLabels(), Annotations: o.GetAnnotations()}
}

// selects: a workload whose selector does not match its own pod template is refused.
func selects(selector *metav1.LabelSelector, podLabels map[string]string) field.ErrorList {
	path := field.NewPath("spec", "selector")
	if selector == nil {
		return field.ErrorList{field.Required(path, "")}
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return field.ErrorList{field.Invalid(path, selector, err.Error())}
	}
	if s.Empty() || !s.Matches(labels.Set(podLabels)) {
		shown := strings.TrimSpace(s.String())
		return field.ErrorList{field.Invalid(path, shown, "does not select spec.template.metadata.labels")}
	}
	return nil
}
