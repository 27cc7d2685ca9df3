//! The words the policies and the service share, each declared once here as an enum:
//! the Cedar names, the audit trail's names and the API's names all come from these.
//! `schema.cedarschema` declares the same lists; `PolicyEngine::load` refuses a schema
//! that lacks any of them.

/// Declares a closed list of names: the enum, `ALL`, `as_str` and `parse`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        // `rename_all` as well as each variant's rename: utoipa does not read a rename
        // whose literal comes from a macro argument, and the texts are the variants'
        // snake_case names (a test compares the OpenAPI schema with `as_str`).
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name in the policies, the API and the audit trail.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// Every name, comma-separated (for messages).
            pub fn listed() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use vocabulary;

vocabulary!(
    /// The roles of the default policy (domain.md, "Who uses it").
    Role {
        PoliceOfficer => "police_officer",
        PoliceAnalyst => "police_analyst",
        Guard => "guard",
        SocialWorker => "social_worker",
        OutreachWorker => "outreach_worker",
        Coordinator => "coordinator",
        Auditor => "auditor",
        Admin => "admin",
    }
);

vocabulary!(
    /// Kinds of organisation a user belongs to.
    OrganizationKind {
        Police => "police",
        Security => "security",
        SocialServices => "social_services",
        Outreach => "outreach",
        Municipality => "municipality",
    }
);

vocabulary!(
    /// The record kinds: in audit entries, cursors, legal holds and retention.
    RecordKind {
        /// Observation — a report from the scene.
        Observation => "observation",
        /// Lägesbild.
        SituationReport => "situation_report",
        /// Orosanmälan.
        Referral => "referral",
    }
);

vocabulary!(
    /// The parts of an observation, decided separately.
    ObservationPart {
        /// Place, time, category and the reporter's pseudonym.
        Core => "core",
        /// The free-text description (may name people).
        Narrative => "narrative",
        /// The persons described.
        Persons => "persons",
        /// Who the reporter really is.
        ReporterIdentity => "reporter_identity",
    }
);

vocabulary!(
    /// Who a lägesbild section is for. The title, place and validity show only together
    /// with a section the reader may see.
    Audience {
        General => "general",
        OnSite => "on_site",
        PoliceOnly => "police_only",
    }
);

vocabulary!(
    /// The parts of an orosanmälan, decided separately.
    ReferralPart {
        /// Who the child is and what the concern is.
        ChildAndConcern => "child_and_concern",
        /// The feedback status (återkoppling).
        FeedbackStatus => "feedback_status",
        /// Social services' own notes, feedback history and consents.
        SocialNotes => "social_notes",
        /// Details released under one recorded consent (samtycke).
        ReleasedDetails => "released_details",
    }
);

vocabulary!(
    /// Who may read what a consent releases.
    ReleasedTo {
        /// The person who filed the orosanmälan.
        Reporter => "reporter",
        /// Everyone in the filer's organisation whom the rules let read released details.
        ReporterOrganization => "reporter_organization",
    }
);

vocabulary!(
    /// What the administrator manages.
    AdminKind {
        Organizations => "organizations",
        Places => "places",
        Users => "users",
        LegalHolds => "legal_holds",
    }
);

vocabulary!(
    /// Which statistics.
    StatisticsKind {
        Observations => "observations",
        Referrals => "referrals",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the OpenAPI document gives a vocabulary are the names the API sends.
    fn schema_names<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| as_str(*v).to_owned()).collect()
    }

    #[test]
    fn the_openapi_document_names_every_vocabulary_as_the_api_sends_it() {
        assert_eq!(schema_names::<Role>(), names(Role::ALL, Role::as_str));
        assert_eq!(
            schema_names::<OrganizationKind>(),
            names(OrganizationKind::ALL, OrganizationKind::as_str)
        );
        assert_eq!(
            schema_names::<RecordKind>(),
            names(RecordKind::ALL, RecordKind::as_str)
        );
        assert_eq!(
            schema_names::<ObservationPart>(),
            names(ObservationPart::ALL, ObservationPart::as_str)
        );
        assert_eq!(
            schema_names::<Audience>(),
            names(Audience::ALL, Audience::as_str)
        );
        assert_eq!(
            schema_names::<ReferralPart>(),
            names(ReferralPart::ALL, ReferralPart::as_str)
        );
        assert_eq!(
            schema_names::<ReleasedTo>(),
            names(ReleasedTo::ALL, ReleasedTo::as_str)
        );
        assert_eq!(
            schema_names::<AdminKind>(),
            names(AdminKind::ALL, AdminKind::as_str)
        );
        assert_eq!(
            schema_names::<StatisticsKind>(),
            names(StatisticsKind::ALL, StatisticsKind::as_str)
        );
        for v in Audience::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }
}
