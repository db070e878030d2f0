//! Kernel module loading of init mode.
//!
//! Owns: reading the load order that `image/build` computed from each module's
//! `depends=` (Debian's kernel package ships no modules.dep), and loading each module
//! with `finit_module(2)`. Every module is best-effort: a driver for hardware this
//! board lacks may refuse to load, and the boot goes on.
//! Must not touch: the order itself (it is decided at image build time, not here).

use std::path::Path;

/// Directory of the modules in the initramfs.
pub const MODULES_DIR: &str = "/lib/modules";
/// File listing the modules, one path relative to [`MODULES_DIR`] per line, each
/// after everything it depends on.
pub const LOAD_ORDER_FILE: &str = "/lib/modules/load-order";

/// Parses the load-order file: one relative path per line; blank lines and `#`
/// comments are skipped.
pub fn parse_load_order(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// What happened to one module.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    AlreadyLoaded,
    Failed(String),
}

/// Loads one module file with finit_module(2).
pub fn load_module(path: &Path) -> LoadOutcome {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) => return LoadOutcome::Failed(format!("cannot open: {err}")),
    };
    match rustix::system::finit_module(&file, c"", 0) {
        Ok(()) => LoadOutcome::Loaded,
        Err(rustix::io::Errno::EXIST) => LoadOutcome::AlreadyLoaded,
        Err(errno) => LoadOutcome::Failed(std::io::Error::from(errno).to_string()),
    }
}

/// Loads every module in the load order; returns (loaded, failed) counts. Each failure
/// is logged; none stops the boot.
pub fn load_all() -> (usize, usize) {
    let text = match std::fs::read_to_string(LOAD_ORDER_FILE) {
        Ok(text) => text,
        Err(err) => {
            super::console::log("modules", &format!("no {LOAD_ORDER_FILE}: {err}"));
            return (0, 0);
        }
    };
    let (mut loaded, mut failed) = (0, 0);
    for relative in parse_load_order(&text) {
        let path = Path::new(MODULES_DIR).join(relative);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load_module(&path) {
            LoadOutcome::Loaded | LoadOutcome::AlreadyLoaded => loaded += 1,
            LoadOutcome::Failed(reason) => {
                failed += 1;
                super::console::log("modules", &format!("{name}: {reason} (skipped)"));
            }
        }
    }
    super::console::log(
        "modules",
        &format!("{loaded} loaded, {failed} not loaded (absent hardware is normal)"),
    );
    (loaded, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_skips_comments_and_blanks() {
        let text = "# computed by image/build\nkernel/lib/crc16.ko\n\n  kernel/fs/ext4/ext4.ko  \n";
        assert_eq!(
            parse_load_order(text),
            vec!["kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko"]
        );
    }

    #[test]
    fn loading_a_missing_file_fails_without_panicking() {
        let outcome = load_module(Path::new("/nonexistent/piarchive-test.ko"));
        assert!(
            matches!(outcome, LoadOutcome::Failed(reason) if reason.starts_with("cannot open"))
        );
    }
}
