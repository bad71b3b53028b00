//! The device part of a plan: the default devices every container gets, and each spec
//! device checked into a `DevicePlan`.

use super::*;

pub(super) fn default_device(name: &str, major: u64, minor: u64) -> DevicePlan {
    DevicePlan {
        path: PathBuf::from("dev").join(name),
        kind: nix::sys::stat::SFlag::S_IFCHR,
        mode: Mode::from_bits_truncate(0o666),
        dev: nix::sys::stat::makedev(major, minor),
        uid: 0,
        gid: 0,
    }
}

pub(super) fn device_plan(d: &LinuxDevice) -> Result<DevicePlan, Error> {
    use nix::sys::stat::SFlag;
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(invalid(format!(
                "linux.devices {}: type a",
                d.path().display()
            )));
        }
    };
    if !d.path().is_absolute() {
        return Err(invalid(format!(
            "linux.devices {}: not absolute",
            d.path().display()
        )));
    }
    Ok(DevicePlan {
        path: clean_relative(d.path()),
        kind,
        mode: Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666)),
        dev: nix::sys::stat::makedev(d.major() as u64, d.minor() as u64),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}
