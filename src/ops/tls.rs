//! The HTTPS certificate as an admin changes it: installing one's own,
//! going back to the self-signed one.

use crate::accounts::Caller;
use crate::admin::log::Subject;
use crate::app::state::App;
use crate::tls::CertInfo;

pub fn install(
    app: &App,
    admin: &Caller,
    cert_pem: &str,
    key_pem: &str,
) -> super::Result<CertInfo> {
    let info = app.tls.install(cert_pem, key_pem)?;
    app.admin.log.info(
        "tls",
        &format!(
            "{} installed a certificate for {} (SHA-256 {}).",
            admin.user.username,
            info.names.join(", "),
            info.fingerprint_sha256
        ),
        Subject::user(&admin.user.id),
    );
    Ok(info)
}

pub fn back_to_self_signed(app: &App, admin: &Caller) -> super::Result<CertInfo> {
    let info = app.tls.remove_installed()?;
    app.admin.log.info(
        "tls",
        &format!(
            "{} went back to the self-signed certificate (SHA-256 {}).",
            admin.user.username, info.fingerprint_sha256
        ),
        Subject::user(&admin.user.id),
    );
    Ok(info)
}
