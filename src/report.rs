//! What every command returns: a value that prints as text or as JSON and
//! says whether the command did what it was asked, which is its exit status.

pub trait Report: serde::Serialize {
    /// The text the command prints (with `--output text`).
    fn render_text(&self) -> String;

    /// Whether the command succeeded: exit 0, else 1.
    fn ok(&self) -> bool;
}
