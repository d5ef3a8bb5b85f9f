package cluster

import (
	"bytes"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind                 byte
		origin, key, payload string
	}{
		{kindBroadcast, "node1", "", `"hi"`},
		{kindSpark, "n", "SPARKID", "\xa1\x00"},
		{kindTopic, "", "primus.rooms", ""},
	} {
		b := newEnvelope(tc.kind, tc.origin, tc.key, []byte(tc.payload))
		e, err := parseEnvelope(b)
		if err != nil || e.kind != tc.kind || string(e.origin) != tc.origin || string(e.key) != tc.key || string(e.payload) != tc.payload {
			t.Errorf("round trip of %+v: %+v, %v", tc, e, err)
		}
	}
	for _, bad := range [][]byte{nil, {envelopeVersion}, {2, 'b', 0, 0}, {envelopeVersion, 'b', 5, 'x'}, {envelopeVersion, 'b', 0, 0xff}} {
		if _, err := parseEnvelope(bad); !errors.Is(err, errEnvelope) {
			t.Errorf("parseEnvelope(%x) = %v, want errEnvelope", bad, err)
		}
	}
}

// FuzzParseEnvelope feeds the decoder of every message from the broker.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(newEnvelope(kindBroadcast, "node", "", []byte(`{"a":1}`)))
	f.Add(newEnvelope(kindSpark, "node", "id", nil))
	f.Add([]byte{envelopeVersion, kindTopic, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		again := newEnvelope(e.kind, string(e.origin), string(e.key), e.payload)
		if !bytes.Equal(again, b) {
			// A longer-than-needed uvarint is accepted; what it says
			// must survive re-encoding.
			e2, err := parseEnvelope(again)
			if err != nil || e2.kind != e.kind || !bytes.Equal(e2.origin, e.origin) || !bytes.Equal(e2.key, e.key) || !bytes.Equal(e2.payload, e.payload) {
				t.Fatalf("re-encoding %x does not round-trip", b)
			}
		}
	})
}

// TestReporter checks that a run of failures makes one report, and that a
// failure after a recovery is reported again.
func TestReporter(t *testing.T) {
	var got []error
	r := newReporter(discard(), func(err error) { got = append(got, err) })
	e1, e2 := errors.New("one"), errors.New("two")
	r.fail("publish", e1, 1)
	r.fail("publish", e2, 1) // within the second: folded
	r.fail("registry", e2, 0)
	if len(got) != 2 || got[0] != e1 || got[1] != e2 {
		t.Fatalf("reports %v, want [one two]", got)
	}
	r.ok("publish")
	r.ok("publish")
	r.fail("publish", e1, 1)
	if len(got) != 3 || got[2] != e1 {
		t.Fatalf("reports %v: the failure after a recovery was not reported", got)
	}
	if r.failing.Load() != 2 {
		t.Errorf("failing = %d, want 2", r.failing.Load())
	}
}
