//! Authorization: every read and write of every part is decided here by the Cedar policy set.
//!
//! The rules live in `policies/` (schema, `*.cedar` rules, `decisions.csv` decision tables);
//! copies are compiled into the binary for deployments without that folder. There are no
//! role checks anywhere else in the service: a request is allowed exactly when a `permit`
//! rule in the policy set applies and no `forbid` rule does.
//!
//! A decision is a pure function of the principal's attributes, the action and the
//! attributes of the part (the resource entity id is a constant), so decisions are cached.

// foldhash (seeded per process): SipHash was a tenth of a list's decision time.
use foldhash::fast::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, Response, RestrictedExpression, Schema,
};

mod load;
mod refusal;
pub mod scope;
mod table;
#[cfg(test)]
mod tests;
pub mod versions;
pub mod vocabulary;

pub use load::Problem;
pub use refusal::Refusal;
pub use scope::Scope;
pub use table::{run_decision_tables, run_embedded_decision_tables, TableReport};
pub use versions::Policies;
pub use vocabulary::{
    AdminKind, Audience, ObservationPart, OrganizationKind, RecordKind, ReferralPart, ReleasedTo,
    Role, StatisticsKind,
};

/// Who is asking; built by the caller from the database for each request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrincipalAttrs {
    pub user_id: String,
    /// police_officer | police_analyst | guard | social_worker | outreach_worker | coordinator | auditor | admin
    pub role: String,
    pub organization_id: String,
    /// police | security | social_services | outreach | municipality
    pub organization_kind: String,
    /// From the user's organisation.
    pub mandated_reporter: bool,
    /// Place slugs the user is assigned to (sorted).
    pub places: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Create,
    WriteFeedback,
    RecordConsent,
    WithdrawConsent,
    Administer,
    ReadAudit,
    ReadStatistics,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Create,
        Action::WriteFeedback,
        Action::RecordConsent,
        Action::WithdrawConsent,
        Action::Administer,
        Action::ReadAudit,
        Action::ReadStatistics,
    ];

    /// The action's id in the Cedar schema (`Samverkan::Action::"<name>"`).
    pub fn cedar_name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::WriteFeedback => "write_feedback",
            Action::RecordConsent => "record_consent",
            Action::WithdrawConsent => "withdraw_consent",
            Action::Administer => "administer",
            Action::ReadAudit => "read_audit",
            Action::ReadStatistics => "read_statistics",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Self> {
        Action::ALL.into_iter().find(|a| a.cedar_name() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cedar_name())
    }
}

/// What a consent says about the details it releases, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsentFacts {
    /// Not expired and not withdrawn.
    pub valid: bool,
    pub released_to: ReleasedTo,
}

/// The thing being decided on: one part of one record (never the record id: decisions depend
/// on attributes only, so they can be cached).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    ObservationPart {
        kind: ObservationPart,
        place: String,
        reporter_id: String,
        reporter_org_id: String,
    },
    /// One section of a lägesbild, by its audience.
    ReportSection {
        audience: Audience,
        place: String,
        author_id: String,
        author_org_id: String,
    },
    /// `consent` is set for `released_details` only: the consent that releases them.
    ReferralPart {
        kind: ReferralPart,
        place: Option<String>,
        reporter_id: String,
        reporter_org_id: String,
        receiving_org_id: String,
        consent: Option<ConsentFacts>,
    },
    /// Administration of organisations, places, users and legal holds.
    Admin { kind: AdminKind },
    /// An account as it would be after an administrative change. `grants_access` is
    /// false only when the change takes access away (disabling).
    Account {
        user_id: String,
        role: String,
        organization_kind: String,
        grants_access: bool,
    },
    /// The audit trail (metadata only).
    AuditLog,
    /// Statistics of one kind (aggregates only).
    Statistics { kind: StatisticsKind },
}

impl Resource {
    /// The Cedar entity type the part is sent as (without the namespace).
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::ObservationPart { .. } => "ObservationPart",
            Resource::ReportSection { .. } => "ReportSection",
            Resource::ReferralPart { .. } => "ReferralPart",
            Resource::Admin { .. } => "Admin",
            Resource::Account { .. } => "Account",
            Resource::AuditLog => "AuditLog",
            Resource::Statistics { .. } => "Statistics",
        }
    }
}

/// Why a question could not be put to the policies (which means deny).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{0}")]
pub struct Unevaluable(String);

/// A problem loading the policies or the decision tables.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The policies, the schema or the decision table are wrong; one problem per line,
    /// each as `file:line:column: message`.
    #[error("{}", Problem::join(.0))]
    Invalid(Vec<Problem>),
}

impl PolicyError {
    /// The individual problems (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid(problems) => problems,
            PolicyError::Io { .. } => &[],
        }
    }
}

/// Hex SHA-256 over every file's name and text, each length-prefixed, in name order.
fn files_hash(files: &BTreeMap<String, String>) -> Arc<str> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in files {
        for s in [name, text] {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
    Arc::from(hex::encode(h.finalize()))
}

/// Cedar type and action names the engine fills in.
struct Names {
    user: EntityTypeName,
    organization: EntityTypeName,
    role: EntityTypeName,
    organization_kind: EntityTypeName,
    observation_part: EntityTypeName,
    observation_part_kind: EntityTypeName,
    report_section: EntityTypeName,
    audience: EntityTypeName,
    referral_part: EntityTypeName,
    referral_part_kind: EntityTypeName,
    released_to: EntityTypeName,
    admin: EntityTypeName,
    admin_kind: EntityTypeName,
    account: EntityTypeName,
    audit_log: EntityTypeName,
    statistics: EntityTypeName,
    statistics_kind: EntityTypeName,
    actions: Vec<EntityUid>,
}

impl Names {
    fn new() -> Result<Self, Unevaluable> {
        let ty = |name: &str| {
            EntityTypeName::from_str(&format!("Samverkan::{name}"))
                .map_err(|e| Unevaluable(format!("bad entity type name {name}: {e}")))
        };
        let action_type = ty("Action")?;
        Ok(Names {
            user: ty("User")?,
            organization: ty("Organization")?,
            role: ty("Role")?,
            organization_kind: ty("OrganizationKind")?,
            observation_part: ty("ObservationPart")?,
            observation_part_kind: ty("ObservationPartKind")?,
            report_section: ty("ReportSection")?,
            audience: ty("Audience")?,
            referral_part: ty("ReferralPart")?,
            referral_part_kind: ty("ReferralPartKind")?,
            released_to: ty("ReleasedTo")?,
            admin: ty("Admin")?,
            admin_kind: ty("AdminKind")?,
            account: ty("Account")?,
            audit_log: ty("AuditLog")?,
            statistics: ty("Statistics")?,
            statistics_kind: ty("StatisticsKind")?,
            actions: Action::ALL
                .iter()
                .map(|a| uid(&action_type, a.cedar_name()))
                .collect(),
        })
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// The constant id of every resource entity: decisions never depend on it.
const RESOURCE_ID: &str = "part";

const CACHE_SHARDS: usize = 16;
/// The whole cache is bounded by about this many decisions.
const CACHE_MAX_ENTRIES: usize = 50_000;

type CacheKey = (PrincipalAttrs, Action, Resource);

#[derive(Default)]
struct Shard {
    /// Buckets by full hash; entries compared by value, so collisions are harmless.
    buckets: HashMap<u64, Vec<(CacheKey, bool)>, RandomState>,
    len: usize,
}

/// A bounded, sharded map from (principal, action, resource) to the decision.
struct DecisionCache {
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl DecisionCache {
    fn new() -> Self {
        DecisionCache {
            hasher: RandomState::default(),
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The index is below CACHE_SHARDS, so the truncating cast is exact.
        let index = (hash % CACHE_SHARDS as u64) as usize;
        match self.shards[index].lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn get(&self, hash: u64, p: &PrincipalAttrs, a: Action, r: &Resource) -> Option<bool> {
        let shard = self.shard(hash);
        shard.buckets.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|((kp, ka, kr), _)| *ka == a && kr == r && kp == p)
                .map(|(_, allowed)| *allowed)
        })
    }

    fn insert(&self, hash: u64, key: CacheKey, allowed: bool) {
        let mut shard = self.shard(hash);
        if shard.len >= CACHE_MAX_ENTRIES / CACHE_SHARDS {
            shard.buckets.clear();
            shard.len = 0;
        }
        let bucket = shard.buckets.entry(hash).or_default();
        if !bucket.iter().any(|(k, _)| *k == key) {
            bucket.push((key, allowed));
            shard.len += 1;
        }
    }

    fn len(&self) -> usize {
        (0..CACHE_SHARDS)
            .map(|i| match self.shards[i].lock() {
                Ok(guard) => guard.len,
                Err(poisoned) => poisoned.into_inner().len,
            })
            .sum()
    }
}

/// The loaded policy set, its schema, a bounded decision cache and the scopes worked
/// out from it per principal.
pub struct PolicyEngine {
    policies: PolicySet,
    schema: Schema,
    authorizer: Authorizer,
    names: Names,
    cache: DecisionCache,
    scopes: scope::ScopeCache,
    /// Per record kind: whether every rule about its parts compares the record's people,
    /// organisations and place only with the principal's own (see `scope`).
    relational: scope::Relational,
    /// The set's files by name (schema, rules, decision table) and their hash: the
    /// version every audit entry names (see `versions`).
    files: BTreeMap<String, String>,
    hash: Arc<str>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.policy_count())
            .field("cached_decisions", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Load schema.cedarschema and every *.cedar in dir (sorted), strictly validate
    /// (ValidationMode::Strict) against the schema. Policy ids come from @id (missing or
    /// duplicate @id is an error).
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let sources = load::Sources::read_dir(dir)?;
        Self::from_sources(&sources)
    }

    /// Same, from the copies compiled into the binary with include_str! (used when no
    /// policies/ dir exists next to the working directory).
    pub fn load_embedded() -> Result<Self, PolicyError> {
        Self::from_sources(&load::Sources::embedded())
    }

    /// A set as stored in the database (`policy_versions.files`), validated as strictly
    /// as files read from a folder.
    pub fn from_files(origin: &str, files: &BTreeMap<String, String>) -> Result<Self, PolicyError> {
        Self::from_sources(&load::Sources::from_files(origin, files)?)
    }

    /// The hash of the set's files (hex SHA-256 over each file's name and text, in name
    /// order): the same files give the same hash on every instance.
    pub fn hash(&self) -> &Arc<str> {
        &self.hash
    }

    /// The set's files by name, as a version stores them.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// Runs the set's own decision table (`decisions.csv`) against it. A set without one
    /// cannot be checked, which is an error: a reload must not swap in unchecked rules.
    pub fn check_decision_tables(&self) -> Result<TableReport, PolicyError> {
        let Some(text) = self.files.get(load::DECISIONS_FILE) else {
            return Err(PolicyError::Invalid(vec![Problem::new(
                load::DECISIONS_FILE,
                None,
                "missing: a policy set is only swapped in after its decision table passes",
            )]));
        };
        let table = load::SourceFile {
            label: load::DECISIONS_FILE.to_string(),
            text: text.clone(),
        };
        table::run(self, &table)
    }

    fn from_sources(sources: &load::Sources) -> Result<Self, PolicyError> {
        let (schema, policies) = sources.compile()?;
        let files = sources.files();
        let hash = files_hash(&files);
        let names = Names::new().map_err(|e| {
            PolicyError::Invalid(vec![Problem::new(sources.schema_label(), None, e.0)])
        })?;
        let relational = scope::Relational::of(&policies);
        let engine = PolicyEngine {
            policies,
            schema,
            authorizer: Authorizer::new(),
            names,
            cache: DecisionCache::new(),
            scopes: scope::ScopeCache::default(),
            relational,
            files,
            hash,
        };
        engine.check_schema_fits(sources)?;
        Ok(engine)
    }

    /// Check that the schema declares everything the service fills in — every name of
    /// `vocabulary` on every action that applies to it — so that a schema edit cannot
    /// silently turn requests into denies.
    fn check_schema_fits(&self, sources: &load::Sources) -> Result<(), PolicyError> {
        let principal = PrincipalAttrs {
            user_id: "schema-check".into(),
            role: Role::PoliceOfficer.as_str().into(),
            organization_id: "org".into(),
            organization_kind: OrganizationKind::Police.as_str().into(),
            mandated_reporter: true,
            places: vec!["place".into()],
        };
        let mut samples: Vec<(Action, Resource)> = Vec::new();
        for action in [Action::Read, Action::Create] {
            for &kind in ObservationPart::ALL {
                samples.push((
                    action,
                    Resource::ObservationPart {
                        kind,
                        place: "place".into(),
                        reporter_id: "u".into(),
                        reporter_org_id: "org".into(),
                    },
                ));
            }
            for &audience in Audience::ALL {
                samples.push((
                    action,
                    Resource::ReportSection {
                        audience,
                        place: "place".into(),
                        author_id: "u".into(),
                        author_org_id: "org".into(),
                    },
                ));
            }
        }
        for action in [
            Action::Read,
            Action::Create,
            Action::WriteFeedback,
            Action::RecordConsent,
            Action::WithdrawConsent,
        ] {
            for &kind in ReferralPart::ALL {
                for place in [None, Some("place".to_string())] {
                    for &released_to in ReleasedTo::ALL {
                        samples.push((
                            action,
                            Resource::ReferralPart {
                                kind,
                                place: place.clone(),
                                reporter_id: "u".into(),
                                reporter_org_id: "org".into(),
                                receiving_org_id: "org2".into(),
                                consent: (kind == ReferralPart::ReleasedDetails).then_some(
                                    ConsentFacts {
                                        valid: true,
                                        released_to,
                                    },
                                ),
                            },
                        ));
                    }
                }
            }
        }
        for &kind in AdminKind::ALL {
            samples.push((Action::Administer, Resource::Admin { kind }));
        }
        for &role in Role::ALL {
            for &kind in OrganizationKind::ALL {
                samples.push((
                    Action::Administer,
                    Resource::Account {
                        user_id: "u".into(),
                        role: role.as_str().into(),
                        organization_kind: kind.as_str().into(),
                        grants_access: true,
                    },
                ));
            }
        }
        samples.push((Action::ReadAudit, Resource::AuditLog));
        for &kind in StatisticsKind::ALL {
            samples.push((Action::ReadStatistics, Resource::Statistics { kind }));
        }
        // Every role and organisation kind as the principal too, on a few questions.
        let mut principals = vec![principal.clone()];
        for &role in Role::ALL {
            for &kind in OrganizationKind::ALL {
                principals.push(PrincipalAttrs {
                    role: role.as_str().into(),
                    organization_kind: kind.as_str().into(),
                    ..principal.clone()
                });
            }
        }
        let mut questions: Vec<(&PrincipalAttrs, Action, &Resource)> =
            samples.iter().map(|(a, r)| (&principal, *a, r)).collect();
        for p in &principals {
            questions.push((p, Action::ReadAudit, &Resource::AuditLog));
        }
        let mut seen = HashSet::new();
        let mut problems: Vec<Problem> = Vec::new();
        for (p, action, resource) in questions {
            if let Err(e) = self.evaluate(p, action, resource) {
                if seen.insert(e.clone()) {
                    problems.push(Problem::new(
                        sources.schema_label(),
                        None,
                        format!(
                            "the schema does not fit what the service sends (`{action}` on {}): {e}",
                            resource.type_name()
                        ),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Invalid(problems))
        }
    }

    /// Deny on any error. Cached per (principal attrs, action, resource attrs) in a bounded
    /// map: a list of 50 similar records costs a handful of Cedar evaluations.
    pub fn is_allowed(
        &self,
        principal: &PrincipalAttrs,
        action: Action,
        resource: &Resource,
    ) -> bool {
        let hash = self.cache.hasher.hash_one((principal, action, resource));
        if let Some(allowed) = self.cache.get(hash, principal, action, resource) {
            return allowed;
        }
        let allowed = self.decide(principal, action, resource);
        self.cache
            .insert(hash, (principal.clone(), action, resource.clone()), allowed);
        allowed
    }

    /// The decision without the cache (deny on any error).
    pub fn decide(&self, principal: &PrincipalAttrs, action: Action, resource: &Resource) -> bool {
        match self.evaluate(principal, action, resource) {
            Ok(response) => allowed(&response),
            Err(_) => false,
        }
    }

    /// The rows of `kind` worth reading for this principal (see `scope`), worked out once
    /// per principal and kept.
    pub fn scope(&self, principal: &PrincipalAttrs, kind: RecordKind) -> Arc<Scope> {
        self.scopes.get_or_compute(principal, kind, || {
            Scope::compute(self, principal, kind, self.relational.exact(kind))
        })
    }

    /// The decision without the cache, with the ids of the rules that decided it, or the
    /// reason the request could not be evaluated (which means deny).
    pub fn explain(
        &self,
        principal: &PrincipalAttrs,
        action: Action,
        resource: &Resource,
    ) -> Result<(bool, Vec<String>), Unevaluable> {
        let response = self.evaluate(principal, action, resource)?;
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(Unevaluable(errors.join("; ")));
        }
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        reasons.sort();
        Ok((allowed(&response), reasons))
    }

    /// Number of policies loaded (for logs).
    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// The ids (@id) of the loaded policies, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    fn evaluate(
        &self,
        principal: &PrincipalAttrs,
        action: Action,
        resource: &Resource,
    ) -> Result<Response, Unevaluable> {
        let principal_entity = self.principal_entity(principal)?;
        let principal_uid = principal_entity.uid();
        let resource_entity = self.resource_entity(resource)?;
        let resource_uid = resource_entity.uid();
        let entities =
            Entities::from_entities([principal_entity, resource_entity], Some(&self.schema))
                .map_err(|e| Unevaluable(format!("entities: {}", with_help(&e))))?;
        let action_uid = self.names.actions[action.index()].clone();
        let request = Request::new(
            principal_uid,
            action_uid,
            resource_uid,
            Context::empty(),
            Some(&self.schema),
        )
        .map_err(|e| Unevaluable(format!("request: {}", with_help(&e))))?;
        Ok(self
            .authorizer
            .is_authorized(&request, &self.policies, &entities))
    }

    fn principal_entity(&self, p: &PrincipalAttrs) -> Result<Entity, Unevaluable> {
        let n = &self.names;
        let attrs = HashMap::from([
            ("role".to_string(), entity_ref(&n.role, &p.role)),
            (
                "organization".to_string(),
                entity_ref(&n.organization, &p.organization_id),
            ),
            (
                "organization_kind".to_string(),
                entity_ref(&n.organization_kind, &p.organization_kind),
            ),
            (
                "mandated_reporter".to_string(),
                RestrictedExpression::new_bool(p.mandated_reporter),
            ),
            (
                "places".to_string(),
                RestrictedExpression::new_set(
                    p.places
                        .iter()
                        .map(|place| RestrictedExpression::new_string(place.clone())),
                ),
            ),
        ]);
        Entity::new(uid(&n.user, &p.user_id), attrs, HashSet::new())
            .map_err(|e| Unevaluable(format!("principal: {}", with_help(&e))))
    }

    fn resource_entity(&self, r: &Resource) -> Result<Entity, Unevaluable> {
        let n = &self.names;
        let (ty, attrs) = match r {
            Resource::ObservationPart {
                kind,
                place,
                reporter_id,
                reporter_org_id,
            } => (
                &n.observation_part,
                vec![
                    ("kind", entity_ref(&n.observation_part_kind, kind.as_str())),
                    ("place", RestrictedExpression::new_string(place.clone())),
                    ("reporter", entity_ref(&n.user, reporter_id)),
                    ("reporter_org", entity_ref(&n.organization, reporter_org_id)),
                ],
            ),
            Resource::ReportSection {
                audience,
                place,
                author_id,
                author_org_id,
            } => (
                &n.report_section,
                vec![
                    ("audience", entity_ref(&n.audience, audience.as_str())),
                    ("place", RestrictedExpression::new_string(place.clone())),
                    ("author", entity_ref(&n.user, author_id)),
                    ("author_org", entity_ref(&n.organization, author_org_id)),
                ],
            ),
            Resource::ReferralPart {
                kind,
                place,
                reporter_id,
                reporter_org_id,
                receiving_org_id,
                consent,
            } => {
                let mut attrs = vec![
                    ("kind", entity_ref(&n.referral_part_kind, kind.as_str())),
                    ("reporter", entity_ref(&n.user, reporter_id)),
                    ("reporter_org", entity_ref(&n.organization, reporter_org_id)),
                    (
                        "receiving_org",
                        entity_ref(&n.organization, receiving_org_id),
                    ),
                    (
                        "consent_valid",
                        RestrictedExpression::new_bool(consent.is_some_and(|c| c.valid)),
                    ),
                ];
                if let Some(place) = place {
                    attrs.push(("place", RestrictedExpression::new_string(place.clone())));
                }
                if let Some(c) = consent {
                    attrs.push((
                        "released_to",
                        entity_ref(&n.released_to, c.released_to.as_str()),
                    ));
                }
                (&n.referral_part, attrs)
            }
            Resource::Admin { kind } => (
                &n.admin,
                vec![("kind", entity_ref(&n.admin_kind, kind.as_str()))],
            ),
            Resource::Account {
                user_id,
                role,
                organization_kind,
                grants_access,
            } => (
                &n.account,
                vec![
                    ("user", entity_ref(&n.user, user_id)),
                    ("role", entity_ref(&n.role, role)),
                    (
                        "organization_kind",
                        entity_ref(&n.organization_kind, organization_kind),
                    ),
                    (
                        "grants_access",
                        RestrictedExpression::new_bool(*grants_access),
                    ),
                ],
            ),
            Resource::AuditLog => (&n.audit_log, Vec::new()),
            Resource::Statistics { kind } => (
                &n.statistics,
                vec![("kind", entity_ref(&n.statistics_kind, kind.as_str()))],
            ),
        };
        let attrs: HashMap<String, RestrictedExpression> =
            attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Entity::new(uid(ty, RESOURCE_ID), attrs, HashSet::new())
            .map_err(|e| Unevaluable(format!("resource: {}", with_help(&e))))
    }
}

fn entity_ref(ty: &EntityTypeName, id: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid(ty, id))
}

/// Allow only when Cedar says Allow and no policy failed to evaluate.
fn allowed(response: &Response) -> bool {
    response.decision() == Decision::Allow && response.diagnostics().errors().next().is_none()
}

/// A diagnostic's message, the messages of its causes, and its help text, if any.
fn with_help(e: &dyn miette::Diagnostic) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    if let Some(help) = e.help() {
        message = format!("{message} ({help})");
    }
    message
}
