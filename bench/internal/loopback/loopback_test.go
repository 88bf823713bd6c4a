package loopback

import (
	"net"
	"testing"
)

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.9.8.7", true},
		{"::1", true},
		{"[::1]", true},
		{"localhost", true},
		{"LOCALHOST", true},
		{"::ffff:127.0.0.1", true},
		{"", false},
		{"0.0.0.0", false},
		{"10.0.0.1", false},
		{"192.168.1.1", false},
		{"8.8.8.8", false},
		{"example.com", false},
		{"localhost.example.com", false},
	}
	for _, tt := range tests {
		if got := IsLoopbackHost(tt.host); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{"127.0.0.1:0", false},
		{"[::1]:8080", false},
		{"localhost:80", false},
		{":8080", true},
		{"0.0.0.0:8080", true},
		{"10.1.2.3:80", true},
		{"127.0.0.1", true}, // no port
	}
	for _, tt := range tests {
		if err := CheckAddr(tt.addr); (err != nil) != tt.wantErr {
			t.Errorf("CheckAddr(%q) = %v, want error %v", tt.addr, err, tt.wantErr)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr bool
	}{
		{"http://127.0.0.1:8080/fhir/1.2.3/Patient/1", false},
		{"http://localhost:1/", false},
		{"http://[::1]:1/", false},
		{"https://127.0.0.1:8080/", true},
		{"http://user:pw@127.0.0.1:8080/", true},
		{"http://192.168.0.10:8080/", true},
		{"http://example.org/", true},
		{"://bad", true},
	}
	for _, tt := range tests {
		if _, err := CheckURL(tt.url); (err != nil) != tt.wantErr {
			t.Errorf("CheckURL(%q) = %v, want error %v", tt.url, err, tt.wantErr)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAddr(addr); err != nil {
		t.Fatalf("FreeAddr gave %s: %v", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the free address %s: %v", addr, err)
	}
	ln.Close()
}
