//! What deploy and destroy did (or would do), as text and JSON.

use serde::Serialize;

use super::dest_policy;
use super::plan::{self, Outcome, Status, Summary};
use crate::fanout::Context;

/// What a command did (or would do), for the text and JSON output.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub source: String,
    pub region: String,
    pub account: String,
    pub dry_run: bool,
    pub ok: bool,
    pub changes: Vec<Outcome>,
    pub summary: Summary,
    /// What owners of destinations in other accounts must add to their
    /// bucket policies (deploy without `--apply-dest-policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bucket_policy_statements: Vec<OwnerStatement>,
    /// deploy --dry-run: what the fan-out will cost, beside S3 Replication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostReport>,
}

/// One statement for the owner of a destination in another account.
#[derive(Debug, Serialize)]
pub struct OwnerStatement {
    pub destination: String,
    pub account: String,
    pub statement: serde_json::Value,
}

impl Report {
    pub(super) fn new(
        command: &'static str,
        ctx: &Context,
        dry_run: bool,
        changes: Vec<Outcome>,
    ) -> Report {
        Report {
            command,
            source: ctx.spec.source.clone(),
            region: ctx.scope.region.clone(),
            account: ctx.scope.account.clone(),
            dry_run,
            ok: !changes
                .iter()
                .any(|c| matches!(c.status, Status::Failed(_))),
            summary: Summary::of(&changes),
            changes,
            bucket_policy_statements: Vec::new(),
            cost: None,
        }
    }

    /// Lists, for deploy, the statements other accounts' owners must add.
    pub(super) fn with_owner_statements(mut self, ctx: &Context) -> Report {
        if ctx.spec.apply_dest_policy {
            return self;
        }
        self.bucket_policy_statements = ctx
            .spec
            .destinations
            .iter()
            .map(|d| &d.bucket)
            .filter_map(|destination| Some((destination, ctx.other_account(destination)?)))
            .flat_map(|(destination, account)| {
                dest_policy::desired_statements(ctx, destination)
                    .into_iter()
                    .map(|statement| OwnerStatement {
                        destination: destination.clone(),
                        account: account.to_owned(),
                        statement,
                    })
            })
            .collect();
        self
    }
}

impl crate::report::Report for Report {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan {}{}: s3://{} (account {}, {})\n",
            self.command,
            if self.dry_run { " --dry-run" } else { "" },
            self.source,
            self.account,
            self.region
        );
        for change in &self.changes {
            out.push_str(&plan::render(change));
            out.push('\n');
        }
        let s = &self.summary;
        if self.dry_run {
            let pending = self
                .changes
                .iter()
                .filter(|c| c.action.changes_something())
                .count();
            out.push_str(&format!(
                "{pending} to change, {} unchanged; nothing was changed (dry run)\n",
                s.unchanged
            ));
        } else if self.command == "destroy" {
            // destroy creates and updates nothing (but the failure queue's
            // policy, when one destination goes): no "0 created".
            let updated = if s.updated > 0 {
                format!("{} updated, ", s.updated)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{} deleted, {updated}{} unchanged, {} failed\n",
                s.deleted, s.unchanged, s.failed
            ));
        } else {
            out.push_str(&format!(
                "{} created, {} updated, {} deleted, {} unchanged, {} failed\n",
                s.created, s.updated, s.deleted, s.unchanged, s.failed
            ));
        }
        for owner in &self.bucket_policy_statements {
            out.push_str(&format!(
                "destination {} belongs to account {}: its owner must add this statement to the \
                 bucket policy of {} before copies can land there (or run deploy with \
                 --apply-dest-policy where these credentials may write that policy):\n{}\n",
                owner.destination,
                owner.account,
                owner.destination,
                serde_json::to_string_pretty(&owner.statement).unwrap_or_default()
            ));
        }
        if let Some(cost) = &self.cost {
            out.push_str(&cost.to_string());
        }
        if !self.ok {
            out.push_str(&format!(
                "{} stopped after a failure: what is marked done is in place, nothing else was touched. \
                 Fix the cause above and run the same command again to finish.\n",
                self.command
            ));
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        // A dry run that would change something differs, as terraform's
        // plan with changes does under -detailed-exitcode.
        let changes = self.summary.created + self.summary.updated + self.summary.deleted > 0;
        crate::report::Verdict::of(!self.ok, self.dry_run && changes)
    }
}
