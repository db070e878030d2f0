//! The notification settings as an admin changes them, "Send a test", and
//! the channels a member sets for their own archives.

use crate::accounts::Caller;
use crate::admin::log::Subject;
use crate::app::state::App;
use crate::notify::members::MemberChannels;
use crate::notify::settings::{Channel, NotifySettings};
use crate::notify::{self, Sender, TestResult};
use crate::settings::Settings;

/// The sender the notifier and the test use: the appliance's network name
/// and the extra certificate authority in the data folder.
pub fn sender(app: &App) -> Sender {
    let appliance = Settings::load(&app.store)
        .map(|s| s.mdns_hostname)
        .unwrap_or_else(|_| "piarchive".into());
    Sender {
        appliance,
        extra_ca: notify::channels::extra_ca_path(&app.config.data_dir),
    }
}

/// Saves `settings` (a secret left empty keeps the stored one), logs who
/// did it (kinds only, never a secret or URL) and wakes the notifier.
pub fn save(app: &App, admin: &Caller, settings: NotifySettings) -> super::Result<NotifySettings> {
    let stored = NotifySettings::load(&app.store)?;
    let settings = settings.keeping_secrets(&stored);
    settings.save(&app.store)?;
    let kinds: Vec<&str> = settings.channels.iter().map(Channel::kind).collect();
    app.admin.log.info(
        "notify",
        &format!(
            "{} changed the notifications: channels [{}], remote unreachable after {} s, digest {}.",
            admin.user.username,
            kinds.join(", "),
            settings.remote_unreachable_after_seconds,
            match settings.digest {
                crate::notify::settings::DigestSetting::Off => "off",
                crate::notify::settings::DigestSetting::Weekly => "weekly",
            }
        ),
        Subject::user(&admin.user.id),
    );
    if let Some(notifier) = app.notifier.get() {
        notifier.wake();
    }
    Ok(settings)
}

/// Sends a test through every channel now; logs and returns each outcome.
pub fn send_test(app: &App) -> super::Result<Vec<TestResult>> {
    let settings = NotifySettings::load(&app.store)?;
    let results = notify::send_test(&sender(app), &settings);
    for result in &results {
        let line = format!(
            "Test through the {} channel {}: {}",
            result.kind, result.target, result.message
        );
        match result.ok {
            true => app.admin.log.info("notify", &line, Default::default()),
            false => app.admin.log.warn("notify", &line, Default::default()),
        }
    }
    Ok(results)
}

/// Saves `caller`'s own channels (a token left empty keeps the stored one
/// for the same topic), logs which kinds they set (never a topic, address
/// or token) and wakes the notifier.
pub fn save_member(
    app: &App,
    caller: &Caller,
    channels: MemberChannels,
) -> super::Result<MemberChannels> {
    let user_id = &caller.user.id;
    let stored = MemberChannels::load(&app.store, user_id)?;
    let channels = channels.normalized(&stored);
    channels.save(&app.store, user_id)?;
    let mut kinds = Vec::new();
    if channels.ntfy_url.is_some() {
        kinds.push("ntfy");
    }
    if channels.email.is_some() {
        kinds.push("email");
    }
    app.admin.log.info(
        "notify",
        &format!(
            "{} changed their own notifications: [{}].",
            caller.user.username,
            kinds.join(", ")
        ),
        Subject::user(user_id),
    );
    if let Some(notifier) = app.notifier.get() {
        notifier.wake();
    }
    Ok(channels)
}
