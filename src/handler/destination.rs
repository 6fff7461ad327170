//! Which bucket this function copies to.
//!
//! `S3FAN_DEST_BUCKET` when set: deploy always sets it, because bucket names
//! may contain dots and function names may not. Otherwise the function's own
//! name, as in the original design, where the function was named after its
//! destination bucket.

/// The environment variable that names the destination bucket.
pub const DEST_BUCKET_VAR: &str = "S3FAN_DEST_BUCKET";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("{DEST_BUCKET_VAR} is set but empty: set it to the destination bucket's name")]
    EmptyVariable,
    #[error(
        "no destination bucket: set {DEST_BUCKET_VAR} in the function's environment \
         (or name the function after the bucket)"
    )]
    Missing,
}

/// Picks the destination from the variable, else the function name.
pub fn destination_bucket(
    dest_var: Option<String>,
    function_name: Option<String>,
) -> Result<String, DestinationError> {
    match dest_var {
        Some(bucket) if bucket.trim().is_empty() => Err(DestinationError::EmptyVariable),
        Some(bucket) => Ok(bucket.trim().to_owned()),
        None => function_name
            .filter(|name| !name.is_empty())
            .ok_or(DestinationError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_over_the_function_name() {
        assert_eq!(
            destination_bucket(Some("dst.two".into()), Some("dst-two".into())),
            Ok("dst.two".into())
        );
    }

    #[test]
    fn falls_back_to_the_function_name() {
        assert_eq!(
            destination_bucket(None, Some("dst1".into())),
            Ok("dst1".into())
        );
    }

    #[test]
    fn empty_or_missing_is_an_error() {
        assert_eq!(
            destination_bucket(Some(" ".into()), Some("f".into())),
            Err(DestinationError::EmptyVariable)
        );
        assert_eq!(
            destination_bucket(None, None),
            Err(DestinationError::Missing)
        );
        assert_eq!(
            destination_bucket(None, Some(String::new())),
            Err(DestinationError::Missing)
        );
    }
}
