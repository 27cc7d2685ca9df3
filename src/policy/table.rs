//! Decision tables: `decisions.csv` lists questions and the answers the policies must give.
//!
//! Columns (any order, named in the header line; `#` lines and blank lines are ignored):
//! `role,org_kind,mandated,assigned,action,resource,kind,relation,consent,expect`.
//! See `policies/README.md` for what each column means.

use std::fmt;
use std::path::Path;

use super::load::{self, Problem, SourceFile};
use super::{
    Action, AdminKind, Audience, ConsentFacts, ObservationPart, OrganizationKind, PolicyEngine,
    PolicyError, PrincipalAttrs, ReferralPart, ReleasedTo, Resource, Role, StatisticsKind,
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

/// Why a row could not be read, or how its answer differs from the expected one.
#[derive(Debug)]
struct RowProblem(String);

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! problem {
    ($($t:tt)*) => {
        RowProblem(format!($($t)*))
    };
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
            Err(problem!(
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

fn yes_no(column: &str, value: &str) -> Result<bool, RowProblem> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(problem!(
            "cannot read row: {column} must be yes or no, not `{value}`"
        )),
    }
}

/// A value of one of the vocabulary's lists, or a message naming the list.
fn known<T>(
    column: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    listed: fn() -> String,
) -> Result<T, RowProblem> {
    parse(value).ok_or_else(|| {
        problem!(
            "cannot read row: {column} `{value}` is not one of {}",
            listed()
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
    fn parse<'a>(get: impl Fn(usize) -> &'a str) -> Result<Case, RowProblem> {
        let [role, org_kind, mandated, assigned, action, resource, kind, relation, consent, expect] =
            std::array::from_fn(&get);
        let mandated_reporter = yes_no("mandated", mandated)?;
        let action = Action::parse(action).ok_or_else(|| {
            problem!(
                "cannot read row: unknown action `{action}` (expected one of: {})",
                Action::ALL.map(Action::cedar_name).join(", ")
            )
        })?;
        let expect = match expect {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(problem!(
                    "cannot read row: expect must be allow or deny, not `{other}`"
                ))
            }
        };
        // consent: valid/invalid, released to the reporter (the default) or, with
        // `-org`, to the reporter's organisation; - = no consent.
        let consent = match consent {
            "valid" => Some((true, ReleasedTo::Reporter)),
            "invalid" => Some((false, ReleasedTo::Reporter)),
            "valid-org" => Some((true, ReleasedTo::ReporterOrganization)),
            "invalid-org" => Some((false, ReleasedTo::ReporterOrganization)),
            "-" => None,
            other => {
                return Err(problem!(
                    "cannot read row: consent must be valid, invalid, valid-org, invalid-org or -, not `{other}`"
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
                return Err(problem!(
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
                return Err(problem!(
                    "cannot read row: relation must be own, same_org, receiving_org, other or -, not `{other}`"
                ))
            }
        };
        let need_parties = || {
            parties.as_ref().ok_or_else(|| {
                problem!("cannot read row: a {resource} needs a relation (own, same_org, receiving_org or other)")
            })
        };
        let need_place = || {
            place.clone().ok_or_else(|| {
                problem!(
                    "cannot read row: a {resource} always has a place: assigned must be yes or no"
                )
            })
        };
        let not_receiving = || {
            if relation == "receiving_org" {
                Err(problem!(
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
                    kind: known("kind", kind, ObservationPart::parse, ObservationPart::listed)?,
                    place: need_place()?,
                    reporter_id: p.author.to_string(),
                    reporter_org_id: p.author_org.to_string(),
                }
            }
            "report_section" => {
                not_receiving()?;
                let p = need_parties()?;
                Resource::ReportSection {
                    audience: known("kind", kind, Audience::parse, Audience::listed)?,
                    place: need_place()?,
                    author_id: p.author.to_string(),
                    author_org_id: p.author_org.to_string(),
                }
            }
            "referral" => {
                let p = need_parties()?;
                let kind = known("kind", kind, ReferralPart::parse, ReferralPart::listed)?;
                Resource::ReferralPart {
                    kind,
                    place,
                    reporter_id: p.author.to_string(),
                    reporter_org_id: p.author_org.to_string(),
                    receiving_org_id: p.receiving_org.to_string(),
                    consent: (kind == ReferralPart::ReleasedDetails).then(|| {
                        let (valid, released_to) = consent.unwrap_or((false, ReleasedTo::Reporter));
                        ConsentFacts { valid, released_to }
                    }),
                }
            }
            "admin" => Resource::Admin {
                kind: known("kind", kind, AdminKind::parse, AdminKind::listed)?,
            },
            // kind: the account's role and organisation kind, e.g. guard/security, and
            // `/disable` when the change only takes access away; relation: own (the
            // user's own account) or other.
            "account" => {
                let (kind, grants_access) = match kind.strip_suffix("/disable") {
                    Some(k) => (k, false),
                    None => (kind, true),
                };
                let (role, org_kind) = kind.split_once('/').ok_or_else(|| {
                    problem!("cannot read row: an account's kind is role/organisation_kind, not `{kind}`")
                })?;
                known("kind", role, Role::parse, Role::listed)?;
                known("kind", org_kind, OrganizationKind::parse, OrganizationKind::listed)?;
                let user_id = match relation {
                    "own" => USER,
                    "other" => SOMEONE_ELSE,
                    other => {
                        return Err(problem!(
                            "cannot read row: an account's relation is own or other, not `{other}`"
                        ))
                    }
                };
                Resource::Account {
                    user_id: user_id.to_string(),
                    role: role.to_string(),
                    organization_kind: org_kind.to_string(),
                    grants_access,
                }
            }
            "audit_log" => Resource::AuditLog,
            "statistics" => Resource::Statistics {
                kind: known("kind", kind, StatisticsKind::parse, StatisticsKind::listed)?,
            },
            other => {
                return Err(problem!(
                    "cannot read row: resource must be observation, report_section, referral, admin, account, audit_log or statistics, not `{other}`"
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

    fn check(&self, engine: &PolicyEngine) -> Result<(), RowProblem> {
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
            Err(problem!(
                "expected {}, got {} ({why})",
                word(self.expect),
                word(got)
            ))
        }
    }
}
