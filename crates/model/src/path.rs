//! Request path normalization: the path a route matches and a backend receives.
//!
//! Routing on the raw path lets `/public/../admin`, `//admin` or `/%61dmin` slip past a rule
//! for `/admin` while a backend that normalizes serves `/admin` (the Envoy CVE-2019-9901
//! class). So before matching, like Envoy Gateway and nginx, the path is normalized and the
//! normalized form is what the backend gets:
//!
//! 1. it must be origin-form (start with `/`), else 400;
//! 2. percent-escapes of unreserved characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`) are
//!    decoded, the hex digits of every other escape are upper-cased (§6.2.2.1), and a `%`
//!    not followed by two hex digits is an error;
//! 3. `%2F` and `%5C` are never decoded into separators: kept as they are, or rejected when
//!    [`EscapedSlashes::Reject`] is set;
//! 4. runs of `/` are merged into one (unless `merge_slashes` is off);
//! 5. dot segments are removed (§5.2.4); a `..` that would climb above the root is an error
//!    rather than being dropped silently.
//!
//! The query string is never touched. Normalizing a normalized path changes nothing.

use std::borrow::Cow;

/// How `%2F` (`/`) and `%5C` (`\`) in a path are handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum EscapedSlashes {
    /// Left encoded: matched and forwarded as `%2F` / `%5C`, never as a separator.
    #[default]
    Keep,
    /// The request is answered 400.
    Reject,
}

/// The normalization settings of `[http]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PathOptions {
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Keep,
        }
    }
}

/// Why a path is refused (each answered 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotOriginForm,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    #[error("the path has an encoded slash or backslash")]
    EscapedSlash,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` may need work: any escape, any dot segment, any empty segment. Most paths
/// have none and are returned as they are without allocating.
fn needs_work(path: &[u8], merge_slashes: bool) -> bool {
    path.windows(2)
        .any(|w| (w[0] == b'/' && w[1] == b'.') || (merge_slashes && w == b"//") || w[0] == b'%')
        || path.last() == Some(&b'%')
}

/// Normalizes a request path (without its query); see the module documentation.
pub fn normalize<'a>(path: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if !needs_work(bytes, opts.merge_slashes) {
        return Ok(Cow::Borrowed(path));
    }
    // Pass 1: escapes. Unreserved characters are decoded, everything else stays encoded with
    // upper-case hex digits.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let c = hi << 4 | lo;
        if is_unreserved(c) {
            decoded.push(c);
        } else {
            if matches!(c, b'/' | b'\\') && opts.escaped_slashes == EscapedSlashes::Reject {
                return Err(PathError::EscapedSlash);
            }
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            decoded.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
        }
        i += 3;
    }
    // Pass 2: dot segments and empty segments. The path starts with '/', so the first part
    // of the split is empty and skipped. `trailing` remembers that the last segment stood
    // for a directory (`.`, `..`, or an empty segment that was merged away).
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split(|&b| b == b'/').skip(1) {
        trailing = true;
        match seg {
            b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            b"" if opts.merge_slashes => {}
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if segments.is_empty() || trailing {
        out.push(b'/');
    }
    if out == bytes {
        return Ok(Cow::Borrowed(path));
    }
    // Only ASCII was decoded, removed or inserted, and multi-byte UTF-8 sequences hold no
    // ASCII bytes, so the result is valid UTF-8 whenever the input was.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::BadEscape)
}

#[cfg(test)]
mod tests;
