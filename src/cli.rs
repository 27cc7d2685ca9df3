//! The command line: `serve`, `migrate`, `admin …`, `policy check|test`,
//! `audit verify|head`, `retention run`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::account::revoke_all_sessions;
use crate::admin::{self, Changes, NewOrganization, NewPlace, NewUser, UserPatch};
use crate::app::{load_policies, Application};
use crate::audit::writer::Writer;
use crate::audit::{AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::auth::password::{check_new_password, hash_blocking};
use crate::config::Settings;
use crate::error::AppError;
use crate::policy::PolicyEngine;
use crate::storage::cache::Generation;
use crate::storage::{self, Db};

#[derive(Debug, Parser)]
#[command(
    name = "samverkan",
    version,
    about = "Multi-agency information sharing under Swedish secrecy law"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (database from DATABASE_URL, default ./samverkan.db).
    Serve {
        /// Seed the demo world before listening.
        #[arg(long)]
        demo: bool,
        /// Address to listen on (default 127.0.0.1:8080, or SAMVERKAN_BIND).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage organisations, places and users (also to create the first admin).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Validate or test the Cedar policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Retention (gallring): erase records whose retention period has passed.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Copy a consistent snapshot of the SQLite database to a new file while the service
    /// runs, verify the copy's audit trail and print its chain heads (anchors to keep).
    /// On PostgreSQL, use pg_dump or point-in-time recovery (deploy/README.md, "Backups").
    Backup {
        /// The file to write (must not exist; created readable by the owner only).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the statistics of a period as one self-contained HTML file (tables and
    /// charts, no external resource) for the strategic forum, from the database alone.
    /// The same suppression as the API; audited as a statistics read.
    Report {
        /// First month, YYYY-MM.
        #[arg(long)]
        from: String,
        /// Last month, YYYY-MM.
        #[arg(long)]
        to: String,
        /// One place (slug) only.
        #[arg(long)]
        place: Option<String>,
        /// month, quarter or year (from and to must then start and end one).
        #[arg(long, default_value = "month")]
        period: String,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup in place of the SQLite database (stop the service first). The
    /// backup's audit trail is verified first, against every anchor given: entries
    /// missing since the backup are named; a broken or rewritten trail is refused.
    Restore {
        /// The backup file (from `samverkan backup`).
        #[arg(long)]
        from: PathBuf,
        /// A head kept since (`SEQ:HASH`); may be repeated.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Vec<crate::audit::Anchor>,
        /// Replace an existing database file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every environment variable the service reads, with its default and meaning
    /// (a Markdown table; deploy/README.md holds the same).
    Reference,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an organisation.
    CreateOrg {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: String,
        /// police | security | social_services | outreach | municipality
        #[arg(long)]
        kind: String,
        /// Its staff are mandated reporters.
        #[arg(long)]
        mandated_reporter: bool,
    },
    /// Create a place (drug scene).
    CreatePlace {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        basomrade: String,
    },
    /// Create a user; the password is read from SAMVERKAN_NEW_PASSWORD or standard input.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// Organisation id.
        #[arg(long)]
        organization: String,
        #[arg(long)]
        role: String,
        /// Comma-separated place ids.
        #[arg(long, value_delimiter = ',')]
        places: Vec<String>,
    },
    /// Set a user's password (from SAMVERKAN_NEW_PASSWORD or standard input); ends their sessions.
    SetPassword { username: String },
    /// Disable a user; ends their sessions at once.
    DisableUser { username: String },
    /// Enable a disabled user.
    EnableUser { username: String },
    /// List users.
    ListUsers,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the policies against the schema (strict); exits non-zero naming file and line.
    Check(PolicyDir),
    /// Run the decision tables (decisions.csv) against the policies.
    Test(PolicyDir),
    /// Put a policy folder in force on every instance of the database, without a
    /// restart: validated strictly against its schema, then its decision table; stored
    /// (and audited) only if both pass, else refused with the reasons and the rules in
    /// force stay. Instances swap it in within SAMVERKAN_POLICY_POLL_MS.
    Reload {
        /// Policy folder (default: SAMVERKAN_POLICY_DIR, else ./policies).
        dir: Option<PathBuf>,
        /// Who loads it, for the history (default: the operating-system user).
        #[arg(long)]
        by: Option<String>,
    },
    /// The policy sets that have been in force, oldest first, with when they were
    /// loaded and by whom; the last is current. Every audit entry names one by its hash.
    History,
}

#[derive(Debug, Args)]
pub struct PolicyDir {
    /// Policy folder (default ./policies).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every writer's hash chain in one snapshot; exits non-zero naming the first
    /// entry that does not match.
    Verify {
        /// An earlier head kept outside the database (`SEQ:HASH`, from `audit head`):
        /// fails when that entry is missing or has another hash. May be repeated.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Vec<crate::audit::Anchor>,
    },
    /// Print the current head of every writer's chain as `SEQ HASH chain N`, one line a
    /// chain, to keep outside the database (a WORM store, another system's log) and
    /// check later with `verify --anchor SEQ:HASH` (one per chain).
    Head,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Erase every record past its retention period (except those under legal hold) and
    /// print the counts per kind. The periods come from SAMVERKAN_RETENTION_*_DAYS.
    Run {
        /// Only count what would be erased; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn read_new_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("SAMVERKAN_NEW_PASSWORD") {
        return Ok(p);
    }
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

async fn admin_context(settings: &Settings) -> anyhow::Result<(Db, Writer)> {
    let url = settings.database_url.clone();
    tokio::task::spawn_blocking(move || storage::migrate(&url)).await??;
    let url = settings.database_url.clone();
    let db = tokio::task::spawn_blocking(move || Db::connect(&url, 2)).await??;
    // The CLI serves no reads from memory: nothing is cached against this generation.
    let generation = std::sync::Arc::new(Generation::default());
    Ok((
        db,
        // One writer: a command needs no second chain.
        Writer::start(
            &settings.database_url,
            generation,
            settings.audit_index_every,
            1,
            std::sync::Arc::new(crate::policy::Policies::new(load_policies(settings)?)),
        )?,
    ))
}

fn cli_entry(action: AuditAction, kind: &str, id: &str, changes: Changes) -> AuditEntry {
    cli_event(action, kind, id).changes(changes.into_json())
}

/// An entry of the command line that changes no record's fields.
fn cli_event(action: AuditAction, kind: &str, id: &str) -> AuditEntry {
    let meta = RequestMeta {
        client: Some("cli".into()),
        ..Default::default()
    };
    AuditEntry::new(action, Outcome::Success, &meta).record(kind, id)
}

/// The question the policy answers for the operator on an account (see
/// `admin::check_account`).
fn operator_check(
    policy: &PolicyEngine,
) -> impl Fn(&admin::AccountChange<'_>) -> Result<(), AppError> + '_ {
    let operator = admin::operator();
    move |change: &admin::AccountChange<'_>| admin::check_account(policy, &operator, change)
}

async fn run_admin(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let (db, writer) = admin_context(&settings).await?;
    let policy = std::sync::Arc::new(load_policies(&settings)?);
    match cmd {
        AdminCommand::CreateOrg {
            id,
            name,
            kind,
            mandated_reporter,
        } => {
            let v = NewOrganization {
                id,
                name,
                kind,
                mandated_reporter,
                password_login: None,
            };
            let org = writer
                .write(move |tx| {
                    let (org, c) = admin::create_organization(tx.conn, &v)?;
                    tx.audit(&cli_entry(
                        AuditAction::AdminCreate,
                        "organization",
                        &org.id,
                        c,
                    ))?;
                    Ok(org)
                })
                .await?;
            println!("created organisation {}", org.id);
        }
        AdminCommand::CreatePlace {
            id,
            name,
            basomrade,
        } => {
            let v = NewPlace {
                id,
                name,
                basomrade,
            };
            let place = writer
                .write(move |tx| {
                    let (p, c) = admin::create_place(tx.conn, &v)?;
                    tx.audit(&cli_entry(AuditAction::AdminCreate, "place", &p.id, c))?;
                    Ok(p)
                })
                .await?;
            println!("created place {}", place.id);
        }
        AdminCommand::CreateUser {
            username,
            display_name,
            organization,
            role,
            places,
        } => {
            let password = read_new_password()?;
            check_new_password(&password)?;
            let hash = tokio::task::spawn_blocking(move || hash_blocking(&password)).await??;
            let v = NewUser {
                username,
                display_name,
                organization,
                role,
                places,
                password: String::new(),
            };
            let policy = policy.clone();
            let user = writer
                .write(move |tx| {
                    let (u, c) = admin::create_user(tx.conn, &v, hash, &operator_check(&policy))?;
                    tx.audit(&cli_entry(AuditAction::AdminCreate, "user", &u.username, c))?;
                    Ok(u)
                })
                .await?;
            // Never the pseudonym: only the police resolve it to a person.
            println!("created user {}", user.username);
        }
        AdminCommand::SetPassword { username } => {
            let password = read_new_password()?;
            check_new_password(&password)?;
            let hash = tokio::task::spawn_blocking(move || hash_blocking(&password)).await??;
            update(
                &writer,
                &policy,
                username,
                UserPatch {
                    password: Some(String::new()),
                    ..Default::default()
                },
                Some(hash),
            )
            .await?;
        }
        AdminCommand::DisableUser { username } => {
            update(
                &writer,
                &policy,
                username,
                UserPatch {
                    disabled: Some(true),
                    ..Default::default()
                },
                None,
            )
            .await?;
        }
        AdminCommand::EnableUser { username } => {
            update(
                &writer,
                &policy,
                username,
                UserPatch {
                    disabled: Some(false),
                    ..Default::default()
                },
                None,
            )
            .await?;
        }
        AdminCommand::ListUsers => {
            for u in db.run(admin::list_users).await? {
                println!(
                    "{}\t{}\t{}\t{}{}",
                    u.username,
                    u.role,
                    u.organization,
                    u.places.join(","),
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

async fn update(
    writer: &Writer,
    policy: &std::sync::Arc<PolicyEngine>,
    username: String,
    patch: UserPatch,
    hash: Option<String>,
) -> anyhow::Result<()> {
    let name = username.clone();
    let policy = policy.clone();
    writer
        .write(move |tx| {
            let user = admin::find_user(tx.conn, &username)?
                .ok_or_else(|| AppError::bad_request("unknown_user", "no such user"))?;
            let updated =
                admin::update_user(tx.conn, &user, &patch, hash, &operator_check(&policy))?;
            if updated.end_sessions {
                revoke_all_sessions(tx, &user.id)?;
            }
            tx.audit(&cli_entry(
                AuditAction::AdminUpdate,
                "user",
                &user.username,
                updated.changes,
            ))
        })
        .await?;
    println!("updated user {name}");
    Ok(())
}

fn policy_dir(d: PolicyDir) -> PathBuf {
    d.dir.unwrap_or_else(|| PathBuf::from("policies"))
}

/// Runs a command; the returned code is the process exit code.
pub async fn run(cli: Cli, mut settings: Settings) -> anyhow::Result<i32> {
    match cli.command {
        Command::Backup { out } => backup(settings, out).await,
        Command::Report {
            from,
            to,
            place,
            period,
            out,
        } => report(settings, [from, to, period], place, out).await,
        Command::Restore {
            from,
            anchor,
            force,
        } => restore(settings, from, anchor, force).await,
        Command::Config(ConfigCommand::Reference) => {
            print!("{}", crate::config::reference_markdown());
            Ok(0)
        }
        Command::Serve { demo, bind } => {
            settings.demo = demo;
            if let Some(b) = bind {
                settings.bind = b;
            }
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
            Ok(0)
        }
        Command::Migrate => {
            let url = settings.database_url.clone();
            let n = tokio::task::spawn_blocking(move || storage::migrate(&url)).await??;
            println!(
                "applied {n} migration(s) to {}",
                settings.database_url.redacted()
            );
            Ok(0)
        }
        Command::Admin(cmd) => {
            run_admin(settings, cmd).await?;
            Ok(0)
        }
        Command::Policy(PolicyCommand::Check(d)) => {
            let dir = policy_dir(d);
            match crate::policy::PolicyEngine::load(&dir) {
                Ok(engine) => {
                    println!(
                        "{}: {} policies valid against the schema",
                        dir.display(),
                        engine.policy_count()
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(1)
                }
            }
        }
        Command::Policy(PolicyCommand::Test(d)) => {
            let dir = policy_dir(d);
            let report = match crate::policy::run_decision_tables(&dir) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(1);
                }
            };
            for f in &report.failed {
                eprintln!("FAIL {f}");
            }
            println!(
                "decision tables: {} passed, {} failed",
                report.passed,
                report.failed.len()
            );
            Ok(if report.failed.is_empty() { 0 } else { 1 })
        }
        Command::Policy(PolicyCommand::Reload { dir, by }) => {
            let dir = dir
                .or_else(|| crate::app::policy_folder(&settings))
                .unwrap_or_else(|| PathBuf::from("policies"));
            policy_reload(settings, dir, by).await
        }
        Command::Policy(PolicyCommand::History) => {
            let url = settings.database_url.clone();
            let text = tokio::task::spawn_blocking(move || {
                storage::migrate(&url)?;
                let mut conn = storage::establish(&url)?;
                anyhow::Ok(crate::policy_versions::print_history(&mut conn)?)
            })
            .await??;
            print!("{text}");
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify { anchor }) => audit_verify(settings, anchor).await,
        Command::Audit(AuditCommand::Head) => {
            let url = settings.database_url.clone();
            let heads = tokio::task::spawn_blocking(move || {
                let mut conn = storage::establish(&url)?;
                anyhow::Ok(crate::audit::heads(&mut conn)?)
            })
            .await?
            .context("reading the audit chain heads")?;
            // One line a writer's chain: keep them all (each SEQ:HASH is an anchor).
            for (chain, head) in heads.iter().filter(|(_, h)| h.seq > 0) {
                println!("{} {} chain {chain}", head.seq, head.hash);
            }
            Ok(0)
        }
        Command::Retention(RetentionCommand::Run { dry_run }) => {
            let (db, writer) = admin_context(&settings).await?;
            let report = crate::retention::run(&writer, &db, &settings.retention, dry_run).await?;
            if dry_run {
                println!("retention dry run: nothing was changed");
            }
            println!("{report}");
            Ok(0)
        }
    }
}

/// `samverkan policy reload`: check the folder as a reload must, then store it as the
/// set in force (audited); the instances follow within their poll interval.
async fn policy_reload(
    settings: Settings,
    dir: PathBuf,
    by: Option<String>,
) -> anyhow::Result<i32> {
    let engine = match crate::policy::versions::load_checked(&dir) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "refused: {} was not loaded; the rules in force stay",
                dir.display()
            );
            return Ok(1);
        }
    };
    let (_db, writer) = admin_context(&settings).await?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| crate::app::instance_name("command line on"));
    let meta = RequestMeta {
        client: Some("cli".into()),
        ..Default::default()
    };
    let stored = crate::policy_versions::store(&writer, &engine, &by, &meta).await?;
    let short = engine.hash().get(..12).unwrap_or_default();
    match stored {
        crate::policy_versions::Stored::AlreadyCurrent(p) => {
            println!("policy set {short} is already in force (version {p}); nothing changed")
        }
        crate::policy_versions::Stored::Current(p) => println!(
            "policy set {short} is now in force (version {p}, {} policies); every instance swaps it in within {} ms",
            engine.policy_count(),
            settings.policy_poll_ms
        ),
    }
    Ok(0)
}

/// The SQLite file behind the settings, or why there is none.
fn sqlite_file(settings: &Settings, what: &str) -> Result<PathBuf, String> {
    match &settings.database_url {
        storage::DatabaseUrl::Sqlite(path) => Ok(path.clone()),
        storage::DatabaseUrl::Postgres(_) => Err(format!(
            "{what} works on SQLite; on PostgreSQL use pg_dump / pg_restore or point-in-time recovery (deploy/README.md, \"Backups\")"
        )),
    }
}

/// Verifies the trail in `path` (every chain, then the anchors) and prints what it found.
/// `Ok(true)`: intact (anchors beyond its end are named as missing); `Ok(false)`: broken
/// or rewritten.
fn verify_file(path: &std::path::Path, anchors: &[crate::audit::Anchor]) -> anyhow::Result<bool> {
    let url = storage::DatabaseUrl::Sqlite(path.to_path_buf());
    let mut conn = storage::establish(&url)?;
    let summary = match crate::audit::verify(&mut conn)? {
        Ok(summary) => summary,
        Err(fault) => {
            eprintln!("the audit trail in {} is BROKEN at {fault}", path.display());
            return Ok(false);
        }
    };
    let mut intact = true;
    for a in anchors {
        match crate::audit::check_anchor(&mut conn, a)? {
            Ok(()) => println!("anchor {}:{} matches", a.seq, a.hash),
            Err(fault @ crate::audit::AnchorFault::Missing { .. }) => {
                println!("missing since the backup: {fault}");
            }
            Err(fault) => {
                eprintln!("the audit trail does not match its anchor: {fault}");
                intact = false;
            }
        }
    }
    println!(
        "audit trail verified: {} entries in {} chain(s)",
        summary.entries,
        summary.chains.len()
    );
    for c in &summary.chains {
        println!("{} {} chain {}", c.head.seq, c.head.hash, c.chain);
    }
    Ok(intact)
}

/// One consistent copy of a SQLite database into `target` (new or empty).
fn vacuum_into(url: &storage::DatabaseUrl, target: &std::path::Path) -> anyhow::Result<()> {
    use diesel::RunQueryDsl;
    let storage::DbConnection::Sqlite(mut conn) = storage::establish(url)? else {
        anyhow::bail!("not a SQLite database");
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(target.to_string_lossy().into_owned())
        .execute(&mut conn)?;
    Ok(())
}

/// `samverkan backup --out FILE`: `VACUUM INTO` copies one consistent snapshot while the
/// service goes on writing (WAL readers do not block the writer).
pub async fn backup(settings: Settings, out: PathBuf) -> anyhow::Result<i32> {
    let source = match sqlite_file(&settings, "backup") {
        Ok(p) => p,
        Err(why) => {
            eprintln!("{why}");
            return Ok(2);
        }
    };
    // Owner-only from the start: the copy holds everything the database holds.
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&out)
        {
            eprintln!("cannot create {}: {e}", out.display());
            return Ok(2);
        }
    }
    // Audited in the trail the backup then holds: who copied the database, when, where to.
    let (_, writer) = admin_context(&settings).await?;
    let name = out.display().to_string();
    let entry = cli_event(AuditAction::Backup, "database", &name);
    writer.audit(vec![entry]).await?;
    let url = settings.database_url.clone();
    let target = out.clone();
    tokio::task::spawn_blocking(move || vacuum_into(&url, &target))
        .await?
        .with_context(|| format!("copying {} to {}", source.display(), out.display()))?;
    println!(
        "backup of {} written to {}",
        source.display(),
        out.display()
    );
    Ok(if verify_file(&out, &[])? { 0 } else { 2 })
}

#[derive(askama::Template)]
#[template(path = "report.html")]
struct ReportPage {
    from: String,
    to: String,
    place: Option<String>,
    period_sv: &'static str,
    generated: String,
    observations: crate::statistics::StatisticsTable,
    observation_chart: String,
    referrals: crate::statistics::ReferralStatistics,
    referral_chart: String,
}

/// `samverkan report`: the forum's statistics as one HTML file.
pub async fn report(
    settings: Settings,
    [from, to, period]: [String; 3],
    place: Option<String>,
    out: PathBuf,
) -> anyhow::Result<i32> {
    use crate::statistics::{self, ReferralStatisticsQuery, Spec, StatisticsQuery};
    let now = statistics::this_month();
    let group = |unit: &str| format!("{unit},{period}");
    let specs = Spec::parse(
        &StatisticsQuery {
            from: Some(from.clone()),
            to: Some(to.clone()),
            place: place.clone(),
            group_by: Some(group("place")),
        },
        now,
    )
    .and_then(|o| {
        let r = Spec::parse_referrals(
            &ReferralStatisticsQuery {
                from: Some(from.clone()),
                to: Some(to.clone()),
                organization: None,
                group_by: Some(group("status")),
            },
            now,
        )?;
        Ok((o, r))
    });
    let (obs_spec, ref_spec) = match specs {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let (db, writer) = admin_context(&settings).await?;
    let mut entries = Vec::new();
    for (kind, spec) in [("observations", &obs_spec), ("referrals", &ref_spec)] {
        entries.push(
            cli_event(AuditAction::StatisticsRead, "statistics", kind).parts(&spec.describe()),
        );
    }
    writer.audit(entries).await?;
    let cache = std::sync::Arc::new(statistics::DecisionCache::default());
    let tables = db
        .run(move |c| {
            Ok((
                statistics::observations(c, &obs_spec, &cache)?,
                statistics::referrals(c, &ref_spec, &cache)?,
            ))
        })
        .await;
    let (observations, referrals) = match tables {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let page = ReportPage {
        period_sv: match period.as_str() {
            "quarter" => "kvartal",
            "year" => "år",
            _ => "månader",
        },
        generated: crate::fields::format_time(storage::now_micros()),
        observation_chart: observations.to_svg(),
        referral_chart: referrals.to_svg(),
        observations,
        referrals,
        from,
        to,
        place,
    };
    let html = askama::Template::render(&page)?;
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    println!("report written to {}", out.display());
    Ok(0)
}

/// `samverkan restore --from FILE`: verifies the backup, then puts a copy of it in place
/// of the database file (the live file's log and shared-memory files go with it) and
/// records the restore in the restored trail.
pub async fn restore(
    settings: Settings,
    from: PathBuf,
    anchors: Vec<crate::audit::Anchor>,
    force: bool,
) -> anyhow::Result<i32> {
    let target = match sqlite_file(&settings, "restore") {
        Ok(p) => p,
        Err(why) => {
            eprintln!("{why}");
            return Ok(2);
        }
    };
    if !from.is_file() {
        eprintln!("no backup at {}", from.display());
        return Ok(2);
    }
    if target.exists() && !force {
        eprintln!(
            "{} exists: stop the service, then run restore again with --force",
            target.display()
        );
        return Ok(2);
    }
    println!("checking the backup {}", from.display());
    let (src, anchors_in) = (from.clone(), anchors.clone());
    if !tokio::task::spawn_blocking(move || verify_file(&src, &anchors_in)).await?? {
        eprintln!("nothing was restored");
        return Ok(2);
    }
    let (src, dst) = (from.clone(), target.clone());
    tokio::task::spawn_blocking(move || {
        let fresh = dst.with_extension("restoring");
        let _ = std::fs::remove_file(&fresh);
        vacuum_into(&storage::DatabaseUrl::Sqlite(src), &fresh)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = dst.clone().into_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
        std::fs::rename(&fresh, &dst)?;
        anyhow::Ok(())
    })
    .await?
    .with_context(|| format!("restoring {} to {}", from.display(), target.display()))?;
    let (_, writer) = admin_context(&settings).await?;
    let entry = cli_event(
        AuditAction::Restore,
        "database",
        &from.display().to_string(),
    );
    writer.audit(vec![entry]).await?;
    println!("restored {} from {}", target.display(), from.display());
    Ok(0)
}

/// Walks the chain, then checks each anchor; exit code 2 names the first problem.
async fn audit_verify(
    settings: Settings,
    anchors: Vec<crate::audit::Anchor>,
) -> anyhow::Result<i32> {
    let url = settings.database_url.clone();
    let anchored = anchors.len();
    let (outcome, anchor_faults) = tokio::task::spawn_blocking(move || {
        let mut conn = storage::establish(&url)?;
        let outcome = crate::audit::verify(&mut conn)?;
        let mut faults = Vec::new();
        for a in &anchors {
            if let Err(fault) = crate::audit::check_anchor(&mut conn, a)? {
                faults.push(fault);
            }
        }
        anyhow::Ok((outcome, faults))
    })
    .await?
    .context("reading the audit trail")?;
    let summary = match outcome {
        Ok(summary) => summary,
        Err(fault) => {
            eprintln!("audit chain BROKEN at {fault}");
            return Ok(2);
        }
    };
    if !anchor_faults.is_empty() {
        for fault in &anchor_faults {
            eprintln!("audit chain does not match its anchor: {fault}");
        }
        return Ok(2);
    }
    println!(
        "audit chain verified: {} entries in {} chain(s)",
        summary.entries,
        summary.chains.len()
    );
    for c in &summary.chains {
        println!(
            "  chain {}: {} entries, head {}:{}",
            c.chain, c.entries, c.head.seq, c.head.hash
        );
    }
    if anchored > 0 {
        println!("{anchored} anchor(s) match");
    }
    Ok(0)
}
