//! Where a request came from: what every audit entry of the request records beside who
//! acted.

use std::net::{IpAddr, Ipv6Addr};

/// The request's id, the purpose stated for it (`X-Purpose`) and the client address.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub client: Option<String>,
    /// How the request came: `None` for the API, `Some("web")` for the pages.
    pub channel: Option<&'static str>,
}

impl RequestMeta {
    /// The same request, made through the web pages.
    pub fn web(mut self) -> Self {
        self.channel = Some("web");
        self
    }
}

/// Which proxies may name the client, and in which header (`SAMVERKAN_TRUSTED_PROXIES`,
/// `SAMVERKAN_FORWARDED_HEADER`). Empty by default: the TCP peer is the client and the
/// headers are ignored, so a client cannot name itself anything to escape the
/// per-client login limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub trusted: Vec<ipnet::IpNet>,
    pub header: ForwardedHeader,
}

/// The one header read for the client's address. Only one: a proxy that writes one of
/// them passes the other through from the client unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, most ingresses).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(Self::XForwardedFor),
            "forwarded" => Some(Self::Forwarded),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

impl ProxySettings {
    /// A comma-separated list of CIDRs (a bare address is one host).
    pub fn parse_trusted(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or CIDR"))
            })
            .collect()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    /// right-most address in the forwarding header that is not itself a trusted proxy
    /// (addresses to its left were written by the client and prove nothing). `values`
    /// are the header's occurrences in order.
    pub fn client<'a>(&self, peer: IpAddr, values: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = values.into_iter().flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = self.hop_address(hop) else {
                // A hop a trusted proxy wrote but no address ("unknown", an obfuscated
                // name): the proxy that received it is as far as we can see.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }

    fn hop_address(&self, hop: &str) -> Option<IpAddr> {
        let value = match self.header {
            ForwardedHeader::XForwardedFor => hop.trim(),
            ForwardedHeader::Forwarded => hop.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            })?,
        };
        parse_node(value.trim_matches('"'))
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:5678`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(trusted: &str, header: ForwardedHeader) -> ProxySettings {
        ProxySettings {
            trusted: ProxySettings::parse_trusted(trusted).unwrap(),
            header,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_a_trusted_proxy() {
        let none = ProxySettings::default();
        assert_eq!(none.client(ip("10.0.0.5"), ["203.0.113.7"]), ip("10.0.0.5"));
        let p = proxies("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        assert_eq!(p.client(ip("192.0.2.1"), ["203.0.113.7"]), ip("192.0.2.1"));
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let p = proxies("10.0.0.0/8, 172.16.0.1", ForwardedHeader::XForwardedFor);
        let peer = ip("10.0.0.5");
        assert_eq!(p.client(peer, ["203.0.113.7"]), ip("203.0.113.7"));
        // A client that writes its own header only adds to the left.
        assert_eq!(
            p.client(peer, ["1.1.1.1, 203.0.113.7, 172.16.0.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            p.client(peer, ["1.1.1.1", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Garbage from a client to the left is never reached; from a proxy it stops.
        assert_eq!(p.client(peer, ["nonsense, 203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(p.client(peer, ["203.0.113.7, unknown"]), peer);
        // Only proxies: the left-most of them.
        assert_eq!(p.client(peer, ["10.1.1.1"]), ip("10.1.1.1"));
        assert_eq!(p.client(peer, std::iter::empty::<&str>()), peer);
        assert_eq!(
            p.client(ip("::ffff:10.0.0.5"), ["2001:db8::7"]),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn rfc_7239_for_parameters_with_ports_and_brackets() {
        let p = proxies("10.0.0.0/8", ForwardedHeader::Forwarded);
        let peer = ip("10.0.0.5");
        assert_eq!(
            p.client(
                peer,
                [r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            p.client(peer, ["for=\"198.51.100.17:8080\""]),
            ip("198.51.100.17")
        );
        assert_eq!(p.client(peer, ["for=_hidden"]), peer);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(ProxySettings::parse_trusted("10.0.0.0/8, nope").is_err());
        assert!(ProxySettings::parse_trusted("").unwrap().is_empty());
        assert_eq!(ProxySettings::parse_trusted("127.0.0.1").unwrap().len(), 1);
    }
}
