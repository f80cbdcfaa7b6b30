//! The README's curl walkthrough of a resumable upload, run as written: every `$ ` command
//! of the block between `<!-- walkthrough -->` and `<!-- /walkthrough -->` is run with bash
//! against a real `origin` process, in order, and what it prints must match the README's
//! transcript once ids, digests, numbers and dates are masked.
//!
//! `ID=` and `N=` lines stand for what a reader copies from the output above them: the test
//! sets them from the real output (the operation's id, the held length). Needs `curl`
//! (`scripts/install-test-tools.sh` installs it; without it the test says so and skips).

mod running;

use std::process::Command;

use running::Running;

const README: &str = include_str!("../README.md");
/// The address the README's commands use; replaced with the test origin's.
const README_ADDR: &str = "127.0.0.1:8081";

/// One command of the walkthrough and the output the README shows for it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

fn steps() -> Vec<Step> {
    let start = README
        .find("<!-- walkthrough -->")
        .expect("the README has a walkthrough");
    let end = README
        .find("<!-- /walkthrough -->")
        .expect("the walkthrough ends");
    let block = &README[start..end];
    let mut steps: Vec<Step> = Vec::new();
    let mut continued = false;
    for line in block.lines() {
        if line.starts_with("```") || line.starts_with("<!--") {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.trim_end_matches('\\').to_owned(),
                expected: Vec::new(),
            });
            continued = line.ends_with('\\');
        } else if continued {
            let step = steps.last_mut().unwrap();
            step.command.push(' ');
            step.command.push_str(line.trim().trim_end_matches('\\'));
            continued = line.ends_with('\\');
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_owned());
        }
    }
    steps
}

/// Masks what differs from run to run: hex runs (ids, digests), numbers, dates.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 16 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("<hex>");
        } else if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.trim_end().chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn comparable(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| mask(l))
        .collect()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipping: curl not installed (scripts/install-test-tools.sh installs it)");
        return;
    }
    let steps = steps();
    assert!(
        steps.len() >= 6,
        "the walkthrough has its commands: {steps:?}"
    );
    let origin = Running::start("origin", &["--listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let addr = origin.addr.to_string();
    let (mut id, mut held) = (String::new(), String::new());
    let mut transcript = String::new();
    for step in steps {
        let command = step.command.replace(README_ADDR, &addr);
        transcript.push_str(&format!("$ {}\n", step.command));
        if command.starts_with("ID=") {
            transcript.push_str(&format!("# ID={id}\n"));
            continue;
        }
        if command.starts_with("N=") {
            transcript.push_str(&format!("# N={held}\n"));
            continue;
        }
        // A reader types the next command a moment later: the cut connection is noticed.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let output = Command::new("bash")
            .args(["-c", &command])
            .current_dir(dir.path())
            .env("ID", &id)
            .env("N", &held)
            .output()
            .expect("running bash");
        let stdout = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        transcript.push_str(&stdout);
        let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
        for line in &lines {
            if let Some(location) = line.strip_prefix("< request-content-location: /.resumable/") {
                id = location.trim_end_matches("/request").to_owned();
            }
            if let Some(length) = line.strip_prefix("content-length: ") {
                if held.is_empty() {
                    held = length.to_owned();
                }
            }
        }
        assert_eq!(
            comparable(&lines),
            comparable(&step.expected),
            "`{command}` printed:\n{stdout}\nlog:\n{}",
            origin.log()
        );
    }
    eprintln!("--- transcript ---\n{transcript}");
    assert_eq!(id.len(), 32, "the walkthrough learned the operation's id");
}
