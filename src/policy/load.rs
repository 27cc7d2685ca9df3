//! Reading, parsing and strictly validating the policy files, with errors that name the
//! file, line and column.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use super::PolicyError;

/// The schema file's name inside the policy folder.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The decision tables' file name inside the policy folder.
pub const DECISIONS_FILE: &str = "decisions.csv";

/// The label files compiled into the binary carry in messages.
const EMBEDDED_DIR: &str = "policies";
const EMBEDDED_SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
/// Every `*.cedar` file of `policies/`, sorted by name. A new policy file must be added here
/// too (the test `embedded_copies_match_the_policy_folder` fails until it is).
const EMBEDDED_POLICIES: &[(&str, &str)] = &[
    (
        "administration.cedar",
        include_str!("../../policies/administration.cedar"),
    ),
    (
        "observations.cedar",
        include_str!("../../policies/observations.cedar"),
    ),
    (
        "referrals.cedar",
        include_str!("../../policies/referrals.cedar"),
    ),
    (
        "situation_reports.cedar",
        include_str!("../../policies/situation_reports.cedar"),
    ),
    (
        "statistics.cedar",
        include_str!("../../policies/statistics.cedar"),
    ),
];
pub(crate) const EMBEDDED_DECISIONS: &str = include_str!("../../policies/decisions.csv");

/// One problem in one file, at a line and column where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as named to the user, e.g. `policies/referrals.cedar`.
    pub file: String,
    /// 1-based line and column (in characters), where known.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl Problem {
    pub fn new(
        file: impl Into<String>,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.into(),
            position,
            message: message.into(),
        }
    }

    pub(crate) fn join(problems: &[Problem]) -> String {
        problems
            .iter()
            .map(Problem::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A file's name as shown to the user, and its text.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub(crate) label: String,
    pub(crate) text: String,
}

impl SourceFile {
    fn problem(&self, offset: Option<usize>, message: impl Into<String>) -> Problem {
        Problem::new(
            self.label.clone(),
            offset.map(|o| line_col(&self.text, o)),
            message,
        )
    }

    /// One problem per error in a Cedar diagnostic (parse errors may come several at once).
    fn diagnostic_problems(&self, diag: &dyn Diagnostic) -> Vec<Problem> {
        let mut problems = vec![self.diagnostic_problem(diag)];
        if let Some(related) = diag.related() {
            problems.extend(related.map(|d| self.diagnostic_problem(d)));
        }
        problems.dedup();
        problems
    }

    fn diagnostic_problem(&self, diag: &dyn Diagnostic) -> Problem {
        let label = diag.labels().and_then(|mut labels| labels.next());
        let mut message = diag.to_string();
        if let Some(text) = label.as_ref().and_then(|l| l.label()) {
            if !text.is_empty() && !message.contains(text) {
                message = format!("{message}: {text}");
            }
        }
        if let Some(help) = diag.help() {
            message = format!("{message} (help: {help})");
        }
        self.problem(label.map(|l| l.offset()), message)
    }
}

/// The schema and policy files of one policy folder (or of the embedded copies).
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) schema: SourceFile,
    pub(crate) policies: Vec<SourceFile>,
    /// `decisions.csv`, where the folder has one: part of the set's version, and what a
    /// reload checks the set against.
    pub(crate) decisions: Option<SourceFile>,
}

fn label(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

pub(crate) fn read_file(dir: &Path, name: &str) -> Result<SourceFile, PolicyError> {
    let label = label(dir, name);
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(SourceFile { label, text }),
        Err(source) => Err(PolicyError::Io {
            path: label,
            source,
        }),
    }
}

impl Sources {
    /// `dir/schema.cedarschema` and every `dir/*.cedar`, sorted by name.
    pub(crate) fn read_dir(dir: &Path) -> Result<Self, PolicyError> {
        let io_error = |source| PolicyError::Io {
            path: dir.display().to_string(),
            source,
        };
        let schema = read_file(dir, SCHEMA_FILE)?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry
                .file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .map_err(io_error)?;
            if is_file && name.ends_with(".cedar") {
                names.push(name);
            }
        }
        names.sort();
        if names.is_empty() {
            return Err(PolicyError::Invalid(vec![Problem::new(
                dir.display().to_string(),
                None,
                "no *.cedar policy files: every request would be denied",
            )]));
        }
        let policies = names
            .iter()
            .map(|name| read_file(dir, name))
            .collect::<Result<Vec<_>, _>>()?;
        let decisions = if dir.join(DECISIONS_FILE).exists() {
            Some(read_file(dir, DECISIONS_FILE)?)
        } else {
            None
        };
        Ok(Sources {
            schema,
            policies,
            decisions,
        })
    }

    /// A set as stored in the database: file name to text. `origin` names where it came
    /// from in messages (e.g. `policy version 3`).
    pub(crate) fn from_files(
        origin: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Self, PolicyError> {
        let dir = Path::new(origin);
        let file = |name: &str, text: &str| SourceFile {
            label: label(dir, name),
            text: text.to_string(),
        };
        let Some(schema) = files.get(SCHEMA_FILE) else {
            return Err(PolicyError::Invalid(vec![Problem::new(
                origin,
                None,
                format!("no {SCHEMA_FILE} in the stored set"),
            )]));
        };
        Ok(Sources {
            schema: file(SCHEMA_FILE, schema),
            policies: files
                .iter()
                .filter(|(name, _)| name.ends_with(".cedar"))
                .map(|(name, text)| file(name, text))
                .collect(),
            decisions: files
                .get(DECISIONS_FILE)
                .map(|text| file(DECISIONS_FILE, text)),
        })
    }

    /// Every file by its name (not its folder): what a version stores and hashes.
    pub(crate) fn files(&self) -> BTreeMap<String, String> {
        let name = |f: &SourceFile| {
            Path::new(&f.label)
                .file_name()
                .map_or_else(|| f.label.clone(), |n| n.to_string_lossy().into_owned())
        };
        std::iter::once(&self.schema)
            .chain(&self.policies)
            .chain(&self.decisions)
            .map(|f| (name(f), f.text.clone()))
            .collect()
    }

    /// The copies compiled into the binary.
    pub(crate) fn embedded() -> Self {
        let dir = Path::new(EMBEDDED_DIR);
        Sources {
            schema: SourceFile {
                label: label(dir, SCHEMA_FILE),
                text: EMBEDDED_SCHEMA.to_string(),
            },
            policies: EMBEDDED_POLICIES
                .iter()
                .map(|(name, text)| SourceFile {
                    label: label(dir, name),
                    text: (*text).to_string(),
                })
                .collect(),
            decisions: Some(SourceFile {
                label: label(dir, DECISIONS_FILE),
                text: EMBEDDED_DECISIONS.to_string(),
            }),
        }
    }

    pub(crate) fn schema_label(&self) -> String {
        self.schema.label.clone()
    }

    /// Parse the schema and the policies, name each policy by its @id, and validate every
    /// policy strictly against the schema. All problems are reported together.
    pub(crate) fn compile(&self) -> Result<(Schema, PolicySet), PolicyError> {
        let mut problems = Vec::new();
        let schema = match Schema::from_cedarschema_str(&self.schema.text) {
            Ok((schema, _warnings)) => Some(schema),
            Err(e) => {
                problems.extend(self.schema.diagnostic_problems(&e));
                None
            }
        };

        let mut all = PolicySet::new();
        // @id -> where it was first used
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut per_file = Vec::new();
        for file in &self.policies {
            match named_policies(file, &mut seen, &mut problems) {
                Some(set) => {
                    for policy in set.policies() {
                        if let Err(e) = all.add(policy.clone()) {
                            problems.push(file.problem(None, e.to_string()));
                        }
                    }
                    per_file.push((file, set));
                }
                None => continue,
            }
        }

        if let Some(schema) = &schema {
            let validator = Validator::new(schema.clone());
            for (file, set) in &per_file {
                let result = validator.validate(set, ValidationMode::Strict);
                for error in result.validation_errors() {
                    problems.extend(file.diagnostic_problems(error));
                }
            }
        }

        match schema {
            Some(schema) if problems.is_empty() => {
                if all.is_empty() {
                    Err(PolicyError::Invalid(vec![Problem::new(
                        self.policies
                            .first()
                            .map_or_else(|| self.schema_label(), |f| f.label.clone()),
                        None,
                        "no policies: every request would be denied",
                    )]))
                } else {
                    Ok((schema, all))
                }
            }
            _ => Err(PolicyError::Invalid(problems)),
        }
    }
}

/// Parse one file and rename its policies by their @id annotation. Returns None when the
/// file does not parse (the problems are recorded).
fn named_policies(
    file: &SourceFile,
    seen: &mut HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<PolicySet> {
    let parsed = match PolicySet::from_str(&file.text) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.extend(file.diagnostic_problems(&e));
            return None;
        }
    };
    for template in parsed.templates() {
        let offset = file.text.find(template.to_cedar().as_str());
        problems.push(file.problem(
            offset,
            "templates (policies with ?principal or ?resource) are not supported",
        ));
    }
    // The parser names policies policy0, policy1, ... in the order they appear.
    let mut policies: Vec<_> = parsed.policies().collect();
    policies.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    let mut set = PolicySet::new();
    let mut cursor = 0;
    for policy in policies {
        // Find where the policy starts, for messages: its text is a slice of the file.
        let offset = policy.to_cedar().and_then(|text| {
            let found = file.text.get(cursor..)?.find(text.as_str())? + cursor;
            cursor = found + text.len();
            Some(found)
        });
        let Some(id) = policy.annotation("id") else {
            problems.push(file.problem(
                offset,
                "rule has no @id(\"...\") annotation: every rule needs a unique kebab-case id",
            ));
            continue;
        };
        if !is_kebab_case(id) {
            problems.push(file.problem(
                offset,
                format!(
                    "@id(\"{id}\") is not kebab-case (lowercase letters and digits joined by single hyphens)"
                ),
            ));
            continue;
        }
        let here = match offset {
            Some(o) => {
                let (line, column) = line_col(&file.text, o);
                format!("{}:{line}:{column}", file.label)
            }
            None => file.label.clone(),
        };
        if let Some(first) = seen.get(id) {
            problems.push(file.problem(
                offset,
                format!("duplicate @id(\"{id}\"): already used at {first}"),
            ));
            continue;
        }
        seen.insert(id.to_string(), here);
        if let Err(e) = set.add(policy.new_id(PolicyId::new(id))) {
            problems.push(file.problem(offset, e.to_string()));
        }
    }
    Some(set)
}

fn is_kebab_case(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// 1-based line and column (counted in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
