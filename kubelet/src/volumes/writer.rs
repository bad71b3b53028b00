//! The shared payload writer of the API data volumes, the kubelet's atomic writer: files in a
//! fresh `..<timestamp>` directory, `..data` swapped to it with a rename, each visible
//! top-level entry a symlink into `..data`; an unchanged payload is not rewritten.

use super::*;

/// Writes `files` into the volume at `root` the way the kubelet's atomic writer does; does
/// nothing when the current contents are already `files`. Says whether it wrote.
pub(super) fn write_payload(
    volume: &str,
    root: &Path,
    files: &Payload,
    ownership: Option<Ownership>,
) -> Result<bool, VolumeError> {
    let err = |p: &Path| io_err(volume, p);
    let data_link = root.join(DATA_LINK);
    let old = fs::read_link(&data_link).ok();
    if let Some(old) = &old
        && matches_payload(&root.join(old), files, ownership).unwrap_or(false)
    {
        link_visible(root, files).map_err(err(root))?;
        return Ok(false);
    }
    let ts = new_timestamp_dir(root).map_err(err(root))?;
    let ts_path = root.join(&ts);
    for (rel, file) in files {
        write_file(&ts_path, rel, file).map_err(err(&ts_path.join(rel)))?;
    }
    if let Some(own) = ownership {
        set_ownership(&ts_path, own, true).map_err(err(&ts_path))?;
        set_ownership_shallow(root, own, true).map_err(err(root))?;
    }
    let tmp = root.join(DATA_TMP_LINK);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(&tmp)(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(&ts, &tmp).map_err(err(&tmp))?;
    fs::rename(&tmp, &data_link).map_err(err(&data_link))?;
    link_visible(root, files).map_err(err(root))?;
    unlink_stale(root, files).map_err(err(root))?;
    if let Some(old) = old.filter(|o| *o != Path::new(&ts)) {
        let old = root.join(old);
        if old.parent() == Some(root) {
            fs::remove_dir_all(&old).map_err(err(&old))?;
        }
    }
    tracing::debug!(volume, dir = %ts_path.display(), files = files.len(), "volume contents written");
    Ok(true)
}

/// `..2006_01_02_15_04_05.<random>` under `root`, mode 0755.
pub(super) fn new_timestamp_dir(root: &Path) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?;
    let secs = now.as_secs();
    let (y, mo, d) = corral_fsutil::time::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let stamp = format!(
        "..{y:04}_{mo:02}_{d:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    loop {
        let name = format!("{stamp}.{}", rand::random::<u32>());
        let path = root.join(&name);
        match fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Creates `rel` (already validated) in the fresh directory `ts`, never following symlinks.
pub(super) fn write_file(ts: &Path, rel: &str, file: &FileData) -> io::Result<()> {
    let path = ts.join(rel);
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(&file.bytes)?;
    f.set_permissions(fs::Permissions::from_mode(file.mode))?;
    if let Some(uid) = file.uid {
        std::os::unix::fs::fchown(&f, Some(uid), None)?;
    }
    Ok(())
}

/// Whether the data directory `ts` holds exactly `files` (contents, modes, group).
pub(super) fn matches_payload(
    ts: &Path,
    files: &Payload,
    ownership: Option<Ownership>,
) -> io::Result<bool> {
    let mut found = BTreeSet::new();
    collect_files(ts, ts, &mut found)?;
    if found.len() != files.len() || !files.keys().all(|k| found.contains(Path::new(k))) {
        return Ok(false);
    }
    for (rel, file) in files {
        let path = ts.join(rel);
        let meta = fs::symlink_metadata(&path)?;
        let mut mode = file.mode;
        if let Some(own) = ownership {
            mode |= 0o440;
            if meta.gid() != own.gid {
                return Ok(false);
            }
        }
        if meta.mode() & 0o7777 != mode
            || file.uid.is_some_and(|u| u != meta.uid())
            || fs::read(&path)? != file.bytes
        {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(super) fn collect_files(
    base: &Path,
    dir: &Path,
    out: &mut BTreeSet<PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect_files(base, &entry.path(), out)?;
        } else if let Ok(rel) = entry.path().strip_prefix(base) {
            out.insert(rel.to_path_buf());
        }
    }
    Ok(())
}

/// The top-level names of `files` (what the volume shows besides `..*`).
pub(super) fn visible_names(files: &Payload) -> BTreeSet<&str> {
    files
        .keys()
        .filter_map(|k| k.split('/').find(|c| !c.is_empty() && *c != "."))
        .collect()
}

/// Makes each top-level name a symlink into `..data`.
pub(super) fn link_visible(root: &Path, files: &Payload) -> io::Result<()> {
    for name in visible_names(files) {
        let link = root.join(name);
        match fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", link.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)?;
    }
    Ok(())
}

/// Removes the visible symlinks of names no longer in `files`.
pub(super) fn unlink_stale(root: &Path, files: &Payload) -> io::Result<()> {
    let keep = visible_names(files);
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") || keep.contains(name.as_ref()) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
