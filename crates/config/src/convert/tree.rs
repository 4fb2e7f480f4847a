//! The two trees of a conversion: the Kubernetes object as read (a YAML [`Value`] walked with
//! its key path, every key taken or reported) and the TOML resource as written ([`Node`]s in
//! the order docs/configuration.md lists the keys), and the writer that prints the latter.
//!
//! Most of a Gateway API object copies across unchanged, so most of the conversion is a
//! [`Shape`]: the keys gatehouse reads at each level, in the order they are written. [`copy`]
//! walks a value against its shape, and every key the shape does not name is reported with
//! its path: nothing is lost without a line on stderr.

use super::Cx;
use serde_yaml_ng::Value;
use std::fmt::Write as _;

/// The keys gatehouse reads at one level of an object.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A string, number or boolean.
    Scalar,
    /// A list whose items all have the inner shape.
    List(&'static Shape),
    /// An object with these keys, written in this order; others are reported.
    Object(&'static [(&'static str, Shape)]),
    /// A map of strings to strings with free keys (labels, options, ConfigMap data).
    StringMap,
}

/// A TOML value as written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    Table(Vec<(String, Node)>),
}

/// One `[[Kind]]` entry of the output.
#[derive(Debug, Default)]
pub(crate) struct Resource {
    pub kind: &'static str,
    /// Comment lines above the table (without `# `).
    pub comments: Vec<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub key: String,
    pub value: Node,
    /// Written as `[[Kind.key]]` sections (listeners, rules) instead of inline.
    pub section: bool,
    /// Comment lines above the key.
    pub comments: Vec<String>,
}

impl Resource {
    pub fn new(kind: &'static str) -> Self {
        Resource {
            kind,
            ..Resource::default()
        }
    }

    /// Comment lines alone, where a resource was left out.
    pub fn comment(lines: Vec<String>) -> Self {
        Resource {
            comments: lines,
            ..Resource::default()
        }
    }

    pub fn push(&mut self, key: &str, value: Node) {
        self.fields.push(Field {
            key: key.to_string(),
            value,
            section: false,
            comments: Vec::new(),
        });
    }

    pub fn push_section(&mut self, key: &str, value: Node) {
        self.fields.push(Field {
            key: key.to_string(),
            value,
            section: true,
            comments: Vec::new(),
        });
    }
}

/// An object being taken apart: keys are removed as they are read, and [`Obj::finish`]
/// reports the rest.
#[derive(Debug)]
pub(crate) struct Obj {
    pub path: String,
    map: serde_yaml_ng::Mapping,
}

impl Obj {
    /// `None` (with a report) when `value` is not a mapping.
    pub fn new(cx: &mut Cx, value: Value, path: &str) -> Option<Obj> {
        match value {
            Value::Mapping(map) => Some(Obj {
                path: path.to_string(),
                map,
            }),
            Value::Null => Some(Obj {
                path: path.to_string(),
                map: serde_yaml_ng::Mapping::new(),
            }),
            _ => {
                cx.warn(path, "expected an object; left out");
                None
            }
        }
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, left in place.
    pub fn peek(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Removes `key`; a `null` value counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.shift_remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Removes `key` if it is a string.
    pub fn take_str(&mut self, cx: &mut Cx, key: &str) -> Option<String> {
        let v = self.take(key)?;
        match v {
            Value::String(s) => Some(s),
            other => {
                let path = self.child(key);
                cx.warn(
                    &path,
                    &format!("expected a string, found {}; left out", brief(&other)),
                );
                None
            }
        }
    }

    /// Removes `key` without a report: server-side fields.
    pub fn drop_silently(&mut self, key: &str) {
        self.map.shift_remove(key);
    }

    /// Reports every key not taken.
    pub fn finish(self, cx: &mut Cx) {
        for (k, _) in self.map {
            let key = match k {
                Value::String(s) => s,
                other => brief(&other),
            };
            cx.warn(&join(&self.path, &key), "not supported by gatehouse");
        }
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier.
pub(crate) fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// A short description of a value's type, for messages (never its content: it may be a key).
pub(crate) fn brief(v: &Value) -> String {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "an object",
        Value::Tagged(_) => "a tagged value",
    }
    .to_string()
}

/// Copies `value` as `shape` says; `None` when nothing of it could be kept.
pub(crate) fn copy(cx: &mut Cx, value: Value, path: &str, shape: &Shape) -> Option<Node> {
    match shape {
        Shape::Scalar => scalar(cx, value, path),
        Shape::List(inner) => {
            let Value::Sequence(items) = value else {
                cx.warn(
                    path,
                    &format!("expected a list, found {}; left out", brief(&value)),
                );
                return None;
            };
            let out = items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| copy(cx, v, &format!("{path}[{i}]"), inner))
                .collect();
            Some(Node::Array(out))
        }
        Shape::Object(keys) => {
            let mut obj = Obj::new(cx, value, path)?;
            let table = copy_keys(cx, &mut obj, keys);
            obj.finish(cx);
            Some(Node::Table(table))
        }
        Shape::StringMap => {
            let Value::Mapping(map) = value else {
                cx.warn(
                    path,
                    &format!("expected a map, found {}; left out", brief(&value)),
                );
                return None;
            };
            let mut out = Vec::new();
            for (k, v) in map {
                let Value::String(k) = k else {
                    cx.warn(path, "a key that is not a string; left out");
                    continue;
                };
                match v {
                    Value::String(s) => out.push((k, Node::Str(s))),
                    Value::Bool(b) => out.push((k, Node::Str(b.to_string()))),
                    Value::Number(n) => out.push((k, Node::Str(n.to_string()))),
                    _ => cx.warn(&join(path, &k), "expected a string; left out"),
                }
            }
            Some(Node::Table(out))
        }
    }
}

/// Takes the keys of `shape` from `obj`, in the shape's order.
pub(crate) fn copy_keys(
    cx: &mut Cx,
    obj: &mut Obj,
    keys: &[(&'static str, Shape)],
) -> Vec<(String, Node)> {
    let mut table = Vec::new();
    for (key, inner) in keys {
        if let Some(v) = obj.take(key) {
            let path = obj.child(key);
            if let Some(n) = copy(cx, v, &path, inner) {
                table.push((key.to_string(), n));
            }
        }
    }
    table
}

fn scalar(cx: &mut Cx, value: Value, path: &str) -> Option<Node> {
    match value {
        Value::String(s) => Some(Node::Str(s)),
        Value::Bool(b) => Some(Node::Bool(b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Node::Int(i))
            } else if let Some(f) = n.as_f64() {
                Some(Node::Float(f))
            } else {
                cx.warn(path, "a number out of range; left out");
                None
            }
        }
        Value::Null => None,
        other => {
            cx.warn(
                path,
                &format!("expected a value, found {}; left out", brief(&other)),
            );
            None
        }
    }
}

// ---- writing ----------------------------------------------------------------------------

/// Lines stay within this width where TOML allows: a value too long for one line becomes an
/// array written one entry per line, or a `[table]` / `[[array]]` block of its own.
const WIDTH: usize = 100;

/// Writes one resource as a `[[Kind]]` table; `listeners` and `rules` as `[[Kind.key]]`.
pub(crate) fn write_resource(out: &mut String, r: &Resource) {
    for c in &r.comments {
        comment(out, c);
    }
    if r.kind.is_empty() {
        return;
    }
    let _ = writeln!(out, "[[{}]]", r.kind);
    let mut blocks = Vec::new();
    for f in r.fields.iter().filter(|f| !f.section) {
        for c in &f.comments {
            comment(out, c);
        }
        entry(out, r.kind, &f.key, &f.value, &mut blocks);
    }
    for f in r.fields.iter().filter(|f| f.section) {
        for c in &f.comments {
            comment(out, c);
        }
        blocks.push(Block {
            path: format!("{}.{}", r.kind, key(&f.key)),
            value: &f.value,
            array: true,
        });
    }
    write_blocks(out, blocks);
}

/// A value written under a header of its own, after the keys of its parent.
struct Block<'a> {
    path: String,
    value: &'a Node,
    /// `[[path]]` per entry, else `[path]`.
    array: bool,
}

fn write_blocks(out: &mut String, blocks: Vec<Block<'_>>) {
    for b in blocks {
        let entries: Vec<&Node> = match (b.array, b.value) {
            (true, Node::Array(items)) => items.iter().collect(),
            _ => vec![b.value],
        };
        for e in entries {
            out.push('\n');
            if b.array {
                let _ = writeln!(out, "[[{}]]", b.path);
            } else {
                let _ = writeln!(out, "[{}]", b.path);
            }
            let mut inner = Vec::new();
            if let Node::Table(kv) = e {
                for (k, v) in kv {
                    entry(out, &b.path, k, v, &mut inner);
                }
            }
            write_blocks(out, inner);
        }
    }
}

/// Writes `k = v` on one line if it fits; else as a wrapped array, or defers it to a block.
fn entry<'a>(out: &mut String, parent: &str, k: &str, v: &'a Node, blocks: &mut Vec<Block<'a>>) {
    let one_line = format!("{} = {}", key(k), inline(v));
    if one_line.len() <= WIDTH {
        out.push_str(&one_line);
        out.push('\n');
        return;
    }
    let path = format!("{parent}.{}", key(k));
    match v {
        Node::Table(_) => blocks.push(Block {
            path,
            value: v,
            array: false,
        }),
        Node::Array(items) if items.iter().all(|i| matches!(i, Node::Table(_))) => {
            let fits = items.len() > 1 && items.iter().all(|i| inline(i).len() + 3 <= WIDTH);
            if fits {
                let _ = writeln!(out, "{} = [", key(k));
                for item in items {
                    let _ = writeln!(out, "  {},", inline(item));
                }
                out.push_str("]\n");
            } else {
                blocks.push(Block {
                    path,
                    value: v,
                    array: true,
                });
            }
        }
        Node::Array(items) if items.len() > 1 => {
            let _ = writeln!(out, "{} = [", key(k));
            for item in items {
                let _ = writeln!(out, "  {},", inline(item));
            }
            out.push_str("]\n");
        }
        _ => {
            out.push_str(&one_line);
            out.push('\n');
        }
    }
}

fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "# {line}");
    }
}

/// A key, quoted unless it is bare.
pub(crate) fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { k.to_string() } else { string(k) }
}

/// A value on one line: inline tables and arrays.
pub(crate) fn inline(v: &Node) -> String {
    match v {
        Node::Str(s) => string(s),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => {
            let s = f.to_string();
            if s.contains('.') || s.contains('e') || !f.is_finite() {
                s
            } else {
                format!("{s}.0")
            }
        }
        Node::Bool(b) => b.to_string(),
        Node::Array(items) => {
            let inner: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", inner.join(", "))
        }
        Node::Table(entries) if entries.is_empty() => "{}".to_string(),
        Node::Table(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
    }
}

/// A TOML basic string.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
