//! The firmware update API on a piarchive that does not run from the SD-card image:
//! admin only, the status says it cannot update, and an upload is refused unwritten.
//! (Updates themselves are proven in QEMU by image/qemu-test; the bundle format by
//! the unit tests in src/update/bundle/tests.rs.)

use crate::support::TestServer;

#[test]
fn firmware_status_and_upload_outside_the_image() {
    let server = TestServer::start();
    let admin = server.admin();
    let member = server.member("bob");
    assert_eq!(member.get("/api/v1/admin/firmware").status, 403);
    let upload = member.request("POST", "/api/v1/admin/firmware", &[], Some(b"PIUP"));
    assert_eq!(upload.status, 403);

    let state = admin.get("/api/v1/admin/firmware").json();
    assert_eq!(state["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(state["can_update"], false);
    assert_eq!(state["trial"], false);
    assert!(state["slot"].is_null());
    assert!(state["last_update"].is_null());

    let refused = admin.request(
        "POST",
        "/api/v1/admin/firmware",
        &[],
        Some(b"PIUP\0\x01\r\nnot really"),
    );
    assert_eq!(refused.status, 409);
    let body = refused.json();
    assert_eq!(body["error"], "not_updatable");
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("does not run from the SD-card image"));

    let page = admin.get("/admin/firmware");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("does not run from the SD-card image"));
    assert!(admin.get("/").text().contains("href=\"/admin/firmware\""));
}
