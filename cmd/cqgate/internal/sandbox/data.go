package sandbox

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// dataFiles holds the sandbox's FHIR resources, one per file, named
// "<resourceType>-<id>.json".
//
//go:embed data/*.json
var dataFiles embed.FS

// dataset is the parsed, read-only content of dataFiles.
type dataset struct {
	patients     []*patient // in file name order
	observations []*observation
	patientByID  map[string]*patient
	obsByID      map[string]*observation
}

// patient is a Patient resource with what search needs.
type patient struct {
	id    string
	names []string // family and given names, lower case
	raw   json.RawMessage
}

// observation is an Observation resource with what search needs.
type observation struct {
	id        string
	patientID string // from subject "Patient/<id>"
	raw       json.RawMessage
}

// resourceHead holds the fields of a data file the sandbox indexes.
type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Name         []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Subject *struct {
		Reference string `json:"reference"`
	} `json:"subject"`
}

// loadDataset parses and checks the embedded resources.
func loadDataset() (*dataset, error) {
	ds, err := parseDataset(dataFiles, "data")
	if err != nil {
		return nil, fmt.Errorf("sandbox: embedded data: %w", err)
	}
	return ds, nil
}

// parseDataset reads every *.json file of dir in fsys.
func parseDataset(fsys fs.FS, dir string) (*dataset, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	ds := &dataset{
		patientByID: make(map[string]*patient),
		obsByID:     make(map[string]*observation),
	}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".json" {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := ds.add(e.Name(), data); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	for _, o := range ds.observations {
		if _, ok := ds.patientByID[o.patientID]; !ok {
			return nil, fmt.Errorf("Observation/%s: subject Patient/%s is not in the data set", o.id, o.patientID)
		}
	}
	if len(ds.patients) == 0 {
		return nil, errors.New("no Patient resources")
	}
	return ds, nil
}

// add indexes one resource file.
func (ds *dataset) add(name string, data []byte) error {
	raw, err := compactJSON(data)
	if err != nil {
		return err
	}
	var h resourceHead
	if err := json.Unmarshal(raw, &h); err != nil {
		return err
	}
	if h.ID == "" {
		return errors.New("resource has no id")
	}
	if want := h.ResourceType + "-" + h.ID + ".json"; name != want {
		return fmt.Errorf("file holds %s/%s and should be named %s", h.ResourceType, h.ID, want)
	}
	switch h.ResourceType {
	case "Patient":
		if _, dup := ds.patientByID[h.ID]; dup {
			return fmt.Errorf("duplicate Patient/%s", h.ID)
		}
		p := &patient{id: h.ID, raw: raw}
		for _, n := range h.Name {
			if n.Family != "" {
				p.names = append(p.names, strings.ToLower(n.Family))
			}
			for _, g := range n.Given {
				p.names = append(p.names, strings.ToLower(g))
			}
		}
		if len(p.names) == 0 {
			return fmt.Errorf("Patient/%s has no name", h.ID)
		}
		ds.patients = append(ds.patients, p)
		ds.patientByID[p.id] = p
	case "Observation":
		if _, dup := ds.obsByID[h.ID]; dup {
			return fmt.Errorf("duplicate Observation/%s", h.ID)
		}
		if h.Subject == nil {
			return fmt.Errorf("Observation/%s has no subject", h.ID)
		}
		pid, ok := strings.CutPrefix(h.Subject.Reference, "Patient/")
		if !ok || pid == "" {
			return fmt.Errorf("Observation/%s: subject %q is not a Patient reference", h.ID, h.Subject.Reference)
		}
		o := &observation{id: h.ID, patientID: pid, raw: raw}
		ds.observations = append(ds.observations, o)
		ds.obsByID[o.id] = o
	default:
		return fmt.Errorf("unsupported resourceType %q", h.ResourceType)
	}
	return nil
}

// patientIDs returns the Patient ids in file name order.
func (ds *dataset) patientIDs() []string {
	ids := make([]string, len(ds.patients))
	for i, p := range ds.patients {
		ids[i] = p.id
	}
	return ids
}

// matchesName reports whether q (lower case) is a substring of one of the
// patient's family or given names.
func (p *patient) matchesName(q string) bool {
	for _, n := range p.names {
		if strings.Contains(n, q) {
			return true
		}
	}
	return false
}
