//! Every `realty` command README.md and docs/*.md show exists, with the flags shown: a
//! command line of a code block must parse as the CLI parses it (nothing is run); a command
//! named in the text (`realty markets add --every`) must name subcommands and flags that
//! exist.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

use super::Cli;

/// One documented command: where it is, its words after `realty`, and whether it is a whole
/// command line (a code block's) or a mention in the text.
#[derive(Debug)]
struct Documented {
    at: String,
    words: Vec<String>,
    whole: bool,
}

fn markdown_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The words after the program of a shell line that runs the CLI (`realty ...`,
/// `cargo run -p realty-cli -- ...`, `target/release/realty ...`, after any `VAR=value`), up
/// to the first shell operator or comment.
fn cli_words(line: &str) -> Option<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ");
    let words = shlex::split(line)?;
    let mut words = words.into_iter().skip_while(|w| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
    });
    let program = words.next()?;
    let rest: Vec<String> = match program.as_str() {
        "realty" | "target/release/realty" | "target/debug/realty" => words.collect(),
        "cargo" => {
            let all: Vec<String> = words.collect();
            let runs_cli = all.first().is_some_and(|w| w == "run")
                && all.windows(2).any(|w| w[0] == "-p" && w[1] == "realty-cli");
            let dashes = all.iter().position(|w| w == "--")?;
            if !runs_cli {
                return None;
            }
            all[dashes + 1..].to_vec()
        }
        _ => return None,
    };
    let mut words = Vec::new();
    for word in rest {
        if matches!(word.as_str(), "|" | "||" | "&&" | ";" | ">" | "<" | "2>&1")
            || word.starts_with('#')
        {
            break;
        }
        // Usage syntax: `[--apply]` is the flag `--apply`.
        let word = word.trim_start_matches('[').trim_end_matches(']');
        // A word ending a clause (`realty curate, realty check`, `realty bench: ...`) ends
        // the command: what follows is prose.
        if let Some(last) = word.strip_suffix([',', ':']) {
            words.push(last.to_owned());
            break;
        }
        words.push(word.to_owned());
    }
    Some(words)
}

/// The `realty` command lines of a markdown file's code blocks (a line ending in `\` goes on
/// on the next) and its inline code spans.
fn documented(path: &Path) -> Vec<Documented> {
    let text = std::fs::read_to_string(path).expect("a markdown file");
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut found = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            // A comment, or a diagram's column of prose after a run of spaces, is no part
            // of the command.
            let line = line.split(" # ").next().unwrap_or_default();
            let line = line.split("   ").next().unwrap_or_default();
            if let Some(head) = line.trim_end().strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            let whole = std::mem::take(&mut pending) + line;
            if let Some(words) = cli_words(&whole) {
                found.push(Documented {
                    at,
                    words,
                    whole: true,
                });
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1
                && let Some(words) = cli_words(span)
            {
                found.push(Documented {
                    at: at.clone(),
                    words,
                    whole: false,
                });
            }
        }
    }
    found
}

/// Whether `flag` (`--name`, `--name=value` or `-n`) is an argument of `command` or a global
/// one.
fn has_flag(command: &clap::Command, flag: &str) -> bool {
    let flag = flag.split_once('=').map_or(flag, |(f, _)| f);
    if matches!(flag, "--help" | "-h" | "--version" | "-V") {
        return true;
    }
    command
        .get_arguments()
        .any(|a| match flag.strip_prefix("--") {
            Some(long) => {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&long))
            }
            None => flag
                .chars()
                .nth(1)
                .is_some_and(|c| a.get_short() == Some(c)),
        })
}

/// Walks `words` down the command tree: each subcommand and flag must exist.
fn check_names(root: &clap::Command, words: &[String]) -> Result<(), String> {
    let mut command = root;
    let mut path = vec!["realty".to_owned()];
    for word in words {
        if word.starts_with('-') && word.len() > 1 {
            if !has_flag(command, word) {
                return Err(format!("`{}` has no flag {word}", path.join(" ")));
            }
        } else if command.has_subcommands() {
            // `add|remove|list`: each alternative must exist; the walk goes on in the first.
            let mut alternatives = word.split('|');
            let first = alternatives.next().unwrap_or_default();
            if let Some(missing) = alternatives.find(|w| command.find_subcommand(w).is_none()) {
                return Err(format!("`{}` has no subcommand {missing}", path.join(" ")));
            }
            match command.find_subcommand(first) {
                Some(sub) => {
                    command = sub;
                    path.push(first.to_owned());
                }
                None => return Err(format!("`{}` has no subcommand {word}", path.join(" "))),
            }
        }
    }
    Ok(())
}

#[test]
fn every_documented_realty_command_exists_with_its_flags() {
    let root = Cli::command();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        for doc in documented(&file) {
            checked += 1;
            if let Err(e) = check_names(&root, &doc.words) {
                problems.push(format!("{}: realty {}: {e}", doc.at, doc.words.join(" ")));
                continue;
            }
            if doc.whole {
                let argv = std::iter::once("realty".to_owned()).chain(doc.words.iter().cloned());
                if let Err(e) = root.clone().try_get_matches_from(argv) {
                    use clap::error::ErrorKind as K;
                    if !matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
                        let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                        problems.push(format!(
                            "{}: realty {}: {first}",
                            doc.at,
                            doc.words.join(" ")
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} documented commands found: is the extraction broken?"
    );
    assert!(
        problems.is_empty(),
        "{} documented commands do not exist as shown:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_command_that_does_not_exist_is_caught() {
    let root = Cli::command();
    let words = |line: &str| cli_words(line).expect("a realty line");
    assert!(check_names(&root, &words("realty markets add x --every 30m")).is_ok());
    assert!(check_names(&root, &words("realty markets frobnicate")).is_err());
    assert!(check_names(&root, &words("realty markets add|list")).is_ok());
    assert!(check_names(&root, &words("realty markets add|frobnicate")).is_err());
    assert_eq!(
        words("realty replay-raw [--apply]"),
        vec!["replay-raw", "--apply"]
    );
    assert_eq!(words("realty curate, realty check"), vec!["curate"]);
    assert!(check_names(&root, &words("realty markets add x --no-such-flag")).is_err());
    assert!(
        check_names(
            &root,
            &words("cargo run -p realty-cli -- up --no-such-flag")
        )
        .is_err()
    );
    assert_eq!(words("AWS_REGION=x realty down # stop it"), vec!["down"]);
    assert!(cli_words("cargo run -p realty-sim -- x").is_none());
    // A whole line missing a required flag fails to parse.
    let argv = ["realty", "report", "--json"];
    assert!(root.try_get_matches_from(argv).is_err());
}
