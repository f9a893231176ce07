//! Where webhooks may go. A tenant's administrator names the URL, so without a guard huixi would POST
//! signed events to whatever it can reach: the CRM's database port, a cloud metadata endpoint, an
//! admin panel on localhost. A URL is refused when it is, or resolves to, an address that is not
//! public (loopback, private, link-local, CGNAT, unique-local, multicast, reserved), and redirects
//! are not followed. The check runs when the URL is set and again on every delivery, through the
//! resolver the client connects with, so a name that later resolves somewhere private (DNS
//! rebinding) is caught too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240) // reserved
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || first == 0x0064) // NAT64 well-known prefix reaches IPv4 space
}

/// Checks a webhook URL as given: scheme, host, and, when the host is an address, that it is public.
/// Names are checked when they are resolved ([`PublicOnly`]); names that are private by definition
/// are refused here already.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url: not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url: must be http:// or https://".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url: must not carry a user or password (sign with the secret instead)".into());
    }
    if allow_private {
        return Ok(parsed);
    }
    // The URL parser has already read `2130706433`, `0x7f.1` and `[::1]` as the addresses they are.
    match parsed.host() {
        None => return Err("url: has no host".into()),
        Some(url::Host::Ipv4(ip)) if !public_v4(ip) => {
            return Err(format!("url: {ip} is not a public address"))
        }
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
            return Err(format!("url: {ip} is not a public address"))
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost"
                || [".localhost", ".local", ".internal", ".localdomain"]
                    .iter()
                    .any(|s| name.ends_with(s))
                || !name.contains('.')
            {
                return Err(format!("url: {name} is not a public host name"));
            }
        }
        Some(_) => {}
    }
    Ok(parsed)
}

/// A resolver that refuses names resolving to any address that is not public.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(format!("{host} resolves to {}, which is not public", bad.ip()).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_spelling_are_refused() {
        for url in [
            "http://127.0.0.1:3306/",
            "http://localhost:3306/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://db.internal/",
            "http://intranet/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
        ] {
            assert!(check_url(url, false).is_err(), "{url} must be refused");
        }
        for url in [
            "https://crm.example.com/hooks/huixi",
            "http://93.184.216.34:8080/x",
        ] {
            assert!(check_url(url, false).is_ok(), "{url} is public");
        }
        assert!(
            check_url("http://127.0.0.1:9/", true).is_ok(),
            "allowed when told"
        );
    }
}
