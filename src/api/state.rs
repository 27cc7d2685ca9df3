//! The one state every handler shares, built once per process by `app::Application`.

use std::sync::Arc;

use crate::account::Accounts;
use crate::audit::writer::Writer;
use crate::auth::password::Hasher;
use crate::auth::tokens::TokenService;
use crate::auth::SessionCache;
use crate::config::Settings;
use crate::policy::Policies;
use crate::records::situation_reports::SituationReports;
use crate::records::visibility::RecordCache;
use crate::records::CursorSeal;
use crate::storage::cache::Generation;
use crate::storage::Db;

/// Everything a handler may use. Built once per process; nothing global.
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Read pool (blocking work runs on the blocking pool).
    pub db: Db,
    /// The single write path: group commit of writes and their audit entries.
    pub writer: Writer,
    /// The Cedar policy set in force, validated before it is swapped in; decides every
    /// part. A request takes one snapshot (`current()`) and decides with it throughout.
    pub policy: Arc<Policies>,
    pub tokens: TokenService,
    pub hasher: Hasher,
    /// Seals list cursors, keyed from the token signing key (every instance agrees).
    pub cursor_seal: CursorSeal,
    /// The generation the caches below are valid for (see `storage::cache`).
    pub generation: Arc<Generation>,
    /// Signed-in users by session id.
    pub sessions: Arc<SessionCache>,
    /// Situation reports with their sections, by id: the guards' hot read.
    pub reports: Arc<RecordCache<SituationReports>>,
    /// What each year's statistics may publish, while its counts are unchanged.
    pub statistics: Arc<crate::statistics::DecisionCache>,
    /// Live alerts: every instance's new events, for this instance's streams.
    pub events: Arc<crate::events::EventBus>,
    /// The agency's OpenID Provider, when single sign-on is configured.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
    /// Who needs a second factor, and the key that seals them.
    pub second_factor: crate::auth::second_factor::SecondFactor,
}

impl AppState {
    /// The account use cases (sign-in, refresh, sign-out, password change).
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts {
            db: &self.db,
            writer: &self.writer,
            hasher: &self.hasher,
            tokens: &self.tokens,
            login: &self.settings.login,
            second_factor: &self.second_factor,
        }
    }
}
