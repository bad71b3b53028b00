use super::*;

fn policy(max_files: usize) -> LogPolicy {
    LogPolicy {
        max_size: 10,
        max_files,
        interval: Duration::from_secs(1),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rotation_keeps_max_files_compresses_earlier_rotations_and_renames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    std::fs::write(&log, "current\n").expect("write");
    for (stamp, text) in [
        ("20261201-000000", "oldest\n"),
        ("20261202-000000", "older\n"),
        ("20261203-000000", "newest\n"),
    ] {
        std::fs::write(dir.path().join(format!("0.log.{stamp}")), text).expect("write");
    }
    // Another container's file and a leftover of a crashed compression.
    std::fs::write(dir.path().join("1.log.20261201-000000"), "other\n").expect("write");
    std::fs::write(dir.path().join("0.log.20261202-000000.gz.tmp"), "half").expect("write");

    let rotated = prepare_and_rename(&log, "20261204-120000", policy(4))
        .expect("rotates")
        .expect("a new name");
    assert_eq!(rotated, dir.path().join("0.log.20261204-120000"));
    // 4 files: the (re)opened current one, the new rotated one, and two older ones,
    // compressed.
    assert_eq!(
        names(dir.path()),
        [
            "0.log.20261202-000000.gz",
            "0.log.20261203-000000.gz",
            "0.log.20261204-120000",
            "1.log.20261201-000000",
        ]
    );
    let gz = std::fs::read(dir.path().join("0.log.20261202-000000.gz")).expect("read");
    let mut text = String::new();
    io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
        .expect("gunzip");
    assert_eq!(text, "older\n");
    assert_eq!(
        std::fs::read_to_string(&rotated).expect("read"),
        "current\n"
    );
    assert_eq!(
        rotated_files(&log).expect("list"),
        [
            dir.path().join("0.log.20261202-000000.gz"),
            dir.path().join("0.log.20261203-000000.gz"),
            dir.path().join("0.log.20261204-120000"),
        ]
    );
}

#[test]
fn two_files_keep_only_the_rotated_one_and_a_second_rotation_in_a_second_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    std::fs::write(dir.path().join("0.log.20261201-000000"), "old\n").expect("write");
    std::fs::write(&log, "a\n").expect("write");
    prepare_and_rename(&log, "20261204-120000", policy(2))
        .expect("rotates")
        .expect("renamed");
    assert_eq!(names(dir.path()), ["0.log.20261204-120000"]);
    std::fs::write(&log, "b\n").expect("write");
    assert_eq!(
        prepare_and_rename(&log, "20261204-120000", policy(2)).expect("no error"),
        None
    );
    assert_eq!(std::fs::read_to_string(&log).expect("kept"), "b\n");
}

#[test]
fn only_timestamped_siblings_count_as_rotated() {
    assert!(is_stamp("20261204-120000"));
    assert!(!is_stamp("20261204120000"));
    assert!(!is_stamp("2026120a-120000"));
    assert!(!is_stamp("20261204-1200001"));
}
