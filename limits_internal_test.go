package primus

import (
	"net/netip"
	"testing"
)

// TestAddressTableBounded: addresses that come and go (an attacker with
// many sources, spoofed through a proxy or not) never grow the table past
// its bound plus a quarter, while addresses with connections are all kept.
func TestAddressTableBounded(t *testing.T) {
	lm := newLimiter(&Limits{NewConnectionsPerSecond: 1, MaxConnectionsPerAddress: 100, MaxAddresses: 64}, 1<<20)
	held := netip.MustParseAddr("192.0.2.1")
	if rf := lm.admit(held, false); rf != nil {
		t.Fatal(rf)
	}
	most := 0
	for i := range 100_000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if rf := lm.precheck(ip, false); rf != nil {
			t.Fatalf("a new address was refused: %v", rf.reason)
		}
		most = max(most, len(lm.addrs))
	}
	if most > 64+64/4 {
		t.Errorf("the table held %d addresses, bound 64", most)
	}
	if e := lm.addrs[held]; e == nil || e.conns != 1 {
		t.Errorf("the address with a connection was forgotten: %+v", e)
	}
	lm.release(held)
	if lm.conns != 0 {
		t.Errorf("%d connections after the release", lm.conns)
	}
}

// TestAddressKeyIPv6: IPv6 clients are limited by /64, IPv4 ones (mapped or
// not) by address.
func TestAddressKeyIPv6(t *testing.T) {
	lm := newLimiter(&Limits{NewConnectionsPerSecond: 0.001, NewConnectionsBurst: 1}, 1<<20)
	if rf := lm.precheck(netip.MustParseAddr("2001:db8:1:2::1"), false); rf != nil {
		t.Fatal(rf)
	}
	if rf := lm.precheck(netip.MustParseAddr("2001:db8:1:2:ffff::9"), false); rf == nil || rf.reason != RefuseConnectionRate {
		t.Errorf("another address of the same /64 was not limited with the first: %v", rf)
	}
	if rf := lm.precheck(netip.MustParseAddr("2001:db8:1:3::1"), false); rf != nil {
		t.Errorf("another /64 was limited: %v", rf.reason)
	}
	if rf := lm.precheck(netip.MustParseAddr("192.0.2.7"), false); rf != nil {
		t.Fatal(rf)
	}
	if rf := lm.precheck(netip.MustParseAddr("::ffff:192.0.2.7"), false); rf == nil {
		t.Error("an IPv4-mapped address was not limited with its IPv4 address")
	}
	if rf := lm.precheck(netip.MustParseAddr("192.0.2.8"), false); rf != nil {
		t.Errorf("another IPv4 address was limited: %v", rf.reason)
	}
}

// TestLimitsZeroIsOff: Limits with every limit off cost nothing.
func TestLimitsZeroIsOff(t *testing.T) {
	if lm := newLimiter(&Limits{MaxAddresses: 10, MessagesBurst: 5}, 1<<20); lm != nil {
		t.Errorf("a limiter for no limits: %+v", lm)
	}
	var lm *limiter
	if lm.forSpark() != nil {
		t.Error("a spark limiter without limits")
	}
}

// TestSparkRateAllocations: taking a message from a spark's buckets
// allocates nothing.
func TestSparkRateAllocations(t *testing.T) {
	sl := newLimiter(&Limits{MessagesPerSecond: 1e9, BytesPerSecond: 1e12}, 1<<20).forSpark()
	if n := testing.AllocsPerRun(1000, func() { sl.allow(100) }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}
