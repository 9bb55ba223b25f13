//! What a rendered image value points at: a public http(s) URL (passed to the provider), a
//! `data:` URL (checked and passed), or a local file (read and embedded). URLs that only resolve
//! inside the user's own network are refused: DashScope accepts them when the batch is created,
//! but it cannot fetch them, so such requests never complete (reference, vision limits).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// A public http(s) URL, sent as it is.
    Url(String),
    /// A `data:` URL given in the input.
    DataUrl(String),
    /// A file on this machine.
    LocalFile(PathBuf),
}

/// Reads a rendered image value; relative paths are relative to `base_directory` (the input's).
///
/// # Errors
/// A URL of another scheme, or one that does not reach the public internet; the text completes
/// "the image ...".
pub fn image_reference(value: &str, base_directory: &Path) -> Result<ImageReference, String> {
    let value = value.trim();
    if crate::images::data_url::is_data_url(value) {
        return Ok(ImageReference::DataUrl(value.to_owned()));
    }
    let Some((scheme, _)) = value.split_once("://") else {
        let path = Path::new(value);
        return Ok(ImageReference::LocalFile(if path.is_absolute() {
            path.to_owned()
        } else {
            base_directory.join(path)
        }));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => {
            check_public_url(value)?;
            Ok(ImageReference::Url(value.to_owned()))
        }
        "file" => {
            let url = url::Url::parse(value)
                .map_err(|error| format!("`{value}` is not a file URL ({error})"))?;
            let path = url
                .to_file_path()
                .map_err(|()| format!("`{value}` is not a file URL of this machine"))?;
            Ok(ImageReference::LocalFile(path))
        }
        other => Err(format!(
            "`{value}` is a `{other}://` URL; images must be http(s) URLs the provider can fetch, `data:` URLs, or paths of local files"
        )),
    }
}

/// Checks that an http(s) URL names a host on the public internet.
///
/// # Errors
/// Says why the provider could not fetch it.
pub fn check_public_url(value: &str) -> Result<(), String> {
    // The URL parser drops tabs and line breaks silently; the provider would get them.
    // A backslash is read as `/` by some URL parsers and as part of a user name by others, so
    // the host the provider fetches from could differ from the one checked here.
    if value.contains('\\') {
        return Err(format!(
            "`{value}` has a backslash in it, which URL parsers read differently; write `/` or `%5C`"
        ));
    }
    if value
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(format!(
            "`{}` has a space or a line break in it; a cell holds one URL, with spaces written `%20`",
            value.escape_debug()
        ));
    }
    let url = url::Url::parse(value)
        .map_err(|error| format!("`{value}` is not a valid URL ({error})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{}://{}` names {} in the URL, which would be sent to the provider and shown in request lines; use a public or presigned URL instead",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            if url.password().is_some() {
                "a user and password"
            } else {
                "a user"
            }
        ));
    }
    let private = |why: &str| {
        Err(format!(
            "`{value}` points at {why}, which the provider's servers cannot reach (the batch would accept the request and never finish it); use a public URL, or the file's path to embed it"
        ))
    };
    match url.host() {
        None => Err(format!("`{value}` has no host")),
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let local_suffixes = [
                ".localhost",
                ".local",
                ".internal",
                ".lan",
                ".home.arpa",
                ".intranet",
            ];
            if domain == "localhost" || local_suffixes.iter().any(|suffix| domain.ends_with(suffix))
            {
                private("a local host name")
            } else if !domain.contains('.') {
                private("a single-label host name that only resolves inside a local network")
            } else {
                Ok(())
            }
        }
        Some(url::Host::Ipv4(address)) => {
            if is_private_ipv4(address) {
                private("a private, loopback or link-local address")
            } else {
                Ok(())
            }
        }
        Some(url::Host::Ipv6(address)) => {
            if is_private_ipv6(address) {
                private("a private, loopback or link-local address")
            } else {
                Ok(())
            }
        }
    }
}

/// Whether an IPv4 address is not a public unicast one (RFC 6890's special-purpose blocks).
fn is_private_ipv4(address: Ipv4Addr) -> bool {
    let [first, second, third, _] = address.octets();
    address.is_private()
        || address.is_loopback()
        || address.is_link_local()
        || address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        // 0.0.0.0/8 "this network", carrier-grade NAT 100.64.0.0/10, IETF protocol assignments
        // 192.0.0.0/24, benchmarking 198.18.0.0/15, reserved 240.0.0.0/4.
        || first == 0
        || (first == 100 && (64..128).contains(&second))
        || (first == 192 && second == 0 && third == 0)
        || (first == 198 && (18..20).contains(&second))
        || first >= 240
}

/// Whether an IPv6 address is not a public unicast one, including IPv6 forms that carry a
/// private IPv4 address (mapped, compatible, NAT64, 6to4).
fn is_private_ipv6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    let embedded_ipv4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = address.to_ipv4_mapped() {
        return is_private_ipv4(mapped);
    }
    // IPv4-compatible ::a.b.c.d (deprecated) and NAT64 64:ff9b::a.b.c.d.
    if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_private_ipv4(embedded_ipv4(segments[6], segments[7]));
    }
    // 6to4 2002:aabb:ccdd::/48 carries a.b.c.d.
    if segments[0] == 0x2002 {
        return is_private_ipv4(embedded_ipv4(segments[1], segments[2]));
    }
    // Local-use NAT64 64:ff9b:1::/48 and discard-only 100::/64 never reach a public host.
    if segments[..3] == [0x64, 0xff9b, 1] || segments[..4] == [0x100, 0, 0, 0] {
        return true;
    }
    let first = segments[0];
    address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10 (deprecated),
        // documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        || (first == 0x2001 && segments[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_urls_data_urls_or_paths_relative_to_the_input() {
        let base = Path::new("/data/photos");
        assert_eq!(
            image_reference(" https://example.com/a.jpg ", base),
            Ok(ImageReference::Url("https://example.com/a.jpg".to_owned()))
        );
        assert_eq!(
            image_reference("cats/1.png", base),
            Ok(ImageReference::LocalFile(PathBuf::from(
                "/data/photos/cats/1.png"
            )))
        );
        assert_eq!(
            image_reference("/abs/1.png", base),
            Ok(ImageReference::LocalFile(PathBuf::from("/abs/1.png")))
        );
        assert_eq!(
            image_reference("file:///abs/%E7%8C%AB.png", base),
            Ok(ImageReference::LocalFile(PathBuf::from("/abs/猫.png")))
        );
        assert!(matches!(
            image_reference("data:image/png;base64,AAAA", base),
            Ok(ImageReference::DataUrl(_))
        ));
        assert!(
            image_reference("oss://bucket/a.png", base)
                .unwrap_err()
                .contains("`oss://`")
        );
    }

    #[test]
    fn urls_the_provider_cannot_reach_are_refused() {
        for url in [
            "http://localhost:8080/a.png",
            "http://127.0.0.1/a.png",
            "http://10.1.2.3/a.png",
            "http://192.168.1.5/a.png",
            "http://172.16.0.1/a.png",
            "http://169.254.169.254/latest",
            "http://100.64.0.1/a.png",
            "http://[::1]/a.png",
            "http://[fd00::1]/a.png",
            "http://[::ffff:192.168.0.1]/a.png",
            "http://[::127.0.0.1]/a.png",
            "http://[64:ff9b::7f00:1]/a.png",
            "http://[2002:7f00:1::]/a.png",
            "http://[fec0::1]/a.png",
            "http://[ff02::1]/a.png",
            "http://224.0.0.1/a.png",
            "http://240.0.0.1/a.png",
            "http://198.18.0.1/a.png",
            "http://192.0.0.1/a.png",
            "http://2130706433/a.png",
            "https://example.com/a.png\nhttps://example.com/b.png",
            "https://example.com/a b.png",
            "https://user:secret@example.com/a.png",
            "https://user@example.com/a.png",
            "https://example.com\\@10.0.0.1/a.jpg",
            "http://[64:ff9b:1::a00:1]/a.png",
            "http://[100::1]/a.png",
            "http://nas/photos/a.png",
            "http://printer.local/a.png",
            "https://files.corp.internal/a.png",
        ] {
            assert!(check_public_url(url).is_err(), "{url}");
        }
        for url in [
            "https://dashscope.oss-cn-beijing.aliyuncs.com/images/dog_and_girl.jpeg",
            "http://8.8.8.8/a.png",
            "https://[2001:4860::8888]/a.png",
        ] {
            assert!(check_public_url(url).is_ok(), "{url}");
        }
    }
}
