use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A scratch copy of the shipped policy folder, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn copy_of_policies() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "samverkan-policy-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(policy_dir()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        ScratchDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn user(role: &str, org: &str, kind: &str, mandated: bool, places: &[&str]) -> PrincipalAttrs {
    PrincipalAttrs {
        user_id: format!("{role}-1"),
        role: role.to_string(),
        organization_id: org.to_string(),
        organization_kind: kind.to_string(),
        mandated_reporter: mandated,
        places: places.iter().map(|p| p.to_string()).collect(),
    }
}

fn observation(kind: &str, place: &str, reporter: &str) -> Resource {
    Resource::ObservationPart {
        kind: ObservationPart::parse(kind).unwrap(),
        place: place.to_string(),
        reporter_id: reporter.to_string(),
        reporter_org_id: "org-security".to_string(),
    }
}

#[test]
fn decision_tables_pass_on_the_shipped_policies() {
    let report = run_decision_tables(&policy_dir()).unwrap();
    assert!(report.failed.is_empty(), "{report}");
    assert!(report.passed > 700, "{report}");
}

#[test]
fn decision_tables_pass_on_the_embedded_policies() {
    let report = run_embedded_decision_tables().unwrap();
    assert!(report.failed.is_empty(), "{report}");
    assert_eq!(
        report.passed,
        run_decision_tables(&policy_dir()).unwrap().passed
    );
}

#[test]
fn embedded_copies_match_the_policy_folder() {
    let dir = policy_dir();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cedar"))
        .collect();
    on_disk.sort();
    let embedded = load::Sources::embedded();
    let names: Vec<String> = embedded
        .policies
        .iter()
        .map(|f| f.label.trim_start_matches("policies/").to_string())
        .collect();
    assert_eq!(
        names, on_disk,
        "add new policy files to EMBEDDED_POLICIES in load.rs"
    );
    for file in &embedded.policies {
        let name = file.label.trim_start_matches("policies/");
        assert_eq!(file.text, std::fs::read_to_string(dir.join(name)).unwrap());
    }
    let from_dir = PolicyEngine::load(&dir).unwrap();
    let embedded = PolicyEngine::load_embedded().unwrap();
    assert_eq!(from_dir.policy_ids(), embedded.policy_ids());
    assert_eq!(from_dir.policy_count(), embedded.policy_count());
}

#[test]
fn every_policy_is_named_by_its_id() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let ids = engine.policy_ids();
    assert_eq!(ids.len(), engine.policy_count());
    assert!(ids.contains(&"guard-reads-observation-core-at-assigned-places".to_string()));
    assert!(ids.iter().all(|id| !id.starts_with("policy")), "{ids:?}");
}

#[test]
fn a_syntax_error_names_the_file_line_and_column() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("referrals.cedar");
    // Break the 3rd line of the first rule's scope: `action ==` loses its right-hand side.
    let broken = text.replacen(
        "  action == Samverkan::Action::\"read\",",
        "  action == ,",
        1,
    );
    assert_ne!(broken, text);
    let line = broken.lines().position(|l| l == "  action == ,").unwrap() + 1;
    dir.write("referrals.cedar", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    let expected = format!("{}:{line}:", dir.0.join("referrals.cedar").display());
    assert!(shown.starts_with(&expected), "{shown}");
    assert!(shown.contains("unexpected token"), "{shown}");
    // table runs refuse to run on broken policies
    assert!(run_decision_tables(&dir.0).is_err());
}

#[test]
fn a_strict_validation_error_names_the_file_line_and_column() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("observations.cedar");
    let broken = text.replacen(
        "principal.role == Samverkan::Role::\"guard\" &&\n  resource.reporter == principal",
        "principal.role == Samverkan::Role::\"guard\" &&\n  resource.reportr == principal",
        1,
    );
    assert_ne!(broken, text);
    let line = broken
        .lines()
        .position(|l| l.contains("resource.reportr"))
        .unwrap()
        + 1;
    dir.write("observations.cedar", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    let expected = format!("{}:{line}:3:", dir.0.join("observations.cedar").display());
    assert!(shown.starts_with(&expected), "{shown}");
    assert!(shown.contains("reportr"), "{shown}");
}

#[test]
fn a_misspelt_role_fails_validation() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("administration.cedar");
    let broken = text.replacen("Samverkan::Role::\"admin\"", "Samverkan::Role::\"admn\"", 1);
    assert_ne!(broken, text);
    dir.write("administration.cedar", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}:",
            dir.0.join("administration.cedar").display()
        )),
        "{shown}"
    );
    assert!(shown.contains("admn"), "{shown}");
}

#[test]
fn a_schema_error_names_the_schema_file_and_line() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("schema.cedarschema");
    let broken = text.replacen("  entity Organization;", "  entity Organization", 1);
    assert_ne!(broken, text);
    dir.write("schema.cedarschema", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    let prefix = format!("{}:", dir.0.join("schema.cedarschema").display());
    assert!(shown.starts_with(&prefix), "{shown}");
    let position = &err.problems()[0].position;
    assert!(position.is_some(), "{shown}");
}

#[test]
fn a_schema_that_does_not_fit_the_service_is_rejected() {
    // No rule uses a referral's place, so the policies still validate, but the service
    // sends it: every request would fail, so loading must fail instead.
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("schema.cedarschema");
    let broken = text.replacen("    place?: String,\n", "", 1);
    assert_ne!(broken, text);
    dir.write("schema.cedarschema", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    let prefix = format!(
        "{}: the schema does not fit",
        dir.0.join("schema.cedarschema").display()
    );
    assert!(shown.starts_with(&prefix), "{shown}");
    assert!(shown.contains("place"), "{shown}");
    assert_eq!(err.problems().len(), 1, "{shown}");

    // A rule that uses an attribute the schema lost fails validation.
    let text = dir.read("schema.cedarschema");
    let broken = text.replacen("    consent_valid: Bool,\n", "", 1);
    dir.write("schema.cedarschema", &broken);
    let shown = PolicyEngine::load(&dir.0).unwrap_err().to_string();
    assert!(shown.contains("referrals.cedar:"), "{shown}");
    assert!(shown.contains("consent_valid"), "{shown}");
}

#[test]
fn a_missing_id_is_rejected() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("administration.cedar");
    let annotation = "@id(\"auditor-reads-audit-trail\")\n";
    let broken = text.replacen(annotation, "", 1);
    assert_ne!(broken, text);
    // The rule's `permit` now starts on the line its annotation was on.
    let line = text[..text.find(annotation).unwrap()].matches('\n').count() + 1;
    dir.write("administration.cedar", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    let expected = format!(
        "{}:{line}:1: ",
        dir.0.join("administration.cedar").display()
    );
    assert!(shown.starts_with(&expected), "{shown}");
    assert!(shown.contains("@id"), "{shown}");
}

#[test]
fn a_duplicate_id_is_rejected_naming_both_places() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("referrals.cedar");
    let broken = text.replacen("@id(\"file-referral\")", "@id(\"admin-administers\")", 1);
    assert_ne!(broken, text);
    dir.write("referrals.cedar", &broken);
    let err = PolicyEngine::load(&dir.0).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:", dir.0.join("referrals.cedar").display())),
        "{shown}"
    );
    assert!(
        shown.contains("duplicate @id(\"admin-administers\")"),
        "{shown}"
    );
    assert!(shown.contains("administration.cedar:"), "{shown}");
}

#[test]
fn an_id_that_is_not_kebab_case_is_rejected() {
    let dir = ScratchDir::copy_of_policies();
    let text = dir.read("administration.cedar");
    let broken = text.replacen(
        "@id(\"admin-administers\")",
        "@id(\"Admin Administers\")",
        1,
    );
    dir.write("administration.cedar", &broken);
    let shown = PolicyEngine::load(&dir.0).unwrap_err().to_string();
    assert!(shown.contains("kebab-case"), "{shown}");
}

#[test]
fn missing_folder_or_files_are_errors() {
    let missing = Path::new("/nonexistent/samverkan-policies");
    let shown = PolicyEngine::load(missing).unwrap_err().to_string();
    assert!(shown.contains("schema.cedarschema"), "{shown}");

    let dir = ScratchDir::copy_of_policies();
    std::fs::remove_file(dir.0.join("decisions.csv")).unwrap();
    let shown = run_decision_tables(&dir.0).err().unwrap().to_string();
    assert!(shown.contains("decisions.csv"), "{shown}");
}

#[test]
fn failing_rows_are_reported_with_line_and_reason() {
    let dir = ScratchDir::copy_of_policies();
    let mut text = dir.read("decisions.csv");
    text.push_str("coordinator,municipality,yes,yes,read,report_section,on_site,other,-,allow\n");
    text.push_str("coordinator,municipality,yes,yes,read,report_section,general,other,-,deny\n");
    text.push_str("coordinator,municipality,yes,maybe,read,report_section,general,other,-,deny\n");
    let last = text.lines().count();
    dir.write("decisions.csv", &text);
    let report = run_decision_tables(&dir.0).unwrap();
    assert_eq!(report.failed.len(), 3, "{report}");
    let label = dir.0.join("decisions.csv").display().to_string();
    assert!(report.failed[0].starts_with(&format!("{label}:{}: coordinator,", last - 2)));
    assert!(report.failed[0].contains("expected allow, got deny (no rule allows it)"));
    assert!(report.failed[1]
        .contains("expected deny, got allow (allowed by partners-read-general-sections)"));
    assert!(report.failed[2].contains("assigned must be yes, no or -"));
    assert!(report
        .to_string()
        .ends_with(&format!("{} passed, 3 failed", report.passed)));
}

#[test]
fn the_cache_agrees_with_fresh_evaluation() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let roles = [
        ("police_officer", "police", true),
        ("police_analyst", "police", true),
        ("guard", "security", false),
        ("guard", "security", true),
        ("social_worker", "social_services", true),
        ("outreach_worker", "outreach", true),
        ("coordinator", "municipality", true),
        ("auditor", "municipality", true),
        ("admin", "municipality", true),
        ("nobody", "municipality", true),
    ];
    let mut resources = Vec::new();
    for place in ["sergels-torg", "hasselby-torg"] {
        for reporter in ["guard-1", "police_officer-1", "other"] {
            for kind in ObservationPart::ALL {
                resources.push(observation(kind.as_str(), place, reporter));
            }
            for &audience in Audience::ALL {
                resources.push(Resource::ReportSection {
                    audience,
                    place: place.to_string(),
                    author_id: reporter.to_string(),
                    author_org_id: "org-police".to_string(),
                });
            }
            for &kind in ReferralPart::ALL {
                for valid in [false, true] {
                    for &released_to in ReleasedTo::ALL {
                        resources.push(Resource::ReferralPart {
                            kind,
                            place: Some(place.to_string()),
                            reporter_id: reporter.to_string(),
                            reporter_org_id: "org-police".to_string(),
                            receiving_org_id: "org-social_services".to_string(),
                            consent: (kind == ReferralPart::ReleasedDetails)
                                .then_some(ConsentFacts { valid, released_to }),
                        });
                    }
                }
            }
        }
    }
    for &kind in AdminKind::ALL {
        resources.push(Resource::Admin { kind });
    }
    resources.push(Resource::AuditLog);
    for &kind in StatisticsKind::ALL {
        resources.push(Resource::Statistics { kind });
    }
    let mut allowed = 0;
    for round in 0..2 {
        for (role, kind, mandated) in roles {
            let p = user(
                role,
                &format!("org-{kind}"),
                kind,
                mandated,
                &["sergels-torg"],
            );
            for action in Action::ALL {
                for r in &resources {
                    let fresh = engine.decide(&p, action, r);
                    assert_eq!(
                        engine.is_allowed(&p, action, r),
                        fresh,
                        "{p:?} {action} {r:?}"
                    );
                    assert_eq!(
                        engine.is_allowed(&p, action, r),
                        fresh,
                        "{p:?} {action} {r:?}"
                    );
                    if round == 0 && fresh {
                        allowed += 1;
                    }
                }
            }
        }
    }
    assert!(allowed > 50, "{allowed}");
}

#[test]
fn a_list_of_similar_records_costs_a_handful_of_evaluations() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let guard = user(
        "guard",
        "org-security",
        "security",
        false,
        &["sergels-torg"],
    );
    for _record in 0..50 {
        for kind in ObservationPart::ALL {
            let r = observation(kind.as_str(), "sergels-torg", "someone");
            let _ = engine.is_allowed(&guard, Action::Read, &r);
        }
    }
    assert_eq!(engine.cache.len(), 4);
}

#[test]
fn the_cache_is_bounded() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let guard = user(
        "guard",
        "org-security",
        "security",
        false,
        &["sergels-torg"],
    );
    for i in 0..(CACHE_MAX_ENTRIES + 5_000) {
        let r = observation("core", &format!("place-{i}"), "someone");
        let _ = engine.is_allowed(&guard, Action::Read, &r);
    }
    assert!(
        engine.cache.len() <= CACHE_MAX_ENTRIES,
        "{}",
        engine.cache.len()
    );
    assert!(engine.cache.len() > 0);
}

#[test]
fn demo_world_examples() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let vakt1 = PrincipalAttrs {
        user_id: "vakt1".into(),
        ..user("guard", "org-ov", "security", false, &["sergels-torg"])
    };
    // own narrative at any place, others' core only at assigned places
    assert!(engine.is_allowed(
        &vakt1,
        Action::Read,
        &observation("narrative", "hasselby-torg", "vakt1")
    ));
    assert!(engine.is_allowed(
        &vakt1,
        Action::Read,
        &observation("core", "sergels-torg", "vakt2")
    ));
    assert!(!engine.is_allowed(
        &vakt1,
        Action::Read,
        &observation("core", "hasselby-torg", "vakt2")
    ));
    assert!(!engine.is_allowed(
        &vakt1,
        Action::Read,
        &observation("narrative", "sergels-torg", "vakt2")
    ));
    // filing: only at an assigned place, only as themselves
    let filed = |place: &str, reporter: &str| Resource::ObservationPart {
        kind: ObservationPart::Core,
        place: place.into(),
        reporter_id: reporter.into(),
        reporter_org_id: "org-ov".into(),
    };
    assert!(engine.is_allowed(&vakt1, Action::Create, &filed("sergels-torg", "vakt1")));
    assert!(!engine.is_allowed(&vakt1, Action::Create, &filed("hasselby-torg", "vakt1")));
    assert!(!engine.is_allowed(&vakt1, Action::Create, &filed("sergels-torg", "vakt2")));
    // feedback status: not for an unmandated guard, yes once the flag is switched
    let feedback = Resource::ReferralPart {
        kind: ReferralPart::FeedbackStatus,
        place: None,
        reporter_id: "vakt1".into(),
        reporter_org_id: "org-ov".into(),
        receiving_org_id: "org-soc".into(),
        consent: None,
    };
    assert!(!engine.is_allowed(&vakt1, Action::Read, &feedback));
    let mandated = PrincipalAttrs {
        mandated_reporter: true,
        ..vakt1.clone()
    };
    assert!(engine.is_allowed(&mandated, Action::Read, &feedback));
    // social worker of the receiving organisation writes feedback, whatever the place
    let soc1 = PrincipalAttrs {
        user_id: "soc1".into(),
        ..user(
            "social_worker",
            "org-soc",
            "social_services",
            true,
            &["sergels-torg"],
        )
    };
    assert!(engine.is_allowed(&soc1, Action::WriteFeedback, &feedback));
    assert!(engine.is_allowed(&soc1, Action::Read, &feedback));
    let other_soc = PrincipalAttrs {
        organization_id: "org-soc-2".into(),
        ..soc1.clone()
    };
    assert!(!engine.is_allowed(&other_soc, Action::WriteFeedback, &feedback));
    assert!(!engine.is_allowed(&other_soc, Action::Read, &feedback));
}

#[test]
fn errors_deny() {
    let engine = PolicyEngine::load_embedded().unwrap();
    let bad_role = user("superuser", "org", "police", true, &["sergels-torg"]);
    assert!(!engine.is_allowed(
        &bad_role,
        Action::Read,
        &observation("core", "sergels-torg", "x")
    ));
    let admin = user("admin", "org", "municipality", true, &[]);
    // an action that does not apply to the resource type
    assert!(!engine.is_allowed(
        &admin,
        Action::Read,
        &Resource::Admin {
            kind: AdminKind::Users
        }
    ));
    assert!(engine.is_allowed(
        &admin,
        Action::Administer,
        &Resource::Admin {
            kind: AdminKind::Users
        }
    ));
    assert!(engine
        .explain(&bad_role, Action::Read, &Resource::AuditLog)
        .is_err());
}

#[test]
fn line_col_counts_characters() {
    let text = "ab\nåäö x\n";
    assert_eq!(load::line_col(text, 0), (1, 1));
    assert_eq!(load::line_col(text, 3), (2, 1));
    // "åäö " is 7 bytes
    assert_eq!(load::line_col(text, 3 + 7), (2, 5));
    assert_eq!(load::line_col(text, 1000), (3, 1));
}

#[test]
fn every_rule_is_needed_by_the_decision_tables() {
    let table = load::SourceFile {
        label: "policies/decisions.csv".to_string(),
        text: load::EMBEDDED_DECISIONS.to_string(),
    };
    for id in PolicyEngine::load_embedded().unwrap().policy_ids() {
        let mut engine = PolicyEngine::load_embedded().unwrap();
        engine
            .policies
            .remove_static(cedar_policy::PolicyId::new(&id))
            .unwrap();
        let report = table::run(&engine, &table).unwrap();
        assert!(
            !report.failed.is_empty(),
            "the decision tables do not notice when rule {id} is removed"
        );
    }
}

#[test]
fn the_engine_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PolicyEngine>();
    assert_send_sync::<PolicyError>();
}
