//! The demo world (`serve --demo`): organisations, places and users of the Stockholm
//! field report, seeded idempotently before the server listens.

use anyhow::Context;

use crate::admin::{self, NewOrganization, NewPlace, NewUser};
use crate::audit::writer::Writer;
use crate::audit::{AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::auth::password::hash_blocking;
use crate::config::Secret;
use crate::error::AppError;
use crate::policy::PolicyEngine;
use crate::storage::Db;

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

/// Seeds what is missing. With `SAMVERKAN_DEMO_PASSWORD` set, demo users end up with
/// that password; without it, a password is generated and printed once, when the users
/// are first created.
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
    // Only a configured password is pushed onto existing demo users; a generated one is
    // used for new users only (it was printed when they were first created).
    let reset_existing = password.is_some();
    let generated = password.is_none() && existing.len() < USERS.len();
    let password = password
        .map(|s| s.expose().to_owned())
        .unwrap_or_else(generate_password);
    let pw = password.clone();
    let hashes: Vec<(String, Option<String>)> = tokio::task::spawn_blocking(move || {
        let hash = hash_blocking(&pw)?;
        Ok::<_, AppError>(
            USERS
                .iter()
                .map(|(u, ..)| {
                    let current = existing.iter().find(|e| e.username == *u);
                    // Keep a stored hash that already matches; else set the demo password.
                    let keep = current.is_some_and(|e| {
                        argon2::PasswordHash::new(&e.password_hash)
                            .ok()
                            .is_some_and(|h| {
                                use argon2::PasswordVerifier;
                                argon2::Argon2::default()
                                    .verify_password(pw.as_bytes(), &h)
                                    .is_ok()
                            })
                    });
                    ((*u).to_owned(), (!keep).then(|| hash.clone()))
                })
                .collect(),
        )
    })
    .await??;
    let policy = policy.clone();
    writer
        .write(move |tx| {
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
            for ((username, display, org, role, places), (_, hash)) in USERS.iter().zip(hashes) {
                match admin::find_user(tx.conn, username)? {
                    None => {
                        let Some(hash) = hash else { continue };
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
                    Some(user) if reset_existing => {
                        if let Some(hash) = hash {
                            admin::update_user(
                                tx.conn,
                                &user,
                                &Default::default(),
                                Some(hash),
                                &check,
                            )?;
                        }
                    }
                    Some(_) => {}
                }
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
