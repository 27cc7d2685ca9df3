//! Why a write was refused, found by asking the policies again with one fact of the
//! request changed: "would it be allowed at a place you are assigned to?", "with a
//! police-only audience?". The answer comes from the rules, not from code that knows
//! them, and it only tells the user about their own assignments and role.

use super::{Action, Audience, PolicyEngine, PrincipalAttrs, Resource};

/// The reason a create was refused (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The place is one the user is not assigned to, and would be allowed if they were.
    NotAssignedToPlace { place: String },
    /// A lägesbild section of this audience is not the user's to post; a narrower one is.
    AudienceNotAllowed { audience: Audience },
    /// Nothing about the request would make it allowed: the role may not file it.
    NotAllowed,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotAssignedToPlace { .. } => "not_assigned_to_place",
            Refusal::AudienceNotAllowed { .. } => "role_may_not_post_audience",
            Refusal::NotAllowed => "role_may_not_create",
        }
    }

    /// A sentence for the user, naming only what their own request holds.
    pub fn message(&self, record: &str) -> String {
        match self {
            Refusal::NotAssignedToPlace { place } => format!(
                "You are not assigned to the place {place}: you may file only at your own places (see GET /api/v1/me)."
            ),
            Refusal::AudienceNotAllowed { audience } => format!(
                "Your role may not post a section for the audience {audience}; {} sections are yours to post.",
                Audience::PoliceOnly
            ),
            Refusal::NotAllowed => format!("Your role may not file a {record}."),
        }
    }
}

impl PolicyEngine {
    /// Why `action` on `resource` is denied to `principal` (which the caller has seen).
    pub fn refusal(
        &self,
        principal: &PrincipalAttrs,
        action: Action,
        resource: &Resource,
    ) -> Refusal {
        if let Some(place) = place_of(resource) {
            if !principal.places.iter().any(|p| p == place) {
                let mut assigned = principal.clone();
                assigned.places.push(place.to_owned());
                assigned.places.sort();
                if self.decide(&assigned, action, resource) {
                    return Refusal::NotAssignedToPlace {
                        place: place.to_owned(),
                    };
                }
            }
        }
        if let Resource::ReportSection {
            audience,
            place,
            author_id,
            author_org_id,
        } = resource
        {
            let narrower = Resource::ReportSection {
                audience: Audience::PoliceOnly,
                place: place.clone(),
                author_id: author_id.clone(),
                author_org_id: author_org_id.clone(),
            };
            if *audience != Audience::PoliceOnly && self.decide(principal, action, &narrower) {
                return Refusal::AudienceNotAllowed {
                    audience: *audience,
                };
            }
        }
        Refusal::NotAllowed
    }
}

fn place_of(resource: &Resource) -> Option<&str> {
    match resource {
        Resource::ObservationPart { place, .. } | Resource::ReportSection { place, .. } => {
            Some(place)
        }
        Resource::ReferralPart { place, .. } => place.as_deref(),
        _ => None,
    }
}
