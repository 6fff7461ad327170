//! A cost estimate as a dry run prints it: per case, each way of doing the
//! work with its total, then what the total is made of.

use std::fmt;

use super::{Case, CostReport, Estimate, Item};
use crate::progress::human;

impl fmt::Display for CostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cost, estimated at {} list prices of {} ({}; no free tier; storage is the same \
             either way and not counted):",
            self.prices_region,
            self.prices_as_of,
            self.prices_from.join(", ")
        )?;
        for case in &self.cases {
            write!(f, "{case}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  {} ({}):", self.label, self.basis)?;
        let width = self.estimates.iter().map(|e| e.by.len()).max().unwrap_or(0);
        for estimate in &self.estimates {
            write!(f, "{}", Row(estimate, width))?;
        }
        Ok(())
    }
}

struct Row<'a>(&'a Estimate, usize);

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Row(estimate, width) = *self;
        let items: Vec<String> = estimate.items.iter().map(item).collect();
        writeln!(
            f,
            "    {:<width$}  {:>10}  {}",
            estimate.by,
            dollars(estimate.usd),
            items.join("; ")
        )?;
        if let Some(note) = estimate.note {
            writeln!(f, "    {:<width$}  {:>10}  ({note})", "", "")?;
        }
        Ok(())
    }
}

/// `2,000,000 COPY and PUT requests $10.00`, `39.1 GB transfer to other
/// regions $0.78`: counts say what they count in the item's name, amounts
/// their unit.
fn item(item: &Item) -> String {
    let mut words = vec![quantity(item.quantity)];
    if matches!(item.unit, "GB" | "GB-seconds") {
        words.push(item.unit.to_owned());
    }
    words.push(item.item.to_owned());
    if let Some(basis) = &item.basis {
        words.push(format!("({basis})"));
    }
    words.push(dollars(item.usd));
    words.join(" ")
}

fn quantity(q: f64) -> String {
    if q.fract() == 0.0 && q < u64::MAX as f64 {
        human::count(q as u64)
    } else if q >= 10.0 {
        human::count(q.round() as u64)
    } else {
        format!("{q:.2}")
    }
}

/// `$1,234`, `$10.00`, `$0.0042`: cents where they matter, and a small
/// figure with its first digits rather than "$0.00".
pub fn dollars(usd: f64) -> String {
    if usd >= 1000.0 {
        format!("${}", human::count(usd.round() as u64))
    } else if usd >= 0.01 || usd == 0.0 {
        format!("${usd:.2}")
    } else {
        let digits = (-usd.log10()).ceil() as usize + 1;
        format!("${:.*}", digits, usd)
    }
}
