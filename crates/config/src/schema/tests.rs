//! The schema against the decoder. The decoder is run over the every-key fixture, the
//! shipped configuration and the examples while it records what it reads
//! ([`crate::decode::recorded`]); what it records must be what the schema describes, both
//! ways, so a key or a value added to one and not the other fails here.

use super::json_schema;
use crate::SourceFile;
use crate::decode::recorded::{self, Names};
use gatehouse_model::Kind;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixture that sets every key, the shipped gatehouse.toml and every example.
fn files() -> Vec<PathBuf> {
    let mut files = vec![
        repo().join("tests/corpus/schema/every-key.toml"),
        repo().join("etc/gatehouse/gatehouse.toml"),
    ];
    let examples = repo().join("etc/gatehouse/examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("etc/gatehouse/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    files.extend(names);
    files
}

/// What the decoder reads in `files()`: the key sets of its tables and its value lists.
fn decoder_reads() -> (BTreeSet<Names>, BTreeSet<Names>) {
    recorded::during(|| {
        for path in files() {
            let text = std::fs::read_to_string(&path).expect("read");
            let src = SourceFile::new("gatehouse.toml", &path, text);
            if let Err(e) = crate::parse(&[src]) {
                panic!("{} does not decode:\n{e}", path.display());
            }
        }
    })
}

/// Follows `#/definitions/Name`.
fn resolve<'v>(root: &'v Value, v: &'v Value) -> &'v Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/definitions/").expect("local ref");
            &root["definitions"][name]
        }
        None => v,
    }
}

/// The alternatives of a `oneOf` or `anyOf` (a tagged or untagged enum).
fn alternatives(v: &Value) -> &[Value] {
    ["oneOf", "anyOf"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_array))
        .map_or(&[], Vec::as_slice)
}

fn property_names(v: &Value) -> BTreeSet<String> {
    v.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// What the schema describes below the top level, reached from it through `$ref`s: the key
/// set of every table (a tagged or untagged enum's alternatives count as one table with all
/// their keys, as the decoder reads them) and the string values of every enum.
#[derive(Default)]
struct Described {
    tables: BTreeSet<BTreeSet<String>>,
    enums: BTreeSet<BTreeSet<String>>,
    seen: BTreeSet<String>,
}

impl Described {
    fn of(root: &Value) -> Described {
        let mut d = Described::default();
        for v in root["properties"].as_object().expect("properties").values() {
            d.walk(root, v);
        }
        d
    }

    fn walk(&mut self, root: &Value, v: &Value) {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            if self.seen.insert(r.to_string()) {
                self.walk(root, resolve(root, v));
            }
            return;
        }
        let strings = |list: &Value| -> Option<BTreeSet<String>> {
            list.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        if let Some(values) = v.get("enum").and_then(strings) {
            self.enums.insert(values);
        }
        let alternatives = alternatives(v);
        if !alternatives.is_empty() {
            let consts: Option<BTreeSet<String>> = alternatives
                .iter()
                .map(|a| a.get("const").and_then(Value::as_str).map(str::to_string))
                .collect();
            let tags: Option<BTreeSet<String>> = alternatives
                .iter()
                .map(|a| {
                    a.pointer("/properties/type/const")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            self.enums.extend(consts.into_iter().chain(tags));
            let keys: BTreeSet<String> = alternatives
                .iter()
                .flat_map(|a| property_names(resolve(root, a)))
                .collect();
            if !keys.is_empty() {
                self.tables.insert(keys);
            }
            for a in alternatives {
                let a = resolve(root, a);
                for p in a
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    self.walk(root, p.1);
                }
            }
            return;
        }
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            self.tables.insert(props.keys().cloned().collect());
            for p in props.values() {
                self.walk(root, p);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(x) = v.get(key).filter(|x| x.is_object()) {
                self.walk(root, x);
            }
        }
    }
}

fn owned(names: &Names) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Each set of `ours` that `theirs` lacks, with what its nearest set in `theirs` (the most
/// names in common) has more and less, so a failure names the key or value that differs.
fn differences(
    ours: &BTreeSet<BTreeSet<String>>,
    theirs: &BTreeSet<BTreeSet<String>>,
) -> Vec<String> {
    ours.difference(theirs)
        .map(|set| {
            let nearest = theirs
                .iter()
                .max_by_key(|t| t.intersection(set).count())
                .cloned()
                .unwrap_or_default();
            let only: Vec<_> = set.difference(&nearest).collect();
            let lacks: Vec<_> = nearest.difference(set).collect();
            format!("{set:?}\n    has {only:?} where the nearest other has {lacks:?}")
        })
        .collect()
}

/// Both ways: what the decoder reads and what the schema describes.
fn assert_same(
    what: &str,
    decoded: &BTreeSet<BTreeSet<String>>,
    described: &BTreeSet<BTreeSet<String>>,
) {
    let only_decoded = differences(decoded, described);
    let only_described = differences(described, decoded);
    assert!(
        only_decoded.is_empty() && only_described.is_empty(),
        "{what} the decoder reads and the schema lacks:\n{}\n\
         {what} the schema describes and the decoder does not read (or the every-key fixture does not reach):\n{}",
        only_decoded.join("\n"),
        only_described.join("\n")
    );
}

#[test]
fn every_table_the_decoder_reads_has_the_keys_of_a_table_of_the_schema_and_back() {
    let (tables, _) = decoder_reads();
    let decoded: BTreeSet<BTreeSet<String>> = tables.iter().map(owned).collect();
    let described = Described::of(&json_schema()).tables;
    assert!(described.len() > 60, "{}", described.len());
    assert_same("tables", &decoded, &described);
}

#[test]
fn every_value_list_the_decoder_checks_is_an_enum_of_the_schema_and_back() {
    let (_, choices) = decoder_reads();
    let decoded: BTreeSet<BTreeSet<String>> = choices.iter().map(owned).collect();
    let mut described = Described::of(&json_schema()).enums;
    // A listener's protocol is any string to the decoder (an unknown one is reported in
    // status as UnsupportedProtocol); the schema offers the ones gatehouse serves.
    let protocols = ["HTTP", "HTTPS", "TLS", "TCP", "UDP"].map(String::from);
    assert!(described.remove(&BTreeSet::from(protocols)));
    assert!(described.len() > 15, "{}", described.len());
    assert_same("value lists", &decoded, &described);
}

#[test]
fn the_top_level_keys_are_the_resource_kinds_and_the_daemon_tables() {
    let schema = json_schema();
    let top = property_names(&schema);
    let expected: BTreeSet<String> = Kind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .chain(crate::parse::SETTINGS_TABLES.map(String::from))
        .collect();
    assert_eq!(top, expected);
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
    for kind in Kind::ALL {
        assert_eq!(
            schema["properties"][kind.as_str()]["type"],
            "array",
            "{kind} is an array of tables"
        );
    }
}

#[test]
fn the_directive_names_the_installed_schema_as_a_file_url() {
    assert_eq!(
        super::DIRECTIVE,
        format!("#:schema file://{}", super::INSTALLED_PATH)
    );
}

#[test]
fn the_schema_is_draft_7_and_has_no_null() {
    let text = super::json_schema_text();
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "draft 7: what TOML language servers read"
    );
    assert!(!text.contains("\"null\""), "TOML has no null");
    assert!(text.ends_with("}\n"));
}
