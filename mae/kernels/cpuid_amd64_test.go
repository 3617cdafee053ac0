package kernels

import (
	"encoding/binary"
	"testing"
)

// TestAMDFamily19h decodes the CPUID of CPUs this machine is not: the
// vendor string and the family with its extended part, so that the
// Strassen–Winograd default (swAutoOff) is right on Zen 4 and Zen 5 alike.
func TestAMDFamily19h(t *testing.T) {
	vendor := func(s string) (b, c, d uint32) {
		le := binary.LittleEndian
		return le.Uint32([]byte(s[0:4])), le.Uint32([]byte(s[8:12])), le.Uint32([]byte(s[4:8]))
	}
	for _, tc := range []struct {
		what, vendor string
		sig          uint32 // CPUID leaf 1 EAX
		want         bool
	}{
		{"Zen 4 EPYC 9004 (19h model 11h)", "AuthenticAMD", 0x00a10f11, true},
		{"Zen 4 Ryzen 7000 (19h model 61h)", "AuthenticAMD", 0x00a60f12, true},
		{"Zen 3 EPYC 7003 (19h model 01h, no AVX-512)", "AuthenticAMD", 0x00a00f11, true},
		{"Zen 5 EPYC 9005 (1Ah model 02h)", "AuthenticAMD", 0x00b00f21, false},
		{"Zen 5 Ryzen 9000 (1Ah model 44h)", "AuthenticAMD", 0x00b40f40, false},
		{"Zen 2 (17h)", "AuthenticAMD", 0x00830f10, false},
		{"extended family counted only under base family 0Fh", "AuthenticAMD", 0x01300600, false},
		{"Intel Sapphire Rapids (6 model 8Fh)", "GenuineIntel", 0x000806f8, false},
		{"a Zen 4 signature from another vendor", "GenuineIntel", 0x00a10f11, false},
		{"Hygon (18h)", "HygonGenuine", 0x00900f11, false},
	} {
		b, c, d := vendor(tc.vendor)
		if got := amdFamily19h(b, c, d, tc.sig); got != tc.want {
			t.Errorf("%s: amdFamily19h(%s, %#08x) = %v, want %v", tc.what, tc.vendor, tc.sig, got, tc.want)
		}
	}
}
