//! A firmware update as an admin installs it: the signed bundle streamed to
//! the inactive slot ([`crate::update::apply`]), the console lines, then
//! the reboot into the trial. Status codes and the page are `web::updates`.

use std::io::Read;

use crate::init::console;
use crate::update::{self, Applied, ApplyError};

/// Streams the bundle from `body` to the inactive slot and says so on the
/// console. The caller reboots with [`reboot_into_trial`] once it has
/// answered, unless the bundle's test switch holds the reboot.
pub fn install<R: Read + ?Sized>(body: &mut R, force: bool) -> Result<Applied, ApplyError> {
    let mut started = false;
    let mut progress = |_written: u64, total: u64| {
        if !started {
            started = true;
            console::log(
                "update",
                &format!("writing version ({} MiB) to the inactive slot", total >> 20),
            );
        }
    };
    let applied = update::apply(body, force, &mut progress)?;
    let (version, slot) = (&applied.version, applied.slot.dir_name());
    let line = if applied.hold_reboot {
        format!("test switch: version {version} written to {slot}; holding the reboot")
    } else {
        format!("version {version} written to {slot}; rebooting into trial")
    };
    console::log("update", &line);
    Ok(applied)
}

/// What the admin reads after an install that reboots.
pub fn installed_sentence(applied: &Applied) -> String {
    format!(
        "Version {} is installed in {}. The appliance restarts to try it; if it does not start properly, it goes back to {}.",
        applied.version,
        applied.slot.dir_name(),
        update::running_version()
    )
}

/// Restarts into the newly written slot (its trial boot).
pub fn reboot_into_trial() {
    let _ = crate::power::request(crate::power::PowerAction::Reboot);
}
