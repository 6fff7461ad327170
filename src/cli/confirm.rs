//! The question before anything is removed: `destroy`, and a `deploy` that
//! drops a destination, show what would go and ask on a terminal, as
//! `terraform apply` does. `--yes` answers for the user; without a
//! terminal and without `--yes` the command refuses, so a CI job never
//! hangs on a question and never removes what nobody confirmed.

use std::io::{BufRead, IsTerminal, Write};

use crate::deploy::plan::{Outcome, render};

/// How the question is answered.
pub enum Confirm {
    /// `--yes`.
    Given,
    /// Asked on the terminal: stdin to read, stderr to write.
    Ask,
    /// No terminal and no `--yes`.
    Refuse,
}

impl Confirm {
    /// `--yes`, else a terminal where stdin and stderr are one.
    pub fn from_flag(yes: bool) -> Confirm {
        match yes {
            true => Confirm::Given,
            false if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
                Confirm::Ask
            }
            false => Confirm::Refuse,
        }
    }

    /// The answer for `command`'s `removals`: `Ok` goes ahead.
    pub fn approve(&self, command: &str, removals: &[Outcome]) -> Result<(), String> {
        match self {
            Confirm::Given => Ok(()),
            Confirm::Refuse => Err(format!(
                "{command} would remove {}:\n{}\nThere is no terminal to ask on: run again \
                 with --yes to remove them (or --dry-run to see the whole plan).",
                count(removals),
                lines(removals)
            )),
            Confirm::Ask => {
                let stdin = std::io::stdin();
                ask(command, removals, &mut stdin.lock(), &mut std::io::stderr())
            }
        }
    }
}

/// Shows `removals` on `out` and reads the answer from `answer`: only
/// `yes` goes ahead, as with terraform, so a stray Enter removes nothing.
pub fn ask(
    command: &str,
    removals: &[Outcome],
    answer: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<(), String> {
    let cancelled = |why: &str| format!("{command} cancelled: {why}");
    write!(
        out,
        "{command} will remove {}:\n{}\nRemove them? Only 'yes' will be accepted: ",
        count(removals),
        lines(removals)
    )
    .and_then(|()| out.flush())
    .map_err(|err| cancelled(&format!("cannot write the question ({err})")))?;
    let mut line = String::new();
    answer
        .read_line(&mut line)
        .map_err(|err| cancelled(&format!("cannot read the answer ({err})")))?;
    match line.trim() {
        "yes" => Ok(()),
        "" => Err(cancelled("no answer")),
        other => Err(cancelled(&format!("the answer was {other:?}, not \"yes\""))),
    }
}

fn count(removals: &[Outcome]) -> String {
    match removals.len() {
        1 => "1 resource".to_owned(),
        n => format!("{n} resources"),
    }
}

fn lines(removals: &[Outcome]) -> String {
    removals.iter().map(render).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::{Action, Kind, Status};

    fn removal(name: &str) -> Outcome {
        Outcome {
            kind: Kind::Function,
            name: name.into(),
            destination: Some(name.into()),
            action: Action::Delete,
            detail: String::new(),
            diff: Vec::new(),
            status: Status::Planned,
        }
    }

    fn answered(answer: &str) -> (Result<(), String>, String) {
        let mut out = Vec::new();
        let result = ask(
            "destroy",
            &[removal("s3fan-dst-a"), removal("s3fan-dst-b")],
            &mut answer.as_bytes(),
            &mut out,
        );
        (result, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn only_yes_goes_ahead_and_the_question_names_what_goes() {
        let (result, shown) = answered("yes\n");
        assert_eq!(result, Ok(()));
        assert!(shown.contains("destroy will remove 2 resources"), "{shown}");
        assert!(shown.contains("s3fan-dst-a") && shown.contains("s3fan-dst-b"));
        for no in ["y\n", "no\n", "\n", "", "YES please\n"] {
            let (result, _) = answered(no);
            let error = result.expect_err(no);
            assert!(error.starts_with("destroy cancelled"), "{no:?}: {error}");
        }
    }

    #[test]
    fn without_a_terminal_the_refusal_says_what_would_go_and_how_to_go_on() {
        let error = Confirm::Refuse
            .approve("deploy", &[removal("s3fan-old")])
            .expect_err("refused");
        assert!(error.contains("deploy would remove 1 resource"), "{error}");
        assert!(
            error.contains("s3fan-old") && error.contains("--yes"),
            "{error}"
        );
        assert_eq!(Confirm::Given.approve("deploy", &[removal("x")]), Ok(()));
    }
}
