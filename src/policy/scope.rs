//! From a principal's grants to the rows worth reading: the candidate predicate of a list.
//!
//! Whether a part may be read depends on the principal, the part and how the record
//! stands to the principal: whether the principal filed it (`own`), how its
//! organisations stand to the principal's ([`OrgRelation`]), whether its place is one of
//! the principal's ([`PlaceRelation`]) — and on what the record holds: the audiences of a
//! lägesbild's sections, the consents of an orosanmälan ([`Content`]). Those are the
//! relation classes the decision tables enumerate. [`Scope::compute`] asks Cedar about
//! every part under every class, with stand-in values, and keeps the classes under which
//! some part may be read, merged into a few [`Cube`]s; `records` turns each cube into an
//! indexed query. Cedar still decides every part of every row that comes back.
//!
//! The stand-ins decide exactly as the real values when no rule compares a record's
//! people, organisations or place with anything but the principal's own (the shipped
//! rules never do). A rule that names a literal user, organisation or place string breaks
//! that, so for the record kinds such a rule reads, the scope is everything: wider, never
//! narrower ([`Relational`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cedar_policy::PolicySet;

use super::{
    Action, Audience, ConsentFacts, ObservationPart, PolicyEngine, PrincipalAttrs, RecordKind,
    ReferralPart, ReleasedTo, Resource,
};

/// How a record's organisations stand to the principal's organisation. Observations and
/// lägesbilder have a filer's organisation only; an orosanmälan also has a receiving one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgRelation {
    /// Filed in the principal's organisation.
    FiledHere,
    /// Filed in another organisation.
    FiledElsewhere,
    /// Filed in the principal's organisation, which also receives it.
    HereToHere,
    /// Filed in the principal's organisation, sent to another.
    HereToOther,
    /// Filed elsewhere, sent to the principal's organisation.
    OtherToHere,
    /// Filed in another organisation and sent to that same organisation.
    OtherToItself,
    /// Filed in another organisation and sent to a third.
    OtherToOther,
}

impl OrgRelation {
    const ALL: [OrgRelation; 7] = [
        OrgRelation::FiledHere,
        OrgRelation::FiledElsewhere,
        OrgRelation::HereToHere,
        OrgRelation::HereToOther,
        OrgRelation::OtherToHere,
        OrgRelation::OtherToItself,
        OrgRelation::OtherToOther,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The relations a record of `kind` can have.
    pub fn of(kind: RecordKind) -> &'static [OrgRelation] {
        match kind {
            RecordKind::Observation | RecordKind::SituationReport => &Self::ALL[..2],
            RecordKind::Referral => &Self::ALL[2..],
        }
    }

    /// Whether the record's filer organisation is the principal's.
    pub fn filed_here(self) -> bool {
        matches!(
            self,
            OrgRelation::FiledHere | OrgRelation::HereToHere | OrgRelation::HereToOther
        )
    }

    /// Whether the record is sent to the principal's organisation (referrals).
    pub fn sent_here(self) -> bool {
        matches!(self, OrgRelation::HereToHere | OrgRelation::OtherToHere)
    }
}

/// Where a record is, seen from the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlaceRelation {
    /// At one of the principal's places.
    Assigned,
    /// At a place the principal is not assigned to.
    Elsewhere,
    /// At no place (a referral's place is optional).
    Unset,
}

impl PlaceRelation {
    const ALL: [PlaceRelation; 3] = [
        PlaceRelation::Assigned,
        PlaceRelation::Elsewhere,
        PlaceRelation::Unset,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn of(kind: RecordKind) -> &'static [PlaceRelation] {
        match kind {
            RecordKind::Referral => &Self::ALL,
            _ => &Self::ALL[..2],
        }
    }
}

/// Which consents a condition asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Validity {
    /// Only consents valid now (not expired, not withdrawn).
    Valid,
    /// Any consent, valid or not.
    Any,
}

/// What a record must hold for some part to be readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Content {
    /// Nothing: a part every record of the kind has.
    Always,
    /// A lägesbild section with this audience.
    Section(Audience),
    /// A consent that releases details to these recipients.
    Consent(ReleasedTo, Validity),
}

/// One class of records: those whose relations are in every mask and that hold one of
/// `contents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cube {
    /// Bit 0: filed by someone else; bit 1: filed by the principal.
    own: u8,
    org: u8,
    place: u8,
    contents: Vec<Content>,
}

impl Cube {
    fn single(own: bool, org: OrgRelation, place: PlaceRelation, contents: Vec<Content>) -> Self {
        Cube {
            own: 1 << u8::from(own),
            org: org.bit(),
            place: place.bit(),
            contents,
        }
    }

    /// `Some(true)`: only records the principal filed; `Some(false)`: only others';
    /// `None`: both.
    pub fn own(&self) -> Option<bool> {
        match self.own {
            0b10 => Some(true),
            0b01 => Some(false),
            _ => None,
        }
    }

    /// The organisation relations of the class.
    pub fn orgs(&self) -> impl Iterator<Item = OrgRelation> + '_ {
        OrgRelation::ALL
            .into_iter()
            .filter(|o| self.org & o.bit() != 0)
    }

    /// Whether the class holds every organisation relation a record of `kind` can have.
    pub fn any_org(&self, kind: RecordKind) -> bool {
        OrgRelation::of(kind)
            .iter()
            .all(|o| self.org & o.bit() != 0)
    }

    /// The place relations of the class.
    pub fn places(&self) -> impl Iterator<Item = PlaceRelation> + '_ {
        PlaceRelation::ALL
            .into_iter()
            .filter(|p| self.place & p.bit() != 0)
    }

    pub fn any_place(&self, kind: RecordKind) -> bool {
        PlaceRelation::of(kind)
            .iter()
            .all(|p| self.place & p.bit() != 0)
    }

    pub fn has_place(&self, p: PlaceRelation) -> bool {
        self.place & p.bit() != 0
    }

    /// What a record must hold (one of them); `[Always]` when nothing.
    pub fn contents(&self) -> &[Content] {
        &self.contents
    }

    /// Whether a record with these relations, holding `held`, is in the class.
    pub fn matches(
        &self,
        own: bool,
        org: OrgRelation,
        place: PlaceRelation,
        held: &[Content],
    ) -> bool {
        self.own & (1 << u8::from(own)) != 0
            && self.org & org.bit() != 0
            && self.place & place.bit() != 0
            && self.contents.iter().any(|c| match c {
                Content::Always => true,
                Content::Section(_) => held.contains(c),
                // A valid consent also counts where any consent does.
                Content::Consent(to, Validity::Any) => held
                    .iter()
                    .any(|h| matches!(h, Content::Consent(t, _) if t == to)),
                Content::Consent(_, Validity::Valid) => held.contains(c),
            })
    }

    /// The two classes as one, when they differ in one relation only.
    fn merge(&self, other: &Cube) -> Option<Cube> {
        if self.contents != other.contents {
            return None;
        }
        let differ = [
            self.own != other.own,
            self.org != other.org,
            self.place != other.place,
        ];
        if differ.iter().filter(|d| **d).count() > 1 {
            return None;
        }
        Some(Cube {
            own: self.own | other.own,
            org: self.org | other.org,
            place: self.place | other.place,
            contents: self.contents.clone(),
        })
    }
}

/// The candidate predicate of one record kind for one principal: a record is worth
/// reading when it is in one of the cubes. No cube: the principal reads none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: RecordKind,
    pub cubes: Vec<Cube>,
}

const SOMEONE_ELSE: &str = "~someone-else";
const OTHER_ORG: &str = "~other-organisation";
const THIRD_ORG: &str = "~third-organisation";
const OTHER_PLACE: &str = "~other-place";

/// Values standing for one relation class when Cedar is asked (`~` is in no id or slug).
struct StandIn {
    owner: String,
    owner_org: String,
    receiving_org: String,
    place: Option<String>,
}

impl StandIn {
    fn new(
        p: &PrincipalAttrs,
        own: bool,
        org: OrgRelation,
        place: PlaceRelation,
    ) -> Option<StandIn> {
        let mine = p.organization_id.clone();
        let (owner_org, receiving_org) = match org {
            OrgRelation::FiledHere => (mine, OTHER_ORG.into()),
            OrgRelation::FiledElsewhere => (OTHER_ORG.into(), THIRD_ORG.into()),
            OrgRelation::HereToHere => (mine.clone(), mine),
            OrgRelation::HereToOther => (mine, OTHER_ORG.into()),
            OrgRelation::OtherToHere => (OTHER_ORG.into(), mine),
            OrgRelation::OtherToItself => (OTHER_ORG.into(), OTHER_ORG.into()),
            OrgRelation::OtherToOther => (OTHER_ORG.into(), THIRD_ORG.into()),
        };
        let place = match place {
            // No place of the principal's: the class is empty.
            PlaceRelation::Assigned => Some(p.places.first()?.clone()),
            PlaceRelation::Elsewhere => Some(OTHER_PLACE.into()),
            PlaceRelation::Unset => None,
        };
        Some(StandIn {
            owner: if own {
                p.user_id.clone()
            } else {
                SOMEONE_ELSE.into()
            },
            owner_org,
            receiving_org,
            place,
        })
    }

    /// Every part a record of `kind` may have, with what the record must hold for it.
    fn parts(self, kind: RecordKind) -> Vec<(Content, Resource)> {
        let place = || self.place.clone().unwrap_or_default();
        match kind {
            RecordKind::Observation => ObservationPart::ALL
                .iter()
                .map(|&kind| {
                    (
                        Content::Always,
                        Resource::ObservationPart {
                            kind,
                            place: place(),
                            reporter_id: self.owner.clone(),
                            reporter_org_id: self.owner_org.clone(),
                        },
                    )
                })
                .collect(),
            RecordKind::SituationReport => Audience::ALL
                .iter()
                .map(|&audience| {
                    (
                        Content::Section(audience),
                        Resource::ReportSection {
                            audience,
                            place: place(),
                            author_id: self.owner.clone(),
                            author_org_id: self.owner_org.clone(),
                        },
                    )
                })
                .collect(),
            RecordKind::Referral => {
                let part = |kind, consent| Resource::ReferralPart {
                    kind,
                    place: self.place.clone(),
                    reporter_id: self.owner.clone(),
                    reporter_org_id: self.owner_org.clone(),
                    receiving_org_id: self.receiving_org.clone(),
                    consent,
                };
                let mut parts: Vec<(Content, Resource)> = ReferralPart::ALL
                    .iter()
                    .filter(|k| **k != ReferralPart::ReleasedDetails)
                    .map(|&k| (Content::Always, part(k, None)))
                    .collect();
                for &released_to in ReleasedTo::ALL {
                    for (valid, validity) in [(false, Validity::Any), (true, Validity::Valid)] {
                        parts.push((
                            Content::Consent(released_to, validity),
                            part(
                                ReferralPart::ReleasedDetails,
                                Some(ConsentFacts { valid, released_to }),
                            ),
                        ));
                    }
                }
                parts
            }
        }
    }
}

impl Scope {
    /// Asks the policies about every part under every relation class (see the module
    /// docs); `exact: false` gives every record of the kind.
    pub fn compute(
        engine: &PolicyEngine,
        p: &PrincipalAttrs,
        kind: RecordKind,
        exact: bool,
    ) -> Scope {
        let mut cubes = Vec::new();
        for own in [false, true] {
            for &org in OrgRelation::of(kind) {
                for &place in PlaceRelation::of(kind) {
                    let contents: Vec<Content> = if exact {
                        let Some(stand_in) = StandIn::new(p, own, org, place) else {
                            continue;
                        };
                        stand_in
                            .parts(kind)
                            .into_iter()
                            .filter(|(_, r)| engine.decide(p, Action::Read, r))
                            .map(|(c, _)| c)
                            .collect()
                    } else {
                        vec![Content::Always]
                    };
                    if !contents.is_empty() {
                        cubes.push(Cube::single(own, org, place, normalise(contents)));
                    }
                }
            }
        }
        Scope {
            kind,
            cubes: merge(cubes),
        }
    }

    /// Whether a record with these relations and contents is in the scope.
    pub fn admits(
        &self,
        own: bool,
        org: OrgRelation,
        place: PlaceRelation,
        held: &[Content],
    ) -> bool {
        self.cubes.iter().any(|c| c.matches(own, org, place, held))
    }
}

/// Sorted, without repeats; `Always` makes the rest moot; a consent valid or not makes
/// "valid only" moot for the same recipients.
fn normalise(mut contents: Vec<Content>) -> Vec<Content> {
    if contents.contains(&Content::Always) {
        return vec![Content::Always];
    }
    let any: Vec<ReleasedTo> = contents
        .iter()
        .filter_map(|c| match c {
            Content::Consent(to, Validity::Any) => Some(*to),
            _ => None,
        })
        .collect();
    contents.retain(|c| !matches!(c, Content::Consent(to, Validity::Valid) if any.contains(to)));
    contents.sort();
    contents.dedup();
    contents
}

/// Merges classes that differ in one relation only, until none do.
fn merge(mut cubes: Vec<Cube>) -> Vec<Cube> {
    'again: loop {
        for i in 0..cubes.len() {
            for j in (i + 1)..cubes.len() {
                if let Some(m) = cubes[i].merge(&cubes[j]) {
                    cubes[i] = m;
                    cubes.remove(j);
                    continue 'again;
                }
            }
        }
        return cubes;
    }
}

/// Per record kind: whether the rules that read its parts compare the record's people,
/// organisations and place only with the principal's own, so that stand-ins decide as
/// the real values do.
#[derive(Debug, Clone, Copy)]
pub struct Relational {
    observation: bool,
    situation_report: bool,
    referral: bool,
}

impl Relational {
    /// Looks at every rule that may apply to `read`: a literal string, a literal user or
    /// organisation, or a `like` in its conditions makes its resource types inexact.
    pub fn of(policies: &PolicySet) -> Self {
        let mut r = Relational {
            observation: true,
            situation_report: true,
            referral: true,
        };
        for policy in policies.policies() {
            let Ok(json) = policy.to_json() else {
                // Cannot be looked at: assume the worst.
                return Relational {
                    observation: false,
                    situation_report: false,
                    referral: false,
                };
            };
            if !may_read(&json["action"]) || !has_literal(&json["conditions"]) {
                continue;
            }
            let ty = match &json["resource"] {
                serde_json::Value::Object(o) => o
                    .get("entity_type")
                    .and_then(|t| t.as_str())
                    .or_else(|| o.get("entity").and_then(|e| e["type"].as_str())),
                _ => None,
            };
            match ty {
                Some("Samverkan::ObservationPart") => r.observation = false,
                Some("Samverkan::ReportSection") => r.situation_report = false,
                Some("Samverkan::ReferralPart") => r.referral = false,
                Some(_) => {}
                None => {
                    r = Relational {
                        observation: false,
                        situation_report: false,
                        referral: false,
                    }
                }
            }
        }
        r
    }

    pub fn exact(&self, kind: RecordKind) -> bool {
        match kind {
            RecordKind::Observation => self.observation,
            RecordKind::SituationReport => self.situation_report,
            RecordKind::Referral => self.referral,
        }
    }
}

/// Whether a rule's action constraint can take in `read`.
fn may_read(action: &serde_json::Value) -> bool {
    let is_read = |e: &serde_json::Value| e["id"].as_str() == Some("read");
    match action["op"].as_str() {
        Some("==") => is_read(&action["entity"]),
        Some("in") => match &action["entities"] {
            serde_json::Value::Array(list) => list.iter().any(is_read),
            _ => is_read(&action["entity"]),
        },
        _ => true,
    }
}

/// A literal string, user or organisation, or a `like` pattern, anywhere in `v`.
fn has_literal(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(o) => {
            if o.contains_key("like") {
                return true;
            }
            if let Some(value) = o.get("Value") {
                if value.is_string() {
                    return true;
                }
                if let Some(ty) = value["__entity"]["type"].as_str() {
                    if ty == "Samverkan::User" || ty == "Samverkan::Organization" {
                        return true;
                    }
                }
            }
            o.values().any(has_literal)
        }
        serde_json::Value::Array(a) => a.iter().any(has_literal),
        _ => false,
    }
}

/// Scopes by principal and kind, bounded (cleared when full: a miss costs a few dozen
/// decisions).
#[derive(Default)]
pub struct ScopeCache(Mutex<HashMap<(PrincipalAttrs, RecordKind), Arc<Scope>>>);

const SCOPE_CACHE_MAX: usize = 10_000;

impl ScopeCache {
    pub fn get_or_compute(
        &self,
        p: &PrincipalAttrs,
        kind: RecordKind,
        compute: impl FnOnce() -> Scope,
    ) -> Arc<Scope> {
        let key = (p.clone(), kind);
        if let Some(s) = self.lock().get(&key) {
            return s.clone();
        }
        let scope = Arc::new(compute());
        let mut map = self.lock();
        if map.len() >= SCOPE_CACHE_MAX {
            map.clear();
        }
        map.insert(key, scope.clone());
        scope
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PrincipalAttrs, RecordKind), Arc<Scope>>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::OrganizationKind;

    const ME: &str = "me";
    const MY_ORG: &str = "my-org";

    /// A record as stored, with the people, organisations and place it names.
    #[derive(Debug, Clone)]
    struct Record {
        kind: RecordKind,
        owner: &'static str,
        owner_org: &'static str,
        receiving_org: &'static str,
        place: Option<&'static str>,
        audiences: Vec<Audience>,
        /// (valid, released to)
        consents: Vec<(bool, ReleasedTo)>,
    }

    fn principal() -> impl Strategy<Value = PrincipalAttrs> {
        let roles: Vec<&str> = crate::policy::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(["nobody"])
            .collect();
        let kinds: Vec<&str> = OrganizationKind::ALL.iter().map(|k| k.as_str()).collect();
        (
            prop::sample::select(roles),
            prop::sample::select(kinds),
            any::<bool>(),
            prop::sample::subsequence(vec!["a", "b"], 0..=2),
        )
            .prop_map(|(role, kind, mandated, places)| PrincipalAttrs {
                user_id: ME.into(),
                role: role.into(),
                organization_id: MY_ORG.into(),
                organization_kind: kind.into(),
                mandated_reporter: mandated,
                places: places.into_iter().map(str::to_owned).collect(),
            })
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            prop::sample::select(RecordKind::ALL.to_vec()),
            prop::sample::select(vec![ME, "someone", "another"]),
            prop::sample::select(vec![MY_ORG, "org-x", "org-y"]),
            prop::sample::select(vec![MY_ORG, "org-x", "org-y"]),
            prop::sample::select(vec![Some("a"), Some("b"), Some("c"), None]),
            prop::sample::subsequence(Audience::ALL.to_vec(), 1..=3),
            prop::collection::vec(
                (
                    any::<bool>(),
                    prop::sample::select(ReleasedTo::ALL.to_vec()),
                ),
                0..3,
            ),
        )
            .prop_map(
                |(kind, owner, owner_org, receiving_org, place, audiences, consents)| Record {
                    kind,
                    owner,
                    owner_org,
                    receiving_org,
                    // Only a referral may have no place.
                    place: place.or((kind != RecordKind::Referral).then_some("c")),
                    audiences,
                    consents,
                },
            )
    }

    /// Every part of the record, as the service decides it (real values, no stand-ins).
    fn parts(r: &Record) -> Vec<Resource> {
        let place = r.place.unwrap_or_default().to_owned();
        match r.kind {
            RecordKind::Observation => ObservationPart::ALL
                .iter()
                .map(|&kind| Resource::ObservationPart {
                    kind,
                    place: place.clone(),
                    reporter_id: r.owner.into(),
                    reporter_org_id: r.owner_org.into(),
                })
                .collect(),
            RecordKind::SituationReport => r
                .audiences
                .iter()
                .map(|&audience| Resource::ReportSection {
                    audience,
                    place: place.clone(),
                    author_id: r.owner.into(),
                    author_org_id: r.owner_org.into(),
                })
                .collect(),
            RecordKind::Referral => {
                let part = |kind, consent| Resource::ReferralPart {
                    kind,
                    place: r.place.map(str::to_owned),
                    reporter_id: r.owner.into(),
                    reporter_org_id: r.owner_org.into(),
                    receiving_org_id: r.receiving_org.into(),
                    consent,
                };
                let mut out: Vec<Resource> = [
                    ReferralPart::ChildAndConcern,
                    ReferralPart::FeedbackStatus,
                    ReferralPart::SocialNotes,
                ]
                .into_iter()
                .map(|k| part(k, None))
                .collect();
                for &(valid, released_to) in &r.consents {
                    out.push(part(
                        ReferralPart::ReleasedDetails,
                        Some(ConsentFacts { valid, released_to }),
                    ));
                }
                out
            }
        }
    }

    /// How the record stands to the principal, as the scope's classes name it.
    fn relation(
        p: &PrincipalAttrs,
        r: &Record,
    ) -> (bool, OrgRelation, PlaceRelation, Vec<Content>) {
        let filed_here = r.owner_org == p.organization_id;
        let sent_here = r.receiving_org == p.organization_id;
        let org = match (r.kind, filed_here, sent_here) {
            (RecordKind::Referral, true, true) => OrgRelation::HereToHere,
            (RecordKind::Referral, true, false) => OrgRelation::HereToOther,
            (RecordKind::Referral, false, true) => OrgRelation::OtherToHere,
            (RecordKind::Referral, false, false) if r.owner_org == r.receiving_org => {
                OrgRelation::OtherToItself
            }
            (RecordKind::Referral, false, false) => OrgRelation::OtherToOther,
            (_, true, _) => OrgRelation::FiledHere,
            (_, false, _) => OrgRelation::FiledElsewhere,
        };
        let place = match r.place {
            None => PlaceRelation::Unset,
            Some(x) if p.places.iter().any(|q| q == x) => PlaceRelation::Assigned,
            Some(_) => PlaceRelation::Elsewhere,
        };
        let mut held: Vec<Content> = Vec::new();
        if r.kind == RecordKind::SituationReport {
            held.extend(r.audiences.iter().map(|a| Content::Section(*a)));
        }
        if r.kind == RecordKind::Referral {
            for &(valid, to) in &r.consents {
                held.push(Content::Consent(
                    to,
                    if valid {
                        Validity::Valid
                    } else {
                        Validity::Any
                    },
                ));
            }
        }
        (r.owner == p.user_id, org, place, held)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The scope is never narrower than the policy: every record of which the
        /// policy lets the principal read some part is in it. With the shipped rules it
        /// is exact: every record in it has a part the principal may read.
        #[test]
        fn the_scope_holds_every_record_with_a_readable_part_and_no_other(
            p in principal(),
            r in record(),
        ) {
            static ENGINE: std::sync::OnceLock<PolicyEngine> = std::sync::OnceLock::new();
            let engine = ENGINE.get_or_init(|| PolicyEngine::load_embedded().unwrap());
            let readable = parts(&r)
                .iter()
                .any(|part| engine.decide(&p, Action::Read, part));
            let scope = engine.scope(&p, r.kind);
            let (own, org, place, held) = relation(&p, &r);
            let admitted = scope.admits(own, org, place, &held);
            prop_assert!(!readable || admitted, "narrower than the policy: {p:?} {r:?} {scope:?}");
            prop_assert!(readable || !admitted, "wider than the shipped policy: {p:?} {r:?} {scope:?}");
        }
    }

    #[test]
    fn a_rule_that_names_a_literal_place_makes_the_scope_everything() {
        let policies: PolicySet = r#"
            @id("read-at-sergels")
            permit (principal, action == Samverkan::Action::"read", resource is Samverkan::ObservationPart)
            when { resource.place == "sergels-torg" };
        "#
        .parse()
        .unwrap();
        let r = Relational::of(&policies);
        assert!(!r.exact(RecordKind::Observation));
        assert!(r.exact(RecordKind::Referral) && r.exact(RecordKind::SituationReport));
        let shipped = PolicyEngine::load_embedded().unwrap();
        for &kind in RecordKind::ALL {
            assert!(shipped.relational.exact(kind), "{kind}");
        }
    }
}
