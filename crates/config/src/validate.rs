//! Value rules of the Gateway API schema (its OpenAPI patterns and limits), one function per
//! rule, each returning the message an operator reads.

use std::time::Duration;

fn is_dns_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// A Kubernetes object name (DNS-1123 subdomain): at most 253 characters of lowercase
/// letters, digits, '-' and '.', starting and ending with a letter or digit.
pub fn object_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| is_dns_label_char(b) || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a valid name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// A namespace name (DNS-1123 label): at most 63 lowercase letters, digits and '-'.
pub fn namespace_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(is_dns_label_char)
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a valid namespace: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// A listener or rule name (SectionName): DNS-1123 subdomain syntax.
pub fn section_name(s: &str) -> Result<(), String> {
    object_name(s).map_err(|_| {
        format!("\"{s}\" is not a valid section name: use lowercase letters, digits, '-' and '.'")
    })
}

/// An HTTP header name (an RFC 7230 token), at most 256 characters.
pub fn header_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("\"{s}\" is not a valid HTTP header name"))
    }
}

/// A header value: no control characters other than tab.
pub fn header_value(s: &str) -> Result<(), String> {
    if s.len() > 4096 || s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        Err("header values must be at most 4096 characters without control characters".into())
    } else {
        Ok(())
    }
}

/// An Exact or PathPrefix path value (the Gateway API's HTTPPathMatch rules).
pub fn path_value(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path \"{s}\" must start with '/'"));
    }
    if s.len() > 1024 {
        return Err("path must be at most 1024 characters".into());
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if s.contains(bad) {
            return Err(format!("path \"{s}\" must not contain \"{bad}\""));
        }
    }
    if s.ends_with("/..") || s.ends_with("/.") {
        return Err(format!("path \"{s}\" must not end with \"/.\" or \"/..\""));
    }
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '%' {
            let hex = s.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(format!(
                    "path \"{s}\" has a '%' not followed by two hex digits"
                ));
            }
            chars.next();
            chars.next();
            continue;
        }
        if !(c.is_ascii_alphanumeric() || "-/._~!$&'()*+,;=:@".contains(c)) {
            return Err(format!(
                "path \"{s}\" has the character '{c}', which must be percent-encoded"
            ));
        }
    }
    Ok(())
}

/// A GEP-2257 duration: one to four `<1-5 digits><h|m|s|ms>` parts, e.g. `1h30m`, `500ms`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "\"{s}\" is not a duration: use 1 to 4 parts of up to 5 digits and a unit h, m, s or ms, e.g. \"10s\", \"1m30s\", \"500ms\""
        )
    };
    let mut rest = s;
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(err());
        };
        rest = &rest[len..];
        total += unit * n as u32;
        parts += 1;
        if parts > 4 {
            return Err(err());
        }
    }
    if parts == 0 {
        return Err(err());
    }
    Ok(total)
}

/// A Kubernetes label key or value: at most 63 characters of alphanumerics, '-', '_', '.'
/// (a key may have a DNS prefix and '/').
pub fn label(key: &str, value: &str) -> Result<(), String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let token = |s: &str, empty_ok: bool| {
        (empty_ok && s.is_empty())
            || (!s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && s.as_bytes()[0].is_ascii_alphanumeric()
                && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
    };
    if !token(name, false) || key.len() > 253 + 64 {
        return Err(format!("\"{key}\" is not a valid label key"));
    }
    if !token(value, true) {
        return Err(format!("\"{value}\" is not a valid label value"));
    }
    Ok(())
}

/// "an HTTP", "a TLS": the indefinite article for a protocol name read letter by letter.
pub fn with_article(protocol: &str) -> String {
    let vowel_sound = protocol
        .chars()
        .next()
        .is_some_and(|c| "AEFHILMNORSX".contains(c.to_ascii_uppercase()));
    format!("{} {protocol}", if vowel_sound { "an" } else { "a" })
}

/// The HTTP methods a match may name.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_gep_2257() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert_eq!(duration("1h1m1s1ms"), Ok(Duration::from_millis(3_661_001)));
        for bad in [
            "",
            "10",
            "1.5s",
            "100000s",
            "1d",
            "1h1m1s1ms1h",
            "-1s",
            "1 s",
            "s",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_follow_the_gateway_api_rules() {
        assert!(path_value("/").is_ok());
        assert!(path_value("/a/b%20c/~d").is_ok());
        for bad in [
            "a", "//x", "/a/./b", "/a/../b", "/a%2fb", "/a#b", "/a/..", "/a/.", "/a b", "/a%zz",
        ] {
            assert!(path_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_dns_1123() {
        assert!(object_name("my-gateway.v1").is_ok());
        assert!(object_name("My").is_err());
        assert!(object_name("-a").is_err());
        assert!(namespace_name("a.b").is_err());
        assert!(header_name("X-Header_1").is_ok());
        assert!(header_name("bad header").is_err());
    }
}
