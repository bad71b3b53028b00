//! The hostPath plugin: the kubelet's `type` checks on the host path, creating it for the
//! `OrCreate` types; nothing else is made.

use super::*;

/// The kubelet's hostPath `type` check (`checkType`), creating for the `OrCreate` types.
pub(super) fn check_host_path(path: &Path, ty: &str) -> Result<(), String> {
    let shown = path.display();
    let exists = fs::metadata(path).is_ok();
    let (expected, description) = match ty {
        "" => return Ok(()),
        "DirectoryOrCreate" | "Directory" => {
            if ty == "DirectoryOrCreate" && !exists {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| format!("mkdir {shown}: {e}"))?;
            }
            ("Directory", "directory")
        }
        "FileOrCreate" | "File" => {
            if ty == "FileOrCreate" && !exists {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|e| format!("open {shown}: {e}"))?;
            }
            ("File", "file")
        }
        "Socket" => ("Socket", "socket file"),
        "CharDevice" => ("CharDevice", "character device"),
        "BlockDevice" => ("BlockDevice", "block device"),
        other => return Err(format!("{other} is an invalid volume type")),
    };
    let meta = fs::metadata(path).map_err(|_| format!("hostPath {shown} doesn't exist"))?;
    let ft = meta.file_type();
    let actual = if ft.is_dir() {
        "Directory"
    } else if ft.is_file() {
        "File"
    } else if ft.is_socket() {
        "Socket"
    } else if ft.is_char_device() {
        "CharDevice"
    } else if ft.is_block_device() {
        "BlockDevice"
    } else {
        return Err(format!(
            "hostPath type check failed, {shown} is not a {description}, unable to determine its type: only recognise file, directory, socket, block device and character device"
        ));
    };
    if actual != expected {
        return Err(format!(
            "hostPath type check failed: {shown} is not a {description}, it's a {actual}"
        ));
    }
    Ok(())
}
