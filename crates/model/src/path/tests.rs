//! Path normalization, named for the rules of RFC 3986 it follows and the ones it tightens.

use super::*;
use proptest::prelude::*;

fn norm(p: &str) -> Result<String, PathError> {
    normalize(p, &PathOptions::default()).map(Cow::into_owned)
}

fn keep_slashes(p: &str) -> Result<String, PathError> {
    let opts = PathOptions {
        merge_slashes: false,
        ..PathOptions::default()
    };
    normalize(p, &opts).map(Cow::into_owned)
}

/// RFC 3986 §5.2.3: a relative path reference merged with the base `/b/c/d;p`.
fn merged(reference: &str) -> String {
    if reference.starts_with('/') {
        reference.to_string()
    } else {
        format!("/b/c/{reference}")
    }
}

#[test]
fn rfc3986_section_5_4_1_normal_examples_resolve_as_the_rfc_says() {
    let cases = [
        ("g", "/b/c/g"),
        ("./g", "/b/c/g"),
        ("g/", "/b/c/g/"),
        ("/g", "/g"),
        (";x", "/b/c/;x"),
        ("g;x", "/b/c/g;x"),
        (".", "/b/c/"),
        ("./", "/b/c/"),
        ("..", "/b/"),
        ("../", "/b/"),
        ("../g", "/b/g"),
        ("../..", "/"),
        ("../../", "/"),
        ("../../g", "/g"),
    ];
    for (reference, want) in cases {
        assert_eq!(norm(&merged(reference)).as_deref(), Ok(want), "{reference}");
    }
}

#[test]
fn rfc3986_section_5_4_2_abnormal_examples_resolve_as_the_rfc_says() {
    let cases = [
        ("/./g", "/g"),
        ("g.", "/b/c/g."),
        (".g", "/b/c/.g"),
        ("g..", "/b/c/g.."),
        ("..g", "/b/c/..g"),
        ("./../g", "/b/g"),
        ("./g/.", "/b/c/g/"),
        ("g/./h", "/b/c/g/h"),
        ("g/../h", "/b/c/h"),
        ("g;x=1/./y", "/b/c/g;x=1/y"),
        ("g;x=1/../y", "/b/c/y"),
    ];
    for (reference, want) in cases {
        assert_eq!(norm(&merged(reference)).as_deref(), Ok(want), "{reference}");
    }
}

#[test]
fn climbing_above_the_root_is_refused_where_the_rfc_would_drop_the_dots() {
    // RFC 3986 §5.4.2 resolves these to "/g"; a gateway answers 400 instead of guessing.
    for reference in ["../../../g", "../../../../g", "/../g"] {
        assert_eq!(
            norm(&merged(reference)),
            Err(PathError::AboveRoot),
            "{reference}"
        );
    }
    assert_eq!(norm("/.."), Err(PathError::AboveRoot));
    assert_eq!(norm("/a/../.."), Err(PathError::AboveRoot));
}

#[test]
fn dot_segments_cannot_bypass_a_prefix() {
    assert_eq!(norm("/public/../admin").as_deref(), Ok("/admin"));
    assert_eq!(norm("/public/./../admin/x").as_deref(), Ok("/admin/x"));
}

#[test]
fn encoded_unreserved_characters_are_decoded_before_matching() {
    assert_eq!(norm("/%61dmin").as_deref(), Ok("/admin"));
    assert_eq!(norm("/%7Euser/%2D%5F").as_deref(), Ok("/~user/-_"));
    // An encoded dot is a dot, so encoded dot segments are dot segments.
    assert_eq!(norm("/public/%2e%2E/admin").as_deref(), Ok("/admin"));
    assert_eq!(norm("/%2e%2e/admin"), Err(PathError::AboveRoot));
}

#[test]
fn other_escapes_stay_encoded_with_upper_case_hex() {
    assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
    assert_eq!(norm("/a%3fb%c3%a9").as_deref(), Ok("/a%3Fb%C3%A9"));
}

#[test]
fn encoded_slashes_are_never_separators() {
    assert_eq!(norm("/a%2Fb").as_deref(), Ok("/a%2Fb"));
    assert_eq!(norm("/a%2f..%2fb").as_deref(), Ok("/a%2F..%2Fb"));
    assert_eq!(norm("/a%5cb").as_deref(), Ok("/a%5Cb"));
}

#[test]
fn encoded_slashes_are_refused_when_configured() {
    let opts = PathOptions {
        escaped_slashes: EscapedSlashes::Reject,
        ..PathOptions::default()
    };
    assert_eq!(normalize("/a%2Fb", &opts), Err(PathError::EscapedSlash));
    assert_eq!(normalize("/a%5cb", &opts), Err(PathError::EscapedSlash));
    assert_eq!(normalize("/a%20b", &opts).as_deref(), Ok("/a%20b"));
}

#[test]
fn malformed_escapes_are_refused() {
    for p in ["/a%", "/a%2", "/a%zz", "/%g0/x"] {
        assert_eq!(norm(p), Err(PathError::BadEscape), "{p}");
    }
}

#[test]
fn repeated_slashes_are_merged_by_default() {
    assert_eq!(norm("//admin").as_deref(), Ok("/admin"));
    assert_eq!(norm("/a//b///c/").as_deref(), Ok("/a/b/c/"));
    assert_eq!(norm("//").as_deref(), Ok("/"));
}

#[test]
fn repeated_slashes_are_kept_when_merging_is_off() {
    assert_eq!(keep_slashes("//admin").as_deref(), Ok("//admin"));
    assert_eq!(keep_slashes("/a//b/").as_deref(), Ok("/a//b/"));
    assert_eq!(keep_slashes("/a//../b").as_deref(), Ok("/a/b"));
    assert_eq!(keep_slashes("/a//.").as_deref(), Ok("/a//"));
}

#[test]
fn only_origin_form_targets_are_accepted() {
    assert_eq!(norm("*"), Err(PathError::NotOriginForm));
    assert_eq!(norm(""), Err(PathError::NotOriginForm));
    assert_eq!(norm("admin"), Err(PathError::NotOriginForm));
}

#[test]
fn ordinary_paths_are_returned_without_copying() {
    for p in [
        "/",
        "/api/v1/items",
        "/.well-known/acme-challenge/x",
        "/a.b/c..d",
    ] {
        assert!(
            matches!(normalize(p, &PathOptions::default()), Ok(Cow::Borrowed(_))),
            "{p}"
        );
    }
}

/// RFC 3986 §5.2.4 written out as the RFC's string-buffer algorithm, to compare with.
fn remove_dot_segments(input: &str) -> String {
    let mut input = input.to_string();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_string();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_string();
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") || input == "/.." {
            let n = if input == "/.." { 3 } else { 4 };
            input.replace_range(..n, "/");
            match output.rfind('/') {
                Some(i) => output.truncate(i),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input.replace_range(..end, "");
        }
    }
    output
}

fn decode_unreserved(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let c = u8::from_str_radix(&p[i + 1..i + 3], 16).unwrap();
            if is_unreserved(c) {
                out.push(c as char);
            } else {
                out.push('%');
                out.push_str(&p[i + 1..i + 3].to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("x.y".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%61".to_string()),
        Just("%2F".to_string()),
        Just("%5c".to_string()),
        Just("%20".to_string()),
        Just("~u".to_string()),
        "[a-z]{1,3}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..8).prop_map(|s| format!("/{}", s.join("/")))
}

proptest! {
    #[test]
    fn normalizing_twice_changes_nothing(p in path(), merge in any::<bool>()) {
        let opts = PathOptions { merge_slashes: merge, ..PathOptions::default() };
        if let Ok(once) = normalize(&p, &opts) {
            let twice = normalize(&once, &opts).unwrap();
            prop_assert!(matches!(twice, Cow::Borrowed(_)), "{p} -> {once} -> {twice}");
        }
    }

    #[test]
    fn a_normalized_path_has_no_dot_segments_empty_segments_or_decodable_escapes(p in path()) {
        if let Ok(n) = normalize(&p, &PathOptions::default()) {
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.contains("//"), "{n}");
            for seg in n.split('/') {
                prop_assert!(seg != "." && seg != "..", "{n}");
            }
            for (i, _) in n.match_indices('%') {
                let c = u8::from_str_radix(&n[i + 1..i + 3], 16).unwrap();
                prop_assert!(!is_unreserved(c), "{n}");
                prop_assert_eq!(&n[i + 1..i + 3], n[i + 1..i + 3].to_ascii_uppercase());
            }
        }
    }

    #[test]
    fn without_merging_it_agrees_with_the_rfc_algorithm_unless_it_climbs_above_the_root(p in path()) {
        let opts = PathOptions { merge_slashes: false, ..PathOptions::default() };
        let rfc = remove_dot_segments(&decode_unreserved(&p));
        match normalize(&p, &opts) {
            Ok(n) => prop_assert_eq!(n.as_ref(), rfc.as_str(), "{}", p),
            Err(e) => prop_assert_eq!(e, PathError::AboveRoot, "{}", p),
        }
    }

    #[test]
    fn encoding_unreserved_characters_does_not_change_the_result(
        segs in prop::collection::vec(segment(), 0..8),
        seed in any::<u64>(),
    ) {
        let mut s = seed;
        let encoded: Vec<String> = segs
            .iter()
            .map(|seg| {
                if seg.contains('%') {
                    return seg.clone();
                }
                seg.chars()
                    .map(|c| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        if s >> 62 == 0 { format!("%{:02x}", c as u8) } else { c.to_string() }
                    })
                    .collect()
            })
            .collect();
        let p = format!("/{}", segs.join("/"));
        let e = format!("/{}", encoded.join("/"));
        let opts = PathOptions::default();
        prop_assert_eq!(normalize(&p, &opts), normalize(&e, &opts));
    }
}
