//! The files a volume writes or names: `defaultMode` and item `mode` of configMap, secret,
//! downwardAPI and projected volumes (0 to 0777: a setuid bit would make a setuid-root file),
//! item paths (relative, no `..` element, not starting with `..`), hostPath paths, and a
//! container's `terminationMessagePath`. The
//! API server's rules and messages (`validateKeyToPath`, `validateLocalNonReservedPath`,
//! `validateDownwardAPIVolumeFile`, `validateProjectionSources`).

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Volume};

use super::PodCheck;
use crate::field::{FieldError, index};
use crate::validate::at;

/// The API server's message for a file mode outside 0-0777.
pub const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

impl PodCheck<'_> {
    /// Modes and paths of the files `v` writes, and a hostPath's path.
    pub(super) fn volume_files(&mut self, v: &Volume, path: &str) {
        if let Some(h) = &v.host_path
            && !h.path.is_empty()
        {
            let p = at(&at(path, "hostPath"), "path");
            self.no_backsteps(&p, &h.path);
            // Not an API server rule: a relative hostPath fails at every container start.
            if !h.path.starts_with('/') {
                self.push(FieldError::invalid(&p, &h.path, "must be an absolute path"));
            }
        }
        if let Some(c) = &v.config_map {
            let p = at(path, "configMap");
            self.mode(&at(&p, "defaultMode"), c.default_mode);
            self.key_paths(&at(&p, "items"), c.items.as_deref());
        }
        if let Some(s) = &v.secret {
            let p = at(path, "secret");
            self.mode(&at(&p, "defaultMode"), s.default_mode);
            self.key_paths(&at(&p, "items"), s.items.as_deref());
        }
        if let Some(d) = &v.downward_api {
            let p = at(path, "downwardAPI");
            self.mode(&at(&p, "defaultMode"), d.default_mode);
            self.downward_files(&at(&p, "items"), d.items.as_deref());
        }
        if let Some(pr) = &v.projected {
            let p = at(path, "projected");
            self.mode(&at(&p, "defaultMode"), pr.default_mode);
            for (i, src) in pr.sources.iter().flatten().enumerate() {
                let sp = index(&at(&p, "sources"), i);
                if let Some(c) = &src.config_map {
                    self.key_paths(&at(&at(&sp, "configMap"), "items"), c.items.as_deref());
                }
                if let Some(s) = &src.secret {
                    self.key_paths(&at(&at(&sp, "secret"), "items"), s.items.as_deref());
                }
                if let Some(d) = &src.downward_api {
                    self.downward_files(&at(&at(&sp, "downwardAPI"), "items"), d.items.as_deref());
                }
                if let Some(t) = &src.service_account_token {
                    self.item_path(&at(&at(&sp, "serviceAccountToken"), "path"), &t.path);
                }
            }
        }
    }

    /// `terminationMessagePath`: a file the kubelet mounts in the container, so an absolute
    /// path (a Corral rule: a relative one fails at every container start).
    pub(super) fn container_files(&mut self, c: &Container, path: &str) {
        if let Some(t) = c
            .termination_message_path
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            let p = at(path, "terminationMessagePath");
            if !t.starts_with('/') {
                self.push(FieldError::invalid(&p, t, "must be an absolute path"));
            }
            self.no_backsteps(&p, t);
        }
    }

    fn mode(&mut self, path: &str, mode: Option<i32>) {
        if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
            self.push(FieldError::invalid(path, m, FILE_MODE_MSG));
        }
    }

    fn key_paths(&mut self, path: &str, items: Option<&[KeyToPath]>) {
        for (i, kp) in items.into_iter().flatten().enumerate() {
            let ip = index(path, i);
            if kp.key.is_empty() {
                self.push(FieldError::required(&at(&ip, "key"), ""));
            }
            self.item_path(&at(&ip, "path"), &kp.path);
            self.mode(&at(&ip, "mode"), kp.mode);
        }
    }

    fn downward_files(&mut self, path: &str, items: Option<&[DownwardAPIVolumeFile]>) {
        for (i, f) in items.into_iter().flatten().enumerate() {
            let ip = index(path, i);
            self.item_path(&at(&ip, "path"), &f.path);
            match (&f.field_ref, &f.resource_field_ref) {
                (Some(_), Some(_)) => self.push(FieldError::invalid(
                    &ip,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )),
                (None, None) => self.push(FieldError::required(
                    &ip,
                    "one of fieldRef and resourceFieldRef is required",
                )),
                _ => {}
            }
            self.mode(&at(&ip, "mode"), f.mode);
        }
    }

    /// `validateLocalNonReservedPath`: required, relative, no `..` element, not `..`-prefixed.
    fn item_path(&mut self, path: &str, p: &str) {
        if p.is_empty() {
            self.push(FieldError::required(path, ""));
            return;
        }
        if p.starts_with('/') {
            self.push(FieldError::invalid(path, p, "must be a relative path"));
        }
        self.no_backsteps(path, p);
        if p.starts_with("..") && !p.starts_with("../") {
            self.push(FieldError::invalid(path, p, "must not start with '..'"));
        }
    }

    fn no_backsteps(&mut self, path: &str, p: &str) {
        if p.split('/').any(|c| c == "..") {
            self.push(FieldError::invalid(path, p, "must not contain '..'"));
        }
    }
}
