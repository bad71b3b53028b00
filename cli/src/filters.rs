//! Filters shared by `pods` and `ps`: `--label k=v`, name patterns, `--latest`/`--last`.

use std::collections::HashMap;

use anyhow::bail;
use clap::Args;

use crate::output::Format;

/// How `pods` and `ps` show what they list (flattened into both commands).
#[derive(Debug, Args)]
pub struct ListView {
    /// Only show IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show verbose information.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
    /// Show only the most recently created one.
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show only the N most recently created ones.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 0)]
    pub last: usize,
    /// Show full IDs.
    #[arg(long)]
    pub no_trunc: bool,
}

impl ListView {
    /// Sorts newest first and applies `--latest` / `--last`.
    pub fn newest<T>(&self, items: &mut Vec<T>, created: impl Fn(&T) -> i64) {
        newest(items, created, self.latest, self.last);
    }
}

/// Parses repeated `--label KEY=VALUE` flags into a label selector.
pub fn parse_labels(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("invalid label {pair:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Sorts newest first, then keeps the newest one (`--latest`) or `last` ones (`--last N`).
pub fn newest<T>(items: &mut Vec<T>, created: impl Fn(&T) -> i64, latest: bool, last: usize) {
    items.sort_by_key(|item| std::cmp::Reverse(created(item)));
    let keep = if latest { 1 } else { last };
    if keep > 0 {
        items.truncate(keep);
    }
}

/// A compiled name pattern: a small regular-expression subset (literals, `.`, `*`, `+`, `?`,
/// `^`, `$`, `\` escapes) matched anywhere in the text, like Go's `regexp.MatchString`.
#[derive(Debug, Clone)]
pub struct Pattern {
    anchored_start: bool,
    atoms: Vec<(Atom, Repeat)>,
    anchored_end: bool,
}

#[derive(Debug, Clone, Copy)]
enum Atom {
    Any,
    Char(char),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    One,
    ZeroOrOne,
    ZeroOrMore,
    OneOrMore,
}

impl Pattern {
    pub fn new(text: &str) -> anyhow::Result<Self> {
        let mut chars = text.chars().peekable();
        let anchored_start = chars.next_if_eq(&'^').is_some();
        let mut atoms: Vec<(Atom, Repeat)> = Vec::new();
        let mut anchored_end = false;
        while let Some(c) = chars.next() {
            let atom = match c {
                '$' if chars.peek().is_none() => {
                    anchored_end = true;
                    break;
                }
                '.' => Atom::Any,
                '\\' => match chars.next() {
                    Some(escaped) => Atom::Char(escaped),
                    None => bail!("invalid pattern {text:?}: trailing backslash"),
                },
                '*' | '+' | '?' => bail!("invalid pattern {text:?}: nothing to repeat"),
                '[' | ']' | '(' | ')' | '{' | '}' | '|' => {
                    bail!("unsupported pattern {text:?}: only . * + ? ^ $ and \\ are supported")
                }
                c => Atom::Char(c),
            };
            let repeat = match chars.peek() {
                Some('*') => Repeat::ZeroOrMore,
                Some('+') => Repeat::OneOrMore,
                Some('?') => Repeat::ZeroOrOne,
                _ => Repeat::One,
            };
            if repeat != Repeat::One {
                chars.next();
            }
            atoms.push((atom, repeat));
        }
        Ok(Self {
            anchored_start,
            atoms,
            anchored_end,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        if self.anchored_start {
            return self.match_here(0, &chars, 0);
        }
        (0..=chars.len()).any(|start| self.match_here(0, &chars, start))
    }

    fn match_here(&self, atom: usize, text: &[char], pos: usize) -> bool {
        let Some(&(a, repeat)) = self.atoms.get(atom) else {
            return !self.anchored_end || pos == text.len();
        };
        let matches = |i: usize| {
            text.get(i)
                .is_some_and(|&c| matches!(a, Atom::Any) || matches!(a, Atom::Char(x) if x == c))
        };
        let (min, max) = match repeat {
            Repeat::One => (1, 1),
            Repeat::ZeroOrOne => (0, 1),
            Repeat::ZeroOrMore => (0, usize::MAX),
            Repeat::OneOrMore => (1, usize::MAX),
        };
        let mut count = 0;
        while count < max && matches(pos + count) {
            count += 1;
        }
        // Greedy, then backtrack.
        (min..=count)
            .rev()
            .any(|n| self.match_here(atom + 1, text, pos + n))
    }
}

/// Matches when no pattern was given, or the pattern matches.
pub fn matches(pattern: Option<&Pattern>, text: &str) -> bool {
    pattern.is_none_or(|p| p.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).expect(pattern).is_match(text)
    }

    #[test]
    fn patterns_match_like_go_regexp() {
        assert!(m("nginx", "my-nginx-pod"));
        assert!(!m("^nginx", "my-nginx-pod"));
        assert!(m("^my-.*-pod$", "my-nginx-pod"));
        assert!(!m("pod$", "pod-1"));
        assert!(m("a.c", "xabcx"));
        assert!(m("ab+c", "abbbc"));
        assert!(!m("ab+c", "ac"));
        assert!(m("ab?c", "ac"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
        assert!(m("", "anything"));
        assert!(Pattern::new("*x").is_err());
        assert!(Pattern::new("a|b").is_err());
    }

    #[test]
    fn labels_need_key_and_equals() {
        let labels = parse_labels(&["a=1".into(), "b=x=y".into()]).expect("valid");
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b"], "x=y");
        assert!(parse_labels(&["a".into()]).is_err());
        assert!(parse_labels(&["=1".into()]).is_err());
    }

    #[test]
    fn newest_keeps_latest_or_last() {
        let mut v = vec![1, 5, 3, 4];
        newest(&mut v, |x| *x, false, 2);
        assert_eq!(v, [5, 4]);
        let mut v = vec![1, 5, 3];
        newest(&mut v, |x| *x, true, 0);
        assert_eq!(v, [5]);
        let mut v = vec![1, 5, 3];
        newest(&mut v, |x| *x, false, 0);
        assert_eq!(v, [5, 3, 1]);
    }
}
