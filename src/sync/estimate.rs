//! How many objects the source holds, for an ETA: S3's daily storage
//! metric `NumberOfObjects` in CloudWatch (`cost::measure`). Only for a
//! listing of the whole bucket; a filtered one holds an unknown share of
//! it. No figure means no ETA, never an error.

use super::Fanout;

pub async fn source_objects(fanout: &Fanout) -> Option<u64> {
    let filter = &fanout.filter;
    if filter.prefix.is_some() || filter.suffix.is_some() || filter.narrow.is_some() {
        return None;
    }
    crate::cost::measure::bucket_storage(&fanout.cloudwatch, &fanout.source)
        .await
        .map(|storage| storage.objects)
}
