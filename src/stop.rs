//! Ctrl-C in two steps, as terraform takes it. The first asks the command
//! to start nothing more: deploy and destroy finish the step under way,
//! backfill and verify the copies and listings under way, and each then
//! reports what it did. A second Ctrl-C, or the grace period, stops at
//! once. Every command converges, so running it again goes on from there.

use std::sync::atomic::{AtomicBool, Ordering};

static ASKED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C has asked the command to stop starting work.
pub fn asked() -> bool {
    ASKED.load(Ordering::Relaxed)
}

pub fn ask() {
    ASKED.store(true, Ordering::Relaxed);
}
