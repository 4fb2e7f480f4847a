//! A small decoder over toml's spanned document tree that collects every error.
//!
//! serde stops at the first error and cannot say "unknown key" with a location and key path
//! for every table, so resources are read by hand: [`Table`] hands out the keys a decoder
//! asks for and, in [`Table::finish`], reports every key nobody asked for (with a "did you
//! mean" hint). Type errors name the expected and the found type. Each error is pushed to
//! the [`Cx`] and the decoder goes on with the next key.

use crate::diag::{Diagnostic, KeyPath, SourceFile};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The file being decoded and the errors found so far.
pub(crate) struct Cx<'s> {
    pub src: &'s SourceFile,
    pub diags: &'s mut Vec<Diagnostic>,
}

impl Cx<'_> {
    pub fn error(&mut self, span: &Range<usize>, path: &KeyPath, message: impl Into<String>) {
        self.diags
            .push(self.src.diagnostic(span.start, path, message));
    }
}

/// A value and where it is.
#[derive(Clone)]
pub(crate) struct Value<'a, 'i> {
    pub v: &'a Spanned<DeValue<'i>>,
    pub path: KeyPath,
}

fn type_error(expected: &str, found: &DeValue<'_>) -> String {
    format!("expected {expected}, found {}", found.type_str())
}

impl<'a, 'i> Value<'a, 'i> {
    pub fn span(&self) -> Range<usize> {
        self.v.span()
    }

    /// Reports an error at this value.
    pub fn error(&self, cx: &mut Cx<'_>, message: impl Into<String>) {
        cx.error(&self.span(), &self.path, message);
    }

    pub fn str(&self, cx: &mut Cx<'_>) -> Option<&'a str> {
        match self.v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.error(cx, type_error("a string", other));
                None
            }
        }
    }

    pub fn string(&self, cx: &mut Cx<'_>) -> Option<String> {
        self.str(cx).map(str::to_string)
    }

    pub fn int(&self, cx: &mut Cx<'_>) -> Option<i64> {
        match self.v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(cx, "integer out of range");
                    None
                }
            },
            other => {
                self.error(cx, type_error("an integer", other));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int_in(&self, cx: &mut Cx<'_>, min: i64, max: i64) -> Option<i64> {
        let n = self.int(cx)?;
        if n < min || n > max {
            self.error(cx, format!("must be between {min} and {max}"));
            return None;
        }
        Some(n)
    }

    pub fn port(&self, cx: &mut Cx<'_>) -> Option<u16> {
        self.int_in(cx, 1, 65535).map(|n| n as u16)
    }

    pub fn bool(&self, cx: &mut Cx<'_>) -> Option<bool> {
        match self.v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(cx, type_error("a boolean", other));
                None
            }
        }
    }

    /// The items of an array, each with its indexed path.
    pub fn array(&self, cx: &mut Cx<'_>) -> Option<Vec<Value<'a, 'i>>> {
        match self.v.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Value {
                        v,
                        path: self.path.index(i),
                    })
                    .collect(),
            ),
            other => {
                self.error(cx, type_error("an array", other));
                None
            }
        }
    }

    /// An array of at most `max` items.
    pub fn array_max(&self, cx: &mut Cx<'_>, max: usize) -> Option<Vec<Value<'a, 'i>>> {
        let items = self.array(cx)?;
        if items.len() > max {
            self.error(
                cx,
                format!("must have at most {max} entries, found {}", items.len()),
            );
        }
        Some(items)
    }

    pub fn table(&self, cx: &mut Cx<'_>) -> Option<Table<'a, 'i>> {
        match self.v.get_ref() {
            DeValue::Table(t) => Some(Table {
                t,
                span: self.span(),
                path: self.path.clone(),
                asked: Vec::new(),
                refused: Vec::new(),
            }),
            other => {
                self.error(cx, type_error("a table", other));
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&self, cx: &mut Cx<'_>) -> Option<Vec<(String, Value<'a, 'i>)>> {
        let items = self.array(cx)?;
        Some(
            items
                .into_iter()
                .filter_map(|v| v.string(cx).map(|s| (s, v)))
                .collect(),
        )
    }
}

/// A table being decoded.
pub(crate) struct Table<'a, 'i> {
    t: &'a DeTable<'i>,
    span: Range<usize>,
    pub path: KeyPath,
    asked: Vec<&'static str>,
    /// Keys taken only to be refused with a better message than "unknown key".
    refused: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The value of an optional key.
    pub fn get(&mut self, key: &'static str) -> Option<Value<'a, 'i>> {
        self.asked.push(key);
        self.t.get(key).map(|v| Value {
            v,
            path: self.path.key(key),
        })
    }

    /// A key this table does not have, taken to be refused with a message that says why
    /// (`namespace` on a cluster-scoped kind) instead of "unknown key".
    pub fn refuse(&mut self, key: &'static str) -> Option<Value<'a, 'i>> {
        self.refused.push(key);
        self.t.get(key).map(|v| Value {
            v,
            path: self.path.key(key),
        })
    }

    /// The value of a required key; reports its absence at the table.
    pub fn req(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<Value<'a, 'i>> {
        let v = self.get(key);
        if v.is_none() {
            cx.error(
                &self.span,
                &self.path,
                format!("missing required key `{key}`"),
            );
        }
        v
    }

    pub fn opt_str(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<String> {
        self.get(key).and_then(|v| v.string(cx))
    }

    pub fn req_str(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<String> {
        self.req(cx, key).and_then(|v| v.string(cx))
    }

    pub fn opt_bool(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<bool> {
        self.get(key).and_then(|v| v.bool(cx))
    }

    /// Whether the table has a key (without asking for it).
    pub fn has(&self, key: &str) -> bool {
        self.t.get(key).is_some()
    }

    /// Reports every key no decoder asked for.
    pub fn finish(self, cx: &mut Cx<'_>) {
        #[cfg(test)]
        recorded::table(&self.asked);
        for (key, _) in self.t.iter() {
            let name: &str = key.get_ref();
            if self.asked.contains(&name) || self.refused.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}`");
            if let Some(near) = closest(name, &self.asked) {
                message.push_str(&format!(", did you mean `{near}`?"));
            }
            cx.error(&key.span(), &self.path.key(name), message);
        }
    }
}

/// The known key nearest to an unknown one, if it is near enough to be a typo.
fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What the decoder reads, recorded while a test asks: the keys of every table it finished
/// and every list of allowed values it checked. The schema tests compare both with the
/// JSON Schema, so a key or value added to one and not the other fails a test.
#[cfg(test)]
pub(crate) mod recorded {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// Sets of names: table keys, or the values a key allows.
    pub type Names = BTreeSet<&'static str>;

    #[derive(Default)]
    struct Recording {
        tables: BTreeSet<Names>,
        choices: BTreeSet<Names>,
    }

    thread_local! {
        static ON: RefCell<Option<Recording>> = const { RefCell::new(None) };
    }

    pub fn table(keys: &[&'static str]) {
        ON.with_borrow_mut(|r| {
            if let Some(r) = r {
                r.tables.insert(keys.iter().copied().collect());
            }
        });
    }

    pub fn choice(allowed: &[&'static str]) {
        ON.with_borrow_mut(|r| {
            if let Some(r) = r {
                r.choices.insert(allowed.iter().copied().collect());
            }
        });
    }

    /// Runs `f` and returns the key sets of the tables and the allowed-value sets it met.
    pub fn during(f: impl FnOnce()) -> (BTreeSet<Names>, BTreeSet<Names>) {
        ON.with_borrow_mut(|r| *r = Some(Recording::default()));
        f();
        let r = ON.with_borrow_mut(Option::take).unwrap_or_default();
        (r.tables, r.choices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestion_names_the_nearest_known_key() {
        assert_eq!(
            closest("hostnmes", &["hostnames", "rules"]),
            Some("hostnames")
        );
        assert_eq!(closest("parentrefs", &["parentRefs"]), Some("parentRefs"));
        assert_eq!(closest("zzzz", &["hostnames", "rules"]), None);
    }
}
