//! Name and key syntax checks (Kubernetes' `k8s.io/apimachinery/pkg/util/validation`). Each
//! returns the API server's messages; an empty list means valid.

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const ENV_VAR_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_SLASHES_MSG: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// An RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63): namespace, container,
/// volume names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len(DNS1123_LABEL_MAX));
    }
    if !label_ok(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// An RFC 1123 subdomain (dot-separated labels, at most 253): pod, ConfigMap, Secret names.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(label_ok) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// An IANA service name (port names): at most 15, `[a-z0-9-]`, a letter, no `--`, no hyphen
/// at either end.
pub fn iana_svc_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len(15));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// An environment variable name (`[-._a-zA-Z][-._a-zA-Z0-9]*`, not `.` or `..`).
pub fn env_var_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    let first_ok = s
        .bytes()
        .next()
        .is_some_and(|c| ok(c) && !c.is_ascii_digit());
    if !first_ok || !s.bytes().all(ok) {
        errs.push(ENV_VAR_MSG.to_string());
    }
    errs.extend(no_dots(s));
    errs
}

fn no_dots(s: &str) -> Vec<String> {
    match s {
        "." => vec!["must not be '.'".into()],
        ".." => vec!["must not be '..'".into()],
        _ if s.starts_with("..") => vec!["must not start with '..'".into()],
        _ => vec![],
    }
}

/// A ConfigMap or Secret key (`[-._a-zA-Z0-9]+`, at most 253, not `.`/`..`).
pub fn config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    errs.extend(no_dots(s));
    errs
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name (label and annotation keys): `[prefix/]name`, prefix a DNS subdomain, name
/// at most 63 alphanumerics with `-_.` inside.
pub fn qualified_name(s: &str) -> Vec<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => return vec![QUALIFIED_NAME_SLASHES_MSG.to_string()],
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else {
        if name.len() > 63 {
            errs.push(format!("name part {}", max_len(63)));
        }
        if !name_part_ok(name) {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

/// A label value: empty, or at most 63 alphanumerics with `-_.` inside.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !s.is_empty() && !name_part_ok(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["a", "web-1", "0abc", &"a".repeat(63)] {
            assert!(dns1123_label(ok).is_empty(), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a.b", "a_b"] {
            assert_eq!(
                dns1123_label(bad),
                vec![DNS1123_LABEL_MSG.to_string()],
                "{bad}"
            );
        }
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
        assert!(dns1123_subdomain("my.pod-1.example").is_empty());
        assert!(!dns1123_subdomain("Foo_").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain(".a").is_empty());
        assert_eq!(dns1123_subdomain(&"a".repeat(254)).len(), 1);
    }

    #[test]
    fn port_names() {
        assert!(iana_svc_name("http").is_empty());
        assert!(iana_svc_name("h2c-8080").is_empty());
        assert_eq!(
            iana_svc_name("8080"),
            vec!["must contain at least one letter (a-z)".to_string()]
        );
        assert_eq!(
            iana_svc_name("a--b"),
            vec!["must not contain consecutive hyphens".to_string()]
        );
        assert_eq!(
            iana_svc_name("-ab"),
            vec!["must not begin or end with a hyphen".to_string()]
        );
        assert_eq!(iana_svc_name("averyveryverylongname").len(), 1);
        assert_eq!(iana_svc_name("HTTP").len(), 2);
    }

    #[test]
    fn env_names_and_config_keys() {
        for ok in ["PATH", "_x", "my.env-name", "MyEnvName1", "-a"] {
            assert!(env_var_name(ok).is_empty(), "{ok}");
        }
        for bad in ["", "1A", "A B", "A=B", "é"] {
            assert!(!env_var_name(bad).is_empty(), "{bad}");
        }
        assert_eq!(env_var_name(".."), vec!["must not be '..'".to_string()]);
        assert!(config_map_key("1key.name").is_empty());
        assert!(!config_map_key("bad key").is_empty());
        assert!(!config_map_key("").is_empty());
        assert_eq!(
            config_map_key("..a"),
            vec!["must not start with '..'".to_string()]
        );
    }

    #[test]
    fn label_keys_and_values() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d", "x/Y"] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            qualified_name("a/b/c"),
            vec![QUALIFIED_NAME_SLASHES_MSG.to_string()]
        );
        assert_eq!(
            qualified_name("example.com/"),
            vec!["name part must be non-empty".to_string()]
        );
        assert_eq!(
            qualified_name("/a"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert!(
            qualified_name("Example.com/a")[0]
                .starts_with("prefix part a lowercase RFC 1123 subdomain")
        );
        assert_eq!(qualified_name("-a"), vec![QUALIFIED_NAME_MSG.to_string()]);
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3").is_empty());
        assert_eq!(label_value("a b"), vec![LABEL_VALUE_MSG.to_string()]);
        assert_eq!(label_value(&"a".repeat(64)).len(), 1);
    }
}
