use super::*;
use crate::handler::limits::{GIB, MIB};

fn settings() -> CopySettings {
    CopySettings::default()
}

fn function(seconds: f64) -> Function {
    Function {
        memory_mb: 128,
        arm64: false,
        invocation: Invocation {
            seconds,
            measured: false,
        },
    }
}

fn usd(estimate: &Estimate, item: &str) -> f64 {
    estimate
        .items
        .iter()
        .find(|i| i.item == item)
        .map(|i| i.usd)
        .unwrap_or_else(|| panic!("no {item} in {estimate:?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn a_copy_past_the_threshold_costs_a_request_per_part_and_two_more() {
    assert_eq!(
        Requests::of_copy(0, &settings()),
        Requests { put: 1, get: 0 }
    );
    assert_eq!(
        Requests::of_copy(5 * GIB, &settings()),
        Requests { put: 1, get: 0 }
    );
    // 6 GiB in 128 MiB parts: 48 UploadPartCopy, the create and the complete;
    // the HEAD and the tags.
    assert_eq!(
        Requests::of_copy(6 * GIB, &settings()),
        Requests { put: 50, get: 2 }
    );
    assert_eq!(
        Copies::new("backup", None)
            .uniform(3, 6 * GIB, &settings())
            .requests,
        Requests { put: 150, get: 6 }
    );
}

#[test]
fn a_million_small_objects_to_two_destinations_in_the_region() {
    let destinations: Vec<(Copies, Function)> = ["a", "b"]
        .iter()
        .map(|d| {
            let copies = Copies::new(d, None).uniform(1_000_000, MIB, &settings());
            (copies, function(0.2))
        })
        .collect();
    let estimate = s3fan_events(1_000_000, &destinations);
    assert!(close(usd(&estimate, "COPY and PUT requests"), 10.0));
    assert!(
        close(usd(&estimate, "SNS publishes"), 0.5),
        "one publish per object, not per destination"
    );
    assert!(close(usd(&estimate, "Lambda invocations"), 0.4));
    // 2,000,000 x 0.2 s x 0.125 GB = 50,000 GB-s.
    let duration = estimate
        .items
        .iter()
        .find(|i| i.item == "Lambda duration")
        .unwrap();
    assert!(close(duration.quantity, 50_000.0));
    assert!(close(duration.usd, 50_000.0 * 0.000_016_666_7));
    assert!(
        !estimate.items.iter().any(|i| i.item.contains("transfer")),
        "nothing crosses a region: {estimate:?}"
    );
    let sum: f64 = estimate.items.iter().map(|i| i.usd).sum();
    assert!(close(estimate.usd, sum));
    assert!(close(
        estimate.usd,
        10.0 + 0.5 + 0.4 + 50_000.0 * 0.000_016_666_7
    ));
}

#[test]
fn only_the_bytes_to_another_region_pay_transfer_and_rtc_pays_for_all() {
    let here = Copies::new("here", None).uniform(1_000, GIB, &settings());
    let away = Copies::new("away", Some("eu-west-1".into())).uniform(1_000, GIB, &settings());
    let copies = [here, away];
    let replication = s3_replication(&copies, false);
    assert!(close(
        usd(&replication, "transfer to other regions"),
        1_000.0 * 0.02
    ));
    assert!(close(
        usd(&replication, "replication PUT requests"),
        2_000.0 * 0.005 / 1000.0
    ));
    assert!(replication.note.is_some_and(|n| n.contains("versioning")));
    let rtc = s3_replication(&copies, true);
    assert!(close(
        usd(&rtc, "Replication Time Control"),
        2_000.0 * 0.015
    ));
    assert!(close(rtc.usd - replication.usd, 2_000.0 * 0.015));
}

#[test]
fn arm64_functions_pay_less_for_the_same_duration() {
    let copies = Copies::new("a", None).uniform(1_000_000, MIB, &settings());
    let x86 = s3fan_events(1_000_000, &[(copies.clone(), function(0.5))]);
    let arm = Function {
        arm64: true,
        ..function(0.5)
    };
    let arm = s3fan_events(1_000_000, &[(copies, arm)]);
    let ratio = usd(&arm, "Lambda duration") / usd(&x86, "Lambda duration");
    assert!((0.79..0.81).contains(&ratio), "{ratio}");
    assert!(usd(&arm, "Lambda duration") < usd(&x86, "Lambda duration"));
}

#[test]
fn lambda_bills_each_invocation_to_the_next_millisecond() {
    let copies = Copies::new("a", None).uniform(1_000, 1, &settings());
    let estimate = s3fan_events(1_000, &[(copies, function(0.0101))]);
    let duration = estimate
        .items
        .iter()
        .find(|i| i.item == "Lambda duration")
        .unwrap();
    // 11 ms billed, not 10.1: 1,000 x 0.011 s x 0.125 GB.
    assert!(close(duration.quantity, 1.375), "{}", duration.quantity);
    assert!(
        duration
            .basis
            .as_deref()
            .is_some_and(|b| b.contains("assumed"))
    );
}

#[test]
fn the_assumed_duration_grows_with_the_object() {
    assert!(Invocation::assumed(GIB).seconds > 4.0 * Invocation::assumed(MIB).seconds);
    assert!(!Invocation::assumed(MIB).measured);
}

#[test]
fn a_backfill_pays_its_listings_and_batch_replication_its_job_and_objects() {
    let a = Copies::new("a", None).uniform(400, MIB, &settings());
    let b = Copies::new("b", Some("us-west-2".into())).uniform(1_000, MIB, &settings());
    let copies = [a, b];
    let here = s3fan_backfill(Requests { put: 30, get: 5 }, &copies);
    assert!(close(usd(&here, "LIST requests"), 30.0 * 0.005 / 1000.0));
    assert!(close(
        usd(&here, "COPY and PUT requests"),
        1_400.0 * 0.005 / 1000.0
    ));
    assert!(close(
        usd(&here, "HEAD and GET requests"),
        5.0 * 0.0004 / 1000.0
    ));
    assert!(
        !here
            .items
            .iter()
            .any(|i| i.item.contains("Lambda") || i.item.contains("SNS"))
    );
    let batch = batch_replication(&copies);
    assert!(close(usd(&batch, "Batch Operations job"), 0.25));
    // One manifest of the 1,000 objects some destination lacks.
    assert!(close(usd(&batch, "objects processed"), 1_000.0 / 1e6));
    assert!(close(
        usd(&batch, "transfer to other regions"),
        1_000.0 * MIB as f64 / GB * 0.02
    ));
}

#[test]
fn dollars_read_as_a_person_writes_them() {
    assert_eq!(render::dollars(0.0), "$0.00");
    assert_eq!(render::dollars(10.0), "$10.00");
    assert_eq!(render::dollars(0.5), "$0.50");
    assert_eq!(render::dollars(12_345.6), "$12,346");
    assert_eq!(render::dollars(0.000_15), "$0.00015");
    assert_eq!(render::dollars(0.004), "$0.0040");
}

#[test]
fn the_text_names_every_way_with_its_total_and_the_prices_date() {
    let copies = Copies::new("a", None).uniform(1_000_000, MIB, &settings());
    let report = CostReport::new(vec![Case {
        label: "per million new objects".into(),
        objects: 1_000_000,
        bytes: 1_000_000 * MIB,
        basis: "1.0 MiB each, assumed".into(),
        estimates: vec![
            s3fan_events(1_000_000, &[(copies.clone(), function(0.2))]),
            s3_replication(&[copies], true),
        ],
    }]);
    let text = report.to_string();
    assert!(text.contains(prices::AS_OF), "{text}");
    assert!(
        text.contains("per million new objects (1.0 MiB each, assumed):"),
        "{text}"
    );
    assert!(
        text.contains("1,000,000 COPY and PUT requests $5.00"),
        "{text}"
    );
    assert!(text.contains("1,000,000 SNS publishes $0.50"), "{text}");
    assert!(text.contains("S3 Replication with RTC"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["cases"][0]["estimates"][0]["by"], "s3fan");
    assert_eq!(json["prices_as_of"], prices::AS_OF);
}
