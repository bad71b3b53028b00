//! Label selectors as kubectl parses them (`-l`): `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, `k>1`, `k<9`, requirements joined by `,` (AND), whitespace
//! between tokens. The empty selector matches everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::validate::names;

/// One requirement's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k=v` or `k==v`.
    Equals,
    /// `k!=v`: absent, or another value.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`: absent, or none of the values.
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n` (both integers).
    GreaterThan,
    /// `k<n`.
    LessThan,
}

/// One requirement: a key, an operator, values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub op: Operator,
    /// The values (one for `=`, `!=`, `>`, `<`; a set for `in`/`notin`; none otherwise).
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::In => v.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    v.and_then(|v| v.parse::<i64>().ok()),
                    self.values
                        .iter()
                        .next()
                        .and_then(|w| w.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// The requirements, in the order given.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses a selector as kubectl's `-l` does.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Parser {
            toks: lex(s)?,
            pos: 0,
        }
        .parse()
    }

    /// A selector of `k=v` requirements (e.g. from a pod's labels).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        Selector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: Operator::Equals,
                    values: [v.clone()].into(),
                })
                .collect(),
        }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let vals = || r.values.iter().cloned().collect::<Vec<_>>().join(",");
                match r.op {
                    Operator::Equals => format!("{}={}", r.key, vals()),
                    Operator::NotEquals => format!("{}!={}", r.key, vals()),
                    Operator::In => format!("{} in ({})", r.key, vals()),
                    Operator::NotIn => format!("{} notin ({})", r.key, vals()),
                    Operator::Exists => r.key.clone(),
                    Operator::DoesNotExist => format!("!{}", r.key),
                    Operator::GreaterThan => format!("{}>{}", r.key, vals()),
                    Operator::LessThan => format!("{}<{}", r.key, vals()),
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A token where another was expected.
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    Unexpected {
        /// What was found (`""` at the end).
        found: String,
        /// What the parser wanted.
        expected: &'static str,
    },
    /// A key that is not a qualified name.
    #[error("unable to parse requirement: key: Invalid value: {key:?}: {msg}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        msg: String,
    },
    /// A value that is not a label value.
    #[error("unable to parse requirement: values[{index}][{key}]: Invalid value: {value:?}: {msg}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value's index.
        index: usize,
        /// The value.
        value: String,
        /// Why.
        msg: String,
    },
    /// `>` or `<` with a value that is not an integer.
    #[error(
        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {0:?}"
    )]
    NotInteger(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Not,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::Not => "!".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
        }
    }
}

fn special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<') || c.is_whitespace()
}

fn lex(s: &str) -> Result<Vec<Tok>, SelectorError> {
    let mut toks = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        chars.next();
        let next_is_eq = chars.peek().is_some_and(|&(_, n)| n == '=');
        let tok = match c {
            '=' if next_is_eq => {
                chars.next();
                Tok::DoubleEq
            }
            '=' => Tok::Eq,
            '!' if next_is_eq => {
                chars.next();
                Tok::NotEq
            }
            '!' => Tok::Not,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = chars.peek() {
                    if special(n) {
                        break;
                    }
                    end = j + n.len_utf8();
                    chars.next();
                }
                match &s[i..end] {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    w => Tok::Ident(w.to_string()),
                }
            }
        };
        toks.push(tok);
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(t: Option<&Tok>, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected {
            found: t.map(Tok::text).unwrap_or_default(),
            expected,
        }
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if self.toks.is_empty() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                None => break,
                Some(Tok::Comma) => {}
                other => return Err(Self::unexpected(other.as_ref(), "',' or end of string")),
            }
        }
        Ok(Selector { requirements })
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Some(Tok::Ident(k)) => {
                if let Some(msg) = names::qualified_name(&k).into_iter().next() {
                    return Err(SelectorError::InvalidKey { key: k, msg });
                }
                Ok(k)
            }
            other => Err(Self::unexpected(other.as_ref(), "identifier")),
        }
    }

    fn value(&self, key: &str, index: usize, v: String) -> Result<String, SelectorError> {
        if let Some(msg) = names::label_value(&v).into_iter().next() {
            return Err(SelectorError::InvalidValue {
                key: key.to_string(),
                index,
                value: v,
                msg,
            });
        }
        Ok(v)
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Tok::Not) {
            self.next();
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Operator::DoesNotExist,
                values: BTreeSet::new(),
            });
        }
        let key = self.key()?;
        let op = match self.peek() {
            None | Some(Tok::Comma) => {
                return Ok(Requirement {
                    key,
                    op: Operator::Exists,
                    values: BTreeSet::new(),
                });
            }
            Some(Tok::Eq | Tok::DoubleEq) => Operator::Equals,
            Some(Tok::NotEq) => Operator::NotEquals,
            Some(Tok::In) => Operator::In,
            Some(Tok::NotIn) => Operator::NotIn,
            Some(Tok::Gt) => Operator::GreaterThan,
            Some(Tok::Lt) => Operator::LessThan,
            other => return Err(Self::unexpected(other, "'=', '!=', '==', 'in', 'notin'")),
        };
        self.next();
        let values = if matches!(op, Operator::In | Operator::NotIn) {
            self.set(&key)?
        } else {
            // A missing value means the empty value (`k=` selects k with value "").
            let v = match self.peek() {
                Some(Tok::Ident(v)) => {
                    let v = v.clone();
                    self.next();
                    v
                }
                None | Some(Tok::Comma) => String::new(),
                other => return Err(Self::unexpected(other, "identifier")),
            };
            if matches!(op, Operator::GreaterThan | Operator::LessThan) && v.parse::<i64>().is_err()
            {
                return Err(SelectorError::NotInteger(v));
            }
            [self.value(&key, 0, v)?].into()
        };
        Ok(Requirement { key, op, values })
    }

    fn set(&mut self, key: &str) -> Result<BTreeSet<String>, SelectorError> {
        match self.next() {
            Some(Tok::Open) => {}
            other => return Err(Self::unexpected(other.as_ref(), "'('")),
        }
        let mut values = BTreeSet::new();
        let mut index = 0;
        loop {
            match self.next() {
                Some(Tok::Ident(v)) => {
                    values.insert(self.value(key, index, v)?);
                    index += 1;
                    match self.next() {
                        Some(Tok::Comma) => {}
                        Some(Tok::Close) => return Ok(values),
                        other => return Err(Self::unexpected(other.as_ref(), "',' or ')'")),
                    }
                }
                // `in ()` and `in (a,)`: an empty value.
                Some(Tok::Close) => {
                    values.insert(String::new());
                    return Ok(values);
                }
                Some(Tok::Comma) => {
                    values.insert(String::new());
                    index += 1;
                }
                other => return Err(Self::unexpected(other.as_ref(), "identifier or ')'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(sel: &str, pairs: &[(&str, &str)]) -> bool {
        Selector::parse(sel).unwrap().matches(&labels(pairs))
    }

    #[test]
    fn equality() {
        assert!(m("app=web", &[("app", "web")]));
        assert!(m("app==web", &[("app", "web"), ("x", "y")]));
        assert!(!m("app=web", &[("app", "db")]));
        assert!(!m("app=web", &[]));
        assert!(m("app!=web", &[]));
        assert!(m("app!=web", &[("app", "db")]));
        assert!(!m("app!=web", &[("app", "web")]));
    }

    #[test]
    fn sets_and_existence() {
        assert!(m("env in (prod, staging)", &[("env", "prod")]));
        assert!(!m("env in (prod,staging)", &[("env", "dev")]));
        assert!(!m("env in (prod)", &[]));
        assert!(m("env notin (prod,staging)", &[("env", "dev")]));
        assert!(m("env notin (prod)", &[]));
        assert!(!m("env notin (prod)", &[("env", "prod")]));
        assert!(m("app", &[("app", "")]));
        assert!(!m("app", &[]));
        assert!(m("!app", &[]));
        assert!(!m("!app", &[("app", "x")]));
        assert!(m("app in (a,)", &[("app", "")]));
    }

    #[test]
    fn and_with_whitespace() {
        let sel = "  app = web ,tier notin (db),!canary,  env in (prod)";
        let s = Selector::parse(sel).unwrap();
        assert_eq!(s.requirements.len(), 4);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "prod"),
            ("canary", "1")
        ])));
        assert!(Selector::parse("").unwrap().matches(&labels(&[])));
        assert!(Selector::parse("   ").unwrap().is_empty());
        assert_eq!(
            s.to_string(),
            "app=web,tier notin (db),!canary,env in (prod)"
        );
    }

    #[test]
    fn numeric_and_prefixed_keys() {
        assert!(m("replicas>2", &[("replicas", "3")]));
        assert!(!m("replicas>2", &[("replicas", "x")]));
        assert!(m("replicas<2", &[("replicas", "1")]));
        assert!(m(
            "app.kubernetes.io/name=web",
            &[("app.kubernetes.io/name", "web")]
        ));
        assert!(m("app=", &[("app", "")]));
    }

    #[test]
    fn malformed() {
        let err = |s: &str| Selector::parse(s).unwrap_err();
        assert_eq!(
            err("=web"),
            SelectorError::Unexpected {
                found: "=".into(),
                expected: "identifier"
            }
        );
        assert!(
            matches!(err("app=web,"), SelectorError::Unexpected { found, .. } if found.is_empty())
        );
        assert!(matches!(
            err("app in prod"),
            SelectorError::Unexpected {
                expected: "'('",
                ..
            }
        ));
        assert!(matches!(
            err("app in (a b)"),
            SelectorError::Unexpected { .. }
        ));
        assert!(matches!(err("app in (a"), SelectorError::Unexpected { .. }));
        assert!(matches!(err("a b"), SelectorError::Unexpected { .. }));
        assert!(matches!(
            err("bad key!x=y"),
            SelectorError::Unexpected { .. }
        ));
        assert!(matches!(err("-app=x"), SelectorError::InvalidKey { .. }));
        assert!(matches!(err("app=-x"), SelectorError::InvalidValue { .. }));
        assert!(matches!(err("n>x"), SelectorError::NotInteger(_)));
        assert!(matches!(err("!"), SelectorError::Unexpected { .. }));
        assert_eq!(
            err("=web").to_string(),
            "unable to parse requirement: found '=', expected: identifier"
        );
    }

    #[test]
    fn from_labels_round_trip() {
        let l = labels(&[("a", "1"), ("b", "2")]);
        let s = Selector::from_labels(&l);
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(&[("a", "1")])));
    }
}
