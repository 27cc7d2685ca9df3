//! A posted form as the JSON body the API takes: fields are named like the JSON fields
//! (`persons[0].description`, `child.alias`), empty fields are absent, times are
//! Stockholm wall time. The service then validates it exactly as an API body.

use serde_json::{Map, Value};

use super::time;

/// The form's fields, as posted (`application/x-www-form-urlencoded`).
pub type Fields = Vec<(String, String)>;

/// The last value of a field.
pub fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// How a field's text becomes a JSON value.
pub struct Shape {
    /// Whole numbers (by last name segment, e.g. `estimated_birth_year`).
    pub numbers: &'static [&'static str],
    /// Checkboxes: present means true.
    pub flags: &'static [&'static str],
    /// `datetime-local` inputs in Stockholm time.
    pub times: &'static [&'static str],
    /// Fields that are the page's own (CSRF token, buttons), not the body's.
    pub skip: &'static [&'static str],
}

/// One step of a field name: a key, or a position in a list.
enum Step {
    Key(String),
    Index(usize),
}

fn steps(name: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    for segment in name.split('.') {
        let (key, rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if key.is_empty() {
            return None;
        }
        out.push(Step::Key(key.to_owned()));
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // Small lists only: a form has a handful of slots.
            let i: usize = r[..end].parse().ok().filter(|i| *i < 50)?;
            out.push(Step::Index(i));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

fn put(target: &mut Value, steps: &[Step], value: Value) {
    let Some((first, rest)) = steps.split_first() else {
        *target = value;
        return;
    };
    let slot = match first {
        Step::Key(k) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(map) = target else { return };
            map.entry(k.clone()).or_insert(Value::Null)
        }
        Step::Index(i) => {
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            let Value::Array(list) = target else { return };
            while list.len() <= *i {
                list.push(Value::Null);
            }
            &mut list[*i]
        }
    };
    put(slot, rest, value);
}

/// Drops list slots left empty (a person slot nobody filled in).
fn compact(v: &mut Value) {
    match v {
        Value::Array(list) => {
            list.iter_mut().for_each(compact);
            list.retain(|x| !x.is_null() && x.as_object().is_none_or(|m| !m.is_empty()));
        }
        Value::Object(map) => map.values_mut().for_each(compact),
        _ => {}
    }
}

/// The JSON body this form stands for.
pub fn to_json(fields: &Fields, shape: &Shape) -> Value {
    let mut body = Value::Object(Map::new());
    for (name, text) in fields {
        let text = text.trim();
        if text.is_empty() || shape.skip.contains(&name.as_str()) {
            continue;
        }
        let Some(steps) = steps(name) else { continue };
        let last = name.rsplit('.').next().unwrap_or(name);
        let last = last.split('[').next().unwrap_or(last);
        let value = if shape.flags.contains(&last) {
            Value::Bool(matches!(text, "true" | "on" | "1"))
        } else if shape.numbers.contains(&last) {
            text.parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(text))
        } else if shape.times.contains(&last) {
            Value::from(time::from_input(text).unwrap_or_else(|| text.to_owned()))
        } else {
            Value::from(text)
        };
        put(&mut body, &steps, value);
    }
    compact(&mut body);
    body
}

/// The form as the body of type `T`, or the 400 an API client would get for it.
pub fn body<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    shape: &Shape,
) -> Result<T, crate::error::AppError> {
    serde_json::from_value(to_json(fields, shape))
        .map_err(|e| crate::error::AppError::bad_request("invalid_body", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_become_the_json_body_with_empty_slots_dropped() {
        let fields: Fields = [
            ("csrf", "x"),
            ("place", "sergels-torg"),
            ("observed_at", "2026-12-04T21:30"),
            ("persons[0].description", "red jacket"),
            ("persons[0].estimated_birth_year", "2008"),
            ("persons[0].age_uncertain", "true"),
            ("persons[1].description", ""),
            ("persons[1].estimated_birth_year", ""),
            ("child.alias", "Mille"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let shape = Shape {
            numbers: &["estimated_birth_year"],
            flags: &["age_uncertain"],
            times: &["observed_at"],
            skip: &["csrf"],
        };
        assert_eq!(
            to_json(&fields, &shape),
            serde_json::json!({
                "place": "sergels-torg", "observed_at": "2026-12-04T20:30:00Z",
                "persons": [{"description": "red jacket", "estimated_birth_year": 2008, "age_uncertain": true}],
                "child": {"alias": "Mille"}
            })
        );
    }
}
