//! Every text of the pages, in message files (`messages/sv.txt`, `messages/en.txt`:
//! `key = text` lines), chosen by a remembered switch, else `Accept-Language`;
//! Swedish first.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::HttpRequest;

/// The cookie that remembers the language switch.
pub const LANG_COOKIE: &str = "lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Sv,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "sv" => Some(Lang::Sv),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The remembered choice, else the first of sv/en the browser asks for, else sv.
    pub fn of(req: &HttpRequest) -> Lang {
        if let Some(l) = req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return l;
        }
        let accept = req
            .headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        for tag in accept.split(',') {
            let primary = tag.split(';').next().unwrap_or_default().trim();
            let primary = primary.split('-').next().unwrap_or_default();
            if let Some(l) = Lang::parse(&primary.to_ascii_lowercase()) {
                return l;
            }
        }
        Lang::Sv
    }

    /// The texts of this language.
    pub fn texts(self) -> &'static Texts {
        static SV: OnceLock<Texts> = OnceLock::new();
        static EN: OnceLock<Texts> = OnceLock::new();
        match self {
            Lang::Sv => SV.get_or_init(|| Texts::parse(Lang::Sv, include_str!("messages/sv.txt"))),
            Lang::En => EN.get_or_init(|| Texts::parse(Lang::En, include_str!("messages/en.txt"))),
        }
    }
}

/// One language's texts by key.
pub struct Texts {
    pub lang: Lang,
    map: HashMap<&'static str, &'static str>,
}

impl Texts {
    fn parse(lang: Lang, file: &'static str) -> Texts {
        let map = file
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        Texts { lang, map }
    }

    /// The text for `key`; a missing key shows as itself (a unit test keeps the two
    /// files and the templates in step, so none is missing).
    pub fn get<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.map.get(key).copied().unwrap_or(key)
    }

    /// The text for `prefix.value` (e.g. a category or status name), else the value.
    pub fn name<'a>(&self, prefix: &str, value: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.map
            .get(format!("{prefix}.{value}").as_str())
            .copied()
            .unwrap_or(value)
    }

    /// `key`'s text with `{}` replaced by `arg`.
    pub fn with(&self, key: &str, arg: &str) -> String {
        self.map.get(key).copied().unwrap_or(key).replace("{}", arg)
    }

    #[cfg(test)]
    fn keys(&self) -> std::collections::BTreeSet<&'static str> {
        self.map.keys().copied().collect()
    }
}

/// An error's text for the user: the message file's text for its code when there is
/// one (`code.<error>`), else the service's own sentence.
pub fn error_text(e: &crate::error::AppError, t: &Texts) -> String {
    match t.map.get(format!("code.{}", e.code()).as_str()) {
        Some(text) => (*text).to_owned(),
        None => format!("{} ({e})", t.get("error.check_fields")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_texts_and_the_templates_use_only_those() {
        let sv = Lang::Sv.texts().keys();
        let en = Lang::En.texts().keys();
        assert_eq!(
            sv.symmetric_difference(&en).collect::<Vec<_>>(),
            Vec::<&&str>::new()
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut missing = Vec::new();
        for sub in ["templates", "."] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for call in ["t.get(\"", "texts.get(\"", "t.with(\""] {
                    for part in text.split(call).skip(1) {
                        let key = part.split('"').next().unwrap();
                        if !sv.contains(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
    }
}
