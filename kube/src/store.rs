//! The durable object store: every object is one JSON file, `<dir>/<resource>/<namespace>/<name>.json`
//! (`<dir>/namespaces/<name>.json` for namespaces), written atomically (temporary file, fsync,
//! rename, fsync of the directory) and loaded at start-up into memory, which answers reads.
//!
//! The store assigns what the API server assigns: `metadata.uid` (a random UUID v4),
//! `creationTimestamp`, a monotonic `resourceVersion` (the counter is kept in `<dir>/store.json`)
//! and `generation` (bumped when anything but metadata and status changes). It does not
//! validate: callers run [`crate::validate`] first.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::manifest::Object;
use crate::objects::Objects;
use crate::selector::Selector;
use crate::validate::DEFAULT_NAMESPACE;

/// The kinds the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Pods.
    Pod,
    /// ConfigMaps.
    ConfigMap,
    /// Secrets.
    Secret,
    /// Namespaces (not namespaced).
    Namespace,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [Kind::Namespace, Kind::ConfigMap, Kind::Secret, Kind::Pod];

    /// The plural resource name (`pods`), used for directories and error messages.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Namespace => "namespaces",
        }
    }

    /// A kind by any of kubectl's names for it: plural, singular or short, any case (`pods`,
    /// `Pod`, `po`, `cm`, `ns`).
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "pods" | "pod" | "po" => Kind::Pod,
            "configmaps" | "configmap" | "cm" => Kind::ConfigMap,
            "secrets" | "secret" => Kind::Secret,
            "namespaces" | "namespace" | "ns" => Kind::Namespace,
            _ => return None,
        })
    }

    /// The kind of an object.
    pub fn of(o: &Object) -> Kind {
        match o {
            Object::Pod(_) => Kind::Pod,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
            Object::Namespace(_) => Kind::Namespace,
        }
    }

    fn decode(self, v: Value) -> Result<Object, serde_json::Error> {
        Ok(match self {
            Kind::Pod => Object::Pod(Box::new(serde_json::from_value::<Pod>(v)?)),
            Kind::ConfigMap => Object::ConfigMap(serde_json::from_value::<ConfigMap>(v)?),
            Kind::Secret => Object::Secret(serde_json::from_value::<Secret>(v)?),
            Kind::Namespace => Object::Namespace(serde_json::from_value::<Namespace>(v)?),
        })
    }
}

/// Where an object lives: kind, namespace (`""` for namespaces), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind.
    pub kind: Kind,
    /// The namespace, `""` for a Namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of `o` (namespace defaulted).
    pub fn of(o: &Object) -> Key {
        Key {
            kind: Kind::of(o),
            namespace: o.namespace().to_string(),
            name: o.name().to_string(),
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` of an object that exists.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// `pods`, `configmaps`...
        resource: &'static str,
        /// The name.
        name: String,
    },
    /// An object that is not there.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// `pods`, `configmaps`...
        resource: &'static str,
        /// The name.
        name: String,
    },
    /// A namespaced object in a namespace that does not exist.
    #[error("namespaces {0:?} not found")]
    NamespaceNotFound(String),
    /// A name that cannot be a file name (empty, `/`, leading `.`).
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// A namespace that still holds objects cannot be removed from the store.
    #[error("namespace {0:?} is not empty")]
    NamespaceNotEmpty(String),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What `apply` did, as kubectl words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New object.
    Created,
    /// Existing object changed.
    Configured,
    /// Existing object, nothing to change.
    Unchanged,
}

impl Applied {
    /// `created`, `configured`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoreMeta {
    version: u32,
    resource_version: u64,
}

/// The object store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    objects: BTreeMap<Key, Object>,
    resource_version: u64,
    skipped: Vec<(PathBuf, String)>,
}

/// A new random UUID v4, as Kubernetes uids are written.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(StoreError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Mode of the store's directories: Secrets and pod specs are root's alone.
const DIR_MODE: u32 = 0o700;
/// Mode of every object file.
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with [`DIR_MODE`] (exactly, whatever the umask).
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    corral_fsutil::mode::create_dir(dir, DIR_MODE).map_err(io(dir))
}

/// Sets `mode` on `path` unless it has it (a store written by an older version was 0755/0644).
fn restrict(path: &Path, mode: u32) -> Result<(), StoreError> {
    corral_fsutil::mode::restrict(path, mode).map_err(io(path))
}

/// Writes `bytes` to `path` atomically and durably ([`corral_fsutil::write_atomic`], mode
/// 0600), the directory created 0700 when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    corral_fsutil::write_atomic(path, bytes, FILE_MODE).map_err(|e| io(&e.path)(e.source))
}

/// The parts of an object that make up its desired state: everything but `status` and the
/// metadata the store assigns.
fn desired(o: &Object) -> Value {
    let mut v = o.to_value();
    if let Value::Object(m) = &mut v {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in [
                "uid",
                "creationTimestamp",
                "resourceVersion",
                "generation",
                "deletionTimestamp",
                "managedFields",
            ] {
                meta.remove(k);
            }
        }
    }
    v
}

fn spec_part(o: &Object) -> Value {
    let mut v = desired(o);
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
    }
    v
}

impl Store {
    /// Opens (creating if needed) the store under `dir` and loads every object. Files that do
    /// not parse are skipped and listed by [`Store::skipped`]; leftover temporary files are
    /// removed. The `default` namespace is created when missing.
    pub fn open(dir: impl Into<PathBuf>, now: Timestamp) -> Result<Store, StoreError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        let meta_path = dir.join("store.json");
        let mut resource_version = match fs::read(&meta_path) {
            Ok(b) => serde_json::from_slice::<StoreMeta>(&b)
                .map(|m| m.resource_version)
                .unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&meta_path)(e)),
        };
        let mut store = Store {
            dir,
            objects: BTreeMap::new(),
            resource_version: 0,
            skipped: Vec::new(),
        };
        for kind in Kind::ALL {
            let base = store.dir.join(kind.resource());
            if base.is_dir() {
                restrict(&base, DIR_MODE)?;
            }
            let mut files = Vec::new();
            if kind == Kind::Namespace {
                files.extend(list_dir(&base)?);
            } else {
                for ns_dir in list_dir(&base)? {
                    if ns_dir.is_dir() {
                        restrict(&ns_dir, DIR_MODE)?;
                        files.extend(list_dir(&ns_dir)?);
                    }
                }
            }
            for f in files {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with(corral_fsutil::atomic::TMP_PREFIX) {
                    let _ = fs::remove_file(&f);
                    continue;
                }
                if !name.ends_with(".json") {
                    continue;
                }
                restrict(&f, FILE_MODE)?;
                match load(&f, kind) {
                    Ok(o) => {
                        let rv = o
                            .metadata()
                            .resource_version
                            .as_deref()
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0);
                        resource_version = resource_version.max(rv);
                        store.objects.insert(Key::of(&o), o);
                    }
                    Err(msg) => {
                        tracing::warn!(path = %f.display(), error = %msg, "skipping unreadable object");
                        store.skipped.push((f, msg));
                    }
                }
            }
        }
        store.resource_version = resource_version;
        if store.get(Kind::Namespace, "", DEFAULT_NAMESPACE).is_none() {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(DEFAULT_NAMESPACE.into());
            store.create(Object::Namespace(ns), now)?;
        }
        Ok(store)
    }

    /// Files that could not be loaded, with the reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The last resourceVersion given out.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn path(&self, key: &Key) -> PathBuf {
        let base = self.dir.join(key.kind.resource());
        let base = if key.kind == Kind::Namespace {
            base
        } else {
            base.join(&key.namespace)
        };
        base.join(format!("{}.json", key.name))
    }

    fn next_version(&mut self) -> Result<String, StoreError> {
        self.resource_version += 1;
        let meta = StoreMeta {
            version: 1,
            resource_version: self.resource_version,
        };
        let bytes = serde_json::to_vec(&meta).unwrap_or_default();
        write_atomic(&self.dir.join("store.json"), &bytes)?;
        Ok(self.resource_version.to_string())
    }

    fn check(&self, o: &Object) -> Result<Key, StoreError> {
        let key = Key::of(o);
        check_name(&key.name)?;
        if o.namespaced() {
            check_name(&key.namespace)?;
            if self.get(Kind::Namespace, "", &key.namespace).is_none() {
                return Err(StoreError::NamespaceNotFound(key.namespace));
            }
        }
        Ok(key)
    }

    fn write(&mut self, key: Key, o: Object) -> Result<Object, StoreError> {
        let bytes = serde_json::to_vec_pretty(&o.to_value()).unwrap_or_default();
        write_atomic(&self.path(&key), &bytes)?;
        self.objects.insert(key, o.clone());
        Ok(o)
    }

    /// Creates `o`; fails with [`StoreError::AlreadyExists`] if it exists.
    pub fn create(&mut self, mut o: Object, now: Timestamp) -> Result<Object, StoreError> {
        o.normalize();
        let key = self.check(&o)?;
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: key.kind.resource(),
                name: key.name,
            });
        }
        let rv = self.next_version()?;
        let m = o.metadata_mut();
        m.uid = Some(new_uid());
        m.creation_timestamp = Some(Time(whole_seconds(now)));
        m.resource_version = Some(rv);
        m.generation = Some(1);
        m.deletion_timestamp = None;
        if let Object::Namespace(ns) = &mut o {
            ns.status.get_or_insert_with(Default::default).phase = Some("Active".into());
        }
        self.write(key, o)
    }

    /// `kubectl apply`: creates `o`, or updates the stored object to `o`'s desired state while
    /// keeping its uid, creationTimestamp and status. `generation` goes up when more than
    /// metadata changed.
    pub fn apply(
        &mut self,
        mut o: Object,
        now: Timestamp,
    ) -> Result<(Object, Applied), StoreError> {
        o.normalize();
        let key = self.check(&o)?;
        let Some(old) = self.objects.get(&key).cloned() else {
            return self.create(o, now).map(|o| (o, Applied::Created));
        };
        if desired(&old) == desired(&o) {
            return Ok((old, Applied::Unchanged));
        }
        let spec_changed = spec_part(&old) != spec_part(&o);
        let rv = self.next_version()?;
        let om = old.metadata().clone();
        let m = o.metadata_mut();
        m.uid = om.uid;
        m.creation_timestamp = om.creation_timestamp;
        m.deletion_timestamp = om.deletion_timestamp;
        m.resource_version = Some(rv);
        m.generation = Some(om.generation.unwrap_or(1) + i64::from(spec_changed));
        match (&mut o, &old) {
            (Object::Pod(new), Object::Pod(old)) => new.status = old.status.clone(),
            (Object::Namespace(new), Object::Namespace(old)) => new.status = old.status.clone(),
            _ => {}
        }
        self.write(key, o).map(|o| (o, Applied::Configured))
    }

    /// Replaces an existing object as given (labels, deletionTimestamp...), keeping its uid
    /// and creationTimestamp and bumping its resourceVersion.
    pub fn replace(&mut self, mut o: Object) -> Result<Object, StoreError> {
        o.normalize();
        let key = self.check(&o)?;
        let old = self.objects.get(&key).ok_or_else(|| StoreError::NotFound {
            resource: key.kind.resource(),
            name: key.name.clone(),
        })?;
        let om = old.metadata().clone();
        let spec_changed = spec_part(old) != spec_part(&o);
        let rv = self.next_version()?;
        let m = o.metadata_mut();
        m.uid = om.uid;
        m.creation_timestamp = om.creation_timestamp;
        m.resource_version = Some(rv);
        m.generation = Some(om.generation.unwrap_or(1) + i64::from(spec_changed));
        self.write(key, o)
    }

    /// Records a pod's status.
    pub fn set_pod_status(
        &mut self,
        namespace: &str,
        name: &str,
        status: PodStatus,
    ) -> Result<Object, StoreError> {
        let key = Key {
            kind: Kind::Pod,
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut o = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                resource: "pods",
                name: name.into(),
            })?;
        if let Object::Pod(p) = &mut o {
            p.status = Some(status);
        }
        let rv = self.next_version()?;
        o.metadata_mut().resource_version = Some(rv);
        self.write(key, o)
    }

    /// Removes an object and its file. A namespace must be empty first.
    pub fn delete(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, StoreError> {
        let namespace = if kind == Kind::Namespace {
            ""
        } else {
            namespace
        };
        let key = Key {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        };
        if !self.objects.contains_key(&key) {
            return Err(StoreError::NotFound {
                resource: kind.resource(),
                name: name.into(),
            });
        }
        if kind == Kind::Namespace
            && self
                .objects
                .keys()
                .any(|k| k.kind != Kind::Namespace && k.namespace == name)
        {
            return Err(StoreError::NamespaceNotEmpty(name.into()));
        }
        let path = self.path(&key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        if let Some(dir) = path.parent() {
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
        self.next_version()?;
        self.objects.remove(&key).ok_or(StoreError::NotFound {
            resource: kind.resource(),
            name: name.into(),
        })
    }

    /// One object (`namespace` is ignored for namespaces).
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Object> {
        let namespace = if kind == Kind::Namespace {
            ""
        } else {
            namespace
        };
        self.objects.get(&Key {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    /// Objects of `kind`, in one namespace or all (`None`), whose labels match `selector`,
    /// sorted by namespace and name.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Vec<&Object> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.kind == kind
                    && namespace.is_none_or(|ns| kind == Kind::Namespace || k.namespace == ns)
            })
            .filter(|(_, o)| {
                selector.is_none_or(|s| {
                    s.matches(o.metadata().labels.as_ref().unwrap_or(&BTreeMap::new()))
                })
            })
            .map(|(_, o)| o)
            .collect()
    }
}

impl Objects for Store {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        match self.get(Kind::ConfigMap, namespace, name)? {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        }
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        match self.get(Kind::Secret, namespace, name)? {
            Object::Secret(s) => Some(s),
            _ => None,
        }
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            out.sort();
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir)(e)),
    }
}

fn load(path: &Path, kind: Kind) -> Result<Object, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let o = kind.decode(v).map_err(|e| e.to_string())?;
    let want = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if o.name() != want {
        return Err(format!("holds {:?}, not {want:?}", o.name()));
    }
    Ok(o)
}

#[cfg(test)]
mod tests;
