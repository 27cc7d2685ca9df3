//! The demo world (`serve --demo`): organisations, places and users of the Stockholm
//! field report, seeded idempotently before the server listens.

use anyhow::Context;

use crate::admin::{self, NewOrganization, NewPlace, NewUser};
use crate::audit::writer::Writer;
use crate::audit::{AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::auth::password::hash_blocking;
use crate::config::Secret;
use crate::error::AppError;
use crate::policy::{PolicyEngine, RecordKind};
use crate::storage::{self, Db};

/// (id, name, kind, mandated reporter)
pub const ORGANIZATIONS: &[(&str, &str, &str, bool)] = &[
    (
        "polisen-stockholm",
        "Polisen region Stockholm",
        "police",
        true,
    ),
    (
        "ordningsvakter-stockholm",
        "Stockholms stad ordningsvakter",
        "security",
        false,
    ),
    (
        "socialtjansten-norrmalm",
        "Socialtjänsten Norrmalm",
        "social_services",
        true,
    ),
    (
        "faltassistenterna-norrmalm",
        "Fältassistenterna Norrmalm",
        "outreach",
        true,
    ),
    (
        "trygghetssamordning-stockholm",
        "Stockholms stad trygghetssamordning",
        "municipality",
        true,
    ),
];

/// (slug, name, basområde)
pub const PLACES: &[(&str, &str, &str)] = &[
    ("sergels-torg", "Sergels torg", "101025"),
    ("hasselby-torg", "Hässelby torg", "225012"),
];

/// (username, display name, organisation id, role, places)
pub const USERS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "polis1",
        "Polis Ett",
        "polisen-stockholm",
        "police_officer",
        &["sergels-torg", "hasselby-torg"],
    ),
    (
        "analytiker1",
        "Analytiker Ett",
        "polisen-stockholm",
        "police_analyst",
        &["sergels-torg", "hasselby-torg"],
    ),
    (
        "vakt1",
        "Vakt Ett",
        "ordningsvakter-stockholm",
        "guard",
        &["sergels-torg"],
    ),
    (
        "vakt2",
        "Vakt Två",
        "ordningsvakter-stockholm",
        "guard",
        &["hasselby-torg"],
    ),
    (
        "soc1",
        "Socialsekreterare Ett",
        "socialtjansten-norrmalm",
        "social_worker",
        &["sergels-torg"],
    ),
    (
        "falt1",
        "Fältassistent Ett",
        "faltassistenterna-norrmalm",
        "outreach_worker",
        &["sergels-torg"],
    ),
    (
        "samordnare1",
        "Samordnare Ett",
        "trygghetssamordning-stockholm",
        "coordinator",
        &["sergels-torg"],
    ),
    (
        "revisor1",
        "Revisor Ett",
        "trygghetssamordning-stockholm",
        "auditor",
        &[],
    ),
    (
        "admin1",
        "Admin Ett",
        "trygghetssamordning-stockholm",
        "admin",
        &[],
    ),
];

fn generate_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Seeds what is missing and never changes what exists. New demo users get
/// `SAMVERKAN_DEMO_PASSWORD`, or a password generated and printed once.
pub async fn seed(
    db: &Db,
    writer: &Writer,
    policy: &std::sync::Arc<PolicyEngine>,
    password: Option<Secret>,
) -> anyhow::Result<()> {
    let existing = {
        db.run(|c| {
            let mut found = Vec::new();
            for (u, ..) in USERS {
                if let Some(user) = admin::find_user(c, u)? {
                    found.push(user);
                }
            }
            Ok(found)
        })
        .await?
    };
    // Seeding only ever adds: an existing user keeps its password, role, places and
    // sessions, whatever the environment says now (a restart must not undo a change an
    // administrator or the user made, unaudited).
    let missing = USERS.len() - existing.len();
    if missing < USERS.len() && password.is_some() {
        println!(
            "samverkan demo: {} demo users already exist and keep their passwords; SAMVERKAN_DEMO_PASSWORD applies to users the demo creates",
            existing.len()
        );
    }
    let generated = password.is_none() && missing > 0;
    let password = password
        .map(|s| s.expose().to_owned())
        .unwrap_or_else(generate_password);
    let pw = password.clone();
    let hash = if missing > 0 {
        Some(tokio::task::spawn_blocking(move || hash_blocking(&pw)).await??)
    } else {
        None
    };
    let policy = policy.clone();
    writer
        .write(move |tx| {
            // Replicas started together seed one after the other; the later find it done.
            storage::lock_key(tx.conn, "samverkan:demo-seed")?;
            let meta = RequestMeta::default();
            // The demo world follows the rules an administrator does (roles belong to
            // organisation kinds).
            let operator = admin::operator();
            let check = |change: &admin::AccountChange<'_>| {
                admin::check_account(&policy, &operator, change)
            };
            let mut created = 0;
            for (id, name, kind, mandated) in ORGANIZATIONS {
                if admin::load_org(tx.conn, id).is_err() {
                    admin::create_organization(
                        tx.conn,
                        &NewOrganization {
                            id: Some((*id).into()),
                            name: (*name).into(),
                            kind: (*kind).into(),
                            mandated_reporter: *mandated,
                            password_login: None,
                        },
                    )?;
                    created += 1;
                }
            }
            for (id, name, basomrade) in PLACES {
                let exists = crate::records::observations::place_exists(tx.conn, id)?;
                if !exists {
                    admin::create_place(
                        tx.conn,
                        &NewPlace {
                            id: (*id).into(),
                            name: (*name).into(),
                            basomrade: (*basomrade).into(),
                        },
                    )?;
                    created += 1;
                }
            }
            for (username, display, org, role, places) in USERS {
                if admin::find_user(tx.conn, username)?.is_some() {
                    continue;
                }
                let Some(hash) = hash.clone() else { continue };
                admin::create_user(
                    tx.conn,
                    &NewUser {
                        username: (*username).into(),
                        display_name: (*display).into(),
                        organization: (*org).into(),
                        role: (*role).into(),
                        places: places.iter().map(|p| (*p).to_owned()).collect(),
                        password: String::new(),
                    },
                    hash,
                    &check,
                )?;
                created += 1;
            }
            if created > 0 {
                tx.audit(
                    &AuditEntry::new(AuditAction::DemoSeed, Outcome::Success, &meta)
                        .parts(&[format!("{created} created")]),
                )?;
            }
            Ok(())
        })
        .await
        .context("seeding the demo world")?;
    if generated {
        println!("samverkan demo: users polis1, analytiker1, vakt1, vakt2, soc1, falt1, samordnare1, revisor1, admin1");
        println!("samverkan demo: password for all of them (shown once): {password}");
    }
    Ok(())
}

/// RFC 3339 time `minutes` from now (negative: in the past).
fn minutes_from_now(minutes: i64) -> Result<String, AppError> {
    let t = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(AppError::internal)
}

fn user(
    conn: &mut crate::storage::DbConnection,
    name: &str,
) -> Result<crate::storage::models::User, AppError> {
    admin::find_user(conn, name)?
        .ok_or_else(|| AppError::internal(format!("demo user {name} missing")))
}

/// A handful of records at both places, dated relative to now, so every role's first
/// list shows what that role sees (and, by what is absent, what it does not). Stored
/// only when the database holds no observation, lägesbild or referral at all, each
/// audited as a demo filing.
pub async fn seed_samples(db: &Db, writer: &Writer) -> anyhow::Result<()> {
    use crate::records::observations::{self as obs, NewObservation, NewPerson};
    use crate::records::referrals::{self as rf, Child, NewConsent, NewFeedback, NewReferral};
    use crate::records::situation_reports::{self as sr, NewSection, NewSituationReport};
    let empty = db.run(crate::records::is_empty).await?;
    if !empty {
        return Ok(());
    }
    let observation =
        |place: &str, minutes_ago: i64, category: &str, text: &str, persons: Vec<NewPerson>| {
            NewObservation {
                place: place.into(),
                observed_at: minutes_from_now(-minutes_ago)?,
                category: category.into(),
                description: Some(text.into()),
                persons,
            }
            .validate()
        };
    let person = |description: &str, year: i32| NewPerson {
        description: description.into(),
        estimated_birth_year: Some(year),
        age_uncertain: Some(true),
    };
    let observations = [
        (
            "vakt1",
            observation(
                "sergels-torg",
                130,
                "drug_sale",
                "Två män säljer vid trappan ner mot T-Centralen; byter påsar mot kontanter.",
                vec![
                    person("ung man, röd jacka, vit keps", 2006),
                    person("man i 30-årsåldern, grå täckjacka", 1994),
                ],
            )?,
        ),
        (
            "vakt1",
            observation(
                "sergels-torg",
                45,
                "intoxication",
                "Kraftigt påverkad person vid fontänen; ambulans tillkallad, kvar på platsen.",
                vec![person("kvinna, mörkt hår, svart jacka", 1990)],
            )?,
        ),
        (
            "falt1",
            observation(
                "sergels-torg",
                200,
                "drug_use",
                "Tre unga sitter i Plattans trappa och röker; verkar yngre än 18.",
                vec![person("pojke, grå hoodie", 2010)],
            )?,
        ),
        (
            "vakt2",
            observation(
                "hasselby-torg",
                70,
                "disorder",
                "Grupp om cirka tio ungdomar vid pizzerian, högljudda, kastar flaskor.",
                vec![],
            )?,
        ),
    ];
    let section = |audience: &str, body: &str| NewSection {
        audience: audience.into(),
        body: body.into(),
    };
    let reports = [
        NewSituationReport {
            place: "sergels-torg".into(),
            title: "Kväll – Sergels torg".into(),
            valid_from: Some(minutes_from_now(-60)?),
            valid_until: Some(minutes_from_now(11 * 60)?),
            sections: vec![
                section("general", "Ett större tillslag genomfördes i eftermiddags; heroin kan bli ont om, oro kan uppstå under kvällen."),
                section("on_site", "Extra patrullering vid fontänen och trappan mot T-Centralen från kl. 22."),
                section("police_only", "Underrättelse: säljarnätverket väntas flytta till Hötorget; spaning pågår."),
            ],
        }
        .validate()?,
        NewSituationReport {
            place: "hasselby-torg".into(),
            title: "Helg – Hässelby torg".into(),
            valid_from: Some(minutes_from_now(-120)?),
            valid_until: Some(minutes_from_now(2 * 24 * 60)?),
            sections: vec![section("general", "Ungdomsgrupper samlas vid torget efter kl. 20; fältassistenter på plats fredag och lördag.")],
        }
        .validate()?,
    ];
    let referral = NewReferral {
        receiving_organization: "socialtjansten-norrmalm".into(),
        place: Some("sergels-torg".into()),
        child: Child {
            name: None,
            personal_identity_number: None,
            alias: Some("Mille".into()),
            estimated_birth_year: Some(2010),
            age_uncertain: Some(true),
            description: Some("cirka 15 år, grå hoodie, cyklar".into()),
        },
        concern: "Sedd köpa tabletter vid Sergels torg tre kvällar i rad; verkade påverkad.".into(),
    }
    .validate()?;
    let guard_referral = NewReferral {
        receiving_organization: "socialtjansten-norrmalm".into(),
        place: Some("sergels-torg".into()),
        child: Child {
            name: None,
            personal_identity_number: None,
            alias: None,
            estimated_birth_year: Some(2011),
            age_uncertain: Some(true),
            description: Some("flicka, cirka 14 år, rosa ryggsäck".into()),
        },
        concern: "Sitter ensam vid fontänen sent varje kväll den här veckan; säger att hon inte vill gå hem.".into(),
    }
    .validate()?;
    let feedback = NewFeedback {
        status: "investigation_opened".into(),
        note: Some("Intern: kontakt med skolsköterskan bokad.".into()),
    }
    .validate()?;
    let consent = NewConsent {
        given_by: "guardian".into(),
        scope: "planerade insatser, till den polis som anmälde".into(),
        valid_until: minutes_from_now(90 * 24 * 60)?,
        released_details: "Stödkontakt utsedd; skolan informerad.".into(),
        released_to: None,
    }
    .validate()?;
    let stored = writer
        .write(move |tx| {
            // Checked again under the lock: a replica started beside this one may have
            // seeded them meanwhile.
            storage::lock_key(tx.conn, "samverkan:demo-seed")?;
            if !crate::records::is_empty(tx.conn)? {
                return Ok(0);
            }
            let mut filed: Vec<(RecordKind, String)> = Vec::new();
            for (who, o) in &observations {
                let u = user(tx.conn, who)?;
                let org = admin::load_org(tx.conn, &u.organization_id)?;
                let stored = obs::insert(tx.conn, o, &u, &org)?;
                filed.push((RecordKind::Observation, stored.id().to_owned()));
            }
            let polis = user(tx.conn, "polis1")?;
            for r in &reports {
                let stored = sr::insert(tx.conn, r, &polis)?;
                filed.push((RecordKind::SituationReport, stored.id().to_owned()));
            }
            let social = admin::load_org(tx.conn, "socialtjansten-norrmalm")?;
            let id = rf::insert(tx.conn, &referral, &social, &polis)?;
            let soc = user(tx.conn, "soc1")?;
            rf::insert_feedback(tx.conn, &id, &feedback.0, feedback.1.clone(), &soc)?;
            rf::insert_consent(tx.conn, &id, &consent, &soc)?;
            filed.push((RecordKind::Referral, id));
            let vakt = user(tx.conn, "vakt1")?;
            filed.push((
                RecordKind::Referral,
                rf::insert(tx.conn, &guard_referral, &social, &vakt)?,
            ));
            let meta = RequestMeta::default();
            for (kind, id) in &filed {
                tx.audit(
                    &AuditEntry::new(AuditAction::DemoSeed, Outcome::Success, &meta)
                        .record(kind.as_str(), id)
                        .parts(&["sample record".to_owned()]),
                )?;
            }
            Ok(filed.len())
        })
        .await
        .context("seeding the demo's sample records")?;
    tracing::info!(records = stored, "demo: sample records added");
    Ok(())
}
