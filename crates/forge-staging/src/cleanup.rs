//! [`cleanup`]: removing what a crashed run left behind in its run directory: mounted
//! views, view directories, half-written layers and temporary files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, StagingError};
use crate::overlay::Flavor;
use crate::sys;
use crate::types::CleanupReport;

/// Unmounts and removes every view left in `run_dir` (by a crashed process, or views still
/// alive in this one: drop those first), the trash of torn-down views, half-written layers
/// and probe files. Committed layers and the publish record are kept, so the run can be
/// re-opened and resumed afterwards. A run directory that does not exist is already clean.
///
/// # Errors
///
/// Reading the mount table, unmounting, or removing a directory fails.
pub fn cleanup(run_dir: &Path) -> Result<CleanupReport, StagingError> {
    let mut report = CleanupReport::default();
    let run_dir = match fs::canonicalize(run_dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(StagingError::io("open run directory", run_dir)(e)),
    };
    // Deepest first, so nested mounts come off before their parents.
    let mut mounts: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(&run_dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        sys::unmount(&m)?;
        report.unmounted.push(m);
    }
    for item in read_dir_or_empty(&run_dir.join("views"))? {
        sys::remove_any(&item)?;
        report.removed_views.push(item);
    }
    for item in read_dir_or_empty(&run_dir.join("trash"))? {
        sys::remove_any(&item)?;
        report.removed_temp.push(item);
    }
    let temp_dirs = [
        run_dir.clone(),
        run_dir.join("layers"),
        run_dir.join(Flavor::Trusted.flat_dir()),
        run_dir.join(Flavor::User.flat_dir()),
    ];
    for dir in temp_dirs {
        for item in read_dir_or_empty(&dir)? {
            let is_temp = item
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if is_temp {
                sys::remove_any(&item)?;
                report.removed_temp.push(item);
            }
        }
    }
    Ok(report)
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|i| {
                i.map(|i| i.path())
                    .map_err(StagingError::io("read dir", dir))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StagingError::io("read dir", dir)(e)),
    }
}

/// Every mount point of this process's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StagingError::io("read", path)(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect())
}

/// Undoes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
