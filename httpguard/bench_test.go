package httpguard

import "testing"

func BenchmarkParseHeadConnect(b *testing.B) {
	in := []byte("CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n" +
		"User-Agent: curl/8.5.0\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, _, err := ParseHead(in); err != nil {
			b.Fatal(err)
		}
	}
}
