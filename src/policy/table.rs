//! Decision tables: `decisions.csv` lists questions and the answers the policies must give.
//!
//! Columns (any order, named in the header line; `#` lines and blank lines are ignored):
//! `role,org_kind,mandated,assigned,action,resource,kind,relation,consent,expect`.
//! See `policies/README.md` for what each column means.

use std::fmt;
use std::path::Path;

use super::load::{self, Problem, SourceFile};
use super::{
    Action, PolicyEngine, PolicyError, PrincipalAttrs, Resource, ADMIN_KINDS,
    OBSERVATION_PART_KINDS, REFERRAL_PART_KINDS,
};

/// Outcome of the decision tables in `dir/decisions.csv` run against the policies in `dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    pub passed: usize,
    /// One readable line per failing row: line number, the row, expected vs got.
    pub failed: Vec<String>,
}

impl TableReport {
    /// True when every row gave the expected answer.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

impl fmt::Display for TableReport {
    /// The failing rows, then `N passed, M failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.failed {
            writeln!(f, "{line}")?;
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed.len())
    }
}

/// Outcome of the decision tables in `dir/decisions.csv` run against the policies in `dir`.
pub fn run_decision_tables(dir: &Path) -> Result<TableReport, PolicyError> {
    let engine = PolicyEngine::load(dir)?;
    let table = load::read_file(dir, load::DECISIONS_FILE)?;
    run(&engine, &table)
}

/// Same on the embedded copies.
pub fn run_embedded_decision_tables() -> Result<TableReport, PolicyError> {
    let engine = PolicyEngine::load_embedded()?;
    let table = SourceFile {
        label: Path::new("policies")
            .join(load::DECISIONS_FILE)
            .display()
            .to_string(),
        text: load::EMBEDDED_DECISIONS.to_string(),
    };
    run(&engine, &table)
}

const COLUMNS: [&str; 10] = [
    "role", "org_kind", "mandated", "assigned", "action", "resource", "kind", "relation",
    "consent", "expect",
];

/// The place every table record is at; the principal is assigned to it or to another place.
const PLACE: &str = "sergels-torg";
const OTHER_PLACE: &str = "hasselby-torg";
const USER: &str = "table-user";
const COLLEAGUE: &str = "table-colleague";
const SOMEONE_ELSE: &str = "table-someone-else";
const ORG: &str = "table-org";
const OTHER_ORG: &str = "table-other-org";
const RECEIVING_ORG: &str = "table-receiving-org";

pub(super) fn run(engine: &PolicyEngine, table: &SourceFile) -> Result<TableReport, PolicyError> {
    let mut lines = table
        .text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(PolicyError::Invalid(vec![Problem::new(
            table.label.clone(),
            None,
            format!(
                "empty decision table: expected a header line `{}`",
                COLUMNS.join(",")
            ),
        )]));
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut index = [0usize; COLUMNS.len()];
    let mut problems = Vec::new();
    for (slot, column) in index.iter_mut().zip(COLUMNS) {
        match names.iter().position(|n| *n == column) {
            Some(i) => *slot = i,
            None => problems.push(Problem::new(
                table.label.clone(),
                Some((header_line, 1)),
                format!(
                    "header has no column `{column}` (expected {})",
                    COLUMNS.join(",")
                ),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }

    let mut report = TableReport::default();
    for (number, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let outcome = if cells.len() != names.len() {
            Err(format!(
                "cannot read row: {} cells, the header has {}",
                cells.len(),
                names.len()
            ))
        } else {
            let get = |column: usize| cells[index[column]];
            Case::parse(get).and_then(|case| case.check(engine))
        };
        match outcome {
            Ok(()) => report.passed += 1,
            Err(why) => report
                .failed
                .push(format!("{}:{number}: {line}: {why}", table.label)),
        }
    }
    Ok(report)
}

/// One row, read.
struct Case {
    principal: PrincipalAttrs,
    action: Action,
    resource: Resource,
    expect: bool,
}

fn yes_no(column: &str, value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!(
            "cannot read row: {column} must be yes or no, not `{value}`"
        )),
    }
}

fn known(column: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, String> {
    allowed
        .iter()
        .copied()
        .find(|k| *k == value)
        .ok_or_else(|| {
            format!(
                "cannot read row: {column} `{value}` is not one of {}",
                allowed.join(", ")
            )
        })
}

/// Who filed/wrote the record, their organisation, and the receiving organisation.
struct Parties {
    author: &'static str,
    author_org: &'static str,
    receiving_org: &'static str,
}

impl Case {
    fn parse<'a>(get: impl Fn(usize) -> &'a str) -> Result<Case, String> {
        let [role, org_kind, mandated, assigned, action, resource, kind, relation, consent, expect] =
            std::array::from_fn(&get);
        let mandated_reporter = yes_no("mandated", mandated)?;
        let action: Action = action
            .parse()
            .map_err(|e| format!("cannot read row: {e}"))?;
        let expect = match expect {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(format!(
                    "cannot read row: expect must be allow or deny, not `{other}`"
                ))
            }
        };
        let consent_valid = match consent {
            "valid" => true,
            "invalid" | "-" => false,
            other => {
                return Err(format!(
                    "cannot read row: consent must be valid, invalid or -, not `{other}`"
                ))
            }
        };
        // assigned: yes = the record's place is one of the user's places; no = it is not;
        // - = the record has no place.
        let (places, place) = match assigned {
            "yes" => (vec![PLACE.to_string()], Some(PLACE.to_string())),
            "no" => (vec![OTHER_PLACE.to_string()], Some(PLACE.to_string())),
            "-" => (vec![OTHER_PLACE.to_string()], None),
            other => {
                return Err(format!(
                    "cannot read row: assigned must be yes, no or -, not `{other}`"
                ))
            }
        };
        let parties = match relation {
            "own" => Some(Parties {
                author: USER,
                author_org: ORG,
                receiving_org: RECEIVING_ORG,
            }),
            "same_org" => Some(Parties {
                author: COLLEAGUE,
                author_org: ORG,
                receiving_org: RECEIVING_ORG,
            }),
            "receiving_org" => Some(Parties {
                author: SOMEONE_ELSE,
                author_org: OTHER_ORG,
                receiving_org: ORG,
            }),
            "other" => Some(Parties {
                author: SOMEONE_ELSE,
                author_org: OTHER_ORG,
                receiving_org: RECEIVING_ORG,
            }),
            "-" => None,
            other => {
                return Err(format!(
                    "cannot read row: relation must be own, same_org, receiving_org, other or -, not `{other}`"
                ))
            }
        };
        let need_parties = || {
            parties.as_ref().ok_or_else(|| {
                format!("cannot read row: a {resource} needs a relation (own, same_org, receiving_org or other)")
            })
        };
        let need_place = || {
            place.clone().ok_or_else(|| {
                format!(
                    "cannot read row: a {resource} always has a place: assigned must be yes or no"
                )
            })
        };
        let not_receiving = || {
            if relation == "receiving_org" {
                Err(format!(
                    "cannot read row: relation receiving_org applies to referrals only, not to a {resource}"
                ))
            } else {
                Ok(())
            }
        };
        let resource = match resource {
            "observation" => {
                not_receiving()?;
                let p = need_parties()?;
                Resource::ObservationPart {
                    kind: known("kind", kind, &OBSERVATION_PART_KINDS)?,
                    place: need_place()?,
                    reporter_id: p.author.to_string(),
                    reporter_org_id: p.author_org.to_string(),
                }
            }
            "report_section" => {
                not_receiving()?;
                let p = need_parties()?;
                Resource::ReportSection {
                    audience: kind.to_string(),
                    place: need_place()?,
                    author_id: p.author.to_string(),
                    author_org_id: p.author_org.to_string(),
                }
            }
            "referral" => {
                let p = need_parties()?;
                Resource::ReferralPart {
                    kind: known("kind", kind, &REFERRAL_PART_KINDS)?,
                    place,
                    reporter_id: p.author.to_string(),
                    reporter_org_id: p.author_org.to_string(),
                    receiving_org_id: p.receiving_org.to_string(),
                    consent_valid,
                }
            }
            "admin" => Resource::Admin {
                kind: known("kind", kind, &ADMIN_KINDS)?,
            },
            "audit_log" => Resource::AuditLog,
            other => {
                return Err(format!(
                    "cannot read row: resource must be observation, report_section, referral, admin or audit_log, not `{other}`"
                ))
            }
        };
        Ok(Case {
            principal: PrincipalAttrs {
                user_id: USER.to_string(),
                role: role.to_string(),
                organization_id: ORG.to_string(),
                organization_kind: org_kind.to_string(),
                mandated_reporter,
                places,
            },
            action,
            resource,
            expect,
        })
    }

    fn check(&self, engine: &PolicyEngine) -> Result<(), String> {
        let word = |allowed: bool| if allowed { "allow" } else { "deny" };
        let (got, why) = match engine.explain(&self.principal, self.action, &self.resource) {
            Ok((true, rules)) => (true, format!("allowed by {}", rules.join(", "))),
            Ok((false, rules)) if rules.is_empty() => (false, "no rule allows it".to_string()),
            Ok((false, rules)) => (false, format!("forbidden by {}", rules.join(", "))),
            Err(e) => (false, format!("denied because it cannot be evaluated: {e}")),
        };
        if got == self.expect {
            Ok(())
        } else {
            Err(format!(
                "expected {}, got {} ({why})",
                word(self.expect),
                word(got)
            ))
        }
    }
}
