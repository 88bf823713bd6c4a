package audit_test

import (
	"testing"

	"github.com/cqgate/cqgate/internal/audit"
)

func TestTargetFromPath(t *testing.T) {
	tests := []struct {
		path string
		want audit.Target
	}{
		{"", audit.Target{}},
		{"/", audit.Target{}},
		{"?_since=2024-01-01", audit.Target{}},
		{"metadata", audit.Target{Operation: "metadata"}},
		{"/metadata?_format=json", audit.Target{Operation: "metadata"}},
		{"_history", audit.Target{Operation: "_history"}},
		{"/_search", audit.Target{Operation: "_search"}},
		{"$export", audit.Target{Operation: "$export"}},
		{"Patient", audit.Target{ResourceType: "Patient"}},
		{"/Patient/", audit.Target{ResourceType: "Patient"}},
		{"Patient?name=peters&birthdate=1970-01-01", audit.Target{ResourceType: "Patient"}},
		{"Patient/_search", audit.Target{ResourceType: "Patient", Operation: "_search"}},
		{"Patient/_search?name=peters", audit.Target{ResourceType: "Patient", Operation: "_search"}},
		{"Patient/_history", audit.Target{ResourceType: "Patient", Operation: "_history"}},
		{"Observation/$lastn", audit.Target{ResourceType: "Observation", Operation: "$lastn"}},
		{"Observation/$lastn?patient=1316024&code=x", audit.Target{ResourceType: "Observation", Operation: "$lastn"}},
		{"/Patient/123", audit.Target{ResourceType: "Patient", ID: "123"}},
		{"Patient/123#frag", audit.Target{ResourceType: "Patient", ID: "123"}},
		{"Patient/123/_history", audit.Target{ResourceType: "Patient", ID: "123", Operation: "_history"}},
		{"Patient/123/_history/2", audit.Target{ResourceType: "Patient", ID: "123", Operation: "_history"}},
		{"Patient/123/$everything", audit.Target{ResourceType: "Patient", ID: "123", Operation: "$everything"}},
		{"Patient/123/Observation", audit.Target{ResourceType: "Observation", Compartment: "Patient/123"}},
		{"/Patient/123/Observation?code=x", audit.Target{ResourceType: "Observation", Compartment: "Patient/123"}},
		{"Patient/123/Observation/_search", audit.Target{ResourceType: "Observation", Compartment: "Patient/123", Operation: "_search"}},
		{"Patient/123/*", audit.Target{ResourceType: "*", Compartment: "Patient/123"}},
	}
	for _, tt := range tests {
		if got := audit.TargetFromPath(tt.path); got != tt.want {
			t.Errorf("TargetFromPath(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
		rt, id := audit.ResourceFromPath(tt.path)
		if rt != tt.want.ResourceType || id != tt.want.ID {
			t.Errorf("ResourceFromPath(%q) = %q, %q", tt.path, rt, id)
		}
	}
}
