//! What the menu offers and where a user's work starts: asked of the policy with the
//! user's own attributes (may they file here, post a section, answer a referral…), so
//! the pages hold no rule of their own.

use crate::auth::Principal;
use crate::policy::{
    Action, AdminKind, Audience, ObservationPart, ReferralPart, Resource, StatisticsKind,
};
use crate::records::Decider;

/// The menu: each entry present only when the policy allows its work.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nav {
    pub observe: bool,
    pub observations: bool,
    pub post_report: bool,
    /// May post sections for partners (release), not only police-only ones.
    pub release: bool,
    pub refer: bool,
    pub inbox: bool,
    pub audit: bool,
    pub admin: bool,
    pub statistics: bool,
}

impl Nav {
    pub fn of(d: &Decider, p: &Principal) -> Nav {
        let me = &p.attrs;
        let places: Vec<&str> = p.places.iter().map(String::as_str).collect();
        let section = |audience| {
            places.iter().any(|place| {
                d.allows(
                    Action::Create,
                    &Resource::ReportSection {
                        audience,
                        place: (*place).to_owned(),
                        author_id: me.user_id.clone(),
                        author_org_id: me.organization_id.clone(),
                    },
                )
            })
        };
        let observation = |action, reporter: &str, org: &str| {
            places.iter().any(|place| {
                d.allows(
                    action,
                    &Resource::ObservationPart {
                        kind: ObservationPart::Core,
                        place: (*place).to_owned(),
                        reporter_id: reporter.to_owned(),
                        reporter_org_id: org.to_owned(),
                    },
                )
            })
        };
        let observe = observation(Action::Create, &me.user_id, &me.organization_id);
        let referral = |action, kind, reporter: &str, reporter_org: &str, receiving: &str| {
            d.allows(
                action,
                &Resource::ReferralPart {
                    kind,
                    place: None,
                    reporter_id: reporter.to_owned(),
                    reporter_org_id: reporter_org.to_owned(),
                    receiving_org_id: receiving.to_owned(),
                    consent: None,
                },
            )
        };
        Nav {
            observe,
            // Others' observations at the user's places (another filer, another organisation).
            observations: observe
                || observation(Action::Read, "someone-else", "another-organisation"),
            post_report: section(Audience::PoliceOnly) || section(Audience::General),
            release: section(Audience::General),
            refer: referral(
                Action::Create,
                ReferralPart::ChildAndConcern,
                &me.user_id,
                &me.organization_id,
                "a-social-services-organisation",
            ),
            inbox: referral(
                Action::WriteFeedback,
                ReferralPart::FeedbackStatus,
                "someone-else",
                "another-organisation",
                &me.organization_id,
            ),
            audit: d.allows(Action::ReadAudit, &Resource::AuditLog),
            statistics: d.allows(
                Action::ReadStatistics,
                &Resource::Statistics {
                    kind: StatisticsKind::Observations,
                },
            ),
            admin: d.allows(
                Action::Administer,
                &Resource::Admin {
                    kind: AdminKind::Users,
                },
            ),
        }
    }

    /// The page the user needs most when signing in.
    pub fn home(&self) -> &'static str {
        if self.admin {
            "/admin"
        } else if self.audit {
            "/audit"
        } else if self.inbox {
            "/referrals"
        } else if self.post_report && !self.release {
            "/observations"
        } else {
            "/situation-reports"
        }
    }
}
