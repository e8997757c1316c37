package tornet

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Profile is the shape of a whole network's links (see link.go).
type Profile struct {
	Name string
	// Direct: no Links at all; every node is reached directly, as before
	// the injector existed. Shapes cannot be changed at run time.
	Direct bool
	// Link is every link's shape.
	Link Shape
	// Slow names the one node ("auth2") whose link gets SlowLink instead.
	Slow     string
	SlowLink Shape
}

// The profiles. real's 30 ms ±10 ms one way per link makes a 3-hop circuit
// build take a few hundred milliseconds (a CREATE2 round trip to the guard,
// then two EXTEND2 round trips over 2 and 3 links: 12 link crossings of
// ~30 ms), like the public network's faster circuits, and a stream's first
// byte ~0.4 s. lossy adds one slow, unreliable relay: auth2, which is never
// an exit, so it is hit as a guard or a middle. It stalls 1.5 s out of
// every 10 s and resets one of its connections every 45 s, which kills the
// circuits on it as a failing relay would.
var profiles = []Profile{
	{Name: "zero", Direct: true},
	{Name: "flat"}, // Links in place, no delay: for tests that inject faults themselves
	{Name: "real", Link: Shape{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond}},
	{
		Name: "lossy",
		Link: Shape{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond},
		Slow: "auth2",
		SlowLink: Shape{
			Latency: 60 * time.Millisecond, Jitter: 30 * time.Millisecond,
			StallEvery: 10 * time.Second, StallFor: 1500 * time.Millisecond,
			ResetEvery: 45 * time.Second,
		},
	},
}

// ProfileNames lists the profiles Options.Profile accepts.
func ProfileNames() []string {
	var names []string
	for _, p := range profiles {
		names = append(names, p.Name)
	}
	return names
}

// ProfileByName returns a profile: "" means $TORNET_PROFILE, and "zero"
// when that is unset too.
func ProfileByName(name string) (Profile, error) {
	if name == "" {
		name = os.Getenv("TORNET_PROFILE")
	}
	if name == "" {
		name = "zero"
	}
	i := slices.IndexFunc(profiles, func(p Profile) bool { return p.Name == name })
	if i < 0 {
		return Profile{}, fmt.Errorf("tornet: unknown profile %q (have %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return profiles[i], nil
}

// shapeFor is the shape of the link to node.
func (p Profile) shapeFor(node string) Shape {
	if p.Slow != "" && node == p.Slow {
		return p.SlowLink
	}
	return p.Link
}
