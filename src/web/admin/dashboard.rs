//! The admin dashboard's answer to "are we safe?" (`ops::safety`): one
//! sentence in one colour, the problems as links (archive, owner, what to
//! do), the last backup, why the queue waits, the disk, and the new
//! accounts and failed logins of the last week. The page around it is
//! `pages::admin::home`.

use maud::{html, Markup};

use crate::app::state::App;
use crate::ops::safety::{Problem, Safety};
use crate::units::human_size;
use crate::web::http::ApiError;
use crate::web::layout::{full_time, local_time};

/// Failed logins listed at most (the newest); the count says the rest.
const FAILED_LOGINS_SHOWN: usize = 10;

/// The safety part of the dashboard.
pub fn safety(app: &App) -> Result<Markup, ApiError> {
    let safety = crate::ops::safety::overview(app)?;
    let inputs = crate::app::device_feed::current_inputs(app, "", 0);
    let waiting = app.archives.list_all()?;
    let notes = crate::web::archives::progress::transfer_notes(app, &waiting)?;
    let not_freed = crate::engine::lock::storage_not_freed(&app.store)?;
    Ok(html! {
        section class=(format!("card verdict verdict-{}", safety.verdict.colour())) id="verdict" role="status" {
            p.verdict-sentence { strong { (safety.verdict.sentence()) } }
            p { (where_sentence(&safety)) }
            @if safety.destinations.len() > 1 {
                ul.destinations {
                    @for destination in &safety.destinations {
                        li {
                            strong { (destination.name) } ": " (destination.placement.describe()) ". "
                            @match &destination.error {
                                Some(error) => span.error { (error) },
                                None => span.ok { "Reachable." },
                            }
                        }
                    }
                }
            } @else if safety.placement.is_off_site() {
                @match &inputs.remote_error {
                    Some(error) => p.error { (error) },
                    None => p.ok { "Reachable." },
                }
            }
            @if safety.on_box_only {
                p { a.button href="/admin/remote" { "Set up off-site storage" } }
            }
        }
        @if !safety.problems.is_empty() {
            section.card id="problems" {
                h2 { "Problems" }
                ul.problems {
                    @for problem in &safety.problems { (problem_item(problem)) }
                }
                p { a href="/admin/archives?state=problem" { "Every archive with a problem" } }
            }
        }
        div.cards.dashboard {
            section.card id="backups" {
                h2 { "Backups" }
                p {
                    "Last completed backup: "
                    @match safety.last_backup_at {
                        Some(at) => (local_time(at)),
                        None => span.muted { "none recorded yet" },
                    }
                    "."
                }
                p { (safety.off_site) " of " (safety.archives) " archives off-site. " a href="/admin/archives" { "All archives" } }
                p { "Queue: " (inputs.jobs_queued) " waiting." }
                (notes)
                @if let Some(not_freed) = &not_freed {
                    p.warning.not-freed {
                        "Storage is not freed yet: " (not_freed.message)
                        " Next try: " (full_time(not_freed.next_try)) "."
                    }
                }
            }
            section.card id="disk" {
                h2 { "Disk" }
                @match inputs.disk {
                    Some(disk) => {
                        @let used = disk.total_bytes.saturating_sub(disk.free_bytes);
                        @let percent = (used.saturating_mul(100) / disk.total_bytes.max(1)).min(100);
                        div.progress.neutral role="img" aria-label={ "Disk used: " (percent) "%" } {
                            div.bar data-percent=(percent) {}
                        }
                        p { (human_size(used)) " used, " (human_size(disk.free_bytes)) " free of " (human_size(disk.total_bytes)) "." }
                    }
                    None => p.muted { "The disk size cannot be read." },
                }
            }
            (members_card(app)?)
            (accounts_card(&safety))
        }
    })
}

/// Where the backups go, in words that never overstate it.
fn where_sentence(safety: &Safety) -> String {
    use crate::remote::placement::Placement;
    let off_site = safety
        .destinations
        .iter()
        .filter(|destination| destination.placement.is_off_site())
        .count();
    match &safety.placement {
        _ if safety.destinations.len() > 1 => format!(
            "The backups go to {} destinations, {off_site} of them off this box:",
            safety.destinations.len()
        ),
        Placement::OffSite => "The backups go to storage off this box.".to_string(),
        Placement::SameDisk => "The backups go to a second copy on this box's disk: if this box is lost or broken, so are they.".to_string(),
        Placement::UsbDisk(label) => format!("The backups go to the USB disk {label}, plugged into this box: a fire or theft takes both."),
        Placement::Unreachable => "The backup storage cannot be reached: nothing is being copied.".to_string(),
    }
}

fn problem_item(problem: &Problem) -> Markup {
    html! {
        li.problem {
            a href=(problem.link) {
                @if let Some(name) = &problem.archive_name { strong { (name) } }
                @else { strong { (problem.what) } }
            }
            @if let Some(owner) = &problem.owner { " (" (owner) ")" }
            @if problem.archive_name.is_some() { ": " (problem.what) }
            br;
            span.next-step { (problem.next_step) }
        }
    }
}

/// What each member stores, as bars against the largest (or their quota,
/// when they have one): who fills the box, at a glance.
fn members_card(app: &App) -> Result<Markup, ApiError> {
    let users = app.accounts.users()?;
    let usage = app.archives.usage_by_owner()?;
    let mut rows: Vec<(&str, u64, Option<u64>)> = users
        .iter()
        .map(|user| {
            let use_ = usage.get(&user.id).cloned().unwrap_or_default();
            (user.username.as_str(), use_.used_bytes(), use_.quota_bytes)
        })
        .collect();
    rows.sort_by_key(|(_, used, _)| std::cmp::Reverse(*used));
    let largest = rows.first().map_or(0, |(_, used, _)| *used).max(1);
    Ok(html! {
        section.card id="members-use" {
            h2 { "Use per member" }
            ul.member-use {
                @for (name, used, quota) in &rows {
                    @let scale = quota.unwrap_or(largest).max(1);
                    @let percent = (used.saturating_mul(100) / scale).min(100);
                    li {
                        span.member { (name) } " "
                        span.muted {
                            (human_size(*used))
                            @if let Some(quota) = quota { " of " (human_size(*quota)) " quota" }
                        }
                        div.progress.neutral role="img" aria-label={ (name) ": " (human_size(*used)) } {
                            div.bar data-percent=(percent) {}
                        }
                    }
                }
            }
            p { a href="/admin/users" { "Users, quotas and invitations" } }
        }
    })
}

fn accounts_card(safety: &Safety) -> Markup {
    html! {
        section.card id="accounts" {
            h2 { "Accounts this week" }
            h3 { "New accounts" }
            @if safety.new_accounts.is_empty() {
                p.muted { "None." }
            } @else {
                ul.new-accounts {
                    @for user in &safety.new_accounts {
                        li { (user.username) " (" (user.role.as_str()) "), " (local_time(user.created_at)) }
                    }
                }
            }
            h3 { "Failed logins" }
            @if safety.failed_logins.is_empty() {
                p.muted { "None." }
            } @else {
                p { (safety.failed_logins.len()) " in the last week." }
                ul.failed-logins {
                    @for failed in safety.failed_logins.iter().take(FAILED_LOGINS_SHOWN) {
                        li { (local_time(failed.at)) ": " code { (failed.username) } " from " (failed.address) }
                    }
                }
            }
            p { a href="/admin/users" { "Users and invitations" } }
        }
    }
}
