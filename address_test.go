package primus

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name    string
		remote  string
		trusted []netip.Prefix
		header  map[string][]string
		tls     bool
		want    Address
	}{
		{name: "socket address", remote: "192.0.2.1:1234",
			want: Address{IP: netip.MustParseAddr("192.0.2.1"), Port: 1234}},
		{name: "IPv6 socket address", remote: "[2001:db8::1]:8080",
			want: Address{IP: netip.MustParseAddr("2001:db8::1"), Port: 8080}},
		{name: "TLS is secure", remote: "192.0.2.1:443", tls: true,
			want: Address{IP: netip.MustParseAddr("192.0.2.1"), Port: 443, Secure: true}},
		{name: "headers ignored without trusted proxies", remote: "192.0.2.1:1234",
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.8"}, "X-Forwarded-Proto": {"https"}},
			want:   Address{IP: netip.MustParseAddr("192.0.2.1"), Port: 1234}},
		{name: "headers ignored from an untrusted peer", remote: "192.0.2.1:1234", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}},
			want:   Address{IP: netip.MustParseAddr("192.0.2.1"), Port: 1234}},
		{name: "trusted proxy", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
		{name: "IPv4-mapped trusted proxy", remote: "[::ffff:10.0.0.1]:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
		{name: "right-most untrusted hop wins", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"1.2.3.4, 203.0.113.7, 10.0.0.2"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
		{name: "several header lines", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"198.51.100.1", "203.0.113.7"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
		{name: "every hop trusted: the left-most", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"10.0.0.3, 10.0.0.2"}},
			want:   Address{IP: netip.MustParseAddr("10.0.0.3")}},
		{name: "IPv6 hop", remote: "[fd00::1]:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"2001:db8::7"}},
			want:   Address{IP: netip.MustParseAddr("2001:db8::7")}},
		{name: "malformed chain falls back to X-Real-IP", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7, garbage"}, "X-Real-Ip": {"203.0.113.8"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.8")}},
		{name: "malformed chain alone: the socket", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"garbage"}},
			want:   Address{IP: netip.MustParseAddr("10.0.0.1"), Port: 5000}},
		{name: "X-Real-IP", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Real-Ip": {" 203.0.113.8 "}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.8")}},
		{name: "Forwarded", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"Forwarded": {"for=192.0.2.60;proto=http;by=203.0.113.43"}},
			want:   Address{IP: netip.MustParseAddr("192.0.2.60")}},
		{name: "Forwarded with IPv6 and port", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"Forwarded": {`For="[2001:db8:cafe::17]:4711"`}},
			want:   Address{IP: netip.MustParseAddr("2001:db8:cafe::17")}},
		{name: "Forwarded with IPv4 and port", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"Forwarded": {`for="192.0.2.43:47011"`}},
			want:   Address{IP: netip.MustParseAddr("192.0.2.43")}},
		{name: "Forwarded chain", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"Forwarded": {"for=192.0.2.43, for=198.51.100.17, for=10.0.0.9"}},
			want:   Address{IP: netip.MustParseAddr("198.51.100.17")}},
		{name: "X-Forwarded-For wins over Forwarded", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "Forwarded": {"for=192.0.2.60"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
		{name: "obfuscated Forwarded: the socket", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"Forwarded": {"for=unknown"}},
			want:   Address{IP: netip.MustParseAddr("10.0.0.1"), Port: 5000}},
		{name: "forwarded https", remote: "10.0.0.1:5000", trusted: proxies,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"HTTPS"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7"), Secure: true}},
		{name: "forwarded http over TLS to the proxy", remote: "10.0.0.1:5000", trusted: proxies, tls: true,
			header: map[string][]string{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"http"}},
			want:   Address{IP: netip.MustParseAddr("203.0.113.7")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for k, vs := range tc.header {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			var trusted []netip.Prefix
			for _, p := range tc.trusted {
				trusted = append(trusted, p.Masked())
			}
			if got := clientAddress(r, trusted); got != tc.want {
				t.Errorf("clientAddress = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAddressString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a    Address
		want string
	}{
		{Address{IP: netip.MustParseAddr("203.0.113.7"), Port: 80}, "203.0.113.7:80"},
		{Address{IP: netip.MustParseAddr("203.0.113.7")}, "203.0.113.7"},
		{Address{IP: netip.MustParseAddr("::1"), Port: 8080}, "[::1]:8080"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.a, got, tc.want)
		}
	}
}
