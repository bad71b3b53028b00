//! `-f FILE|DIR|-`: the manifests a command reads. A directory gives its `*.yaml`, `*.yml` and
//! `*.json` files (not recursively, sorted by name, as kubectl); `-` is stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::KubeError;

/// One input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// Reads the whole input.
    pub fn read(&self) -> Result<String, KubeError> {
        match self {
            Source::Stdin => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| KubeError::local(format!("reading STDIN: {e}")))?;
                Ok(s)
            }
            Source::File(p) => std::fs::read_to_string(p)
                .map_err(|e| KubeError::local(format!("reading {}: {e}", p.display()))),
        }
    }
}

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// The inputs of every `-f`, in order.
pub fn collect(args: &[String]) -> Result<Vec<Source>, KubeError> {
    if args.is_empty() {
        return Err(KubeError::local("must specify one of -f and -k"));
    }
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            out.push(Source::Stdin);
            continue;
        }
        let path = Path::new(arg);
        let meta = std::fs::metadata(path)
            .map_err(|_| KubeError::local(format!("the path \"{arg}\" does not exist")))?;
        if !meta.is_dir() {
            out.push(Source::File(path.to_owned()));
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| KubeError::local(format!("reading directory {arg}: {e}")))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            })
            .collect();
        found.sort();
        out.extend(found.into_iter().map(Source::File));
    }
    if out.is_empty() {
        return Err(KubeError::local("no objects passed to apply"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_give_manifests_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.yaml", "a.json", "c.yml", "notes.txt", "d.YAML.bak"] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).expect("mkdir");
        let single = dir.path().join("notes.txt");
        let got = collect(&[
            dir.path().display().to_string(),
            "-".into(),
            single.display().to_string(),
        ])
        .expect("collect");
        let names: Vec<String> = got
            .iter()
            .map(|s| match s {
                Source::Stdin => "-".into(),
                Source::File(p) => p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            })
            .collect();
        assert_eq!(names, ["a.json", "b.yaml", "c.yml", "-", "notes.txt"]);
    }

    #[test]
    fn missing_and_empty_inputs() {
        assert_eq!(
            collect(&["/nonexistent/x.yaml".into()])
                .expect_err("missing")
                .to_string(),
            "error: the path \"/nonexistent/x.yaml\" does not exist"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            collect(&[dir.path().display().to_string()])
                .expect_err("empty")
                .to_string(),
            "error: no objects passed to apply"
        );
        assert!(collect(&[]).is_err());
    }
}
