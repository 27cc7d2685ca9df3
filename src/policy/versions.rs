//! The policy set in force on this instance, swapped whole when another becomes current
//! (see `crate::policy_versions` for where the sets are stored and how they change).
//! A request keeps the snapshot it started with, so it is decided by one set from start
//! to end, and its audit entries name that set's hash.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{PolicyEngine, PolicyError, Problem};

/// The policy set in force on this instance, swapped whole when another becomes current.
pub struct Policies {
    current: ArcSwap<PolicyEngine>,
    /// Position of the stored version in force (0 before the first is stored or adopted).
    position: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

impl Policies {
    pub fn new(engine: PolicyEngine) -> Self {
        Policies {
            current: ArcSwap::from_pointee(engine),
            position: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The set in force now. A request takes this once and decides everything with it.
    pub fn current(&self) -> Arc<PolicyEngine> {
        self.current.load_full()
    }

    /// The hash of the set in force now.
    pub fn hash(&self) -> Arc<str> {
        self.current.load().hash().clone()
    }

    /// The stored position of the set in force (0 if none was stored yet).
    pub fn position(&self) -> i64 {
        self.position.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that the set in force is the stored version at `position`.
    pub fn set_position(&self, position: i64) {
        self.position
            .store(position, std::sync::atomic::Ordering::Release);
    }

    /// Puts `engine` in force here, as the stored version at `position`.
    pub fn put(&self, engine: PolicyEngine, position: i64) {
        self.current.store(Arc::new(engine));
        self.position
            .store(position, std::sync::atomic::Ordering::Release);
    }
}

/// Reads a policy folder and checks it as a reload must: strict validation against its
/// schema, then its decision table, which must be there and pass.
pub fn load_checked(dir: &Path) -> Result<PolicyEngine, PolicyError> {
    let engine = PolicyEngine::load(dir)?;
    let report = engine.check_decision_tables()?;
    if !report.ok() {
        return Err(PolicyError::Invalid(
            report
                .failed
                .iter()
                .map(|line| {
                    Problem::new(
                        dir.join(super::load::DECISIONS_FILE).display().to_string(),
                        None,
                        line.clone(),
                    )
                })
                .collect(),
        ));
    }
    Ok(engine)
}
