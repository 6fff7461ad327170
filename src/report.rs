//! What every command returns: a value that prints as text or as JSON and
//! says whether the command did what it was asked, which is its exit status.

pub trait Report: serde::Serialize {
    /// The text the command prints (with `--output text`).
    fn render_text(&self) -> String;

    /// Whether the command succeeded: exit 0, else 1.
    fn ok(&self) -> bool;
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.0 days`.
pub fn duration_text(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_in_the_unit_that_suits_them() {
        let text: Vec<String> = [45.0, 720.0, 12_600.0, 259_200.0]
            .into_iter()
            .map(super::duration_text)
            .collect();
        assert_eq!(text, ["45 s", "12 min", "3.5 h", "3.0 days"]);
    }
}
