module socksd/test/bench/peers

go 1.26

require (
	github.com/armon/go-socks5 v0.0.0-20160902184237-e75332964ef5
	github.com/things-go/go-socks5 v0.1.0
)

require golang.org/x/net v0.35.0 // indirect
