//! The kubelet's credential keyring: the `imagePullSecrets` (`.dockerconfigjson`,
//! `.dockercfg`) whose registry keys match an image, best match first.

use super::*;

/// One credential of a keyring, under its key (`host[:port][/path]`).
pub(super) struct KeyringEntry {
    pub(super) key: String,
    pub(super) auth: AuthConfig,
}

/// The credentials from `pull_secrets` (`kubernetes.io/dockerconfigjson` and
/// `kubernetes.io/dockercfg`) that match `image`, most specific first, as the kubelet's keyring
/// looks them up: keys match by host glob (`*.example.com`), port and path prefix; Docker Hub
/// images also match `index.docker.io` (`https://index.docker.io/v1/`) keys. Each is tried in
/// turn; none means an anonymous pull.
pub fn auth_for(image: &str, pull_secrets: &[Secret]) -> Result<Vec<AuthConfig>, TranslateError> {
    let mut entries = Vec::new();
    for s in pull_secrets {
        entries.extend(secret_entries(s)?);
    }
    // Reverse-sorted keys: `quay.io/coreos` before `quay.io`.
    entries.sort_by(|a, b| b.key.cmp(&a.key));
    let target = parse_image_name(image).repository();
    let matched: Vec<AuthConfig> = entries
        .iter()
        .filter(|e| urls_match(&e.key, &target))
        .map(|e| e.auth.clone())
        .collect();
    if !matched.is_empty() || !is_default_registry(&target) {
        return Ok(matched);
    }
    Ok(entries
        .into_iter()
        .filter(|e| e.key == "index.docker.io")
        .map(|e| e.auth)
        .collect())
}

pub(super) fn secret_data(s: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone().into_bytes());
    }
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
}

pub(super) fn secret_entries(s: &Secret) -> Result<Vec<KeyringEntry>, TranslateError> {
    let name = meta_str(&s.metadata.name).to_owned();
    let err = |reason: String| TranslateError::PullSecret {
        secret: name.clone(),
        reason,
    };
    let (bytes, json_form) = match s.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (secret_data(s, ".dockerconfigjson"), true),
        Some("kubernetes.io/dockercfg") => (secret_data(s, ".dockercfg"), false),
        _ => (None, false),
    };
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(Vec::new());
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let auths = if json_form { &value["auths"] } else { &value };
    let Some(auths) = auths.as_object() else {
        return Ok(Vec::new());
    };
    auths
        .iter()
        .filter_map(|(loc, entry)| {
            let key = keyring_key(loc)?;
            Some(
                config_entry(entry)
                    .map(|auth| KeyringEntry { key, auth })
                    .map_err(&err),
            )
        })
        .collect()
}

/// A docker config entry's credentials; `auth` (base64 `user:password`) wins over the fields.
pub(super) fn config_entry(entry: &serde_json::Value) -> Result<AuthConfig, String> {
    let s = |k: &str| entry[k].as_str().unwrap_or("").to_owned();
    let auth = s("auth");
    if auth.is_empty() {
        return Ok(AuthConfig {
            username: s("username"),
            password: s("password"),
            ..Default::default()
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.as_bytes())
        .map_err(|e| format!("auth: not base64: {e}"))?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, pass) = text.split_once(':').ok_or_else(|| {
        "unable to parse auth field, must be formatted as base64(username:password)".to_owned()
    })?;
    Ok(AuthConfig {
        username: user.to_owned(),
        password: pass.trim_matches('\0').to_owned(),
        ..Default::default()
    })
}

/// A keyring key from a config location: scheme dropped, `/v1/` and `/v2/` paths meaning the
/// host alone.
pub(super) fn keyring_key(loc: &str) -> Option<String> {
    let rest = loc
        .strip_prefix("https://")
        .or_else(|| loc.strip_prefix("http://"))
        .unwrap_or(loc);
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let path = match path {
        p if p.starts_with("/v1/") || p.starts_with("/v2/") => &p[3..],
        p => p,
    };
    Some(if path.is_empty() || path == "/" {
        host.to_owned()
    } else {
        format!("{host}{path}")
    })
}

pub(super) fn split_host(url: &str) -> (&str, &str, &str) {
    let (host, path) = match url.find('/') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p, path),
        _ => (host, "", path),
    }
}

/// `URLsMatch`: same port, same number of host parts each matching its glob, path prefix.
pub(super) fn urls_match(glob: &str, target: &str) -> bool {
    let (gh, gp, gpath) = split_host(glob);
    let (th, tp, tpath) = split_host(target);
    let gparts: Vec<&str> = gh.split('.').collect();
    let tparts: Vec<&str> = th.split('.').collect();
    gp == tp
        && gparts.len() == tparts.len()
        && tpath.starts_with(gpath)
        && gparts.iter().zip(&tparts).all(|(g, t)| glob_match(g, t))
}

/// `*` (any run) and `?` (one character) globbing of one host part.
pub(super) fn glob_match(glob: &str, s: &str) -> bool {
    let (g, s): (Vec<char>, Vec<char>) = (glob.chars().collect(), s.chars().collect());
    let (mut gi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, si));
                gi += 1;
            }
            Some(c) if *c == '?' || *c == s[si] => {
                gi += 1;
                si += 1;
            }
            _ => match star {
                Some((sg, ss)) => {
                    gi = sg + 1;
                    si = ss + 1;
                    star = Some((sg, ss + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// `isDefaultRegistryMatch` on a normalized repository.
pub(super) fn is_default_registry(repo: &str) -> bool {
    match repo.split_once('/') {
        None => !repo.is_empty(),
        Some((first, _)) => {
            first == "docker.io"
                || first == "index.docker.io"
                || (!first.is_empty() && !first.contains(['.', ':']) && first != "localhost")
        }
    }
}
