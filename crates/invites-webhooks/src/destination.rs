//! Where a webhook may be sent: `https://` to a public address, unless the host opts in to
//! private networks (an internal receiver, or the tests' local one).
//!
//! A URL an organization registers is input from outside: without these rules it could point
//! the delivery loop at the host's own network (a metadata service at `169.254.169.254`, an
//! admin port on `127.0.0.1`). The URL is checked when it is registered, and the addresses its
//! name resolves to are checked again when a delivery connects ([`EndpointUrl::allows`]), since
//! a name can resolve to a private address later.

use crate::WebhookError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Whether webhooks may reach private networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// `https://` only, to public addresses only (the default).
    #[default]
    PublicOnly,
    /// Also `http://`, and loopback, private, link-local and other non-public addresses: for a
    /// host whose receivers live on its own network, and for tests.
    AllowPrivate,
}

/// A checked webhook endpoint URL and the reach it was checked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrl {
    url: Url,
    reach: Reach,
}

impl EndpointUrl {
    /// Checks `text` as a webhook endpoint.
    ///
    /// # Errors
    /// [`WebhookError`] (field `url`) for text that is not an absolute URL, a scheme other
    /// than `https` (or `http` with [`Reach::AllowPrivate`]), a user or password in it, a
    /// fragment, no host, or, with [`Reach::PublicOnly`], a host that is a non-public IP
    /// address or `localhost`.
    pub fn parse(text: &str, reach: Reach) -> Result<Self, WebhookError> {
        let url = Url::parse(text.trim())
            .map_err(|_| WebhookError::new("url", "is not an absolute URL"))?;
        match (url.scheme(), reach) {
            ("https", _) | ("http", Reach::AllowPrivate) => {}
            ("http", Reach::PublicOnly) => {
                return Err(WebhookError::new(
                    "url",
                    "must be https:// (http:// only when private networks are allowed)",
                ));
            }
            _ => return Err(WebhookError::new("url", "must be https://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookError::new(
                "url",
                "must not carry a user or password (sign with the endpoint's secret instead)",
            ));
        }
        if url.fragment().is_some() {
            return Err(WebhookError::new("url", "must not have a fragment"));
        }
        let public = match url.host() {
            None => return Err(WebhookError::new("url", "has no host")),
            Some(Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name != "localhost" && !name.ends_with(".localhost")
            }
        };
        if !public && reach == Reach::PublicOnly {
            return Err(WebhookError::new(
                "url",
                "points at a loopback, private or otherwise non-public address",
            ));
        }
        Ok(Self { url, reach })
    }

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The reach it was checked for.
    #[must_use]
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// Whether a delivery may connect to `ip`, an address the URL's host resolved to: any
    /// address with [`Reach::AllowPrivate`], a public one otherwise.
    #[must_use]
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.reach == Reach::AllowPrivate || is_public(ip)
    }
}

/// Whether `ip` is a public unicast address: not unspecified, loopback, private (RFC 1918,
/// unique local), shared (100.64/10), link-local, multicast, broadcast, documentation,
/// benchmarking or reserved; an IPv4 address mapped or translated into IPv6 (`::ffff:0:0/96`,
/// `64:ff9b::/96`) is judged as the IPv4 address it carries.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !non_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let non_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0]); // IPv4-compatible (deprecated)
    !non_public
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_https_endpoints_pass() {
        for url in [
            "https://hooks.example.com/invites",
            "https://93.184.215.14:8443/x?y=1",
            "https://[2606:2800:220:1::1]/",
            "  https://hooks.example.com/  ",
        ] {
            let e = EndpointUrl::parse(url, Reach::PublicOnly).unwrap();
            assert!(e.as_str().starts_with("https://"), "{url}");
        }
    }

    #[test]
    fn private_and_odd_endpoints_are_refused_naming_the_field() {
        for url in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com/x",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://127.0.0.1/",
            "https://localhost:8080/",
            "https://api.localhost/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a00:1]/",
        ] {
            let e = EndpointUrl::parse(url, Reach::PublicOnly).unwrap_err();
            assert_eq!(e.field, "url", "{url}");
        }
    }

    #[test]
    fn allowing_private_networks_admits_them_and_http() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "https://10.1.2.3/",
            "http://localhost/",
        ] {
            let e = EndpointUrl::parse(url, Reach::AllowPrivate).unwrap();
            assert_eq!(e.reach(), Reach::AllowPrivate);
        }
        // Still no other scheme, and no credentials.
        assert!(EndpointUrl::parse("ftp://127.0.0.1/", Reach::AllowPrivate).is_err());
        assert!(EndpointUrl::parse("http://a:b@127.0.0.1/", Reach::AllowPrivate).is_err());
    }

    #[test]
    fn resolved_addresses_are_checked_against_the_reach() {
        let public = EndpointUrl::parse("https://hooks.example.com/", Reach::PublicOnly).unwrap();
        assert!(public.allows("93.184.215.14".parse().unwrap()));
        assert!(public.allows("2606:2800:220:1::1".parse().unwrap()));
        for ip in [
            "127.0.0.1",
            "10.0.0.7",
            "169.254.169.254",
            "::1",
            "fc00::7",
            "::ffff:192.168.0.1",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(!public.allows(ip.parse().unwrap()), "{ip}");
        }
        let private = EndpointUrl::parse("https://hooks.internal/", Reach::AllowPrivate).unwrap();
        assert!(private.allows("10.0.0.7".parse().unwrap()));
    }
}
