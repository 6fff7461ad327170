//! How big and how many: S3's limits for copies and the settings that tune
//! them (`S3FAN_MULTIPART_THRESHOLD`, `S3FAN_PART_SIZE`,
//! `S3FAN_COPY_CONCURRENCY`), read by the function and by the local backfill
//! and retry alike. Pure: no S3 call here.

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// S3's limits for a multipart upload.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * GIB;
pub const MAX_PARTS: u64 = 10_000;

/// How copies are made; from the function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySettings {
    /// Objects larger than this are copied in parts (`S3FAN_MULTIPART_THRESHOLD`).
    pub multipart_threshold: u64,
    /// Preferred part size (`S3FAN_PART_SIZE`).
    pub part_size: u64,
    /// Parts copied at once (`S3FAN_COPY_CONCURRENCY`).
    pub concurrency: usize,
    /// A reconcile slice hands on to the next this long after it started,
    /// if that is sooner than its invocation's time would make it
    /// (`S3FAN_RECONCILE_SLICE_MS`).
    pub reconcile_slice: Option<std::time::Duration>,
    /// For tests: a multipart copy in the function hands on after this
    /// many parts (`S3FAN_PARTS_PER_INVOCATION`), as it does near the
    /// deadline; unset, only the deadline decides.
    pub parts_per_invocation: Option<usize>,
}

impl Default for CopySettings {
    fn default() -> CopySettings {
        CopySettings {
            multipart_threshold: 5 * GIB,
            // bench/RESULTS.md, "Part size and concurrency": on S3,
            // UploadPartCopy is fastest with 64-128 MiB parts and slower
            // from 256 MiB (the CRT's published measurements), and AWS's
            // own copier keeps 200 parts in flight; a part in flight costs
            // the function next to nothing (peak RSS 11.3 MiB with none,
            // at most 12.9 MiB with 64), since no byte passes through it.
            // 128 MiB (grown by the part plan past 1.2 TiB), 32 at a time.
            part_size: 128 * MIB,
            concurrency: 32,
            reconcile_slice: None,
            parts_per_invocation: None,
        }
    }
}

impl CopySettings {
    /// The settings of this process: the function's, or the local backfill
    /// and retry commands', which honour the same variables.
    pub fn from_process_env() -> Result<CopySettings, String> {
        CopySettings::from_env(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get`; an unusable value is an error that
    /// names the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<CopySettings, String> {
        let defaults = CopySettings::default();
        let given = |name: &str, unit: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            let Some(text) = get(name) else {
                return Ok(None);
            };
            match text.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
                _ => Err(format!(
                    "{name}={text:?} is not a whole number of {unit} from {min} to {max}"
                )),
            }
        };
        let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            Ok(given(name, "bytes", min, max)?.unwrap_or(default))
        };
        Ok(CopySettings {
            multipart_threshold: number(
                "S3FAN_MULTIPART_THRESHOLD",
                defaults.multipart_threshold,
                MIN_PART,
                MAX_PART,
            )?,
            part_size: number("S3FAN_PART_SIZE", defaults.part_size, MIN_PART, MAX_PART)?,
            concurrency: number("S3FAN_COPY_CONCURRENCY", defaults.concurrency as u64, 1, 64)?
                as usize,
            reconcile_slice: given("S3FAN_RECONCILE_SLICE_MS", "milliseconds", 1, 900_000)?
                .map(std::time::Duration::from_millis),
            parts_per_invocation: given("S3FAN_PARTS_PER_INVOCATION", "parts", 1, 10_000)?
                .map(|n| n as usize),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_and_name_bad_values() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            CopySettings::from_env(env(&[])),
            Ok(CopySettings::default())
        );
        let set = CopySettings::from_env(env(&[
            ("S3FAN_MULTIPART_THRESHOLD", "5242880"),
            ("S3FAN_COPY_CONCURRENCY", "3"),
        ]))
        .unwrap();
        assert_eq!((set.multipart_threshold, set.concurrency), (5 * MIB, 3));
        let err = CopySettings::from_env(env(&[("S3FAN_PART_SIZE", "1MB")])).unwrap_err();
        assert!(
            err.contains("S3FAN_PART_SIZE") && err.contains("5242880"),
            "{err}"
        );
        assert!(
            CopySettings::from_env(env(&[("S3FAN_MULTIPART_THRESHOLD", "6000000000")])).is_err(),
            "over 5 GiB"
        );
        assert!(CopySettings::from_env(env(&[("S3FAN_COPY_CONCURRENCY", "0")])).is_err());
        let slice = CopySettings::from_env(env(&[("S3FAN_RECONCILE_SLICE_MS", "250")])).unwrap();
        assert_eq!(
            slice.reconcile_slice,
            Some(std::time::Duration::from_millis(250))
        );
        let err = CopySettings::from_env(env(&[("S3FAN_RECONCILE_SLICE_MS", "soon")])).unwrap_err();
        assert!(err.contains("milliseconds"), "{err}");
    }
}
