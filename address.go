package primus

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Address is where a spark connects from.
type Address struct {
	// IP is the client's address: the socket's peer, or, when the peer is a
	// trusted proxy (Options.TrustedProxies), the address the forwarding
	// headers name.
	IP netip.Addr
	// Port is the client's port when known (0 when forwarded without one).
	Port int
	// Secure is true when the connection came over TLS, or a trusted proxy
	// says it did.
	Secure bool
}

func (a Address) String() string {
	if a.Port == 0 {
		return a.IP.String()
	}
	return netip.AddrPortFrom(a.IP, uint16(a.Port)).String()
}

// clientAddress computes the Address of r, believing forwarding headers only
// from trusted proxies, and walking X-Forwarded-For from the right past
// every trusted hop.
func clientAddress(r *http.Request, trusted []netip.Prefix) Address {
	var a Address
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		a.IP, a.Port = ap.Addr().Unmap(), int(ap.Port())
	} else if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		a.IP, _ = netip.ParseAddr(host)
		a.Port, _ = strconv.Atoi(port)
	}
	a.Secure = r.TLS != nil
	if len(trusted) == 0 || !isTrusted(a.IP, trusted) {
		return a
	}
	if ip, ok := forwardedFor(r.Header, trusted); ok {
		a.IP, a.Port = ip, 0
	} else if ip, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
		a.IP, a.Port = ip.Unmap(), 0
	}
	switch strings.ToLower(r.Header.Get("X-Forwarded-Proto")) {
	case "https", "wss":
		a.Secure = true
	case "http", "ws":
		a.Secure = false
	}
	return a
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// forwardedFor returns the right-most untrusted address of the
// X-Forwarded-For chain, or of the Forwarded header's for= parameters.
func forwardedFor(h http.Header, trusted []netip.Prefix) (netip.Addr, bool) {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	if len(hops) == 0 {
		for _, v := range h.Values("Forwarded") {
			for _, elem := range strings.Split(v, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						val = strings.Trim(val, `"`)
						if strings.HasPrefix(val, "[") { // [v6]:port
							if end := strings.IndexByte(val, ']'); end > 0 {
								val = val[1:end]
							}
						} else if host, _, err := net.SplitHostPort(val); err == nil {
							val = host
						}
						hops = append(hops, val)
					}
				}
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ip.Unmap()
		if !isTrusted(ip, trusted) || i == 0 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
