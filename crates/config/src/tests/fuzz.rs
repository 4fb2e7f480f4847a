//! The loader under arbitrary input (run by `cargo test`, so in CI): whatever bytes a file
//! holds, a load ends in a snapshot or in errors that each name a file, a line and a column
//! inside it — never in a panic.

use crate::{SourceFile, load};
use proptest::prelude::*;
use std::path::Path;

const EXAMPLES: [&str; 6] = [
    include_str!("../../../../etc/gatehouse/gatehouse.toml"),
    include_str!("../../../../etc/gatehouse/examples/basic-http.toml"),
    include_str!("../../../../etc/gatehouse/examples/basic-https.toml"),
    include_str!("../../../../etc/gatehouse/examples/tls-passthrough.toml"),
    include_str!("../../../../etc/gatehouse/examples/load-balancing.toml"),
    include_str!("../../../../etc/gatehouse/examples/tcp.toml"),
];

/// Loads `main` as gatehouse.toml and `extra` as conf.d/extra.toml; checks every error is
/// located inside its file.
fn load_and_check(main: &str, extra: &str) -> Result<(), TestCaseError> {
    let reader = |_: &Path| Ok(b"not a certificate".to_vec());
    let files = [
        SourceFile::new("gatehouse.toml", "/x/gatehouse.toml", main),
        SourceFile::new("conf.d/extra.toml", "/x/conf.d/extra.toml", extra),
    ];
    if let Err(diags) = load(&files, &reader, 1) {
        prop_assert!(!diags.0.is_empty());
        for d in &diags.0 {
            let text = if d.file == "gatehouse.toml" {
                main
            } else {
                extra
            };
            prop_assert!(
                d.file == "gatehouse.toml" || d.file == "conf.d/extra.toml",
                "{d}"
            );
            prop_assert!(d.line >= 1 && d.column >= 1, "{d}");
            prop_assert!(
                d.line <= text.lines().count().max(1) + 1,
                "{d} past the end"
            );
        }
    }
    Ok(())
}

/// A valid example with a few bytes replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = String> {
    (
        0..EXAMPLES.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6),
    )
        .prop_map(|(which, edits)| {
            let mut bytes = EXAMPLES[which].as_bytes().to_vec();
            for (at, op, b) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                const TOML_BYTES: &[u8] = b"=[]{}\"#.,\n0-";
                let b = if b.is_ascii() {
                    b
                } else {
                    TOML_BYTES[usize::from(b) % TOML_BYTES.len()]
                };
                match op {
                    0 => bytes[i] = b,
                    1 => bytes.insert(i, b),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_load_or_fail_with_located_errors(
        main in prop::collection::vec(any::<u8>(), 0..400),
        extra in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        load_and_check(&String::from_utf8_lossy(&main), &String::from_utf8_lossy(&extra))?;
    }

    #[test]
    fn mutated_examples_load_or_fail_with_located_errors(main in mutated(), extra in mutated()) {
        load_and_check(&main, &extra)?;
    }

    #[test]
    fn toml_shaped_garbage_loads_or_fails_with_located_errors(
        main in "([\\[\\]{}=\",.#a-zA-Z0-9 \n]|Gateway|HTTPRoute|listeners|limits|port|name){0,120}",
    ) {
        load_and_check(&main, "")?;
    }
}
