//! `S3FAN_DEST`, which stands for deploy's and init's `--dest` list as
//! `S3FAN_SOURCE` stands for `--source`, so a CI job can hold the whole
//! fan-out in its environment. clap reads the other variables; a list
//! needs a separator, and none is safe inside a key prefix (S3 keys may hold
//! any character), so the list is read here, where a comma inside a prefix
//! can be refused with the form that holds it.

use std::ffi::OsString;

use super::args::Settings;
use crate::fanout::spec::{self, SpecError};

/// The variable that stands for deploy's and init's `--dest` where no
/// `--dest` is given, as `S3FAN_SOURCE` stands for `--source`. Like `dest`
/// in `s3fan.toml`, the other commands do not read it: they act on the
/// deployed destinations unless `--dest` names some.
const DEST_VARIABLE: &str = "S3FAN_DEST";

impl Settings {
    /// `--dest` from [`DEST_VARIABLE`] where no flag gives one (a flag wins
    /// over its variable, and both over the file).
    pub fn with_dest_from_environment(self) -> Result<Settings, SpecError> {
        self.with_dest_variable(std::env::var_os(DEST_VARIABLE))
    }

    fn with_dest_variable(mut self, value: Option<OsString>) -> Result<Settings, SpecError> {
        if !self.dest.is_empty() {
            return Ok(self);
        }
        let Some(value) = value else {
            return Ok(self);
        };
        let text = value
            .into_string()
            .map_err(|value| SpecError::DestVariable {
                given: value.to_string_lossy().into_owned(),
                reason: "it is not UTF-8: set it to bucket names separated by commas".into(),
            })?;
        self.dest = destination_list(&text)?;
        Ok(self)
    }
}

/// The destinations `S3FAN_DEST` lists: separated by commas
/// (`backup, archive:photos/`), or, where a key prefix holds a comma, a
/// JSON list of strings (`["archive:a,b/", "backup"]`). A bucket name holds
/// no comma and cannot begin with `[`, so neither form can be misread; each
/// entry must name a valid bucket, so a comma inside a prefix is an error
/// that says what to write rather than a destination nobody meant.
fn destination_list(text: &str) -> Result<Vec<String>, SpecError> {
    let bad = |reason: String| SpecError::DestVariable {
        given: text.to_owned(),
        reason,
    };
    let text = text.trim();
    let entries: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|err| {
            bad(format!(
                "it begins with [ but is not a JSON list of strings ({err}): \
                 write it as [\"archive:a,b/\", \"backup\"]"
            ))
        })?
    } else {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for entry in &entries {
        let (bucket, _) = spec::parse_destination(entry).map_err(|err| bad(err.to_string()))?;
        spec::check_bucket_name("destination", &bucket).map_err(|err| {
            bad(format!(
                "{err}; separate destinations with commas, and where a key prefix holds \
                 a comma write a JSON list: S3FAN_DEST='[\"archive:a,b/\", \"backup\"]'"
            ))
        })?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::tests::flags;
    use crate::fanout::spec::Spec;

    #[test]
    fn s3fan_dest_stands_for_dest_between_the_flags_and_the_file() {
        let file = flags("src", &["file-dest"]);
        let with = |flags: Settings, variable: Option<&str>| {
            let settings = flags.with_dest_variable(variable.map(OsString::from))?;
            settings.spec(file.clone())
        };
        let buckets = |spec: Spec| {
            spec.destinations
                .iter()
                .map(|d| (d.bucket.clone(), d.key_prefix.clone()))
                .collect::<Vec<_>>()
        };
        let owned =
            |bucket: &str, prefix: Option<&str>| (bucket.to_owned(), prefix.map(str::to_owned));

        // The variable over the file; spaces around entries and an empty
        // entry (a trailing comma) are passed over.
        let listed = with(flags("src", &[]), Some(" aaa, bbb:in/ ,, s3://ccc/x/,")).unwrap();
        assert_eq!(
            buckets(listed),
            [
                owned("aaa", None),
                owned("bbb", Some("in/")),
                owned("ccc", Some("x/"))
            ]
        );
        // A flag over the variable; no variable, or an empty one: the file.
        let flagged = with(flags("src", &["flag-dest"]), Some("aaa,bbb")).unwrap();
        assert_eq!(flagged.buckets(), ["flag-dest"]);
        assert_eq!(
            with(flags("src", &[]), None).unwrap().buckets(),
            ["file-dest"]
        );
        assert_eq!(
            with(flags("src", &[]), Some(" ")).unwrap().buckets(),
            ["file-dest"]
        );
        // A prefix that holds a comma, in the JSON form.
        let json = with(flags("src", &[]), Some(r#"["arch:a,b/", "bbb"]"#)).unwrap();
        assert_eq!(
            buckets(json),
            [owned("arch", Some("a,b/")), owned("bbb", None)]
        );
    }

    #[test]
    fn an_s3fan_dest_that_cannot_be_read_says_what_to_write() {
        let refuse = |variable: &str| {
            flags("src", &[])
                .with_dest_variable(Some(OsString::from(variable)))
                .unwrap_err()
                .to_string()
        };
        // A comma inside a prefix would leave a piece that is no bucket:
        // refused, not deployed to a bucket nobody named.
        let split = refuse("archive:photos,2024/,backup");
        assert!(
            split.starts_with("S3FAN_DEST \"archive:photos,2024/,backup\""),
            "{split}"
        );
        assert!(
            split.contains("\"2024/\"") && split.contains("JSON list"),
            "{split}"
        );
        let json = refuse(r#"["aaa", 3]"#);
        assert!(json.contains("not a JSON list of strings"), "{json}");
        let named_invalid = refuse("aaa,Not_A_Bucket");
        assert!(
            named_invalid.contains("\"Not_A_Bucket\""),
            "{named_invalid}"
        );
        use std::os::unix::ffi::OsStringExt;
        let not_utf8 = flags("src", &[])
            .with_dest_variable(Some(OsString::from_vec(vec![b'a', 0xff, b'b'])))
            .unwrap_err()
            .to_string();
        assert!(not_utf8.contains("not UTF-8"), "{not_utf8}");
    }
}
