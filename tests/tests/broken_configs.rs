//! The broken-configuration corpus: every file under `tests/corpus/broken/` is a
//! configuration `gatehouse check` must reject with exactly the errors its `# expect:` lines
//! give, in order, without panicking.
//!
//! A case is installed as `gatehouse.toml`, unless a `# file: REL` line places it elsewhere
//! (for example `conf.d/routes.toml`, beside an empty `gatehouse.toml`).

use gatehouse_tests::{ConfigDir, repo_root, text};

struct Case {
    name: String,
    file: String,
    text: String,
    expect: Vec<String>,
}

fn cases() -> Vec<Case> {
    let dir = repo_root().join("tests/corpus/broken");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read case");
            let mut file = "gatehouse.toml".to_string();
            let mut expect = Vec::new();
            for line in text.lines() {
                if let Some(e) = line.strip_prefix("# expect: ") {
                    expect.push(e.to_string());
                } else if let Some(f) = line.strip_prefix("# file: ") {
                    file = f.trim().to_string();
                }
            }
            Case {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                file,
                text,
                expect,
            }
        })
        .collect()
}

#[test]
fn corpus_has_at_least_forty_cases_each_with_expectations() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "only {} broken configurations",
        cases.len()
    );
    for c in &cases {
        assert!(!c.expect.is_empty(), "{} has no `# expect:` line", c.name);
    }
}

#[test]
fn every_broken_configuration_is_rejected_with_its_located_errors() {
    let mut failures = Vec::new();
    for case in cases() {
        let dir = ConfigDir::new();
        if case.file != "gatehouse.toml" {
            dir.write("gatehouse.toml", "");
        }
        dir.write(&case.file, &case.text);
        let out = dir.check(&[]);
        let (stdout, stderr) = text(&out);
        let mut lines: Vec<&str> = stderr.lines().collect();
        let summary = lines.pop().unwrap_or("");
        let ok = out.status.code() == Some(1)
            && !stderr.contains("panicked")
            && summary.starts_with("configuration rejected")
            && lines == case.expect;
        if !ok {
            failures.push(format!(
                "{}: exit {:?}\n  expected:\n    {}\n  got stderr:\n    {}\n  stdout: {}",
                case.name,
                out.status.code(),
                case.expect.join("\n    "),
                stderr.lines().collect::<Vec<_>>().join("\n    "),
                stdout.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
